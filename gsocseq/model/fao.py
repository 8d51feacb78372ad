"""RothC as FAO's GSOCseq R scripts run it (the ``fao`` scheme): SoilR modifiers, explicit Euler.

Reproduces ``soilassessment::carbonTurnover(..., "euler")`` with SoilR's ``fT.RothC`` and the
scripts' inline ``fw1func`` (reference §2.2–2.3, §2.8):

* temperature ``a = 47.9 / (1 + exp(106 / (T + 18.3)))``, undefined (NaN) below −18.3 °C;
* moisture: deficit ``P − pE·PET`` (``pE = 1`` for PET) accumulated from the first month of each
  12-month block (it restarts every January), the first month not clamped to the maximum deficit,
  the other months clamped to their own (bare: ÷1.8) maximum, ``b`` computed against the maximum of
  the block's **last** month, then ``b = max(b, 0.2)``;
* cover factor ``c`` continuous (0.6 covered … 1.0 bare), paddy ×0.4;
* explicit Euler with ``h = 1/12`` yr: ``deSolve::ode(times = seq(1/12, N, 1/12))`` makes
  ``12N − 1`` steps per call of N years, step ``j`` (0-based) using month ``j mod 12`` of the
  modifiers (the spline through the monthly values is evaluated at its knots);
* Dechow et al. (2019) analytical steady state with the mean annual modifier (spin-up default) and
  the pedotransfer pools of the 500-year equilibrium script.

Explicit Euler on the DPM pool (k = 10 yr⁻¹) amplifies in a month whose combined rate factor
exceeds 2.4 (``|1 − 10·xi/12| > 1``); the run blows up when the product of these factors over the
yearly cycle exceeds 1. :func:`euler_unstable` flags such pixels (either criterion).

Arrays are ``(n_months, n_pixels)`` for monthly data and ``(4, n_pixels)`` for the active pools
DPM, RPM, BIO, HUM (IOM is constant and kept outside). Kernels never raise; NaN in → NaN out.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gsocseq.errors import InputValidationError

#: Decomposition rate constants (yr⁻¹) of DPM, RPM, BIO, HUM (SoilR / soilassessment).
K_DPM = 10.0
K_RPM = 0.3
K_BIO = 0.66
K_HUM = 0.02
#: Euler step of the FAO scripts (yr).
EULER_STEP = 1.0 / 12.0
#: Combined rate factor above which the DPM Euler update amplifies (``10·xi/12 > 2``).
EULER_STABILITY_LIMIT = 2.4
#: SoilR's ``fT.RothC`` is NA below this temperature (°C).
FT_MIN_TEMPERATURE = -18.3
#: Lower clamp of the moisture factor.
MOISTURE_MIN = 0.2
#: Bare soil: cover factor above this (vegetated share below 0.5), as the scripts' ``Cov > 0.8``.
BARE_COVER_FACTOR = 0.8

#: Pedotransfer coefficients (a_R, b_R, a_B, b_B, a_H, b_H) of the equilibrium script by FAO class.
PTF_COEFFICIENTS: dict[int, tuple[float, float, float, float, float, float]] = {
    **dict.fromkeys((2, 12, 13), (0.9902, 0.4788, 1.09038, 0.04055, 0.9878, -0.3818)),
    4: (1.7631, 0.4043, 0.9757, 0.0209, 0.8712, -0.2904),
    **dict.fromkeys((3, 5, 6, 8), (1.3837, 0.4692, 1.03401, 0.02531, 0.9316, -0.5243)),
}


@njit(nogil=True, cache=True)
def _temperature_kernel(tmp: np.ndarray, out: np.ndarray) -> None:
    """Write SoilR's ``fT.RothC`` of the flat array ``tmp`` into ``out``."""
    for i in range(tmp.size):
        t = tmp[i]
        if t > FT_MIN_TEMPERATURE:
            out[i] = 47.9 / (1.0 + np.exp(106.0 / (t + 18.3)))
        elif t == FT_MIN_TEMPERATURE:
            out[i] = 0.0  # SoilR: 106/0 → exp(Inf) → 0
        else:
            out[i] = np.nan  # below -18.3 °C, or NaN


def temperature_factor(tmp: np.ndarray) -> np.ndarray:
    """Return SoilR's ``fT.RothC`` of monthly mean temperature (°C): NaN below −18.3 °C."""
    t = np.ascontiguousarray(tmp, dtype=np.float64)
    out = np.empty_like(t)
    _temperature_kernel(t.reshape(-1), out.reshape(-1))
    return out


@njit(nogil=True, cache=True)
def _moisture_kernel(
    prec: np.ndarray,
    pet: np.ndarray,
    clay: np.ndarray,
    bare: np.ndarray,
    depth_cm: float,
    evap_factor: float,
    out: np.ndarray,
) -> None:
    """Write ``fw1func``'s ``b`` per 12-month block into ``out`` (n_months, n).

    Months are the outer loop so rows are read contiguously; the deficit of every pixel is kept in
    ``acc``. ``b`` needs the maximum of the block's last month, known from ``bare[11]`` upfront.
    """
    n_months, n = prec.shape
    covered = np.empty(n)
    max_last = np.empty(n)
    for p in range(n):
        c = clay[p]
        covered[p] = -(20.0 + 1.3 * c - 0.01 * c * c) * (depth_cm / 23.0)
        max_last[p] = covered[p] / 1.8 if bare[11, p] else covered[p]
    acc = np.empty(n)
    for row in range(n_months):
        i = row % 12
        for p in range(n):
            m = prec[row, p] - pet[row, p] * evap_factor
            if i == 0:
                a = m if m <= 0.0 else 0.0  # first month: not clamped to the maximum
                if np.isnan(m):
                    a = np.nan
            else:
                s = acc[p] + m
                if np.isnan(s):
                    a = np.nan
                elif s < 0.0:
                    a = s
                else:
                    a = 0.0
                mx = covered[p] / 1.8 if bare[i, p] else covered[p]
                if a <= mx:
                    a = mx
            acc[p] = a
            ml = max_last[p]
            den = ml - 0.444 * ml
            if a > 0.444 * ml:
                b = 1.0
            elif den == 0.0:
                b = np.nan  # zero depth: no defined deficit range (never raise in numba)
            else:
                b = 0.2 + 0.8 * ((ml - a) / den)
            if b < MOISTURE_MIN:
                b = MOISTURE_MIN
            out[row, p] = b


def moisture_factor(
    prec: np.ndarray,
    pet: np.ndarray,
    clay: np.ndarray,
    bare: np.ndarray,
    *,
    depth_cm: float = 30.0,
    evap_factor: float = 1.0,
) -> np.ndarray:
    """Return the scripts' moisture factor ``b`` (12·years, n), the deficit restarting each block.

    ``prec``, ``pet`` in mm/month with shape ``(12·years, n)``; ``clay`` (%) ``(n,)``; ``bare``
    boolean ``(12, n)`` per calendar month; ``depth_cm`` soil depth (cm); ``evap_factor`` 1.0 for
    potential evapotranspiration.
    """
    p = np.ascontiguousarray(prec, dtype=np.float64)
    e = np.ascontiguousarray(pet, dtype=np.float64)
    if p.ndim != 2 or p.shape != e.shape or p.shape[0] % 12:
        raise InputValidationError(f"prec {p.shape} and pet {e.shape} must both be (12*years, n)")
    out = np.empty_like(p)
    _moisture_kernel(
        p, e, np.ascontiguousarray(clay, dtype=np.float64),
        np.ascontiguousarray(np.broadcast_to(bare, (12, p.shape[1])), dtype=np.bool_),
        float(depth_cm), float(evap_factor), out,
    )
    return out


def rate_modifiers(
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    clay: np.ndarray,
    cover_factor: np.ndarray,
    rate_factor: np.ndarray,
    *,
    depth_cm: float = 30.0,
    evap_factor: float = 1.0,
) -> np.ndarray:
    """Return the combined monthly rate factor ``xi = fT·b·c·fPR`` with shape ``(12·years, n)``.

    ``tmp`` (°C), ``prec``/``pet`` (mm/month) ``(12·years, n)``; ``clay`` (%) ``(n,)``;
    ``cover_factor`` ``c`` (0.6 covered … 1.0 bare) ``(12, n)``, also giving bare months
    (``c > 0.8``); ``rate_factor`` ``(n,)`` or ``(years, n)`` (0.4 paddy, else 1).
    """
    cov = np.asarray(cover_factor, dtype=np.float64)
    b = moisture_factor(prec, pet, clay, cov > BARE_COVER_FACTOR, depth_cm=depth_cm,
                        evap_factor=evap_factor)
    years = b.shape[0] // 12
    fpr = np.asarray(rate_factor, dtype=np.float64)
    fpr = np.repeat(fpr, 12, axis=0) if fpr.ndim == 2 else fpr
    return temperature_factor(tmp) * b * np.tile(cov, (years, 1)) * fpr


def euler_unstable(xi: np.ndarray, years_per_call: int, *, criterion: str = "cycle") -> np.ndarray:
    """Return pixels whose Euler run amplifies the DPM pool (bool ``(n,)``).

    ``xi`` is ``(12·calls, n)``; only the months a call steps through count (a one-year call never
    uses December's modifier). ``criterion``:

    * ``"cycle"`` (default): a call's yearly cycle amplifies, i.e. the product of the DPM step
      factors ``|1 − 10·xi/12|`` over its stepped months exceeds 1, so the DPM oscillation grows
      from year to year (the values become huge);
    * ``"month"``: any stepped month has ``xi > 2.4`` (one amplifying step; stricter, flags warm
      temperate summers whose runs stay finite and plausible).
    """
    x = np.asarray(xi, dtype=np.float64).reshape(-1, 12, np.shape(xi)[-1])
    used = x if years_per_call > 1 else x[:, :11]
    with np.errstate(invalid="ignore", over="ignore"):
        if criterion == "month":
            return (used > EULER_STABILITY_LIMIT).any(axis=(0, 1))
        if criterion == "cycle":
            factor = np.abs(1.0 - K_DPM * EULER_STEP * used).prod(axis=1)
            return (factor > 1.0).any(axis=0)
    raise InputValidationError(f"criterion must be 'cycle' or 'month', got {criterion!r}")


def euler_unstable_months(xi: np.ndarray, years_per_call: int) -> np.ndarray:
    """Return per pixel the most months in one year whose DPM Euler step factor leaves [−1, 1].

    ``xi`` is ``(12·calls, n)``; a month counts when ``|1 − 10·xi/12| > 1`` (``xi > 2.4``) and the
    call steps through it (a one-year call never uses December's modifier). ``uint8 (n,)``, 0–12;
    NaN modifiers do not count.
    """
    x = np.asarray(xi, dtype=np.float64).reshape(-1, 12, np.shape(xi)[-1])
    used = x if years_per_call > 1 else x[:, :11]
    with np.errstate(invalid="ignore"):
        outside = np.abs(1.0 - K_DPM * EULER_STEP * used) > 1.0
    return outside.sum(axis=1).max(axis=0).astype(np.uint8)


@njit(nogil=True, cache=True)
def _euler_kernel(
    pools: np.ndarray,
    c_input: np.ndarray,
    dpm_ratio: np.ndarray,
    clay: np.ndarray,
    xi: np.ndarray,
    years_per_call: int,
    out: np.ndarray,
) -> None:
    """Integrate consecutive calls with explicit Euler; write the final active pools to ``out``.

    Steps are the outer loop and pixels the inner one (contiguous rows of ``xi``, state in
    ``out``), so the pixel loop vectorises.
    """
    n_calls, n = c_input.shape
    steps = 12 * years_per_call - 1
    rows = xi.shape[0] // n_calls  # 12 (each call repeats its year) or 12·years (every month)
    h = EULER_STEP
    fb = np.empty(n)
    fh = np.empty(n)
    for p in range(n):
        x = 1.67 * (1.85 + 1.6 * np.exp(-0.0786 * clay[p]))
        fb[p] = 0.46 / (x + 1.0)
        fh[p] = 0.54 / (x + 1.0)
        for j in range(4):
            out[j, p] = pools[j, p]
    dpm = out[0]
    rpm = out[1]
    bio = out[2]
    hum = out[3]
    in_dpm = np.empty(n)
    in_rpm = np.empty(n)
    for c in range(n_calls):
        for p in range(n):
            d = 1.0 + dpm_ratio[c, p]
            o = dpm_ratio[c, p] / d if d != 0.0 else np.nan
            in_dpm[p] = h * o * c_input[c, p]
            in_rpm[p] = h * (1.0 - o) * c_input[c, p]
        for s in range(steps):
            r = xi[rows * c + s % rows]
            for p in range(n):
                hr = h * r[p]
                decomposed = K_DPM * dpm[p] + K_RPM * rpm[p] + K_BIO * bio[p] + K_HUM * hum[p]
                d_dpm = in_dpm[p] - hr * K_DPM * dpm[p]
                d_rpm = in_rpm[p] - hr * K_RPM * rpm[p]
                d_bio = hr * (fb[p] * decomposed - K_BIO * bio[p])
                d_hum = hr * (fh[p] * decomposed - K_HUM * hum[p])
                dpm[p] += d_dpm
                rpm[p] += d_rpm
                bio[p] += d_bio
                hum[p] += d_hum


def euler_run(
    pools: np.ndarray,
    c_input: np.ndarray,
    dpm_ratio: np.ndarray,
    clay: np.ndarray,
    xi: np.ndarray,
    *,
    years_per_call: int,
) -> np.ndarray:
    """Run consecutive ``carbonTurnover(..., "euler")`` calls and return the final active pools.

    ``pools`` ``(4, n)`` t C/ha (DPM, RPM, BIO, HUM); ``c_input`` annual plant input (t C/ha/yr) and
    ``dpm_ratio`` per call, ``(calls, n)`` or ``(n,)`` for one call; ``clay`` (%) ``(n,)``; ``xi``
    ``(12·calls, n)`` the 12 monthly modifiers of each call (repeated every year of the call), or
    ``(12·years_per_call·calls, n)`` every month of every call (:func:`filled_modifiers`). Each
    call of ``years_per_call`` years makes ``12·years_per_call − 1`` steps of 1/12 yr.
    """
    p0 = np.ascontiguousarray(pools, dtype=np.float64)
    cin = np.atleast_2d(np.asarray(c_input, dtype=np.float64))
    dr = np.ascontiguousarray(np.broadcast_to(dpm_ratio, cin.shape), dtype=np.float64)
    x = np.ascontiguousarray(xi, dtype=np.float64)
    rows = (12 * cin.shape[0], 12 * years_per_call * cin.shape[0])
    if x.shape[0] not in rows or x.shape[1:] != (p0.shape[1],) or p0.shape[0] != 4:
        raise InputValidationError(
            f"xi {x.shape} must be (12*calls, n) or (12*years_per_call*calls, n) and pools "
            f"{p0.shape} (4, n) for c_input {cin.shape}"
        )
    if years_per_call < 1:
        raise InputValidationError(f"years_per_call must be >= 1, got {years_per_call}")
    out = np.empty_like(p0)
    _euler_kernel(p0, np.ascontiguousarray(cin), dr, np.ascontiguousarray(clay, dtype=np.float64),
                  x, int(years_per_call), out)
    return out


# ---------------------------------------------------------------------------------------------
# NA months: R's splinefun(method = "fmm") through the remaining months of a call


@njit(nogil=True, cache=True)
def fmm_coefficients(x, y, b, c, d):
    """Fill ``b``, ``c``, ``d`` with R's ``fmm_spline`` coefficients (``splines.c``) of knots x, y.

    Forsythe, Malcolm & Moler: the end conditions match the third derivative of the cubic through
    the first (last) four knots; with three knots the end third-derivative terms are zero, with
    two the spline is the straight line, with one it is constant (R leaves the coefficients 0).
    The spline at ``u`` in interval ``i`` is ``y[i] + dx·(b[i] + dx·(c[i] + dx·d[i]))``.
    """
    n = x.shape[0]
    for i in range(n):
        b[i] = 0.0
        c[i] = 0.0
        d[i] = 0.0
    if n < 2:
        return
    if n < 3:
        t = y[1] - y[0]
        b[0] = t / (x[1] - x[0])
        b[1] = b[0]
        return
    nm1 = n - 1
    d[0] = x[1] - x[0]
    c[1] = (y[1] - y[0]) / d[0]
    for i in range(1, nm1):
        d[i] = x[i + 1] - x[i]
        b[i] = 2.0 * (d[i - 1] + d[i])
        c[i + 1] = (y[i + 1] - y[i]) / d[i]
        c[i] = c[i + 1] - c[i]
    b[0] = -d[0]
    b[nm1] = -d[n - 2]
    c[0] = 0.0
    c[nm1] = 0.0
    if n > 3:
        c[0] = c[2] / (x[3] - x[1]) - c[1] / (x[2] - x[0])
        c[nm1] = c[n - 2] / (x[nm1] - x[n - 3]) - c[n - 3] / (x[n - 2] - x[n - 4])
        c[0] = c[0] * d[0] * d[0] / (x[3] - x[0])
        c[nm1] = -c[nm1] * d[n - 2] * d[n - 2] / (x[nm1] - x[n - 4])
    for i in range(1, n):
        t = d[i - 1] / b[i - 1]
        b[i] = b[i] - t * d[i - 1]
        c[i] = c[i] - t * c[i - 1]
    c[nm1] = c[nm1] / b[nm1]
    for i in range(n - 2, -1, -1):
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i]
    b[nm1] = (y[nm1] - y[n - 2]) / d[n - 2] + d[n - 2] * (c[n - 2] + 2.0 * c[nm1])
    for i in range(nm1):
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i])
        d[i] = (c[i + 1] - c[i]) / d[i]
        c[i] = 3.0 * c[i]
    c[nm1] = 3.0 * c[nm1]
    d[nm1] = d[n - 2]


@njit(nogil=True, cache=True)
def fmm_eval(x, y, b, c, d, u):
    """Return R's ``spline_eval`` of the fmm spline at ``u`` (end intervals' cubics outside)."""
    n = x.shape[0]
    i = 0
    if n > 1 and u >= x[0]:
        j = n
        while j > i + 1:  # x[i] <= u < x[j]
            k = (i + j) // 2
            if u < x[k]:
                j = k
            else:
                i = k
    dx = u - x[i]
    return y[i] + dx * (b[i] + dx * (c[i] + dx * d[i]))


@njit(nogil=True, cache=True)
def _fill_call(v):
    """Replace the NaN knots of one call's modifiers ``v`` (knot k at time k) in place."""
    m = v.shape[0]
    valid = 0
    for k in range(m):
        if v[k] == v[k]:
            valid += 1
    if valid == m or valid == 0:  # nothing to fill / R: "zero non-NA points" (stays NA)
        return
    x = np.empty(valid)
    y = np.empty(valid)
    j = 0
    for k in range(m):
        if v[k] == v[k]:
            x[j] = k
            y[j] = v[k]
            j += 1
    b = np.empty(valid)
    c = np.empty(valid)
    d = np.empty(valid)
    fmm_coefficients(x, y, b, c, d)
    for k in range(m):
        if v[k] != v[k]:
            v[k] = fmm_eval(x, y, b, c, d, float(k))


@njit(nogil=True, cache=True)
def _fill_kernel(xi, years_per_call, out):
    """Write every month of every call into ``out`` (calls·12·years, n), NaN knots filled."""
    n_calls = xi.shape[0] // 12
    m = 12 * years_per_call
    v = np.empty(m)
    for p in range(xi.shape[1]):
        for c in range(n_calls):
            for k in range(m):
                v[k] = xi[12 * c + k % 12, p]
            _fill_call(v)
            for k in range(m):
                out[m * c + k, p] = v[k]


def filled_modifiers(xi: np.ndarray, years_per_call: int) -> np.ndarray:
    """Return the modifiers each Euler call actually steps with, NA months filled as R does.

    FAO's scripts hand SoilR the monthly modifiers of a call (its 12 months repeated for every
    year of a multi-year call) as a function of time built by ``splinefun(method = "fmm")``, which
    drops NA knots (SoilR's temperature factor is NA below −18.3 °C): such a month takes the value
    of the fmm spline through the call's other months (its end cubics outside them, which can be
    negative). ``xi`` is ``(12·calls, n)``; returns it unchanged when it has no NaN, else the
    ``(12·years_per_call·calls, n)`` months of every call with the NaN knots filled (a call
    without any valid month stays NaN, as R then fails).
    """
    x = np.ascontiguousarray(xi, dtype=np.float64)
    if not np.isnan(x).any():
        return x
    out = np.empty((x.shape[0] * years_per_call, x.shape[1]))
    _fill_kernel(x, int(years_per_call), out)
    return out


def falloon_iom(soc: np.ndarray) -> np.ndarray:
    """Return inert organic matter IOM = 0.049·SOC^1.139 (t C/ha) from SOC (t C/ha)."""
    s = np.asarray(soc, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return 0.049 * s**1.139


def analytical_equilibrium(
    xi: np.ndarray, soc: np.ndarray, clay: np.ndarray, dpm_ratio: np.ndarray, iom: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return Dechow's steady-state pools ``(5, n)`` and equilibrium input (t C/ha/yr).

    ``xi`` mean annual rate factor, ``soc`` total stock (t C/ha), ``clay`` (%), ``dpm_ratio``,
    ``iom`` (t C/ha; the scripts' brackets pass the central IOM). Pools are DPM, RPM, BIO, HUM,
    IOM, summing to ``soc``; the input is ``(soc − iom) / den``.
    """
    xi = np.asarray(xi, dtype=np.float64)
    soc = np.asarray(soc, dtype=np.float64)
    dr = np.asarray(dpm_ratio, dtype=np.float64)
    iom = np.asarray(iom, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f_dpm_in = dr / (dr + 1.0)
        f_rpm_in = 1.0 - f_dpm_in
        cue = 1.0 / (1.0 + 1.67 * (1.85 + 1.6 * np.exp(-0.0786 * np.asarray(clay, np.float64))))
        a1 = cue * 0.46
        a2 = cue * 0.54
        a11 = K_BIO * xi * (a1 - 1.0)
        a12 = a1 * K_HUM * xi
        a21 = a2 * K_BIO * xi
        a22 = K_HUM * xi * (a2 - 1.0)
        det = a11 * a22 - a12 * a21
        c01 = (a2 * a12 - a1 * a22) / det
        u_bio = c01  # per unit input to DPM or RPM
        u_hum = (-c01 * a11 - a1) / a12
        u_dpm_dpm = 1.0 / (K_DPM * xi)
        u_rpm_rpm = 1.0 / (K_RPM * xi)
        den = f_dpm_in * (u_dpm_dpm + u_bio + u_hum) + f_rpm_in * (u_rpm_rpm + u_bio + u_hum)
        active = soc - iom
        pools = np.stack([
            f_dpm_in * u_dpm_dpm / den * active,
            f_rpm_in * u_rpm_rpm / den * active,
            (f_dpm_in + f_rpm_in) * u_bio / den * active,
            (f_dpm_in + f_rpm_in) * u_hum / den * active,
            np.broadcast_to(iom, active.shape).astype(np.float64),
        ])
        return pools, active / den


def pedotransfer_pools(
    soc: np.ndarray, clay: np.ndarray, iom: np.ndarray, land_use: np.ndarray
) -> np.ndarray:
    """Return the equilibrium script's pedotransfer pools ``(5, n)`` (t C/ha) by FAO class.

    DPM closes the balance ``DPM = SOC − IOM − RPM − BIO − HUM``; classes without coefficients
    (other than 2, 3, 4, 5, 6, 8, 12, 13) get zeros, as in the script.
    """
    soc = np.asarray(soc, dtype=np.float64)
    clay = np.asarray(clay, dtype=np.float64)
    lu = np.asarray(land_use)
    coef = np.full((6, soc.shape[0]), np.nan)
    for cls, values in PTF_COEFFICIENTS.items():
        coef[:, lu == cls] = np.asarray(values)[:, None]
    known = np.isfinite(coef[0])
    with np.errstate(invalid="ignore"):
        rpm = coef[0] * ((0.184 * soc + 0.1555) * (clay + 1.275) ** -0.1158) + coef[1]
        bio = coef[2] * ((0.014 * soc + 0.0075) * (clay + 8.8473) ** 0.0567) + coef[3]
        hum = coef[4] * ((0.7148 * soc + 0.5069) * (clay + 0.3421) ** 0.0184) + coef[5]
    iom_b = np.broadcast_to(np.asarray(iom, dtype=np.float64), soc.shape)
    pools = np.stack([soc - iom_b - rpm - bio - hum, rpm, bio, hum, iom_b])
    pools[:, ~known] = 0.0
    return pools
