"""Retries for transient storage faults: S3 client retry settings and a tile-level retry.

Two layers, both bounded:

* every S3 request is retried by botocore with exponential backoff and client-side rate limiting
  (``config_kwargs={"retries": {"max_attempts": S3_MAX_ATTEMPTS, "mode": "adaptive"}}``, added to
  the storage options of runs that touch ``s3://`` unless the caller set ``retries`` itself);
* a whole tile is retried (:func:`call_with_retries`) when it fails with a transient error (an
  ``OSError`` such as a 5xx answer after the client's retries, a dropped connection or a timeout,
  anywhere in the exception chain) — not for missing objects, denied access or bad data.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gsocseq.errors import PipelineError

log = logging.getLogger(__name__)

T = TypeVar("T")

S3_MAX_ATTEMPTS: int = 6
"""Attempts per S3 request (1 + 5 retries; botocore backoff ≈ 1, 2, 4, 8, 16 s at most)."""
TILE_ATTEMPTS: int = 2
"""Attempts per tile for transient errors (on top of the per-request retries)."""
TILE_BACKOFF_S: float = 1.0
"""Wait before the first tile-level retry, s (doubled for each further attempt)."""

_PERMANENT: tuple[type[BaseException], ...] = (
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
)


class StorageError(PipelineError):
    """An object could not be read or written; the message names its key."""


def with_s3_retries(storage_options: dict[str, Any], *urls: str | None) -> dict[str, Any]:
    """Return ``storage_options`` with the S3 retry configuration added when a URL is ``s3://``.

    An explicit ``config_kwargs["retries"]`` is kept as given. The input is not modified.
    """
    if not any(u is not None and u.startswith(("s3://", "s3a://")) for u in urls):
        return storage_options
    if "retries" in (storage_options.get("config_kwargs") or {}):
        return storage_options
    out = copy.deepcopy(storage_options)
    out.setdefault("config_kwargs", {})["retries"] = {"max_attempts": S3_MAX_ATTEMPTS,
                                                      "mode": "adaptive"}
    return out


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an exception it was raised from) is a transient I/O error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _PERMANENT):
            return False
        if isinstance(current, OSError | TimeoutError | ConnectionError):
            return True
        if type(current).__name__ in ("ClientError", "EndpointConnectionError",
                                      "ConnectionClosedError", "ReadTimeoutError"):
            return True
        current = current.__cause__ or current.__context__
    return False


def call_with_retries(
    fn: Callable[[], T], *, what: str, attempts: int = TILE_ATTEMPTS,
    backoff_s: float = TILE_BACKOFF_S,
) -> T:
    """Call ``fn`` up to ``attempts`` times while it raises transient errors (see :func:`is_transient`).

    Waits ``backoff_s``, then twice as long, … (s) between attempts; re-raises the last error, and
    any non-transient error at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: transient error (attempt %d/%d), retrying in %.1f s: %s",
                        what, attempt, attempts, wait, exc)
            time.sleep(wait)
    raise AssertionError("unreachable")
