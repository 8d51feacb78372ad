"""Typed errors and warnings: one base class, a few subclasses callers can catch or filter."""

from __future__ import annotations


class GsocseqError(Exception):
    """Base class of every error raised by gsocseq."""


class InputValidationError(GsocseqError, ValueError):
    """An argument or input dataset has a wrong shape, unit, range or value.

    Messages name the argument (or file and variable), the offending value and its index.
    """


class SourceError(GsocseqError):
    """A source dataset cannot be opened or read (missing key, wrong format, unreachable store)."""


class GridMismatchError(GsocseqError, ValueError):
    """A dataset does not lie on the expected grid / CRS, or a cube does not match its schema."""


class ProductValidationError(GsocseqError):
    """A written product (COG, STAC document) failed validation."""


class PipelineError(GsocseqError):
    """A run failed; the message names the tiles concerned."""


class StorageError(PipelineError):
    """An object could not be read or written; the message names its key."""


class LeaseError(GsocseqError):
    """A lease on a store is held by another process (and waiting was not allowed) or was lost."""


class GsocseqWarning(UserWarning):
    """Base warning class of gsocseq (filterable)."""
