"""Named COG profiles: how a product layer is encoded as a Cloud-Optimised GeoTIFF.

A profile is a frozen value (compression, predictor, block size, overview resampling) turned into
GDAL ``COG`` driver creation options by :meth:`CogProfile.creation_options`. Writers take a profile
*name*, so a run configuration can choose one by string and the registry stays the single place
where encodings are defined (the idea of rio-cogeo's ``cog_profiles``).

Every gsocseq profile writes float32 with nodata NaN (FAO reference §4.3 recommendation); only the
encoding differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gsocseq.errors import InputValidationError

__all__ = ["PROFILES", "CogProfile", "get_profile", "register_profile"]


@dataclass(frozen=True)
class CogProfile:
    """Encoding of one single-band float32 COG."""

    name: str
    """Registry key, e.g. ``"gsocseq"``."""
    compress: str = "DEFLATE"
    """GDAL compression codec (``DEFLATE``, ``ZSTD``, ``LZW``, ``NONE`` …)."""
    predictor: int = 3
    """TIFF predictor: 1 none, 2 horizontal differencing, 3 floating point."""
    level: int | None = None
    """Codec level (``None``: GDAL's default for the codec)."""
    blocksize: int = 512
    """Internal tile edge, pixels (a multiple of 16)."""
    overview_resampling: str = "average"
    """Resampling used to build the internal overviews."""
    dtype: str = "float32"
    """Pixel data type written."""

    def __post_init__(self) -> None:
        if self.blocksize <= 0 or self.blocksize % 16:
            raise InputValidationError(
                f"COG profile {self.name!r}: blocksize={self.blocksize} must be a positive "
                "multiple of 16"
            )
        if self.predictor not in (1, 2, 3):
            raise InputValidationError(
                f"COG profile {self.name!r}: predictor={self.predictor} must be 1, 2 or 3"
            )

    def creation_options(self) -> dict[str, str | int]:
        """Return the GDAL ``COG`` driver creation options of this profile."""
        opts: dict[str, str | int] = {
            "compress": self.compress,
            "blocksize": self.blocksize,
            "overview_resampling": self.overview_resampling,
            "overviews": "AUTO",
            "bigtiff": "IF_SAFER",
        }
        if self.compress.upper() != "NONE":
            opts["predictor"] = self.predictor
        if self.level is not None:
            opts["level"] = self.level
        return opts


_REGISTRY: dict[str, CogProfile] = {
    "gsocseq": CogProfile("gsocseq"),
    "gsocseq-zstd": CogProfile("gsocseq-zstd", compress="ZSTD", level=9),
    "gsocseq-fast": CogProfile("gsocseq-fast", compress="DEFLATE", level=1),
}

PROFILES: Mapping[str, CogProfile] = MappingProxyType(_REGISTRY)
"""Read-only view of the registered profiles by name."""


def get_profile(name: str) -> CogProfile:
    """Return the registered profile ``name``; raise with the known names if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputValidationError(
            f"unknown COG profile {name!r}; registered profiles: {sorted(_REGISTRY)}"
        ) from None


def register_profile(profile: CogProfile, *, replace: bool = False) -> None:
    """Add ``profile`` to the registry under ``profile.name`` (``replace`` to overwrite one)."""
    if profile.name in _REGISTRY and not replace:
        raise InputValidationError(
            f"COG profile {profile.name!r} is already registered; pass replace=True to overwrite"
        )
    _REGISTRY[profile.name] = profile
