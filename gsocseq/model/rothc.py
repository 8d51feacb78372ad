"""RothC-26.3, the ``exact`` scheme: validated public API over the numba kernels.

Conventions (every function):

- ``pools`` ``(n_pixels, 5)`` t C/ha in the order DPM, RPM, BIO, HUM, IOM; ``smd`` ``(n_pixels,)``
  accumulated topsoil moisture deficit in mm, in [SMDmax, 0] (:func:`smd_max`).
- Monthly inputs ``(n_months, n_pixels)``: ``tmp`` mean air temperature (°C), ``rain`` (mm/month),
  ``evap`` evaporation (mm/month, multiplied by ``evap_factor``: 0.75 for open-pan evaporation,
  1.0 for potential evapotranspiration), ``cover`` vegetated share 0–1 (cover factor
  ``c = 1 - 0.4·cover``; bare for the moisture rule when ``cover < 0.5``), ``c_inp`` plant C and
  ``fym`` manure C entering the soil that month (t C/ha), ``dpm_rpm`` DPM/RPM ratio of the plant
  input (also ``(n_pixels,)``).
- Per pixel: ``clay`` (%), ``depth`` (cm), optional ``rate_modifier`` (extra multiplicative
  rate factor, e.g. 0.4 for paddy fields; default 1).
- ``validate=True`` checks values (finite, in range) and raises
  :class:`~gsocseq.errors.InputValidationError` naming the argument, the value and its index.
  Shapes are always checked. With ``validate=False`` NaN pixels are allowed: NaN in → NaN out.
- ``parallel=True`` spreads pixels over numba's threads (``numba.set_num_threads``); results are
  bit-identical to the serial run.

Building blocks for fast repeated years (the forward phase repeats one climate year): the year
is an affine map ``p_dec = A p_jan + b_fixed + cin·b_unit`` of the four active pools, linear in the
annual plant input ``cin`` (:func:`annual_affine_map`, :func:`simulate_years_affine`). The
moisture deficit of the first year(s) depends on the starting deficit; :func:`steady_smd` gives
the periodic one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gsocseq.errors import InputValidationError
from gsocseq.model import _rothc_kernels as _k

POOL_NAMES: tuple[str, ...] = ("dpm", "rpm", "bio", "hum", "iom")
"""Pool order of the last axis of ``pools``."""

#: Value ranges (inclusive) checked by ``validate=True``.
_RANGES: dict[str, tuple[float, float, str]] = {
    "pools": (0.0, np.inf, "t C/ha"),
    "smd": (-np.inf, 0.0, "mm"),
    "smd0": (-np.inf, 0.0, "mm"),
    "tmp": (-100.0, 70.0, "°C, not K"),
    "rain": (0.0, np.inf, "mm/month"),
    "evap": (-np.inf, np.inf, "mm/month"),  # may be < 0 (dew; the official example has -0.5)
    "cover": (0.0, 1.0, "vegetated share"),
    "c_inp": (0.0, np.inf, "t C/ha"),
    "fym": (0.0, np.inf, "t C/ha"),
    "dpm_rpm": (0.0, np.inf, "ratio"),
    "clay": (0.0, 100.0, "%"),
    "depth": (0.0, np.inf, "cm"),
    "rate_modifier": (0.0, np.inf, "factor"),
    "soc": (0.0, np.inf, "t C/ha"),
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


# ---------------------------------------------------------------------------------------------
# validation


def _index(arr: np.ndarray, bad: np.ndarray) -> tuple[int, ...]:
    """Return the index of the first True of ``bad``."""
    return tuple(int(v) for v in np.argwhere(bad)[0])


def _fmt(idx: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in idx)


def _array(name: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array of ``shape`` or raise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputValidationError(f"{name}: cannot be read as float64 numbers ({exc})") from exc
    if arr.shape != shape:
        raise InputValidationError(
            f"{name}: shape {arr.shape} given, {shape} expected "
            "(monthly inputs are (n_months, n_pixels), per-pixel inputs (n_pixels,))"
        )
    return np.ascontiguousarray(arr)


def _check_values(name: str, arr: np.ndarray) -> None:
    """Raise if ``arr`` holds a non-finite value or one outside its range in ``_RANGES``."""
    lo, hi, unit = _RANGES[name]
    k = _k.first_outside(arr.reshape(-1), lo, hi)
    if k < 0:
        return
    idx = tuple(int(v) for v in np.unravel_index(k, arr.shape))
    value = float(arr[idx])
    if not np.isfinite(value):
        raise InputValidationError(
            f"{name}[{_fmt(idx)}] = {value!r} is not finite; mask such pixels and pass "
            "validate=False to propagate NaN"
        )
    raise InputValidationError(
        f"{name}[{_fmt(idx)}] = {value!r} is outside the valid range [{lo}, {hi}] ({unit})"
    )


def smd_max(clay: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Return the largest possible deficit SMDmax = -(20 + 1.3·clay - 0.01·clay²)·depth/23 (mm).

    ``clay`` in %, ``depth`` in cm; the deficit state always lies in [SMDmax, 0].
    """
    clay = np.asarray(clay, dtype=np.float64)
    return -(20.0 + 1.3 * clay - 0.01 * (clay * clay)) * np.asarray(depth, dtype=np.float64) / 23.0


def _check_deficit(name: str, smd: np.ndarray, clay: np.ndarray, depth: np.ndarray) -> None:
    """Raise if a start deficit lies below its pixel's SMDmax (a state RothC never reaches)."""
    lowest = smd_max(clay, depth)
    bad = smd < lowest * (1.0 + 1e-9)
    if bad.any():
        i = _index(smd, bad)
        raise InputValidationError(
            f"{name}[{_fmt(i)}] = {float(smd[i])!r} mm is below SMDmax = {float(lowest[i]):.6g} "
            f"mm of that pixel (clay {float(clay[i]):.6g} %, depth {float(depth[i]):.6g} cm)"
        )


def _scalar(name: str, value: float, lo: float, hi: float) -> float:
    v = float(value)
    if not (np.isfinite(v) and lo <= v <= hi):
        raise InputValidationError(f"{name} = {value!r} must be a finite number in [{lo}, {hi}]")
    return v


def _per_pixel(name: str, value: object, n: int, validate: bool, default: float | None = None):
    if value is None:
        return np.full(n, default, dtype=np.float64)
    if np.ndim(value) == 0 and default is not None:
        value = np.full(n, value, dtype=np.float64)
    arr = _array(name, value, (n,))
    if validate:
        _check_values(name, arr)
    return arr


def _n_pixels(name: str, value: object) -> int:
    """Return the length of the 1-D per-pixel argument ``value`` or raise."""
    if np.ndim(value) != 1:
        raise InputValidationError(f"{name}: shape {np.shape(value)} given, (n_pixels,) expected")
    return np.shape(value)[0]


def _pools(value: object, note: str = "") -> np.ndarray:
    """Return start pools ``(n_pixels, 5)`` as a C-contiguous float64 array or raise."""
    p = np.asarray(value)
    if p.ndim != 2 or p.shape[1] != 5:
        raise InputValidationError(f"pools: shape {p.shape} given, (n_pixels, 5) expected{note}")
    return _array("pools", p, p.shape)


def _n_years(n_years: int) -> int:
    if int(n_years) != n_years or n_years < 0:
        raise InputValidationError(f"n_years = {n_years!r} must be an integer ≥ 0")
    return int(n_years)


def _dpm_rpm(value: object, n_months: int, n: int, validate: bool) -> tuple[np.ndarray, bool]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = _array("dpm_rpm", arr, (n,)).reshape(1, n)
        monthly = False
    else:
        arr = _array("dpm_rpm", arr, (n_months, n))
        monthly = True
    if validate:
        _check_values("dpm_rpm", arr if monthly else arr[0])
    return arr, monthly


def _monthly_inputs(
    n: int, validate: bool, need_year: bool, **inputs: object
) -> tuple[int, dict[str, np.ndarray]]:
    """Validate the monthly inputs given by keyword; return n_months and the arrays."""
    tmp = np.asarray(inputs["tmp"])
    if tmp.ndim != 2 or tmp.shape[1] != n:
        raise InputValidationError(
            f"tmp: shape {tmp.shape} given, (n_months, {n}) expected (n_pixels from pools/iom/soc)"
        )
    n_months = tmp.shape[0]
    if n_months == 0:
        raise InputValidationError("tmp: no months given (shape (0, n_pixels))")
    if need_year and n_months != 12:
        raise InputValidationError(
            f"tmp: {n_months} months given; one repeating year of 12 months is needed here"
        )
    out = {}
    for name, value in inputs.items():
        arr = _array(name, value, (n_months, n))
        if validate:
            _check_values(name, arr)
        out[name] = arr
    return n_months, out


def _pixel_inputs(n, clay, depth, rate_modifier, validate):
    clay = _per_pixel("clay", clay, n, validate)
    depth = _per_pixel("depth", depth, n, validate)
    if validate and (depth <= 0).any():
        idx = _index(depth, depth <= 0)
        raise InputValidationError(f"depth[{_fmt(idx)}] = {float(depth[idx])!r} must be > 0 (cm)")
    rmod = _per_pixel("rate_modifier", rate_modifier, n, validate, default=1.0)
    return clay, depth, rmod


# ---------------------------------------------------------------------------------------------
# forward runs


def simulate(
    pools: np.ndarray,
    smd: np.ndarray,
    *,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    c_inp: np.ndarray,
    fym: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    evap_factor: float = 0.75,
    monthly: bool = False,
    rate_modifier: np.ndarray | None = None,
    repeat: int = 1,
    return_co2: bool = False,
    parallel: bool = False,
    validate: bool = True,
) -> tuple[np.ndarray, ...]:
    """Run RothC month by month from ``pools`` and deficit ``smd``.

    Each month: deficit update, rate factors, exponential decay of the active pools with the
    decomposed C split to CO₂/BIO/HUM by the clay ratio, then that month's inputs added.

    Parameters
    ----------
    pools, smd
        Start state: (n_pixels, 5) t C/ha and (n_pixels,) mm.
    tmp, rain, evap, cover, c_inp, fym, dpm_rpm, clay, depth, evap_factor, rate_modifier
        Inputs as in the module docstring.
    monthly
        Return every end-of-month state instead of the final one.
    repeat
        Run the given months ``repeat`` times in a row (a repeating climate); needs
        ``monthly=False`` when > 1.
    return_co2
        Also return the CO₂-C released (t C/ha): per month (n_months, n_pixels) with
        ``monthly=True``, else the run total (n_pixels,).
    parallel, validate
        See the module docstring.

    Returns
    -------
    pools : np.ndarray
        (n_pixels, 5) t C/ha at the end, or (n_months, n_pixels, 5) end-of-month with ``monthly``.
    smd : np.ndarray
        (n_pixels,) mm, or (n_months, n_pixels) with ``monthly``.
    co2 : np.ndarray
        Only with ``return_co2``: t C/ha released.
    """
    out_pools = _pools(pools, " (DPM, RPM, BIO, HUM, IOM)").copy()
    n = out_pools.shape[0]
    out_smd = _array("smd", smd, (n,)).copy()
    if validate:
        _check_values("pools", out_pools)
        _check_values("smd", out_smd)
    n_months, mon = _monthly_inputs(
        n, validate, False, tmp=tmp, rain=rain, evap=evap, cover=cover, c_inp=c_inp, fym=fym
    )
    dr, dr_monthly = _dpm_rpm(dpm_rpm, n_months, n, validate)
    clay_a, depth_a, rmod = _pixel_inputs(n, clay, depth, rate_modifier, validate)
    if validate:
        _check_deficit("smd", out_smd, clay_a, depth_a)
    ef = _scalar("evap_factor", evap_factor, 0.0, 10.0)
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
    run = _k.run_parallel if parallel else _k.run_serial
    run(
        out_pools, out_smd, mon["tmp"], mon["rain"], mon["evap"], mon["cover"], mon["c_inp"],
        mon["fym"], dr, dr_monthly, clay_a, depth_a, ef, rmod, int(repeat), monthly,
        mon_pools, mon_smd, co2, mon_co2,
    )
    if monthly:
        result: tuple[np.ndarray, ...] = (mon_pools, mon_smd)
        return (*result, mon_co2) if return_co2 else result
    return (out_pools, out_smd, co2) if return_co2 else (out_pools, out_smd)


def simulate_years_affine(
    pools: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    n_years: int,
    *,
    yearly: bool = False,
) -> np.ndarray:
    """Advance ``pools`` by ``n_years`` repetitions of the annual map ``p <- a p + b``.

    Parameters
    ----------
    pools
        (n_pixels, 5) t C/ha; IOM is carried unchanged.
    a
        (n_pixels, 4, 4) from :func:`annual_affine_map`.
    b
        (n_pixels, 4) t C/ha, e.g. ``m.b_fixed + cin[:, None] * m.b_unit`` with ``cin`` the
        annual plant input (t C/ha/yr).
    n_years
        Number of years (≥ 0).
    yearly
        Return every end-of-year state (n_years, n_pixels, 5) instead of the last one.

    Returns
    -------
    np.ndarray
        End-of-year pools (t C/ha). Exact (to rounding) only if the deficit cycle of the map is
        periodic, i.e. the map was built with ``periodic=True`` or ``smd_end == smd_start``.
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


# ---------------------------------------------------------------------------------------------
# one repeating year: affine map, steady deficit, equilibrium


def _year_inputs(n, validate, *, tmp, rain, evap, cover, c_inp, fym, dpm_rpm, clay, depth,
                 evap_factor, rate_modifier, input_pattern):
    zeros = np.zeros((12, n))
    _, mon = _monthly_inputs(
        n, validate, True, tmp=tmp, rain=rain, evap=evap, cover=cover,
        c_inp=zeros if c_inp is None else c_inp, fym=zeros if fym is None else fym,
    )
    dr, dr_monthly = _dpm_rpm(dpm_rpm, 12, n, validate)
    clay_a, depth_a, rmod = _pixel_inputs(n, clay, depth, rate_modifier, validate)
    ef = _scalar("evap_factor", evap_factor, 0.0, 10.0)
    mon["pattern"] = _pattern(input_pattern, n, validate)
    return mon, dr, dr_monthly, clay_a, depth_a, rmod, ef


def _pattern(input_pattern: object, n: int, validate: bool) -> np.ndarray:
    """Return the (12, n) monthly shares of the annual plant input (each column sums to 1)."""
    if input_pattern is None:
        return np.full((12, n), 1.0 / 12.0)
    pat = np.asarray(input_pattern, dtype=np.float64)
    if pat.shape == (12,):
        pat = np.repeat(pat[:, None], n, axis=1)
    pat = _array("input_pattern", pat, (12, n))
    if validate:
        _check_values("input_pattern", pat)
    total = pat.sum(axis=0)
    if validate and (total <= 0).any():
        idx = _index(total, total <= 0)
        raise InputValidationError(
            f"input_pattern[:, {_fmt(idx)}] sums to {float(total[idx])!r}; monthly shares must sum to > 0"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.ascontiguousarray(pat / total)


def _smd0(smd0: object, n: int, validate: bool) -> np.ndarray:
    if np.ndim(smd0) == 0:
        smd0 = np.full(n, smd0, dtype=np.float64)
    arr = _array("smd0", smd0, (n,))
    if validate:
        _check_values("smd0", arr)
    return arr


def annual_affine_map(
    *,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    c_inp: np.ndarray | None = None,
    fym: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    periodic: bool = False,
    input_pattern: np.ndarray | None = None,
    evap_factor: float = 0.75,
    rate_modifier: np.ndarray | None = None,
    parallel: bool = False,
    validate: bool = True,
) -> AnnualMap:
    """Return one year (12 months) as the affine map ``p_dec = a p_jan + b_fixed + cin·b_unit``.

    Parameters
    ----------
    tmp, rain, evap, cover, dpm_rpm, clay, depth, evap_factor, rate_modifier
        One year (12, n_pixels) of inputs, as in the module docstring.
    c_inp, fym
        Fixed monthly inputs (12, n_pixels) t C/ha in ``b_fixed``; zero if None.
    smd0
        Deficit (mm) at the start of the year.
    periodic
        First move ``smd0`` to the periodic deficit the repeated year reaches from it
        (:func:`steady_smd`), so the map is the same every year.
    input_pattern
        Monthly shares (12,) or (12, n_pixels) of the annual plant input in ``b_unit``
        (normalised to sum 1); default 1/12 each month.
    parallel, validate
        See the module docstring.

    Returns
    -------
    AnnualMap
        ``a`` (n, 4, 4); ``b_unit`` (n, 4) t C/ha per t C/ha/yr; ``b_fixed`` (n, 4) t C/ha;
        ``smd_start``, ``smd_end`` (n,) mm.
    """
    n = _n_pixels("clay", clay)
    mon, dr, drm, clay_a, depth_a, rmod, ef = _year_inputs(
        n, validate, tmp=tmp, rain=rain, evap=evap, cover=cover, c_inp=c_inp, fym=fym,
        dpm_rpm=dpm_rpm, clay=clay, depth=depth, evap_factor=evap_factor,
        rate_modifier=rate_modifier, input_pattern=input_pattern,
    )
    s0 = _smd0(smd0, n, validate)
    if validate:
        _check_deficit("smd0", s0, clay_a, depth_a)
    return _annual(mon, dr, drm, clay_a, depth_a, rmod, ef, s0, periodic, parallel)


def _annual(mon, dr, drm, clay_a, depth_a, rmod, ef, s0, periodic, parallel) -> AnnualMap:
    n = clay_a.shape[0]
    a = np.empty((n, 4, 4))
    b_unit = np.empty((n, 4))
    b_fixed = np.empty((n, 4))
    s_start = np.empty(n)
    s_end = np.empty(n)
    fn = _k.annual_parallel if parallel else _k.annual_serial
    fn(
        s0, periodic, mon["tmp"], mon["rain"], mon["evap"], mon["cover"], mon["c_inp"],
        mon["fym"], mon["pattern"], dr, drm, clay_a, depth_a, ef, rmod, a, b_unit, b_fixed,
        s_start, s_end,
    )
    return AnnualMap(a, b_unit, b_fixed, s_start, s_end)


def steady_smd(
    *,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    smd0: float | np.ndarray = 0.0,
    evap_factor: float = 0.75,
    validate: bool = True,
) -> np.ndarray:
    """Return the periodic end-of-December deficit (mm) reached by repeating one year from ``smd0``.

    Computed exactly (no year-by-year loop over slow drifts), see ``steady_smd_pixel``.
    ``rain``, ``evap`` in mm/month and ``cover`` are (12, n_pixels); ``clay`` (%), ``depth`` (cm)
    (n_pixels,).
    """
    n = _n_pixels("clay", clay)
    zeros = np.zeros((12, n))
    m = annual_affine_map(
        tmp=zeros, rain=rain, evap=evap, cover=cover, dpm_rpm=np.ones(n), clay=clay, depth=depth,
        smd0=smd0, periodic=True, evap_factor=evap_factor, validate=validate,
    )
    return m.smd_start


def repeat_year(
    pools: np.ndarray,
    smd: np.ndarray,
    *,
    cin: np.ndarray,
    n_years: int,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    fym: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    evap_factor: float = 0.75,
    rate_modifier: np.ndarray | None = None,
    parallel: bool = False,
    validate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one repeating climate year ``n_years`` times for several annual inputs at once.

    Same result as :func:`simulate` with ``repeat=n_years`` and ``c_inp = cin·pattern`` for
    each row of ``cin``, but the year is applied as its affine map: rebuilt from the current
    deficit until the deficit cycle is periodic (usually after one or two years), then reused.

    Parameters
    ----------
    pools, smd
        Start state (n_pixels, 5) t C/ha and (n_pixels,) mm, shared by all inputs.
    cin
        (n_inputs, n_pixels) or (n_pixels,) annual plant input (t C/ha/yr) spread by
        ``input_pattern`` (default 1/12 each month), e.g. BAU and SSM scenarios.
    n_years
        Number of repetitions (≥ 0).
    tmp, rain, evap, cover, dpm_rpm, clay, depth, fym, evap_factor, rate_modifier
        One year (12, n_pixels) of inputs, as in the module docstring.
    input_pattern
        Monthly shares (12,) or (12, n_pixels) of ``cin`` (normalised to sum 1).
    parallel, validate
        See the module docstring.

    Returns
    -------
    pools : np.ndarray
        (n_inputs, n_pixels, 5) t C/ha after ``n_years`` ((n_pixels, 5) if ``cin`` is 1-D).
    smd : np.ndarray
        (n_pixels,) deficit (mm) at the end (the same for every input).
    """
    p0 = _pools(pools)
    n = p0.shape[0]
    cin_a = np.asarray(cin, dtype=np.float64)
    one = cin_a.ndim == 1
    cin_a = _array("cin", cin_a[None] if one else cin_a, (cin_a.shape[0] if not one else 1, n))
    s = _smd0(smd, n, validate)
    mon, dr, drm, clay_a, depth_a, rmod, ef = _year_inputs(
        n, validate, tmp=tmp, rain=rain, evap=evap, cover=cover, c_inp=None, fym=fym,
        dpm_rpm=dpm_rpm, clay=clay, depth=depth, evap_factor=evap_factor,
        rate_modifier=rate_modifier, input_pattern=input_pattern,
    )
    if validate:
        _check_values("pools", p0)
        _check_values("c_inp", cin_a)
        _check_deficit("smd", s, clay_a, depth_a)
    left = _n_years(n_years)
    out = np.repeat(p0[None], cin_a.shape[0], axis=0)
    while left > 0:
        m = _annual(mon, dr, drm, clay_a, depth_a, rmod, ef, s, False, parallel)
        periodic = np.array_equal(m.smd_end, m.smd_start, equal_nan=True)
        years = left if periodic else 1
        for k in range(cin_a.shape[0]):
            b = m.b_fixed + cin_a[k][:, None] * m.b_unit
            _k.years_affine(out[k], m.a, b, years, False, np.empty((0, 0, 5)))
        s = m.smd_end
        left -= years
    return (out[0] if one else out), s


def equilibrium_parts(
    *,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    c_inp: np.ndarray | None = None,
    fym: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    evap_factor: float = 0.75,
    rate_modifier: np.ndarray | None = None,
    parallel: bool = False,
    validate: bool = True,
) -> EquilibriumParts:
    """Return the closed-form periodic steady state split as ``p = p_fixed + cin·p_unit``.

    The deficit's periodic cycle reached from ``smd0`` is found first; the year is then the affine
    map ``p_dec = A p_jan + b`` of the active pools and ``(I - A) p = b`` is solved per pixel
    (NaN where singular, e.g. no decomposition in any month). ``cin`` is the annual plant input
    (t C/ha/yr) spread by ``input_pattern``; arguments as in :func:`annual_affine_map`.
    """
    m = annual_affine_map(
        tmp=tmp, rain=rain, evap=evap, cover=cover, dpm_rpm=dpm_rpm, clay=clay, depth=depth,
        c_inp=c_inp, fym=fym, smd0=smd0, periodic=True, input_pattern=input_pattern,
        evap_factor=evap_factor, rate_modifier=rate_modifier, parallel=parallel,
        validate=validate,
    )
    n = m.a.shape[0]
    p_unit = np.empty((n, 4))
    p_fixed = np.empty((n, 4))
    _k.steady_pools(m.a, m.b_unit, m.b_fixed, p_unit, p_fixed)
    return EquilibriumParts(p_unit, p_fixed, m.smd_end)


def equilibrium(
    *,
    iom: np.ndarray,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    c_inp: np.ndarray,
    fym: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    evap_factor: float = 0.75,
    rate_modifier: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    parallel: bool = False,
    validate: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the periodic steady state at the end of December, in closed form.

    Same inputs as :func:`simulate` for one repeating year (12, n_pixels), plus ``iom``
    (n_pixels,) t C/ha. ``smd0`` is the deficit (mm) the repetition starts from (0: the official
    driver's start).

    Returns
    -------
    pools : np.ndarray
        (n_pixels, 5) t C/ha (NaN where no steady state exists).
    smd : np.ndarray
        (n_pixels,) steady end-of-December deficit (mm).
    """
    n = _n_pixels("iom", iom)
    iom_a = _per_pixel("iom", iom, n, validate)
    parts = equilibrium_parts(
        tmp=tmp, rain=rain, evap=evap, cover=cover, dpm_rpm=dpm_rpm, clay=clay, depth=depth,
        c_inp=c_inp, fym=fym, smd0=smd0, evap_factor=evap_factor, rate_modifier=rate_modifier,
        parallel=parallel, validate=validate,
    )
    pools = np.empty((n, 5))
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
    *,
    iom: np.ndarray | None = None,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    fym: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    evap_factor: float = 0.75,
    rate_modifier: np.ndarray | None = None,
    input_pattern: np.ndarray | None = None,
    smd0: float | np.ndarray = 0.0,
    parallel: bool = False,
    validate: bool = True,
) -> np.ndarray:
    """Return the annual plant input (t C/ha/yr) whose equilibrium total SOC equals ``soc``.

    Equilibrium SOC is affine in the input: ``SOC = IOM + Σ p_fixed + cin·Σ p_unit``, so
    ``cin = (soc - IOM - Σ p_fixed) / Σ p_unit`` (closed form). The input is spread by
    ``input_pattern`` (default 1/12 each month); ``fym`` (12, n_pixels) t C/ha is a fixed input.

    Parameters
    ----------
    soc
        (n_pixels,) target total SOC (t C/ha).
    iom
        (n_pixels,) inert organic matter (t C/ha); default :func:`falloon_iom` of ``soc``.
    tmp, rain, evap, cover, fym, dpm_rpm, clay, depth, evap_factor, rate_modifier
        One repeating year (12, n_pixels) of inputs, as in the module docstring.
    input_pattern
        Monthly shares (12,) or (12, n_pixels) of the annual input (normalised to sum 1).
    smd0
        Deficit (mm) the repeated year starts from.
    parallel, validate
        See the module docstring.

    Returns
    -------
    np.ndarray
        (n_pixels,) t C/ha/yr. May be ≤ 0 where manure alone exceeds the target, and is NaN
        where no steady state exists: callers flag those pixels.
    """
    n = _n_pixels("soc", soc)
    soc_a = _per_pixel("soc", soc, n, validate)
    iom_a = falloon_iom(soc_a) if iom is None else _per_pixel("iom", iom, n, validate)
    parts = equilibrium_parts(
        tmp=tmp, rain=rain, evap=evap, cover=cover, dpm_rpm=dpm_rpm, clay=clay, depth=depth,
        fym=fym, input_pattern=input_pattern, smd0=smd0, evap_factor=evap_factor,
        rate_modifier=rate_modifier, parallel=parallel, validate=validate,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return (soc_a - iom_a - parts.p_fixed.sum(axis=1)) / parts.p_unit.sum(axis=1)
