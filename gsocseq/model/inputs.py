"""What the GSOCseq procedure is given: its configuration and the pixels (one immutable input).

Owns :class:`PhaseConfig` (the procedure's settings, one default each), :class:`Pixels` (per-pixel
SOC, clay, land use, monthly climate and cover, one set of names and units), their validation and
the input classification of pixels (:func:`classify_pixels`) against the vocabulary's plausible
ranges. Both schemes (:mod:`~gsocseq.model.exact`, :mod:`~gsocseq.model.fao_phases`) take these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

from gsocseq.errors import InputValidationError
from gsocseq.model import landuse
from gsocseq.vocabulary import LAND_USE_GROUPS, PERIODS, PLAUSIBLE_RANGES, Reason

EulerCriterion = Literal["month", "cycle"]
#: The one default of the ``fao`` scheme's Euler instability criterion (maps and ``fao-points``).
EULER_CRITERION: EulerCriterion = "cycle"


@dataclass(frozen=True)
class PhaseConfig:
    """Settings of the GSOCseq procedure (frozen, hashable)."""

    scheme: Literal["exact", "fao"] = "exact"
    """Numerical scheme: ``exact`` RothC-26.3 monthly steps, or ``fao`` compatibility."""
    ssm_increase: tuple[tuple[float, float, float], ...] = ((0.05, 0.10, 0.20),) * 3
    """SSM input increases over BAU, fractions [low, medium, high], per land-use group in
    :data:`gsocseq.vocabulary.LAND_USE_GROUPS` order (crops, grass, paddy): the SSM low scenario
    of a cropland pixel has input ``(1 + ssm_increase[0][0]) × BAU``."""
    evap_factor: float = 1.0
    """Evaporation factor: 1.0 for potential evapotranspiration input, 0.75 for open-pan."""
    depth_cm: float = 30.0
    """Soil depth in cm."""
    spinup_years: int = PERIODS["spinup"].years
    """Years of the spin-up climatology (1981–2000)."""
    warmup_years: int = PERIODS["warmup"].years
    """Years of the warm-up (2001–2020)."""
    forward_years: int = PERIODS["forward"].years
    """Years of the forward runs (2021–2040); rates are differences divided by this."""
    uncertainty: bool = True
    """Run the FAO min/max bracket runs and compute the uncertainty layers (else NaN)."""
    fao_spinup_variant: Literal["analytical", "equilibrium"] = "analytical"
    """Spin-up variant of the ``fao`` scheme (ignored by ``exact``)."""
    fao_euler_criterion: EulerCriterion = EULER_CRITERION
    """How the ``fao`` scheme detects an unstable explicit Euler step (ignored by ``exact``):
    ``cycle`` (default) masks only pixels whose DPM pool is amplified over a whole yearly cycle
    (values would blow up); ``month`` masks a pixel whose combined rate factor exceeds 2.4 in any
    stepped month (DPM's one-step factor ``1 − 10·ξ/12`` leaves [−1, 1]). FAO's scripts mask
    neither; the ``fao`` scheme's quality layer counts such months."""

    def ssm_factors(self, land_use: np.ndarray) -> np.ndarray:
        """Return the SSM input factors ``1 + increase`` (3, n) [low, medium, high] per pixel."""
        groups = landuse.scenario_group(land_use)
        out = np.ones((3, np.shape(land_use)[0]))
        for group, inc in zip(LAND_USE_GROUPS, self.ssm_increase, strict=True):
            sel = groups == group
            for level in range(3):
                out[level, sel] = 1.0 + float(inc[level])
        return out

    @property
    def n_months(self) -> int:
        """Months of the monthly climate inputs: spin-up and warm-up years."""
        return 12 * (self.spinup_years + self.warmup_years)

    def check(self) -> None:
        """Raise :class:`InputValidationError` naming the first invalid setting."""
        if self.scheme not in ("exact", "fao"):
            raise InputValidationError(
                f"config.scheme must be 'exact' or 'fao', got {self.scheme!r}")
        for name in ("spinup_years", "warmup_years", "forward_years"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InputValidationError(f"config.{name} must be a positive integer, got {value!r}")
        check_ssm_increase(dict(zip(LAND_USE_GROUPS, self.ssm_increase, strict=False)),
                           what="config.ssm_increase")
        if len(self.ssm_increase) != len(LAND_USE_GROUPS):
            raise InputValidationError(
                f"config.ssm_increase needs one [low, medium, high] per group {LAND_USE_GROUPS}, "
                f"got {self.ssm_increase!r}")
        if not (self.depth_cm > 0 and self.evap_factor > 0):
            raise InputValidationError(
                f"config.depth_cm ({self.depth_cm}) and config.evap_factor ({self.evap_factor}) "
                "must be > 0"
            )
        if self.fao_euler_criterion not in ("month", "cycle"):
            raise InputValidationError(
                "config.fao_euler_criterion must be 'cycle' or 'month', got "
                f"{self.fao_euler_criterion!r}"
            )
        if self.fao_spinup_variant not in ("analytical", "equilibrium"):
            raise InputValidationError(
                "config.fao_spinup_variant must be 'analytical' or 'equilibrium', got "
                f"{self.fao_spinup_variant!r}"
            )


@dataclass(frozen=True)
class Pixels:
    """The per-pixel inputs of the procedure (build with :meth:`checked`; read-only arrays)."""

    soc: np.ndarray
    """(n,) SOC stock 0–30 cm in 2000, t C/ha (float64)."""
    clay: np.ndarray
    """(n,) clay, % (float64)."""
    land_use: np.ndarray
    """(n,) FAO land-use class (integer)."""
    tmp: np.ndarray
    """(12·(spinup_years + warmup_years), n) monthly mean air temperature, °C, January 1981 first."""
    prec: np.ndarray
    """Same shape: precipitation, mm/month."""
    pet: np.ndarray
    """Same shape: potential evapotranspiration, mm/month."""
    cover: np.ndarray
    """(12, n) vegetated share of each calendar month, 0–1."""

    @property
    def n(self) -> int:
        """Number of pixels."""
        return self.soc.shape[0]

    @classmethod
    def checked(cls, config: PhaseConfig, **arrays: np.ndarray) -> Pixels:
        """Check shapes and dtypes of the whole arrays; return them (soc and clay as float64)."""
        soc, clay, lu = (np.asarray(arrays[k]) for k in ("soc", "clay", "land_use"))
        if soc.ndim != 1:
            raise InputValidationError(f"soc must have shape (n_pixels,), got {soc.shape}")
        n = soc.shape[0]
        for name, arr in (("soc", soc), ("clay", clay), ("land_use", lu)):
            if arr.shape != (n,):
                raise InputValidationError(f"{name} must have shape ({n},) like soc, got {arr.shape}")
        if not np.issubdtype(lu.dtype, np.integer):
            raise InputValidationError(
                f"land_use must be an integer array (FAO classes), got dtype {lu.dtype}"
            )
        monthly = {}
        for name, rows in (("tmp", config.n_months), ("prec", config.n_months),
                           ("pet", config.n_months), ("cover", 12)):
            arr = np.asarray(arrays[name])
            if arr.shape != (rows, n):
                raise InputValidationError(
                    f"{name} must have shape ({rows}, {n}) (months, pixels), got {arr.shape}"
                )
            monthly[name] = arr
        for name, arr in {**monthly, "soc": soc, "clay": clay}.items():
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise InputValidationError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        return cls(np.asarray(soc, np.float64), np.asarray(clay, np.float64), lu, **monthly)

    def block(self, idx: np.ndarray) -> Pixels:
        """Return pixels ``idx`` (sorted, unique), the monthly arrays C-contiguous (:func:`columns`)."""
        return Pixels(
            self.soc[idx], self.clay[idx], self.land_use[idx],
            *(columns(a, idx) for a in (self.tmp, self.prec, self.pet, self.cover)),
        )


def check_ssm_increase(increase: dict[str, object], *, what: str = "ssm_increase") -> None:
    """Raise :class:`InputValidationError` unless every group's SSM increases are valid.

    ``increase`` maps land-use groups (:data:`gsocseq.vocabulary.LAND_USE_GROUPS`) to three
    fractions [low, medium, high], each finite, in [0, 1] and non-decreasing.
    """
    for group, values in increase.items():
        if group not in LAND_USE_GROUPS:
            raise InputValidationError(
                f"{what}: unknown land-use group {group!r}; expected one of {LAND_USE_GROUPS}")
        try:
            v = [float(x) for x in values]  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise InputValidationError(
                f"{what}[{group!r}] = {values!r} must be 3 numbers [low, medium, high]") from exc
        if len(v) != 3 or not all(np.isfinite(x) and 0.0 <= x <= 1.0 for x in v):
            raise InputValidationError(
                f"{what}[{group!r}] = {values!r} must be 3 fractions in [0, 1] "
                "[low, medium, high]")
        if not v[0] <= v[1] <= v[2]:
            raise InputValidationError(
                f"{what}[{group!r}] = {values!r} must be non-decreasing (low <= medium <= high)")


def classify_pixels(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    land_use: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
) -> np.ndarray:
    """Return the input reason code per pixel (``uint8``): not agricultural, missing, out of range.

    The first applicable code wins in that order; pixels that pass get ``Reason.OK``. Ranges are
    :data:`gsocseq.vocabulary.PLAUSIBLE_RANGES`, the cube mask's table.
    """
    r = PLAUSIBLE_RANGES
    finite = np.isfinite(soc) & np.isfinite(clay)
    with np.errstate(invalid="ignore"):
        in_range = ((soc >= r["soc"][0]) & (soc <= r["soc"][1])
                    & (clay >= r["clay"][0]) & (clay <= r["clay"][1]))
    for name, arr in (("tmp", tmp), ("prec", prec), ("pet", pet), ("cover", cover)):
        _monthly_flags(arr, *r[name], finite, in_range)
    reason = np.full(soc.shape, Reason.OK, dtype=np.uint8)
    reason[~in_range] = Reason.INPUT_OUT_OF_RANGE
    reason[~finite] = Reason.MISSING_INPUT
    reason[~landuse.is_modelled(land_use)] = Reason.NOT_AGRICULTURAL
    return reason


@njit(cache=True, nogil=True)
def _monthly_flags(arr, lo, hi, finite, in_range):
    """Clear ``finite`` / ``in_range`` of pixels with a non-finite / out-of-range month.

    Branch-free (a pass at memory speed): a non-finite value also clears ``in_range``, which
    :func:`classify_pixels` overrides with ``MISSING_INPUT``.
    """
    for m in range(arr.shape[0]):
        for i in range(arr.shape[1]):
            v = arr[m, i]
            finite[i] &= v - v == 0.0
            in_range[i] &= (v >= lo) & (v <= hi)


def climatology(monthly: np.ndarray) -> np.ndarray:
    """Return the 12 calendar-month means of a ``(12·years, n)`` series."""
    return monthly.reshape(-1, 12, monthly.shape[-1]).mean(axis=0)


def real_dtype(arr: np.ndarray) -> np.dtype:
    """Return float32 for float32 ``arr`` (kernels read it directly, exactly), else float64."""
    return np.dtype(np.float32) if arr.dtype == np.float32 else np.dtype(np.float64)


def columns(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Return pixels ``idx`` (sorted, unique; last axis) of ``arr`` as a C-contiguous array.

    float32 stays float32 (every float32 value is exactly a float64 one: kernels convert as they
    read, half the bytes copied); any other dtype becomes float64.
    """
    dtype = real_dtype(arr)
    if idx.size and idx[-1] - idx[0] == idx.size - 1:  # consecutive: a slice, no gather
        return np.ascontiguousarray(arr[..., idx[0] : idx[-1] + 1], dtype=dtype)
    return np.ascontiguousarray(np.take(arr, idx, axis=-1), dtype=dtype)


def f8(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` as float64 (no copy if it already is)."""
    return np.asarray(arr, dtype=np.float64)
