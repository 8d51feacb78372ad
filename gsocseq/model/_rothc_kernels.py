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
from four ``exp`` calls), and that exponential is a short polynomial for the usual small arguments
(:func:`_exp_small`), so the per-month loops over a block vectorise (the temperature factor too:
exp(x/64)^64; the deficit and rate step is branch-free, :func:`smd_rate`, its moisture slope a
per-pixel reciprocal). The same block layout serves the warm-up (:func:`run_years`: one plant
input per year, scaled climate read on the fly), the forward year 1 (:func:`run_pair`: two pool
sets on one deficit, each month's rates computed once) and the annual maps (:func:`annual`: months
outer, the block's pixels inner, the map state in lane rows, :func:`map_month`, shared with the
Monte Carlo kernel; the periodic deficit of a block cycled a few years together before
:func:`steady_smd_pixel` takes the rest). In the warm-up the month's rate loop only computes
deficits and rates, the polynomial's range is checked in a pass of its own (:func:`_n_far`) and
HUM's decay factor is computed where the pools are updated: 1.15× the single loop that also
counted (same numbers; measured, the forward and map kernels did not gain). The month loops
read each input row of the block as a 1-D view (``tmp[m, i0:i1]``) rather than ``tmp[m, i]``:
same numbers, the warm-up 1.4x and checked :func:`run` 1.9x faster (measured); the warm-up
also reads a block of the whole inputs in place (offsets ``m0``, ``c0``). Compiled with
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
#: Pixels per block of the warm-up kernel :func:`run_years` (its state is smaller: 512 ran
#: 1.04-1.05x faster than 256 in the same run, 128 0.87x; the annual maps slowed at 512).
WARM_BLOCK = 512


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def soil_constants(clay: float, depth: float) -> tuple[float, float, float, float, float, float]:
    """Return (f_co2, f_bio, f_hum, smd_max, b_slope, smd_bare) for clay (%) and depth (cm).

    ``b_slope`` (mm⁻¹) = (1 - 0.2) / (SMDmax - SMD1bar), SMD1bar = 0.444·SMDmax: the moisture
    factor's slope (:func:`smd_rate`), a reciprocal taken once per pixel instead of a division
    per month.
    """
    x = 1.67 * (1.85 + 1.60 * np.exp(-0.0786 * clay))
    f_co2 = x / (x + 1.0)
    f_bio = 0.46 / (x + 1.0)
    f_hum = 0.54 / (x + 1.0)
    smd_max = -(20.0 + 1.3 * clay - 0.01 * (clay * clay)) * depth / 23.0
    b_slope = (1.0 - RM_MOIST_MIN) / (smd_max - 0.444 * smd_max)
    return f_co2, f_bio, f_hum, smd_max, b_slope, 0.556 * smd_max


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


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _deficit(smd, df, cover, smd_max, smd_bare):
    """Return :func:`smd_step`'s end-of-month deficit (mm), written branch-free (it vectorises).

    Both arms of every rule are computed and one is selected with the same comparisons: the
    same numbers (only selections, one addition).
    """
    v = smd + df
    v = 0.0 if v > 0.0 else v
    lo = smd_bare if smd > smd_bare else smd
    v_bare = lo if lo > v else v
    v_cov = smd_max if v < smd_max else v
    return v_bare if cover < 0.5 else v_cov


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def smd_rate(
    smd: float, df: float, cover: float, a: float, rmod: float, smd_max: float, b_slope: float,
    smd_bare: float,
) -> tuple[float, float]:
    """Return the end-of-month deficit (mm) and the combined monthly rate factor a·b·c·rmod·t.

    :func:`smd_step`, then b from the updated deficit, c = 1 - 0.4·cover, t = 1/12 yr, with ``a``
    the :func:`temperature_factor`. b = 0.2 + (SMDmax - SMD)·``b_slope`` (:func:`soil_constants`)
    capped at 1: the line reaches 1 at SMD1bar, so the cap is RothC's ``b = 1`` above SMD1bar
    (a NaN deficit stays NaN). Written branch-free: both arms of every rule are computed and one
    is selected, with the same comparisons (and NaN propagation), which lets LLVM vectorise the
    loop over pixels.
    """
    s = _deficit(smd, df, cover, smd_max, smd_bare)
    b_dry = RM_MOIST_MIN + (smd_max - s) * b_slope
    b = 1.0 if b_dry > 1.0 else b_dry
    c = 1.0 - 0.4 * cover
    return s, a * b * c * rmod * TSTEP


#: |x| up to which :func:`_exp_poly` is used for exp(x) (the temperature factor's argument / 64).
EXP_POLY_MAX = 0.125
#: |x| up to which :func:`_exp_small` is used for HUM's decay factor exp(-rate·K_HUM): rates up to
#: 1.56 a month, far above any a·b·c·rmod/12 of real climate (a < 11 below 62 °C).
EXP_SMALL_MAX = 1.0 / 32.0


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
def _exp_small(x: float) -> float:
    """Return exp(x) for |x| ≤ EXP_SMALL_MAX: degree-8 Taylor polynomial (Horner).

    Truncation error < (1/32)^9 / 9! ≈ 8e-20 relative, below float64 rounding: three
    multiply-adds fewer than :func:`_exp_poly` in every month of every pixel.
    """
    return 1.0 + x * (1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (
        1.0 / 120.0 + x * (1.0 / 720.0 + x * (1.0 / 5040.0 + x * (1.0 / 40320.0))))))))


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


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _smd_and_rate(tmp, df, cover, rmod, smd, smd_max, b_slope, smd_bare):
    """Return a pixel's month: (deficit mm, combined rate); the deficit is NaN if the rate is.

    ``df`` = prec - f·pet (mm). Branch-free: the loops over pixels vectorise.
    """
    s, r = smd_rate(smd, df, cover, temperature_factor(tmp), rmod, smd_max, b_slope, smd_bare)
    return s + 0.0 * r, r


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _month_rate(tmp, df, cover, rmod, smd, smd_max, b_slope, smd_bare):
    """Return a pixel's month: (deficit, combined rate, polynomial exp(-rate·K_HUM), far).

    :func:`_smd_and_rate`, then ``far`` is 1 when -rate·K_HUM lies outside the polynomial's
    range (then :func:`_exp_far` must replace the third value), else 0.
    """
    s, r = _smd_and_rate(tmp, df, cover, rmod, smd, smd_max, b_slope, smd_bare)
    x = -r * K_HUM
    return s, r, _exp_small(x), not abs(x) <= EXP_SMALL_MAX


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exp_far(rate, ehum):
    """Replace ``ehum[j]`` by libm's exp(-rate[j]·K_HUM) where that is outside the polynomial's range."""
    for j in range(rate.shape[0]):
        x = -rate[j] * K_HUM
        if not abs(x) <= EXP_SMALL_MAX:
            ehum[j] = np.exp(x)


@njit(nogil=True, cache=True, error_model="numpy")
def _n_far(rate):
    """Return how many ``rate`` values put -rate·K_HUM outside the polynomial's range (or NaN).

    A pass of its own: counted inside the rate loop it cost ~10 % of the warm-up (measured).
    """
    far = 0
    for j in range(rate.shape[0]):
        far += not abs(rate[j] * K_HUM) <= EXP_SMALL_MAX
    return far


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exp_fill(rate, ehum):
    """Fill ``ehum[j]`` = exp(-rate[j]·K_HUM): the polynomial, libm outside its range."""
    for j in range(rate.shape[0]):
        ehum[j] = _exp_small(-rate[j] * K_HUM)
    _exp_far(rate, ehum)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _hum_factor(rate, ehum, j, far):
    """Return HUM's decay factor exp(-rate[j]·K_HUM) of pixel ``j``.

    The polynomial, computed where the pools are updated; in a month with ``far`` rates
    (:func:`_n_far`) ``ehum[j]``, filled by :func:`_exp_fill` before.
    """
    return ehum[j] if far else _exp_small(-rate[j] * K_HUM)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _decay(ehum, p1, p2, p3, p4):
    """Return DPM, RPM, BIO, HUM after a month's decay and the C they lost (t C/ha).

    ``ehum`` is HUM's decay factor exp(-rate·K_HUM); the others are its powers (:func:`_powers`).
    """
    e1, e2, e3, e4 = _powers(ehum)
    d1 = p1 * e1
    d2 = p2 * e2
    d3 = p3 * e3
    d4 = p4 * e4
    return d1, d2, d3, d4, (p1 - d1) + (p2 - d2) + (p3 - d3) + (p4 - d4)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _block_rates(m, i0, tmp, prec, pet, cover, evap_factor, rmod, smd, s_max, b_slope, s_bare,
                 rate, ehum):
    """Month ``m`` of pixels ``i0:i0+len(smd)``: update ``smd``, fill ``rate`` and ``ehum``.

    :func:`_month_rate` per pixel (``ehum`` HUM's decay factor, libm's exp where the polynomial's
    range ends, :func:`_exp_far`); one short loop that vectorises.
    """
    far = 0
    i1 = i0 + smd.shape[0]  # the month's rows as views: the loop vectorises better (measured)
    t_row, p_row, e_row, c_row, r_row = tmp[m, i0:i1], prec[m, i0:i1], pet[m, i0:i1], \
        cover[m, i0:i1], rmod[i0:i1]
    for j in range(smd.shape[0]):
        smd[j], rate[j], ehum[j], f = _month_rate(
            t_row[j], p_row[j] - evap_factor * e_row[j], c_row[j], r_row[j], smd[j],
            s_max[j], b_slope[j], s_bare[j])
        far += f
    if far:  # rare: outside the polynomial's range
        _exp_far(rate, ehum)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def decay_add(nl, ehum, dpm, rpm, bio, hum, f_bio, f_hum, fd, fr, cm):
    """One month's decay of every lane's pools, then its plant input ``cm`` (t C/ha), in place.

    Lanes are the pixels of a block or the draws of a pixel; rows as separate 1-D arrays so the
    loop vectorises. ``fd``, ``fr`` the DPM and RPM shares of the plant input.
    """
    for d in range(nl):
        dpm1, rpm1, bio1, hum1, tot = _decay(ehum[d], dpm[d], rpm[d], bio[d], hum[d])
        dpm[d] = dpm1 + fd[d] * cm[d]
        rpm[d] = rpm1 + fr[d] * cm[d]
        bio[d] = bio1 + tot * f_bio[d]
        hum[d] = hum1 + tot * f_hum[d]


@njit(inline="always", error_model="numpy")
def _n_outside(v0, v1, v2, v3, v4, v5, lo, hi):
    """Return how many of the six values lie outside ``[lo[k], hi[k]]``.

    ``lo``, ``hi`` are finite: NaN and ±inf fail one of the two comparisons.
    """
    return ((not ((v0 >= lo[0]) & (v0 <= hi[0])))
            + (not ((v1 >= lo[1]) & (v1 <= hi[1])))
            + (not ((v2 >= lo[2]) & (v2 <= hi[2])))
            + (not ((v3 >= lo[3]) & (v3 <= hi[3])))
            + (not ((v4 >= lo[4]) & (v4 <= hi[4])))
            + (not ((v5 >= lo[5]) & (v5 <= hi[5]))))


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _block_start(i0, nb, clay, depth, out_pools, out_smd):
    """Return the soil constants and start state of pixels ``i0:i0+nb`` as arrays over the block.

    (f_co2, f_bio, f_hum, smd_max, b_slope, smd_bare) from :func:`soil_constants`, then DPM,
    RPM, BIO, HUM (t C/ha) and the deficit (mm).
    """
    soil = np.empty((6, nb))
    st = np.empty((5, nb))
    for j in range(nb):
        i = i0 + j
        soil[0, j], soil[1, j], soil[2, j], soil[3, j], soil[4, j], soil[5, j] = soil_constants(
            clay[i], depth[i])
        for k in range(4):
            st[k, j] = out_pools[i, k]
        st[4, j] = out_smd[i]
    return soil[0], soil[1], soil[2], soil[3], soil[4], soil[5], st[0], st[1], st[2], st[3], st[4]


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _block_end(i0, dpm, rpm, bio, hum, smd, out_pools, out_smd):
    """Write a block's end state (pools t C/ha, deficit mm) back to pixels ``i0:i0+len(dpm)``."""
    for j in range(dpm.shape[0]):
        i = i0 + j
        out_pools[i, 0] = dpm[j]
        out_pools[i, 1] = rpm[j]
        out_pools[i, 2] = bio[j]
        out_pools[i, 3] = hum[j]
        out_smd[i] = smd[j]


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
    ``[lo[k], hi[k]]`` (finite bounds, so the same two comparisons also catch NaN and ±inf):
    returns the number of bad values (0 without ``check``).
    """
    bad = 0
    nb = i1 - i0
    fym_monthly = fym.shape[0] > 1  # (1, n): no manure (one row of zeros)
    f_co2, f_bio, f_hum, s_max, b_slope, s_bare, dpm, rpm, bio, hum, smd = _block_start(
        i0, nb, clay, depth, out_pools, out_smd)
    co2s = np.empty(nb)
    co2m = np.empty(nb)
    rate = np.empty(nb)
    ehum = np.empty(nb)
    fd = np.empty(nb)  # DPM and RPM shares of the plant input
    fr = np.empty(nb)
    for j in range(nb):
        i = i0 + j
        co2s[j] = co2_tot[i]
        dr = dpm_rpm[0, i]
        fd[j] = dr / (1.0 + dr)
        fr[j] = 1.0 / (1.0 + dr)
    n_months = tmp.shape[0]
    for rep in range(repeat):
        for m in range(n_months):
            mf = m if fym_monthly else 0
            if dr_monthly:
                for j in range(nb):
                    dr = dpm_rpm[m, i0 + j]
                    fd[j] = dr / (1.0 + dr)
                    fr[j] = 1.0 / (1.0 + dr)
            c_row, f_row = c_inp[m, i0:i1], fym[mf, i0:i1]  # rows as views (measured faster)
            if check and rep == 0:  # the same loop, also checking the month's six inputs
                far = 0
                t_row, p_row, e_row, v_row = tmp[m, i0:i1], prec[m, i0:i1], pet[m, i0:i1], \
                    cover[m, i0:i1]
                for j in range(nb):
                    v0 = t_row[j]
                    v1 = p_row[j]
                    v2 = e_row[j]
                    v3 = v_row[j]
                    smd[j], rate[j], ehum[j], f = _month_rate(
                        v0, v1 - evap_factor * v2, v3, rmod[i0 + j], smd[j], s_max[j],
                        b_slope[j], s_bare[j])
                    far += f
                    bad += _n_outside(v0, v1, v2, v3, c_row[j], f_row[j], lo, hi)
                if far:  # rare: outside the polynomial's range
                    _exp_far(rate, ehum)
            else:
                _block_rates(m, i0, tmp, prec, pet, cover, evap_factor, rmod, smd, s_max, b_slope,
                             s_bare, rate, ehum)
            for j in range(nb):
                dpm1, rpm1, bio1, hum1, tot = _decay(ehum[j], dpm[j], rpm[j], bio[j], hum[j])
                cin = c_row[j]
                fy = f_row[j]
                dpm[j] = dpm1 + fd[j] * cin + FYM_DPM * fy
                rpm[j] = rpm1 + fr[j] * cin + FYM_RPM * fy
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
    _block_end(i0, dpm, rpm, bio, hum, smd, out_pools, out_smd)
    for j in range(nb):
        co2_tot[i0 + j] = co2s[j]
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


@njit(nogil=True, cache=True, error_model="numpy")
def _input_split(i0, nb, dpm_rpm):
    """Return the DPM and RPM shares of the plant input of pixels ``i0:i0+nb`` (from DPM/RPM)."""
    fd = np.empty(nb)
    fr = np.empty(nb)
    for j in range(nb):
        dr = dpm_rpm[i0 + j]
        fd[j] = dr / (1.0 + dr)
        fr[j] = 1.0 / (1.0 + dr)
    return fd, fr


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _years_block(
    i0, i1, out_pools, out_smd, tmp, prec, pet, cover, cin_years, dpm_rpm, clay, depth,
    evap_factor, rmod, t_scale, p_scale, m0, c0,
):
    """Advance pixels ``i0:i1`` through the years of ``cin_years`` month by month, in place.

    Like :func:`_run_block` without manure, checks or monthly output, but the plant input is one
    annual value per year (``cin_years[y] / 12`` each month), ``cover`` is one calendar year
    repeated, ``dpm_rpm`` one value per pixel and temperature and precipitation are scaled on the
    fly (``t_scale``, ``p_scale``): no ``(n_months, n)`` temporaries. Pixel ``i``'s month ``m``
    is ``tmp[m0 + m, c0 + i]`` (the same for ``prec``, ``pet``): a block of larger arrays.
    """
    nb = i1 - i0
    _, f_bio, f_hum, s_max, b_slope, s_bare, dpm, rpm, bio, hum, smd = _block_start(
        i0, nb, clay, depth, out_pools, out_smd)
    fd, fr = _input_split(i0, nb, dpm_rpm)
    cm = np.empty(nb)
    rate = np.empty(nb)
    ehum = np.empty(nb)
    r_row = rmod[i0:i1]
    for y in range(cin_years.shape[0]):
        for j in range(nb):
            cm[j] = cin_years[y, i0 + j] / 12.0
        for mm in range(12):
            m = m0 + 12 * y + mm  # the month's rows as views: the loop vectorises (measured)
            t_row, p_row, e_row = tmp[m, c0 + i0 : c0 + i1], prec[m, c0 + i0 : c0 + i1], \
                pet[m, c0 + i0 : c0 + i1]
            c_row = cover[mm, i0:i1]
            for j in range(nb):
                smd[j], rate[j] = _smd_and_rate(
                    t_row[j] * t_scale, p_row[j] * p_scale - evap_factor * e_row[j],
                    c_row[j], r_row[j], smd[j], s_max[j], b_slope[j], s_bare[j])
            far = _n_far(rate)
            if far:  # rare: outside the polynomial's range
                _exp_fill(rate, ehum)
            for j in range(nb):
                dpm1, rpm1, bio1, hum1, tot = _decay(
                    _hum_factor(rate, ehum, j, far), dpm[j], rpm[j], bio[j], hum[j])
                cin = cm[j]
                dpm[j] = dpm1 + fd[j] * cin
                rpm[j] = rpm1 + fr[j] * cin
                bio[j] = bio1 + tot * f_bio[j]
                hum[j] = hum1 + tot * f_hum[j]
    _block_end(i0, dpm, rpm, bio, hum, smd, out_pools, out_smd)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def run_years(
    out_pools, out_smd, tmp, prec, pet, cover, cin_years, dpm_rpm, clay, depth, evap_factor,
    rmod, t_scale, p_scale, m0, c0,
):
    """Run :func:`_years_block` over all pixels, ``WARM_BLOCK`` after the other (in place).

    The climate of pixel ``i`` in month ``m`` is ``tmp[m0 + m, c0 + i]`` (``prec``, ``pet`` alike).
    """
    n = out_pools.shape[0]
    for b in range((n + WARM_BLOCK - 1) // WARM_BLOCK):
        _years_block(
            b * WARM_BLOCK, min(n, (b + 1) * WARM_BLOCK), out_pools, out_smd, tmp, prec, pet, cover,
            cin_years, dpm_rpm, clay, depth, evap_factor, rmod, t_scale, p_scale, m0, c0,
        )


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _pair_block(i0, i1, pools, unit, out_smd, tmp, prec, pet, cover, cin, dpm_rpm, clay, depth,
                evap_factor, rmod, repeat):
    """Step pixels ``i0:i1`` of both pool sets ``repeat`` × 12 months, in place (see :func:`run_pair`)."""
    nb = i1 - i0
    _, f_bio, f_hum, s_max, b_slope, s_bare, dpm, rpm, bio, hum, smd = _block_start(
        i0, nb, clay, depth, pools, out_smd)
    fd, fr = _input_split(i0, nb, dpm_rpm)
    u = np.empty((5, nb))  # the second pool set (DPM, RPM, BIO, HUM) and the monthly input
    rate = np.empty(nb)
    ehum = np.empty(nb)
    for j in range(nb):
        for k in range(4):
            u[k, j] = unit[i0 + j, k]
        u[4, j] = cin[i0 + j] / 12.0
    for _ in range(repeat):
        for m in range(tmp.shape[0]):
            _block_rates(m, i0, tmp, prec, pet, cover, evap_factor, rmod, smd, s_max, b_slope,
                         s_bare, rate, ehum)
            decay_add(nb, ehum, dpm, rpm, bio, hum, f_bio, f_hum, fd, fr, u[4])
            decay_add(nb, ehum, u[0], u[1], u[2], u[3], f_bio, f_hum, fd, fr, u[4])
    _block_end(i0, dpm, rpm, bio, hum, smd, pools, out_smd)
    for j in range(nb):
        for k in range(4):
            unit[i0 + j, k] = u[k, j]


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def run_pair(pools, unit, out_smd, tmp, prec, pet, cover, cin, dpm_rpm, clay, depth, evap_factor,
             rmod, repeat):
    """Step two pool sets of every pixel through ``repeat`` × the months of the climate, in place.

    ``pools`` and ``unit`` (n, 5) t C/ha share the deficit ``out_smd`` (mm) and so every month's
    rates, computed once; both take the plant input ``cin / 12`` (t C/ha, ``cin`` (n,) t C/ha/yr)
    each month, split by ``dpm_rpm`` (n,), no manure: the numbers of two :func:`run` calls.
    """
    n = pools.shape[0]
    for b in range((n + BLOCK - 1) // BLOCK):
        _pair_block(b * BLOCK, min(n, (b + 1) * BLOCK), pools, unit, out_smd, tmp, prec, pet,
                    cover, cin, dpm_rpm, clay, depth, evap_factor, rmod, repeat)


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
        edge = hi if delta > 0.0 else lo
        q = edge / delta
        if q < 2.0**52:
            k = np.floor(q) if q > 0.0 else 0.0
            s = s + (k + 1.0) * delta
        else:  # a drift below the rounding of s (e.g. denormal): k·delta would overflow
            s = s + edge + delta
    return s


#: Years the deficits of a block are cycled together before :func:`steady_smd_pixel` takes the
#: pixels whose cycle is not yet periodic (most are after two or three years).
STEADY_FAST_YEARS = 3


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _flat_month(u, d, cover, smd_max, smd_bare):
    """Return whether a month from deficit ``u`` with prec - f·pet ``d`` takes a slope-0 branch.

    The branches :func:`steady_smd_pixel` calls flat, branch-free.
    """
    v = u + d
    bare = (v > 0.0) | ((d < 0.0) & (u > smd_bare) & (v < smd_bare))
    covered = (v > 0.0) | (v < smd_max)
    return bare if cover < 0.5 else covered


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _steady_block(i0, smd0, prec, pet, cover, evap_factor, s_max, s_bare, smd, dfb, st):
    """Set ``smd`` (nb,) to the periodic January deficit (mm) of pixels ``i0:i0+nb`` from ``smd0``.

    :func:`steady_smd_pixel`'s numbers, faster: its first years are plain cycles of the year
    while the year's path has a flat (slope-0) month, so they are taken ``STEADY_FAST_YEARS``
    times for the whole block at once (month outer, pixels inner, branch-free: it vectorises). A
    pixel that came back to its January deficit after flat years only is done (the value
    :func:`steady_smd_pixel` returns); the others continue in :func:`steady_smd_pixel` from the
    start of their first year that was not flat (an iterate of its own sequence), or from where
    they are. ``dfb`` (n_months, nb) and ``st`` (5, nb) are scratch.
    """
    nb = smd.shape[0]
    n = prec.shape[0]
    start, hold, nan, held, flat = st[0], st[1], st[2], st[3], st[4]
    for j in range(nb):
        smd[j] = smd0[i0 + j]
        nan[j] = smd[j] + s_max[j] + s_bare[j]  # NaN test as steady_smd_pixel's
        held[j] = 0.0
    i1 = i0 + nb  # rows as views (vectorise better, measured)
    for m in range(n):
        p_row, e_row, c_row = prec[m, i0:i1], pet[m, i0:i1], cover[m, i0:i1]
        for j in range(nb):
            dfb[m, j] = p_row[j] - evap_factor * e_row[j]
            nan[j] += dfb[m, j] + c_row[j]
    for _ in range(STEADY_FAST_YEARS):
        for j in range(nb):
            start[j] = smd[j]
            flat[j] = 0.0
        for m in range(n):
            c_row = cover[m, i0:i1]
            for j in range(nb):
                u = smd[j]
                c = c_row[j]
                flat[j] = 1.0 if _flat_month(u, dfb[m, j], c, s_max[j], s_bare[j]) else flat[j]
                smd[j] = _deficit(u, dfb[m, j], c, s_max[j], s_bare[j])
        for j in range(nb):  # a year neither flat nor at the fixed point: hold its start
            first = (held[j] == 0.0) & (flat[j] == 0.0) & (not (smd[j] == start[j]))
            hold[j] = start[j] if first else hold[j]
            held[j] = 1.0 if first else held[j]
    for j in range(nb):
        if held[j] != 0.0 or not (smd[j] == start[j]) or not (nan[j] == nan[j]):
            s = hold[j] if held[j] != 0.0 else smd[j]
            smd[j] = steady_smd_pixel(s, dfb[:, j], cover[:, i0 + j], s_max[j], s_bare[j])


# --------------------------------------------------------------------------------------------
# The year as an affine map of the four active pools


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _month4(e1, e2, e3, e4, fb, fh, v0, v1, v2, v3):
    """Return the 4-vector (v0..v3) after a month's decay-and-transfer matrix."""
    d = v0 * (1.0 - e1) + v1 * (1.0 - e2) + v2 * (1.0 - e3) + v3 * (1.0 - e4)
    return v0 * e1, v1 * e2, v2 * e3 + fb * d, v3 * e4 + fh * d


#: Rows of the state of an annual map over lanes (:func:`map_month`): A's rows 2–3 (8), A[0,0],
#: A[1,1], b_unit (4), b_fixed (4). A's other entries stay 0 (DPM and RPM only decay).
A2, A3, A00, A11, BU, BF, N_STATE = 0, 4, 8, 9, 10, 14, 18


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _map_powers(nl, ehum, e1, e2, e3, e4):
    """Fill the lanes' decay factors of DPM, RPM, BIO, HUM from HUM's ``ehum`` (:func:`_powers`)."""
    for d in range(nl):
        e1[d], e2[d], e3[d], e4[d] = _powers(ehum[d])


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _map_column(nl, e1, e2, e3, e4, f_bio, f_hum, first, v0, v1, v2, v3):
    """One month of a column (v0, v1, v2, v3) of every lane's map, in place (:func:`_month4`).

    ``first`` 0: the DPM column (v1 = 0), 1: the RPM column (v0 = 0), 2: a BIO or HUM column
    (v0 = v1 = 0); those zero rows are neither read nor written.
    """
    for d in range(nl):
        x0 = v0[d] if first == 0 else 0.0
        x1 = v1[d] if first == 1 else 0.0
        c0, c1, c2, c3 = _month4(e1[d], e2[d], e3[d], e4[d], f_bio[d], f_hum[d], x0, x1, v2[d],
                                 v3[d])
        if first == 0:
            v0[d] = c0
        if first == 1:
            v1[d] = c1
        v2[d] = c2
        v3[d] = c3


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _map_input(nl, e1, e2, e3, e4, f_bio, f_hum, u0, u1, u2, u3, fd, fr, p):
    """One month of every lane's ``b_unit``: decay, then plant input ``p`` (t C/ha) split fd/fr."""
    for d in range(nl):
        x0, x1, x2, x3 = _month4(e1[d], e2[d], e3[d], e4[d], f_bio[d], f_hum[d], u0[d], u1[d],
                                 u2[d], u3[d])
        u0[d] = x0 + fd[d] * p[d]
        u1[d] = x1 + fr[d] * p[d]
        u2[d] = x2
        u3[d] = x3


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def map_month(nl, ehum, f_bio, f_hum, st, fd, fr, p, e):
    """One month of every lane's annual map (A and b_unit in ``st`` rows, see :data:`N_STATE`).

    Lanes are the pixels of a block or the draws of a pixel; ``ehum`` (nl,) HUM's decay factor,
    ``f_bio``, ``f_hum`` the clay split, ``fd``, ``fr``, ``p`` (nl,) the DPM/RPM shares and the
    month's plant input per unit annual input. Short loops over the lanes, few arrays each, so
    they vectorise; ``e`` (≥ 4, nl) scratch.
    """
    e1, e2, e3, e4 = e[0], e[1], e[2], e[3]
    _map_powers(nl, ehum, e1, e2, e3, e4)
    _map_column(nl, e1, e2, e3, e4, f_bio, f_hum, 0, st[A00], st[A00], st[A2], st[A3])
    _map_column(nl, e1, e2, e3, e4, f_bio, f_hum, 1, st[A11], st[A11], st[A2 + 1], st[A3 + 1])
    _map_column(nl, e1, e2, e3, e4, f_bio, f_hum, 2, st[A2 + 2], st[A2 + 2], st[A2 + 2],
                st[A3 + 2])
    _map_column(nl, e1, e2, e3, e4, f_bio, f_hum, 2, st[A2 + 3], st[A2 + 3], st[A2 + 3],
                st[A3 + 3])
    _map_input(nl, e1, e2, e3, e4, f_bio, f_hum, st[BU], st[BU + 1], st[BU + 2], st[BU + 3], fd,
               fr, p)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _map_fixed(nl, e, f_bio, f_hum, st, fd, fr, cin, fy):
    """One month of every lane's ``b_fixed`` (rows ``BF``): decay, then the fixed inputs.

    ``cin`` plant and ``fy`` manure C (t C/ha); ``e`` the month's decay factors (:func:`map_month`).
    """
    for d in range(nl):
        f0, f1, f2, f3 = _month4(e[0, d], e[1, d], e[2, d], e[3, d], f_bio[d], f_hum[d],
                                 st[BF, d], st[BF + 1, d], st[BF + 2, d], st[BF + 3, d])
        st[BF, d] = f0 + (fd[d] * cin[d] + FYM_DPM * fy[d])
        st[BF + 1, d] = f1 + (fr[d] * cin[d] + FYM_RPM * fy[d])
        st[BF + 2, d] = f2
        st[BF + 3, d] = f3 + FYM_HUM * fy[d]


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _annual_block(
    i0, i1, smd0, periodic, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly,
    clay, depth, evap_factor, rmod, a_out, b_unit, b_fixed, smd_start, smd_end, fixed,
):
    """Build the annual maps of pixels ``i0:i1`` (see :func:`annual`).

    Months are the outer loop and the block's pixels the inner one: the rate loop as in
    :func:`_run_block`, then :func:`map_month` on the state rows ``st`` (:data:`N_STATE`).
    """
    nb = i1 - i0
    n = tmp.shape[0]
    sc = np.empty((9, nb))
    fb, fh, s_max, b_slope, s_bare, smd, rate, ehum, fd = (sc[0], sc[1], sc[2], sc[3], sc[4],
                                                           sc[5], sc[6], sc[7], sc[8])
    fr = np.empty(nb)
    e = np.empty((4, nb))
    st = np.zeros((N_STATE, nb))
    for j in range(nb):
        i = i0 + j
        _, fb[j], fh[j], s_max[j], b_slope[j], s_bare[j] = soil_constants(clay[i], depth[i])
        smd[j] = smd0[i]
    if periodic:
        _steady_block(i0, smd0, prec, pet, cover, evap_factor, s_max, s_bare, smd,
                      np.empty((n, nb)), np.empty((5, nb)))
    for j in range(nb):
        smd_start[i0 + j] = smd[j]
        st[A2 + 2, j] = 1.0
        st[A3 + 3, j] = 1.0
        st[A00, j] = 1.0
        st[A11, j] = 1.0
    for m in range(n):
        if m == 0 or dr_monthly:
            for j in range(nb):
                dr = dpm_rpm[m if dr_monthly else 0, i0 + j]
                fd[j] = dr / (1.0 + dr)
                fr[j] = 1.0 / (1.0 + dr)
        _block_rates(m, i0, tmp, prec, pet, cover, evap_factor, rmod, smd, s_max, b_slope, s_bare,
                     rate, ehum)
        map_month(nb, ehum, fb, fh, st, fd, fr, pattern[m, i0:i1], e)
        if fixed:
            _map_fixed(nb, e, fb, fh, st, fd, fr, c_inp[m, i0:i1], fym[m, i0:i1])
    for j in range(nb):
        i = i0 + j
        smd_end[i] = smd[j]
        for c in range(4):
            a_out[i, 0, c] = 0.0
            a_out[i, 1, c] = 0.0
            a_out[i, 2, c] = st[A2 + c, j]
            a_out[i, 3, c] = st[A3 + c, j]
            b_unit[i, c] = st[BU + c, j]
            # without fixed inputs: 0, NaN where the rates are (as the stepped zeros would be)
            b_fixed[i, c] = st[BF + c, j] if fixed else 0.0 * st[A00, j]
        a_out[i, 0, 0] = st[A00, j]
        a_out[i, 1, 1] = st[A11, j]


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
def annual(
    smd0, periodic, tmp, prec, pet, cover, c_inp, fym, pattern, dpm_rpm, dr_monthly, clay, depth,
    evap_factor, rmod, a_out, b_unit, b_fixed, smd_start, smd_end, fixed,
):
    """Build every pixel's annual affine map (serial, blocks of ``BLOCK`` pixels).

    Fills ``a_out[i]`` (4, 4), ``b_unit[i]`` and ``b_fixed[i]`` (4,), ``smd_start[i]`` (the
    January deficit: ``smd0[i]``, or with ``periodic`` the periodic one reached from it) and
    ``smd_end[i]`` (mm). ``b_unit`` is the December state reached from empty pools with
    1 t C/ha/yr of plant input spread by ``pattern[:, i]``; ``b_fixed`` the same with ``c_inp``
    and ``fym`` (not computed, 0, unless ``fixed``: any of them non-zero).
    """
    n = a_out.shape[0]
    for b in range((n + BLOCK - 1) // BLOCK):
        _annual_block(
            b * BLOCK, min(n, (b + 1) * BLOCK), smd0, periodic, tmp, prec, pet, cover, c_inp,
            fym, pattern, dpm_rpm, dr_monthly, clay, depth, evap_factor, rmod, a_out, b_unit,
            b_fixed, smd_start, smd_end, fixed,
        )


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def steady_pools(a, b_unit, b_fixed, p_unit, p_fixed):
    """Solve the periodic steady state of every pixel for both right-hand sides."""
    for i in range(a.shape[0]):
        solve_steady(a[i], b_unit[i], b_fixed[i], p_unit[i], p_fixed[i])


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _map_of(a, b, i):
    """Return pixel ``i``'s year map as a tuple: A's 16 entries row by row, then b's 4."""
    return (a[i, 0, 0], a[i, 0, 1], a[i, 0, 2], a[i, 0, 3], a[i, 1, 0], a[i, 1, 1], a[i, 1, 2],
            a[i, 1, 3], a[i, 2, 0], a[i, 2, 1], a[i, 2, 2], a[i, 2, 3], a[i, 3, 0], a[i, 3, 1],
            a[i, 3, 2], a[i, 3, 3], b[i, 0], b[i, 1], b[i, 2], b[i, 3])


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _map_year(t, p0, p1, p2, p3):
    """Return ``A p + b`` for the map tuple ``t`` (:func:`_map_of`): each row ``b[r] + A[r, 0]·p0 + …``."""
    return (t[16] + t[0] * p0 + t[1] * p1 + t[2] * p2 + t[3] * p3,
            t[17] + t[4] * p0 + t[5] * p1 + t[6] * p2 + t[7] * p3,
            t[18] + t[8] * p0 + t[9] * p1 + t[10] * p2 + t[11] * p3,
            t[19] + t[12] * p0 + t[13] * p1 + t[14] * p2 + t[15] * p3)


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def years_affine(pools, a, b, n_years, yearly, out_years):
    """Iterate ``p <- a p + b`` ``n_years`` times for the four active pools, in place.

    A pixel's map and pools stay in registers for all its years; each row sums
    ``b[r] + a[r, 0]·p[0] + … + a[r, 3]·p[3]`` in that order (:func:`_map_year`).
    """
    for i in range(pools.shape[0]):
        t = _map_of(a, b, i)
        p0, p1, p2, p3 = pools[i, 0], pools[i, 1], pools[i, 2], pools[i, 3]
        for y in range(n_years):
            p0, p1, p2, p3 = _map_year(t, p0, p1, p2, p3)
            if yearly:
                out_years[y, i, 0] = p0
                out_years[y, i, 1] = p1
                out_years[y, i, 2] = p2
                out_years[y, i, 3] = p3
                out_years[y, i, 4] = pools[i, 4]
        pools[i, 0] = p0
        pools[i, 1] = p1
        pools[i, 2] = p2
        pools[i, 3] = p3


@njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def years_affine_pair(pools, unit, a, b, n_years):
    """:func:`years_affine` of two pool sets on the same maps (no yearly output), in place.

    The two chains of a pixel are independent: interleaved in one loop, each one's latency is
    hidden by the other's (the numbers of two :func:`years_affine` calls).
    """
    for i in range(pools.shape[0]):
        t = _map_of(a, b, i)
        p0, p1, p2, p3 = pools[i, 0], pools[i, 1], pools[i, 2], pools[i, 3]
        u0, u1, u2, u3 = unit[i, 0], unit[i, 1], unit[i, 2], unit[i, 3]
        for _ in range(n_years):
            p0, p1, p2, p3 = _map_year(t, p0, p1, p2, p3)
            u0, u1, u2, u3 = _map_year(t, u0, u1, u2, u3)
        pools[i, 0], pools[i, 1], pools[i, 2], pools[i, 3] = p0, p1, p2, p3
        unit[i, 0], unit[i, 1], unit[i, 2], unit[i, 3] = u0, u1, u2, u3


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
