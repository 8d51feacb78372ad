"""RothC-26.3, the ``exact`` scheme's model: one validated input bundle and the runs over it.

Owns the public RothC API: :class:`Site` (monthly climate, cover, plant-input quality and soil of
``n`` pixels, checked once by :func:`site`) and the runs that take it. Kernels live in
:mod:`gsocseq.model._rothc_kernels`.

Conventions:

- ``pools`` ``(n_pixels, 5)`` t C/ha in the order DPM, RPM, BIO, HUM, IOM; ``smd`` ``(n_pixels,)``
  accumulated topsoil moisture deficit in mm, in [SMDmax, 0] (:func:`smd_max`).
- Monthly inputs ``(n_months, n_pixels)``: ``tmp`` mean air temperature (°C), ``prec``
  precipitation (mm/month), ``pet`` evaporation (mm/month, multiplied by ``evap_factor``: 0.75 for
  open-pan evaporation, 1.0 for potential evapotranspiration), ``cover`` vegetated share 0–1
  (cover factor ``c = 1 - 0.4·cover``; bare for the moisture rule when ``cover < 0.5``), ``c_inp``
  plant C and ``fym`` manure C entering the soil that month (t C/ha), ``dpm_rpm`` DPM/RPM ratio of
  the plant input (also ``(n_pixels,)``).
- Per pixel: ``clay`` (%), ``depth`` (cm), ``rate_modifier`` (extra multiplicative rate factor,
  e.g. 0.4 for paddy fields; default 1).
- ``validate=True`` checks every value (finite, in :data:`gsocseq.vocabulary.PLAUSIBLE_RANGES` or
  the argument's domain) in one fused pass and raises
  :class:`~gsocseq.errors.InputValidationError` naming the argument, the value and its index.
  Shapes are always checked. With ``validate=False`` NaN pixels are allowed: NaN in → NaN out.

Repeated years (the forward phase repeats one climate year): the year is an affine map
``p_dec = A p_jan + b_fixed + cin·b_unit`` of the four active pools, linear in the annual plant
input ``cin`` (:func:`annual_affine_map`, :func:`simulate_years_affine`). The moisture deficit of
the first year(s) depends on the starting deficit; :func:`steady_smd` gives the periodic one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from gsocseq.errors import InputValidationError
from gsocseq.model import _rothc_kernels as _k
from gsocseq.vocabulary import INPUT_UNITS, PLAUSIBLE_RANGES

POOL_NAMES: tuple[str, ...] = ("dpm", "rpm", "bio", "hum", "iom")
"""Pool order of the last axis of ``pools``."""

#: Domains (inclusive) checked by ``validate=True``: the plausible input ranges of the vocabulary
#: for the physical inputs, the mathematical domain for the state and the other arguments.
DOMAINS: dict[str, tuple[float, float, str]] = {
    **{k: (lo, hi, INPUT_UNITS[k]) for k, (lo, hi) in PLAUSIBLE_RANGES.items()},
    "pools": (0.0, np.inf, "t C/ha"),
    "smd": (-np.inf, 0.0, "mm"),
    "smd0": (-np.inf, 0.0, "mm"),
    "c_inp": (0.0, np.inf, "t C/ha"),
    "cin": (0.0, np.inf, "t C/ha/yr"),
    "fym": (0.0, np.inf, "t C/ha"),
    "dpm_rpm": (0.0, np.inf, "ratio"),
    "depth": (0.0, np.inf, "cm"),
    "rate_modifier": (0.0, np.inf, "factor"),
    "iom": (0.0, np.inf, "t C/ha"),
    "input_pattern": (0.0, np.inf, "share"),
}


class AnnualMap(NamedTuple):
    """One repeating year as an affine map of the active pools (DPM, RPM, BIO, HUM).

    ``p_dec = a @ p_jan + b_fixed + cin * b_unit`` with ``cin`` the annual plant input.
    """

    a: np.ndarray
    """(n_pixels, 4, 4) product of the twelve monthly decay-and-transfer matrices."""
    b_unit: np.ndarray
    """(n_pixels, 4) t C/ha at the end of the year, from empty pools, per 1 t C/ha/yr plant input."""
    b_fixed: np.ndarray
    """(n_pixels, 4) t C/ha at the end of the year, from empty pools, from ``c_inp`` and ``fym``."""
    smd_start: np.ndarray
    """(n_pixels,) deficit (mm) at the start of the year the map was built for."""
    smd_end: np.ndarray
    """(n_pixels,) deficit (mm) at the end of the year; equals ``smd_start`` when periodic."""


class EquilibriumParts(NamedTuple):
    """Periodic steady state (end of December) split into its input-proportional part."""

    p_unit: np.ndarray
    """(n_pixels, 4) active pools (t C/ha) per 1 t C/ha/yr of plant input."""
    p_fixed: np.ndarray
    """(n_pixels, 4) active pools (t C/ha) from the fixed inputs (``c_inp``, ``fym``)."""
    smd: np.ndarray
    """(n_pixels,) steady end-of-December deficit (mm)."""


@dataclass(frozen=True)
class Site:
    """What drives a RothC run of ``n`` pixels over ``n_months`` months (build with :func:`site`).

    Arrays are C-contiguous float64 and already checked; treat them as read-only.
    """

    tmp: np.ndarray
    """(n_months, n) mean air temperature, °C."""
    prec: np.ndarray
    """(n_months, n) precipitation, mm/month."""
    pet: np.ndarray
    """(n_months, n) evaporation, mm/month (times ``evap_factor``)."""
    cover: np.ndarray
    """(n_months, n) vegetated share 0–1."""
    dpm_rpm: np.ndarray
    """(n_months, n) or (1, n) DPM/RPM ratio of the plant input."""
    clay: np.ndarray
    """(n,) clay, %."""
    depth: np.ndarray
    """(n,) soil depth, cm."""
    rate_modifier: np.ndarray
    """(n,) extra rate factor (0.4 paddy, else 1)."""
    evap_factor: float
    """0.75 for open-pan evaporation, 1.0 for potential evapotranspiration."""
    validated: bool
    """Values are checked (else NaN pixels are allowed and propagate)."""
    pending: list[bool] = field(default_factory=lambda: [False], repr=False, compare=False)
    """``[True]`` while the monthly values still await their check: the first run that reads them
    checks them in the same pass (:func:`simulate`) or before it starts."""

    @property
    def n_months(self) -> int:
        """Number of months of the monthly inputs."""
        return self.tmp.shape[0]

    @property
    def n_pixels(self) -> int:
        """Number of pixels."""
        return self.clay.shape[0]

    def take(self, idx: np.ndarray) -> Site:
        """Return the site of pixels ``idx``."""
        def cols(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a[..., idx])

        return Site(
            cols(self.tmp), cols(self.prec), cols(self.pet), cols(self.cover), cols(self.dpm_rpm),
            cols(self.clay), cols(self.depth), cols(self.rate_modifier), self.evap_factor,
            self.validated, [self.pending[0]],
        )


# ---------------------------------------------------------------------------------------------
# validation


def _fmt(idx: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in idx)


def _array(
    name: str, value: object, shape: tuple[int, ...], keep_float32: bool = False
) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array of ``shape`` or raise.

    With ``keep_float32`` a float32 array stays float32 (for kernels that convert as they read).
    """
    f32 = keep_float32 and getattr(value, "dtype", None) == np.float32
    try:
        arr = np.asarray(value, dtype=np.float32 if f32 else np.float64)
    except (TypeError, ValueError) as exc:
        raise InputValidationError(f"{name}: cannot be read as float64 numbers ({exc})") from exc
    if arr.shape != shape:
        raise InputValidationError(
            f"{name}: shape {arr.shape} given, {shape} expected "
            "(monthly inputs are (n_months, n_pixels), per-pixel inputs (n_pixels,))"
        )
    return np.ascontiguousarray(arr)


def _check(arrays: dict[str, np.ndarray]) -> None:
    """Raise for the first non-finite or out-of-domain value of ``arrays`` (one fused pass)."""
    if not arrays:
        return
    names = list(arrays)
    flat = tuple(arrays[k].reshape(-1) for k in names)
    bounds = [DOMAINS[k.split(":")[0]] for k in names]
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    which, k = _k.first_bad(flat, lo, hi)
    if which < 0:
        return
    name = names[which]
    arr = arrays[name]
    idx = tuple(int(v) for v in np.unravel_index(k, arr.shape))
    value = float(arr[idx])
    label = name.split(":")[-1]
    if not np.isfinite(value):
        raise InputValidationError(
            f"{label}[{_fmt(idx)}] = {value!r} is not finite; mask such pixels and pass "
            "validate=False to propagate NaN"
        )
    lo_, hi_, unit = bounds[which]
    raise InputValidationError(
        f"{label}[{_fmt(idx)}] = {value!r} is outside the valid range [{lo_}, {hi_}] ({unit})"
    )


def smd_max(clay: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Return the largest possible deficit SMDmax = -(20 + 1.3·clay - 0.01·clay²)·depth/23 (mm).

    ``clay`` in %, ``depth`` in cm; the deficit state always lies in [SMDmax, 0].
    """
    clay = np.asarray(clay, dtype=np.float64)
    return -(20.0 + 1.3 * clay - 0.01 * (clay * clay)) * np.asarray(depth, dtype=np.float64) / 23.0


def _check_deficit(name: str, smd: np.ndarray, s: Site) -> None:
    """Raise if a start deficit lies below its pixel's SMDmax (a state RothC never reaches)."""
    lowest = smd_max(s.clay, s.depth)
    bad = smd < lowest * (1.0 + 1e-9)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputValidationError(
            f"{name}[{_fmt(i)}] = {float(smd[i])!r} mm is below SMDmax = {float(lowest[i]):.6g} "
            f"mm of that pixel (clay {float(s.clay[i]):.6g} %, depth {float(s.depth[i]):.6g} cm)"
        )


def _per_pixel(name: str, value: object, n: int, default: float | None = None) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=np.float64)
    if np.ndim(value) == 0:
        value = np.full(n, value, dtype=np.float64)
    return _array(name, value, (n,))


def _pools(value: object, n: int | None = None) -> np.ndarray:
    """Return start pools ``(n_pixels, 5)`` as a C-contiguous float64 array or raise."""
    p = np.asarray(value)
    if p.ndim != 2 or p.shape[1] != 5 or (n is not None and p.shape[0] != n):
        expected = f"({'n_pixels' if n is None else n}, 5)"
        raise InputValidationError(
            f"pools: shape {p.shape} given, {expected} expected (DPM, RPM, BIO, HUM, IOM)"
        )
    return _array("pools", p, p.shape)


def _n_years(n_years: int) -> int:
    if int(n_years) != n_years or n_years < 0:
        raise InputValidationError(f"n_years = {n_years!r} must be an integer ≥ 0")
    return int(n_years)


def site(
    *,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray | float,
    rate_modifier: np.ndarray | float | None = None,
    evap_factor: float = 0.75,
    validate: bool = True,
) -> Site:
    """Return the checked :class:`Site` of ``n`` pixels (units in the module docstring).

    ``tmp``, ``prec``, ``pet``, ``cover`` ``(n_months, n)``; ``dpm_rpm`` ``(n,)`` or
    ``(n_months, n)``; ``clay``, ``depth`` (scalar or ``(n,)``) and ``rate_modifier`` (default 1).
    Shapes are always checked; ``validate=True`` also checks every value in one fused pass.
    """
    if np.ndim(clay) != 1:
        raise InputValidationError(f"clay: shape {np.shape(clay)} given, (n_pixels,) expected")
    n = np.shape(clay)[0]
    t = np.asarray(tmp)
    if t.ndim != 2 or t.shape[1] != n:
        raise InputValidationError(
            f"tmp: shape {t.shape} given, (n_months, {n}) expected (n_pixels from clay)"
        )
    n_months = t.shape[0]
    if n_months == 0:
        raise InputValidationError("tmp: no months given (shape (0, n_pixels))")
    monthly = {k: _array(k, v, (n_months, n))
               for k, v in (("tmp", tmp), ("prec", prec), ("pet", pet), ("cover", cover))}
    dr = np.asarray(dpm_rpm, dtype=np.float64)
    dr = _array("dpm_rpm", dr, (n,)).reshape(1, n) if dr.ndim == 1 else _array(
        "dpm_rpm", dr, (n_months, n))
    clay_a = _array("clay", clay, (n,))
    depth_a = _per_pixel("depth", depth, n)
    rmod = _per_pixel("rate_modifier", rate_modifier, n, 1.0)
    ef = float(evap_factor)
    if not (np.isfinite(ef) and 0.0 <= ef <= 10.0):
        raise InputValidationError(f"evap_factor = {evap_factor!r} must be a finite number in [0, 10]")
    if validate:  # the monthly values are checked by the first run, in its own pass
        _check({"dpm_rpm": dr, "clay": clay_a, "depth": depth_a, "rate_modifier": rmod})
        if (depth_a <= 0).any():
            i = int(np.argmax(depth_a <= 0))
            raise InputValidationError(f"depth[{i}] = {float(depth_a[i])!r} must be > 0 (cm)")
    return Site(monthly["tmp"], monthly["prec"], monthly["pet"], monthly["cover"], dr, clay_a,
                depth_a, rmod, ef, validate, [validate])


def _monthly_of(s: Site) -> dict[str, np.ndarray]:
    return {"tmp": s.tmp, "prec": s.prec, "pet": s.pet, "cover": s.cover}


def _ensure_checked(s: Site) -> None:
    """Check the monthly values of ``s`` now if no run has checked them yet."""
    if s.pending[0]:
        _check(_monthly_of(s))
        s.pending[0] = False


_FUSED = ("tmp", "prec", "pet", "cover", "c_inp", "fym")
#: Finite bounds (±inf domain ends clipped to the largest float): ``lo <= v <= hi`` then also
#: rejects NaN and ±inf, two comparisons per value in the kernel's check.
_FUSED_LO = np.maximum([DOMAINS[k][0] for k in _FUSED], -np.finfo(np.float64).max)
_FUSED_HI = np.minimum([DOMAINS[k][1] for k in _FUSED], np.finfo(np.float64).max)


def _monthly(name: str, value: object, s: Site, default_zero: bool = False) -> np.ndarray:
    if value is None and default_zero:
        return np.zeros((s.n_months, s.n_pixels))
    return _array(name, value, (s.n_months, s.n_pixels))


def _one_year(s: Site) -> None:
    if s.n_months != 12:
        raise InputValidationError(
            f"tmp: {s.n_months} months given; one repeating year of 12 months is needed here"
        )
    _ensure_checked(s)


def _start_deficit(name: str, smd: object, s: Site, validate: bool) -> np.ndarray:
    arr = _per_pixel(name, smd, s.n_pixels)
    if validate:
        _check({name: arr})
        _check_deficit(name, arr, s)
    return arr


def _pattern(input_pattern: object, n: int, validate: bool) -> np.ndarray:
    """Return the (12, n) monthly shares of the annual plant input (each column sums to 1)."""
    if input_pattern is None:
        return np.full((12, n), 1.0 / 12.0)
    pat = np.asarray(input_pattern, dtype=np.float64)
    if pat.shape == (12,):
        pat = np.repeat(pat[:, None], n, axis=1)
    pat = _array("input_pattern", pat, (12, n))
    if validate:
        _check({"input_pattern": pat})
    total = pat.sum(axis=0)
    if validate and (total <= 0).any():
        idx = tuple(int(v) for v in np.argwhere(total <= 0)[0])
        raise InputValidationError(
            f"input_pattern[:, {_fmt(idx)}] sums to {float(total[idx])!r}; monthly shares must sum to > 0"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.ascontiguousarray(pat / total)


# ---------------------------------------------------------------------------------------------
# month by month


def simulate(
    pools: np.ndarray,
    smd: np.ndarray,
    site: Site,
    *,
    c_inp: np.ndarray,
    fym: np.ndarray | None = None,
    monthly: bool = False,
    repeat: int = 1,
    return_co2: bool = False,
    validate: bool = True,
) -> tuple[np.ndarray, ...]:
    """Run RothC month by month over the months of ``site``.

    Parameters
    ----------
    pools, smd
        Start state (n_pixels, 5) t C/ha and (n_pixels,) mm.
    site
        Climate, cover, plant-input quality and soil (:func:`site`).
    c_inp, fym
        (n_months, n_pixels) plant and manure C entering the soil each month (t C/ha); ``fym``
        zero if None.
    monthly
        Return every end-of-month state instead of the final one.
    repeat
        Run the months ``repeat`` times in a row (a repeating climate); needs ``monthly=False``
        when > 1.
    return_co2
        Also return the CO₂-C released (t C/ha): per month (n_months, n_pixels) with
        ``monthly=True``, else the run total (n_pixels,).
    validate
        Check the values of ``pools``, ``smd``, ``c_inp``, ``fym`` (the site is checked by
        :func:`site`).

    Returns
    -------
    pools : np.ndarray
        (n_pixels, 5) t C/ha at the end, or (n_months, n_pixels, 5) end-of-month with ``monthly``.
    smd : np.ndarray
        (n_pixels,) mm, or (n_months, n_pixels) with ``monthly``.
    co2 : np.ndarray
        Only with ``return_co2``: t C/ha released.
    """
    n, n_months = site.n_pixels, site.n_months
    out_pools = _pools(pools, n).copy()
    out_smd = _array("smd", smd, (n,)).copy()
    c = _monthly("c_inp", c_inp, site)
    f = np.zeros((1, n)) if fym is None else _monthly("fym", fym, site)
    fused = validate and site.pending[0]  # site and inputs checked inside the kernel's pass
    if validate:
        _check({"pools": out_pools, "smd": out_smd})
        _check_deficit("smd", out_smd, site)
        if not fused:
            _check({"c_inp": c, "fym": f})
    else:
        _ensure_checked(site)
    if int(repeat) != repeat or repeat < 1:
        raise InputValidationError(f"repeat = {repeat!r} must be an integer ≥ 1")
    if monthly and repeat > 1:
        raise InputValidationError(f"repeat = {repeat!r} > 1 cannot be combined with monthly=True")
    if monthly:
        mon_pools = np.empty((n_months, n, 5))
        mon_pools[:, :, 4] = out_pools[:, 4]
        mon_smd = np.empty((n_months, n))
        mon_co2 = np.empty((n_months, n))
    else:
        mon_pools = np.empty((0, 0, 5))
        mon_smd = np.empty((0, 0))
        mon_co2 = np.empty((0, 0))
    co2 = np.zeros(n)
    bad = _k.run(
        out_pools, out_smd, site.tmp, site.prec, site.pet, site.cover, c, f, site.dpm_rpm,
        site.dpm_rpm.shape[0] > 1, site.clay, site.depth, site.evap_factor, site.rate_modifier,
        int(repeat), monthly, mon_pools, mon_smd, co2, mon_co2, fused, _FUSED_LO, _FUSED_HI,
    )
    if fused:
        if bad:  # find and name the first bad value (the results are discarded)
            _check({**_monthly_of(site), "c_inp": c, "fym": f})
            raise InputValidationError(f"{bad} monthly input values are not finite or out of range")
        site.pending[0] = False
    if monthly:
        result: tuple[np.ndarray, ...] = (mon_pools, mon_smd)
        return (*result, mon_co2) if return_co2 else result
    return (out_pools, out_smd, co2) if return_co2 else (out_pools, out_smd)


def simulate_annual_input(
    pools: np.ndarray,
    smd: np.ndarray,
    year: Site,
    *,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cin_years: np.ndarray,
    tmp_factor: float = 1.0,
    prec_factor: float = 1.0,
    at: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Run RothC month by month over ``n_years`` of climate with one plant input per year.

    Unchecked (the caller has checked every value; NaN in → NaN out), for the GSOCseq warm-up.
    ``year`` is a 12-month :func:`site` giving the calendar-year ``cover``, a per-pixel
    ``dpm_rpm``, the soil and ``evap_factor`` (its climate is not used); ``tmp`` (°C), ``prec``,
    ``pet`` (mm/month) are ``(12·n_years, n)`` (float32 read as is), temperature and
    precipitation multiplied by ``tmp_factor`` and ``prec_factor`` as they are read;
    ``cin_years`` ``(n_years, n)`` the annual plant input (t C/ha/yr), a twelfth of it entering
    each month, no manure. Same numbers as
    :func:`simulate` on the expanded arrays. With ``at = (m0, c0)`` the climate is the block
    ``[m0 : m0 + 12·n_years, c0 : c0 + n]`` of larger C-contiguous arrays (read in place, no
    copy). Returns the end pools (n, 5) t C/ha and deficit (n,) mm.
    """
    n = year.n_pixels
    if year.n_months != 12 or year.dpm_rpm.shape[0] != 1:
        raise InputValidationError("simulate_annual_input: year must be a 12-month site with a "
                                   "per-pixel dpm_rpm")
    n_years = np.shape(cin_years)[0]
    m0, c0 = (int(x) for x in at)
    months = {}
    for k, v in (("tmp", tmp), ("prec", prec), ("pet", pet)):
        shape = np.shape(v)
        if m0 < 0 or c0 < 0 or len(shape) != 2 or shape[0] < m0 + 12 * n_years or (
                shape[1] < c0 + n):
            raise InputValidationError(
                f"{k}: shape {shape} given, at least ({m0 + 12 * n_years}, {c0 + n}) expected "
                f"for {n_years} years of {n} pixels at (month, column) {(m0, c0)}")
        months[k] = _array(k, v, shape, keep_float32=True)
    out_pools = _pools(pools, n).copy()
    out_smd = _array("smd", smd, (n,)).copy()
    _k.run_years(out_pools, out_smd, months["tmp"], months["prec"], months["pet"], year.cover,
                 _array("cin_years", cin_years, (n_years, n)), year.dpm_rpm[0], year.clay,
                 year.depth, year.evap_factor, year.rate_modifier, float(tmp_factor),
                 float(prec_factor), m0, c0)
    return out_pools, out_smd


def simulate_pair(
    pools: np.ndarray, smd: np.ndarray, year: Site, *, cin: np.ndarray, repeat: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the 12-month ``year`` ``repeat`` times from ``pools`` and from empty pools at once.

    Unchecked (the caller has checked every value; NaN in → NaN out), for the GSOCseq forward
    runs: both runs take the annual plant input ``cin`` (n,) t C/ha/yr, a twelfth each month, no
    manure, and share the deficit from ``smd`` (n,) mm, so each month's rates are computed once;
    ``year`` needs a per-pixel ``dpm_rpm``. Same numbers as two :func:`simulate` calls with
    ``c_inp = cin / 12``. Returns the end pools from ``pools`` and from empty pools (n, 5) t C/ha
    and the end deficit (n,) mm.
    """
    n = year.n_pixels
    if year.n_months != 12 or year.dpm_rpm.shape[0] != 1:
        raise InputValidationError("simulate_pair: year must be a 12-month site with a per-pixel "
                                   "dpm_rpm")
    if int(repeat) != repeat or repeat < 1:
        raise InputValidationError(f"repeat = {repeat!r} must be an integer ≥ 1")
    out_pools = _pools(pools, n).copy()
    unit = np.zeros((n, 5))
    out_smd = _array("smd", smd, (n,)).copy()
    _k.run_pair(out_pools, unit, out_smd, year.tmp, year.prec, year.pet, year.cover,
                _array("cin", cin, (n,)), year.dpm_rpm[0], year.clay, year.depth,
                year.evap_factor, year.rate_modifier, int(repeat))
    return out_pools, unit, out_smd


def simulate_years_affine(
    pools: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    n_years: int,
    *,
    yearly: bool = False,
) -> np.ndarray:
    """Advance ``pools`` (n_pixels, 5) t C/ha by ``n_years`` repetitions of ``p <- a p + b``.

    ``a`` (n_pixels, 4, 4) from :func:`annual_affine_map`; ``b`` (n_pixels, 4) t C/ha, e.g.
    ``m.b_fixed + cin[:, None] * m.b_unit`` with ``cin`` the annual plant input (t C/ha/yr). IOM
    is carried unchanged. Returns the end pools, or with ``yearly`` every end-of-year state
    (n_years, n_pixels, 5). Exact (to rounding) only if the deficit cycle of the map is periodic
    (built with ``periodic=True`` or ``smd_end == smd_start``).
    """
    out = _pools(pools).copy()
    n = out.shape[0]
    a_arr = _array("a", a, (n, 4, 4))
    b_arr = _array("b", b, (n, 4))
    n_years = _n_years(n_years)
    years = np.empty((n_years, n, 5)) if yearly else np.empty((0, 0, 5))
    if yearly:
        years[:, :, 4] = out[:, 4]
    _k.years_affine(out, a_arr, b_arr, n_years, yearly, years)
    return years if yearly else out


def simulate_years_affine_pair(
    pools: np.ndarray, unit: np.ndarray, a: np.ndarray, b: np.ndarray, n_years: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return :func:`simulate_years_affine` of ``pools`` and of ``unit`` (both (n_pixels, 5) t C/ha).

    The two runs share ``a`` and ``b`` and are stepped together (the same numbers, faster).
    """
    out = _pools(pools).copy()
    out_unit = _pools(unit, out.shape[0]).copy()
    n = out.shape[0]
    _k.years_affine_pair(out, out_unit, _array("a", a, (n, 4, 4)), _array("b", b, (n, 4)),
                         _n_years(n_years))
    return out, out_unit


# ---------------------------------------------------------------------------------------------
# one repeating year: affine map, steady deficit, equilibrium


def annual_affine_map(
    site: Site,
    *,
    c_inp: np.ndarray | None = None,
    fym: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    periodic: bool = False,
    input_pattern: np.ndarray | None = None,
    validate: bool = True,
) -> AnnualMap:
    """Return one year (12 months of ``site``) as the map ``p_dec = a p_jan + b_fixed + cin·b_unit``.

    ``c_inp``, ``fym`` fixed monthly inputs (12, n_pixels) t C/ha in ``b_fixed`` (zero if None);
    ``smd0`` the deficit (mm) at the start of the year; ``periodic`` first moves ``smd0`` to the
    periodic deficit the repeated year reaches from it (:func:`steady_smd`); ``input_pattern``
    monthly shares (12,) or (12, n_pixels) of the annual plant input in ``b_unit`` (normalised to
    sum 1; default 1/12 each month).

    Returns ``a`` (n, 4, 4); ``b_unit`` (n, 4) t C/ha per t C/ha/yr; ``b_fixed`` (n, 4) t C/ha;
    ``smd_start``, ``smd_end`` (n,) mm.
    """
    _one_year(site)
    given = {k: _monthly(k, v, site) for k, v in (("c_inp", c_inp), ("fym", fym)) if v is not None}
    if validate:
        _check(given)
    c, f = given.get("c_inp"), given.get("fym")
    s0 = _start_deficit("smd0", smd0, site, validate)
    pattern = _pattern(input_pattern, site.n_pixels, validate)
    return _annual(site, c, f, pattern, s0, periodic)


#: Stand-in for absent fixed inputs: the kernel reads ``c_inp`` and ``fym`` only with ``fixed``.
_NO_INPUT = np.zeros((0, 0))


def _annual(s: Site, c_inp: np.ndarray | None, fym: np.ndarray | None, pattern: np.ndarray,
            s0: np.ndarray, periodic: bool) -> AnnualMap:
    """Build the map of ``s``; ``c_inp``, ``fym`` (12, n) t C/ha or None (no such input)."""
    n = s.n_pixels
    fixed = any(v is not None and bool(np.any(v != 0.0)) for v in (c_inp, fym))
    if fixed:
        c_inp, fym = (np.zeros((12, n)) if v is None else v for v in (c_inp, fym))
    else:
        c_inp = fym = _NO_INPUT
    a = np.empty((n, 4, 4))
    b_unit = np.empty((n, 4))
    b_fixed = np.empty((n, 4))
    s_start = np.empty(n)
    s_end = np.empty(n)
    _k.annual(
        s0, periodic, s.tmp, s.prec, s.pet, s.cover, c_inp, fym, pattern, s.dpm_rpm,
        s.dpm_rpm.shape[0] > 1, s.clay, s.depth, s.evap_factor, s.rate_modifier, a, b_unit,
        b_fixed, s_start, s_end, fixed,
    )
    return AnnualMap(a, b_unit, b_fixed, s_start, s_end)


def steady_smd(site: Site, smd0: float | np.ndarray = 0.0, *, validate: bool = True) -> np.ndarray:
    """Return the periodic end-of-December deficit (mm) reached by repeating one year from ``smd0``.

    Computed exactly (no year-by-year loop over slow drifts), see ``steady_smd_pixel``; only
    ``prec``, ``pet``, ``cover`` and the soil of the 12-month ``site`` matter.
    """
    return annual_affine_map(site, smd0=smd0, periodic=True, validate=validate).smd_start


def repeat_year(
    pools: np.ndarray,
    smd: np.ndarray,
    site: Site,
    *,
    cin: np.ndarray,
    n_years: int,
    fym: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    validate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the 12-month ``site`` ``n_years`` times for several annual inputs at once.

    Same result as :func:`simulate` with ``repeat=n_years`` and ``c_inp = cin·pattern`` for each
    row of ``cin`` (n_inputs, n_pixels) or (n_pixels,) t C/ha/yr, but the year is applied as its
    affine map: rebuilt from the current deficit until the deficit cycle is periodic (usually after
    one or two years), then reused. Returns the pools (n_inputs, n_pixels, 5) t C/ha
    ((n_pixels, 5) if ``cin`` is 1-D) and the end deficit (n_pixels,) mm.
    """
    _one_year(site)
    n = site.n_pixels
    p0 = _pools(pools, n)
    cin_a = np.asarray(cin, dtype=np.float64)
    one = cin_a.ndim == 1
    cin_a = _array("cin", cin_a[None] if one else cin_a, (cin_a.shape[0] if not one else 1, n))
    f = _monthly("fym", fym, site, default_zero=True)
    if validate:
        _check({"pools": p0, "cin": cin_a, "fym": f})
    s = _start_deficit("smd", smd, site, validate)
    pattern = _pattern(input_pattern, n, validate)
    zeros = np.zeros((12, n))
    left = _n_years(n_years)
    out = np.repeat(p0[None], cin_a.shape[0], axis=0)
    while left > 0:
        m = _annual(site, zeros, f, pattern, s, False)
        periodic = np.array_equal(m.smd_end, m.smd_start, equal_nan=True)
        years = left if periodic else 1
        for k in range(cin_a.shape[0]):
            b = m.b_fixed + cin_a[k][:, None] * m.b_unit
            _k.years_affine(out[k], m.a, b, years, False, np.empty((0, 0, 5)))
        s = m.smd_end
        left -= years
    return (out[0] if one else out), s


def equilibrium_parts(
    site: Site,
    *,
    c_inp: np.ndarray | None = None,
    fym: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    validate: bool = True,
) -> EquilibriumParts:
    """Return the closed-form periodic steady state split as ``p = p_fixed + cin·p_unit``.

    The deficit's periodic cycle reached from ``smd0`` is found first; the year is then the affine
    map ``p_dec = A p_jan + b`` of the active pools and ``(I - A) p = b`` is solved per pixel
    (NaN where singular, e.g. no decomposition in any month). ``cin`` is the annual plant input
    (t C/ha/yr) spread by ``input_pattern``; arguments as in :func:`annual_affine_map`.
    """
    m = annual_affine_map(site, c_inp=c_inp, fym=fym, smd0=smd0, periodic=True,
                          input_pattern=input_pattern, validate=validate)
    n = m.a.shape[0]
    p_unit = np.empty((n, 4))
    p_fixed = np.empty((n, 4))
    _k.steady_pools(m.a, m.b_unit, m.b_fixed, p_unit, p_fixed)
    return EquilibriumParts(p_unit, p_fixed, m.smd_end)


def equilibrium(
    iom: np.ndarray,
    site: Site,
    *,
    c_inp: np.ndarray,
    fym: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    validate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the periodic steady state at the end of December, in closed form.

    ``iom`` (n_pixels,) t C/ha; ``site`` one repeating year (12 months); ``c_inp``, ``fym`` as in
    :func:`simulate`; ``smd0`` the deficit (mm) the repetition starts from (0: the official
    driver's start). Returns the pools (n_pixels, 5) t C/ha (NaN where no steady state exists)
    and the steady end-of-December deficit (n_pixels,) mm.
    """
    iom_a = _array("iom", iom, (site.n_pixels,))
    if validate:
        _check({"iom": iom_a})
    parts = equilibrium_parts(site, c_inp=c_inp, fym=fym, smd0=smd0, validate=validate)
    pools = np.empty((site.n_pixels, 5))
    pools[:, :4] = parts.p_fixed
    pools[:, 4] = iom_a
    return pools, parts.smd


def falloon_iom(soc: np.ndarray | float) -> np.ndarray:
    """Return the inert organic matter IOM = 0.049·SOC^1.139 (t C/ha) of a SOC stock (t C/ha).

    NaN in → NaN out; negative stocks give NaN.
    """
    s = np.asarray(soc, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return 0.049 * np.power(s, 1.139)


def equilibrium_input(
    soc: np.ndarray,
    site: Site,
    *,
    iom: np.ndarray | None = None,
    fym: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    validate: bool = True,
) -> np.ndarray:
    """Return the annual plant input (t C/ha/yr) whose equilibrium total SOC equals ``soc``.

    Equilibrium SOC is affine in the input: ``SOC = IOM + Σ p_fixed + cin·Σ p_unit``, so
    ``cin = (soc - IOM - Σ p_fixed) / Σ p_unit`` (closed form). ``soc`` (n_pixels,) t C/ha;
    ``iom`` (n_pixels,) t C/ha, default :func:`falloon_iom` of ``soc``; ``fym`` (12, n_pixels)
    t C/ha a fixed input; the input is spread by ``input_pattern`` (default 1/12 each month).
    The result may be ≤ 0 where manure alone exceeds the target, and is NaN where no steady state
    exists: callers flag those pixels.
    """
    n = site.n_pixels
    if np.ndim(soc) != 1:
        raise InputValidationError(f"soc: shape {np.shape(soc)} given, ({n},) expected")
    soc_a = _array("soc", soc, (n,))
    iom_a = falloon_iom(soc_a) if iom is None else _array("iom", iom, (n,))
    if validate:
        _check({"soc": soc_a, "iom": iom_a})
    parts = equilibrium_parts(site, fym=fym, input_pattern=input_pattern, smd0=smd0,
                              validate=validate)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (soc_a - iom_a - parts.p_fixed.sum(axis=1)) / parts.p_unit.sum(axis=1)
