"""Numba kernels of RothC-26.3 (the ``exact`` scheme): plain loops over plain float64 arrays.

Private module: :mod:`gsocseq.model.rothc` validates arguments and calls these. Kernels never
raise; a NaN in any input of a pixel makes that pixel's pools NaN.

Layout: monthly inputs are ``(n_months, n_pixels)`` (time first, pixels contiguous), pools are
``(n_pixels, 5)``. The forward kernel walks pixel blocks of ``BLOCK`` pixels; inside a block the
months are the outer loop so every input row is read contiguously. There is one (serial) variant:
the pipeline parallelises over tiles.

Equations, constants and order of updates follow Rothamsted's RothC code (``RothC.for``,
``opt_RMmoist = 1``, ``opt_SMDbare = 1``), with the cover factor generalised to
``c = 1 - 0.4 * cover`` and a per-pixel extra rate factor.

Speed (measured, see ``benchmarks/bench_rothc.py``): the four decay factors come from one
exponential, exp(-r·k) = exp(-r·0.02)^(k/0.02) with integer powers 500/15/33/1 (~1e-14 relative
from four ``exp`` calls), and that exponential is a polynomial for the usual small arguments, so
the per-month loops over a block vectorise (the temperature factor too: exp(x/64)^64). Compiled with
``error_model="numpy"`` (a division by zero gives inf/NaN, never an exception) and FMA
contraction only (no fast-math that would drop NaN semantics).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Decomposition rate constants (yr⁻¹) of DPM, RPM, BIO, HUM.
K_DPM = 10.0
K_RPM = 0.3
K_BIO = 0.66
K_HUM = 0.02
#: Time step (yr).
TSTEP = 1.0 / 12.0
#: Manure (FYM) split to DPM, RPM, HUM.
FYM_DPM = 0.49
FYM_RPM = 0.49
FYM_HUM = 0.02
#: Minimum moisture rate factor (RothC-26.3).
RM_MOIST_MIN = 0.2
#: Pixels per block of the forward kernel (state of a block stays in L1/L2 cache).
BLOCK = 256


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def soil_constants(clay: float, depth: float) -> tuple[float, float, float, float, float, float]:
    """Return (f_co2, f_bio, f_hum, smd_max, smd_1bar, smd_bare) for clay (%) and depth (cm)."""
    x = 1.67 * (1.85 + 1.60 * np.exp(-0.0786 * clay))
    f_co2 = x / (x + 1.0)
    f_bio = 0.46 / (x + 1.0)
    f_hum = 0.54 / (x + 1.0)
    smd_max = -(20.0 + 1.3 * clay - 0.01 * (clay * clay)) * depth / 23.0
    return f_co2, f_bio, f_hum, smd_max, 0.444 * smd_max, 0.556 * smd_max


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def smd_step(smd: float, df: float, cover: float, smd_max: float, smd_bare: float) -> float:
    """Return the end-of-month deficit (mm) from the previous one and prec - f·pet ``df`` (mm).

    Comparisons are written so that a NaN deficit or ``df`` stays NaN.
    """
    v = smd + df
    if v > 0.0:
        v = 0.0
    if cover < 0.5:  # bare: cannot dry beyond smd_bare, keeps a larger deficit it already had
        lo = smd_bare if smd > smd_bare else smd
        if lo > v:
            v = lo
    elif v < smd_max:
        v = smd_max
    return v


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def rate_factor(
    a: float, smd: float, cover: float, rmod: float, smd_max: float, smd_1bar: float
) -> float:
    """Return the combined monthly rate factor a·b·c·rmod·t (t = 1/12 yr).

    ``a`` is :func:`temperature_factor`; b comes from the (already updated) deficit ``smd``.
    """
    if smd > smd_1bar:
        b = 1.0
    else:
        b = RM_MOIST_MIN + (1.0 - RM_MOIST_MIN) * (smd_max - smd) / (smd_max - smd_1bar)
    c = 1.0 - 0.4 * cover
    return a * b * c * rmod * TSTEP


#: |x| up to which :func:`_exp_poly` is used for exp(x).
EXP_POLY_MAX = 0.125


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exp_poly(x: float) -> float:
    """Return exp(x) for |x| ≤ EXP_POLY_MAX: degree-11 Taylor polynomial (Horner).

    Truncation error < (1/8)^12 / 12! ≈ 3e-20 relative, below float64 rounding; unlike the libm
    call it is inlined and vectorises.
    """
    return 1.0 + x * (1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (
        1.0 / 120.0 + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0 + x * (
            1.0 / 362880.0 + x * (1.0 / 3628800.0 + x * (1.0 / 39916800.0)))))))))))


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def exp_small(x: float) -> float:
    """Return exp(x): :func:`_exp_poly` for |x| ≤ EXP_POLY_MAX, else ``np.exp``. NaN → NaN."""
    if abs(x) <= EXP_POLY_MAX:
        return _exp_poly(x)
    return np.exp(x)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _powers(e: float) -> tuple[float, float, float, float]:
    """Return (e^500, e^15, e^33, e): the decay factors of DPM, RPM, BIO, HUM from HUM's."""
    e2 = e * e
    e4 = e2 * e2
    e8 = e4 * e4
    e16 = e8 * e8
    e32 = e16 * e16
    e64 = e32 * e32
    e128 = e64 * e64
    e256 = e128 * e128
    return e256 * e128 * e64 * e32 * e16 * e4, e8 * e4 * e2 * e, e32 * e, e


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def decay_factors(r: float) -> tuple[float, float, float, float]:
    """Return exp(-r·k) for DPM, RPM, BIO, HUM, with ``r`` = a·b·c·rmod·t.

    The rate constants are 500, 15, 33 and 1 times K_HUM, so one exponential and integer powers
    (repeated squaring) give all four: mathematically identical, ~1e-14 relative difference.
    """
    return _powers(exp_small(-r * K_HUM))


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def temperature_factor(tmp: float) -> float:
    """Return the temperature rate modifier a(T) (0 below -5 °C).

    a(T) = 47.91 / (1 + exp(106.06 / (T + 18.27))).
    """
    if tmp < -5.0:
        return 0.0
    # exp(x) for x = 106.06 / (T + 18.27) in (0, 8] (T >= -5) as exp(x / 64)^64: the polynomial
    # (|x / 64| <= 1/8, exact to rounding) and six squarings vectorise, unlike libm's exp;
    # ~1e-14 relative from exp(x), far below the 1e-9 agreement with the official model.
    e = _exp_poly((106.06 / 64.0) / (tmp + 18.27))
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    return 47.91 / (1.0 + e)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _run_block(
    i0, i1, out_pools, out_smd, tmp, prec, pet, cover, c_inp, fym, dpm_rpm, dr_monthly,
    clay, depth, evap_factor, rmod, repeat, monthly, mon_pools, mon_smd, co2_tot, mon_co2,
    check, lo, hi,
):
    """Advance pixels ``i0:i1`` through ``repeat`` × ``n_months`` months, in place.

    Each month runs as short loops over the block (temperature factor; deficit and rate; decay
    factor; pool update) so the branch-free ones vectorise. With ``check`` the month's six inputs
    (tmp, prec, pet, cover, c_inp, fym), just read and still in L1, are also tested against
    ``[lo[k], hi[k]]`` and finiteness: returns the number of bad values (0 without ``check``).
    """
    bad = 0
    nb = i1 - i0
    fym_monthly = fym.shape[0] > 1  # (1, n): no manure (one row of zeros)
    f_co2 = np.empty(nb)
    f_bio = np.empty(nb)
    f_hum = np.empty(nb)
    s_max = np.empty(nb)
    s_1bar = np.empty(nb)
    s_bare = np.empty(nb)
    dpm = np.empty(nb)
    rpm = np.empty(nb)
    bio = np.empty(nb)
    hum = np.empty(nb)
    smd = np.empty(nb)
    co2s = np.empty(nb)
    co2m = np.empty(nb)
    rate = np.empty(nb)
    ehum = np.empty(nb)
    for j in range(nb):
        i = i0 + j
        f_co2[j], f_bio[j], f_hum[j], s_max[j], s_1bar[j], s_bare[j] = soil_constants(
            clay[i], depth[i]
        )
        dpm[j] = out_pools[i, 0]
        rpm[j] = out_pools[i, 1]
        bio[j] = out_pools[i, 2]
        hum[j] = out_pools[i, 3]
        smd[j] = out_smd[i]
        co2s[j] = co2_tot[i]
    n_months = tmp.shape[0]
    for rep in range(repeat):
        for m in range(n_months):
            md = m if dr_monthly else 0
            mf = m if fym_monthly else 0
            for j in range(nb):
                rate[j] = temperature_factor(tmp[m, i0 + j])
            if check and rep == 0:
                for j in range(nb):
                    i = i0 + j
                    v0 = tmp[m, i]
                    v1 = prec[m, i]
                    v2 = pet[m, i]
                    v3 = cover[m, i]
                    v4 = c_inp[m, i]
                    v5 = fym[mf, i]
                    bad += (((v0 < lo[0]) | (v0 > hi[0]) | (v0 - v0 != 0.0))
                            + ((v1 < lo[1]) | (v1 > hi[1]) | (v1 - v1 != 0.0))
                            + ((v2 < lo[2]) | (v2 > hi[2]) | (v2 - v2 != 0.0))
                            + ((v3 < lo[3]) | (v3 > hi[3]) | (v3 - v3 != 0.0))
                            + ((v4 < lo[4]) | (v4 > hi[4]) | (v4 - v4 != 0.0))
                            + ((v5 < lo[5]) | (v5 > hi[5]) | (v5 - v5 != 0.0)))
            for j in range(nb):
                i = i0 + j
                cov = cover[m, i]
                s = smd_step(smd[j], prec[m, i] - evap_factor * pet[m, i], cov, s_max[j],
                             s_bare[j])
                r = rate_factor(rate[j], s, cov, rmod[i], s_max[j], s_1bar[j])
                smd[j] = s + 0.0 * r  # a NaN rate (any NaN input) also marks the deficit
                rate[j] = r
            for j in range(nb):
                ehum[j] = _exp_poly(-rate[j] * K_HUM)
            for j in range(nb):  # rare: outside the polynomial's range
                x = -rate[j] * K_HUM
                if not abs(x) <= EXP_POLY_MAX:
                    ehum[j] = np.exp(x)
            for j in range(nb):
                i = i0 + j
                e1, e2, e3, e4 = _powers(ehum[j])
                p1 = dpm[j]
                p2 = rpm[j]
                p3 = bio[j]
                p4 = hum[j]
                dpm1 = p1 * e1
                rpm1 = p2 * e2
                bio1 = p3 * e3
                hum1 = p4 * e4
                tot = (p1 - dpm1) + (p2 - rpm1) + (p3 - bio1) + (p4 - hum1)
                cin = c_inp[m, i]
                dr = dpm_rpm[md, i]
                fy = fym[mf, i]
                dpm[j] = dpm1 + dr / (1.0 + dr) * cin + FYM_DPM * fy
                rpm[j] = rpm1 + 1.0 / (1.0 + dr) * cin + FYM_RPM * fy
                bio[j] = bio1 + tot * f_bio[j]
                hum[j] = hum1 + tot * f_hum[j] + FYM_HUM * fy
                co2m[j] = tot * f_co2[j]
                co2s[j] += co2m[j]
            if monthly:
                for j in range(nb):
                    i = i0 + j
                    mon_pools[m, i, 0] = dpm[j]
                    mon_pools[m, i, 1] = rpm[j]
                    mon_pools[m, i, 2] = bio[j]
                    mon_pools[m, i, 3] = hum[j]
                    mon_smd[m, i] = smd[j]
                    mon_co2[m, i] = co2m[j]
    for j in range(nb):
        i = i0 + j
        out_pools[i, 0] = dpm[j]
        out_pools[i, 1] = rpm[j]
        out_pools[i, 2] = bio[j]
        out_pools[i, 3] = hum[j]
        out_smd[i] = smd[j]
        co2_tot[i] = co2s[j]
    return bad


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def run(
    out_pools, out_smd, tmp, prec, pet, cover, c_inp, fym, dpm_rpm, dr_monthly, clay, depth,
    evap_factor, rmod, repeat, monthly, mon_pools, mon_smd, co2_tot, mon_co2, check, lo, hi,
):
    """Run the forward model over all pixels, one block after the other (in place).

    Returns the number of monthly input values outside their range or not finite, counted in the
    same pass when ``check`` (see :func:`_run_block`); the caller raises if it is not 0.
    """
    n = out_pools.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    bad = 0
    for b in range(n_blocks):
        bad += _run_block(
            b * BLOCK, min(n, (b + 1) * BLOCK), out_pools, out_smd, tmp, prec, pet, cover,
            c_inp, fym, dpm_rpm, dr_monthly, clay, depth, evap_factor, rmod, repeat, monthly,
            mon_pools, mon_smd, co2_tot, mon_co2, check, lo, hi,
        )
    return bad


# --------------------------------------------------------------------------------------------
# Periodic steady state of the deficit


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def steady_smd_pixel(s0, df, cover, smd_max, smd_bare, max_iter=10_000):
    """Return the periodic January-start deficit (mm) reached by cycling one year from ``s0``.

    The year map f of the deficit is non-decreasing and piecewise linear with slopes 0 and 1, so
    the iterates from ``s0`` move monotonically to a fixed point. A year whose path takes only
    slope-1 branches is ``f(s) = s + delta`` on an interval; the kernel jumps over all the years
    that stay inside that interval at once, so slow drifts (tiny ``delta``) cost no more than
    fast ones. ``df`` and ``cover`` are the twelve months' prec - f·pet (mm) and cover.
    """
    s = s0
    n = df.shape[0]
    total = s + smd_max + smd_bare
    for m in range(n):
        total += df[m] + cover[m]
    if not (total == total):  # NaN anywhere: no cycle to find
        return np.nan
    for _ in range(max_iter):
        u = s
        flat = False
        lo = -np.inf  # allowed shift of the start that keeps every month on its branch
        hi = np.inf
        for m in range(n):
            d = df[m]
            v = smd_step(u, d, cover[m], smd_max, smd_bare)
            if cover[m] < 0.5:
                if u + d > 0.0:
                    flat = True
                elif d < 0.0:
                    if u <= smd_bare:  # identity branch: v = u
                        hi = min(hi, smd_bare - u)
                    elif u + d < smd_bare:
                        flat = True
                    else:
                        lo = max(lo, smd_bare - d - u)
                        hi = min(hi, -d - u)
                else:
                    hi = min(hi, -d - u)
            elif u + d > 0.0 or u + d < smd_max:
                flat = True
            else:
                lo = max(lo, smd_max - d - u)
                hi = min(hi, -d - u)
            u = v
        if u == s:
            return s
        delta = u - s
        if flat:
            s = u
            continue
        # f(s + k·delta) = s + (k+1)·delta while k·delta stays in [lo, hi]
        if delta > 0.0:
            k = np.floor(hi / delta)
        else:
            k = np.floor(lo / delta)
        if k < 0.0:
            k = 0.0
        s = s + (k + 1.0) * delta
    return s


# --------------------------------------------------------------------------------------------
# The year as an affine map of the four active pools


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _apply_month(e1, e2, e3, e4, fb, fh, v):
    """Apply the decay-and-transfer matrix of a month to the 4-vector ``v`` in place."""
    d = v[0] * (1.0 - e1) + v[1] * (1.0 - e2) + v[2] * (1.0 - e3) + v[3] * (1.0 - e4)
    v[0] = v[0] * e1
    v[1] = v[1] * e2
    v[2] = v[2] * e3 + fb * d
    v[3] = v[3] * e4 + fh * d


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def annual_map_pixel(
    i, smd0, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly, clay, depth,
    evap_factor, rmod, a_out, b_unit, b_fixed,
):
    """Fill ``a_out[i]`` (4, 4), ``b_unit[i]`` and ``b_fixed[i]`` (4,) for pixel ``i``.

    Returns the end-of-year deficit (mm). ``b_unit`` is the December state reached from empty
    pools with 1 t C/ha/yr of plant input spread by ``pattern[:, i]``; ``b_fixed`` the same with
    ``c_inp`` and ``fym``.
    """
    f_co2, fb, fh, s_max, s_1bar, s_bare = soil_constants(clay[i], depth[i])
    a = a_out[i]
    for r in range(4):
        for c in range(4):
            a[r, c] = 1.0 if r == c else 0.0
        b_unit[i, r] = 0.0
        b_fixed[i, r] = 0.0
    s = smd0
    col = np.empty(4)
    for m in range(tmp.shape[0]):
        cov = cover[m, i]
        s = smd_step(s, prec[m, i] - evap_factor * pet[m, i], cov, s_max, s_bare)
        rt = rate_factor(temperature_factor(tmp[m, i]), s, cov, rmod[i], s_max, s_1bar)
        s = s + 0.0 * rt
        e1, e2, e3, e4 = decay_factors(rt)
        for c in range(4):
            for r in range(4):
                col[r] = a[r, c]
            _apply_month(e1, e2, e3, e4, fb, fh, col)
            for r in range(4):
                a[r, c] = col[r]
        dr = dpm_rpm[m if dr_monthly else 0, i]
        fdpm = dr / (1.0 + dr)
        frpm = 1.0 / (1.0 + dr)
        _apply_month(e1, e2, e3, e4, fb, fh, b_unit[i])
        p = pattern[m, i]
        b_unit[i, 0] += fdpm * p
        b_unit[i, 1] += frpm * p
        _apply_month(e1, e2, e3, e4, fb, fh, b_fixed[i])
        cin = c_inp[m, i]
        fy = fym[m, i]
        b_fixed[i, 0] += fdpm * cin + FYM_DPM * fy
        b_fixed[i, 1] += frpm * cin + FYM_RPM * fy
        b_fixed[i, 3] += FYM_HUM * fy
    return s


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def solve_steady(a, rhs1, rhs2, x1, x2):
    """Solve (I - a) x = rhs for two right-hand sides (4-vectors); NaN if singular.

    Gaussian elimination with partial pivoting on a copy of I - a.
    """
    m = np.empty((4, 6))
    for r in range(4):
        for c in range(4):
            m[r, c] = (1.0 if r == c else 0.0) - a[r, c]
        m[r, 4] = rhs1[r]
        m[r, 5] = rhs2[r]
    for k in range(4):
        p = k
        best = abs(m[k, k])
        for r in range(k + 1, 4):
            if abs(m[r, k]) > best:
                best = abs(m[r, k])
                p = r
        if not best > 0.0:  # singular (e.g. no decomposition all year) or NaN
            for r in range(4):
                x1[r] = np.nan
                x2[r] = np.nan
            return
        if p != k:
            for c in range(6):
                tmp = m[k, c]
                m[k, c] = m[p, c]
                m[p, c] = tmp
        for r in range(k + 1, 4):
            f = m[r, k] / m[k, k]
            for c in range(k, 6):
                m[r, c] -= f * m[k, c]
    for r in range(3, -1, -1):
        s1 = m[r, 4]
        s2 = m[r, 5]
        for c in range(r + 1, 4):
            s1 -= m[r, c] * x1[c]
            s2 -= m[r, c] * x2[c]
        x1[r] = s1 / m[r, r]
        x2[r] = s2 / m[r, r]


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _annual_pixel(
    i, smd0, periodic, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly, clay,
    depth, evap_factor, rmod, a_out, b_unit, b_fixed, smd_start, smd_end,
):
    s = smd0[i]
    if periodic:
        _, _, _, s_max, _, s_bare = soil_constants(clay[i], depth[i])
        n = tmp.shape[0]
        df = np.empty(n)
        cv = np.empty(n)
        for m in range(n):
            df[m] = prec[m, i] - evap_factor * pet[m, i]
            cv[m] = cover[m, i]
        s = steady_smd_pixel(s, df, cv, s_max, s_bare)
    smd_start[i] = s
    smd_end[i] = annual_map_pixel(
        i, s, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly, clay, depth,
        evap_factor, rmod, a_out, b_unit, b_fixed,
    )


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def annual(
    smd0, periodic, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly, clay, depth,
    evap_factor, rmod, a_out, b_unit, b_fixed, smd_start, smd_end,
):
    """Build every pixel's annual affine map (serial)."""
    for i in range(a_out.shape[0]):
        _annual_pixel(
            i, smd0, periodic, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly,
            clay, depth, evap_factor, rmod, a_out, b_unit, b_fixed, smd_start, smd_end,
        )


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def steady_pools(a, b_unit, b_fixed, p_unit, p_fixed):
    """Solve the periodic steady state of every pixel for both right-hand sides."""
    for i in range(a.shape[0]):
        solve_steady(a[i], b_unit[i], b_fixed[i], p_unit[i], p_fixed[i])


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def years_affine(pools, a, b, n_years, yearly, out_years):
    """Iterate ``p <- a p + b`` ``n_years`` times for the four active pools, in place."""
    v = np.empty(4)
    for i in range(pools.shape[0]):
        for y in range(n_years):
            for r in range(4):
                acc = b[i, r]
                for c in range(4):
                    acc += a[i, r, c] * pools[i, c]
                v[r] = acc
            for r in range(4):
                pools[i, r] = v[r]
            if yearly:
                for k in range(5):
                    out_years[y, i, k] = pools[i, k]


#: Values per chunk of :func:`first_bad`: a branch-free count per chunk, an exit check after it.
CHECK_CHUNK = 2048


@njit(nogil=True, cache=True, error_model="numpy")
def _count_bad(a, k0, k1, lo, hi):
    """Return how many of ``a[k0:k1]`` are non-finite or outside [lo, hi] (vectorises)."""
    bad = 0
    for k in range(k0, k1):
        v = a[k]
        bad += (v < lo) | (v > hi) | (v - v != 0.0)
    return bad


@njit(nogil=True, cache=True, error_model="numpy")
def first_bad(arrays, lo, hi):
    """Return (which, k): the first value ``arrays[which][k]`` non-finite or outside its range.

    ``arrays`` is a tuple of flat float64 arrays checked in one pass against
    ``[lo[which], hi[which]]``; (-1, -1) when every value is finite and in range.
    """
    for w in range(len(arrays)):
        a = arrays[w]
        n = a.shape[0]
        for k0 in range(0, n, CHECK_CHUNK):
            k1 = min(n, k0 + CHECK_CHUNK)
            if _count_bad(a, k0, k1, lo[w], hi[w]):
                for k in range(k0, k1):
                    v = a[k]
                    if (v < lo[w]) | (v > hi[w]) | (v - v != 0.0):
                        return w, k
    return -1, -1
