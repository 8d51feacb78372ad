"""Numba kernel of the Monte Carlo draws: every draw of a pixel run together, draws inner.

Private module: :mod:`gsocseq.model.montecarlo` prepares the arrays and calls :func:`run_draws`.
Each draw is one ``exact`` bracket run (:func:`gsocseq.model.exact._run_bracket`) on its scaled
inputs, step for step: spin-up (periodic deficit, annual affine map, steady state), warm-up month
by month, forward year 1 stepped and years 2… as one repeated affine year map (stepped where the
deficit cycle is not periodic). The month step is :mod:`._rothc_kernels`' own (``_month_rate``,
``_exp_far``, ``_decay``, ``map_month``, ``soil_constants``, ``steady_smd_pixel``,
``solve_steady``).

Layout: the loop over a pixel's draws is the inner one, so the pixel's climate is read once per
month for all its draws and the loops over draws vectorise; one scratch allocation per call, no
per-draw storage beyond the state (no monthly or annual arrays).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gsocseq.model import _rothc_kernels as _k
from gsocseq.model.npp import CARBON_FRACTION, G_PER_M2_TO_T_PER_HA, miami_npp_point

_FLAGS = {"nogil": True, "cache": True, "error_model": "numpy", "fastmath": {"contract"}}
_NPP_C: float = G_PER_M2_TO_T_PER_HA * CARBON_FRACTION
"""MIAMI dry matter g/m² → t C/ha (:mod:`gsocseq.model.npp`)."""

#: Draws run together (a pixel's draws in blocks of at most this many, the width of every
#: per-draw scratch row).
DRAWS_BLOCK = 128

#: Rows of the per-draw state of :func:`_annual_unit` (``_k``'s map state without b_fixed).
_A2, _A3, _A00, _A11, _BU = _k.A2, _k.A3, _k.A00, _k.A11, _k.BU
_N_STATE = _k.BF


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _exp_rough(x):
    """Return exp(x) for |x| <= 8 to 5e-5 relative: exp(x/16)^16, degree-6 Taylor (branch-free)."""
    y = x * (1.0 / 16.0)
    e = 1.0 + y * (1.0 + y * (1.0 / 2.0 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (
        1.0 / 120.0 + y * (1.0 / 720.0))))))
    e = e * e
    e = e * e
    e = e * e
    return e * e


#: g DM/m²/yr by which the rough MIAMI limits must differ to tell the smaller (each is within
#: 0.15 of its value: 3000 · 5e-5, the precipitation one's exp being at most 1).
_NPP_MARGIN = 1.0


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _npp_limit(tmp_mean, prec_total):
    """Return 1.0 if MIAMI's temperature limit is the smaller, 2.0 the precipitation one, else 0.

    From rough exponentials (:func:`_exp_rough`) with a margin far above their error, so the
    answer is that of the exact limits; 0.0 (compute both) near a tie, out of the rough range
    or for NaN. Branch-free: the loop over draws vectorises and saves one libm exp a draw-year.
    """
    xa = 1.315 - 0.119 * tmp_mean
    xb = -0.000664 * prec_total
    ok = (xa >= -8.0) & (xa <= 8.0) & (xb >= -8.0) & (xb <= 0.0)
    nt = 3000.0 / (1.0 + _exp_rough(xa))
    npr = 3000.0 * (1.0 - _exp_rough(xb))
    w = 1.0 if nt + _NPP_MARGIN < npr else (2.0 if npr + _NPP_MARGIN < nt else 0.0)
    return w if ok else 0.0


@njit(**_FLAGS)
def _npp_limits(nd, ty, py, f_t, f_p, which):
    """Fill ``which`` (nd,) with each draw's :func:`_npp_limit` of the year (one vectorised loop)."""
    for d in range(nd):
        which[d] = _npp_limit(ty * f_t[d], py * f_p[d])


@njit(inline="always")
def _npp_min(which, tmp_mean, prec_total):
    """Return :func:`miami_npp_point`, computing only the limit ``which`` (:func:`_npp_limit`).

    The same expressions as :func:`miami_npp_point`: the same value, one exp fewer where
    ``which`` is known.
    """
    if which == 1.0:
        return 3000.0 / (1.0 + math.exp(1.315 - 0.119 * tmp_mean))
    if which == 2.0:
        return 3000.0 * (1.0 - math.exp(-0.000664 * prec_total))
    return miami_npp_point(tmp_mean, prec_total)


@njit(inline="always", error_model="numpy", fastmath={"contract"})
def _rates(nd, tmp, prec, pet, cover, ef, rmod, s_max, b_slope, s_bare, smd, rate, ehum):
    """One month of every draw: update ``smd`` and fill ``rate``, ``ehum`` (HUM's decay factor).

    ``tmp``, ``prec`` (nd,) are the draws' scaled month, ``pet``, ``cover`` the pixel's scalars.
    Inlined into its callers (a call a month cost the warm-up ~30 %, measured).
    """
    far = 0
    for d in range(nd):
        smd[d], rate[d], ehum[d], f = _k._month_rate(
            tmp[d], prec[d] - ef * pet, cover, rmod, smd[d], s_max[d], b_slope[d], s_bare[d])
        far += f
    if far:  # rare: outside the polynomial's range
        _k._exp_far(rate[:nd], ehum[:nd])


@njit(**_FLAGS)
def _affine_row(nd, out, b, c0, c1, c2, c3, p0, p1, p2, p3):
    """``out = b + c0·p0 + c1·p1 + c2·p2 + c3·p3`` per draw (a row of ``_k.years_affine``)."""
    for d in range(nd):
        out[d] = b[d] + c0[d] * p0[d] + c1[d] * p1[d] + c2[d] * p2[d] + c3[d] * p3[d]


@njit(**_FLAGS)
def _affine_years(nd, n_years, p0, p1, p2, p3, a00, a11, a20, a21, a22, a23, a30, a31, a32, a33,
                  b0, b1, b2, b3, t2, t3):
    """Iterate every draw's ``p <- a p + b`` ``n_years`` times in place (as ``_k.years_affine``).

    Row by row in short loops over the draws (they vectorise); ``t2``, ``t3`` scratch.
    """
    for _ in range(n_years):
        _affine_row(nd, t2, b2, a20, a21, a22, a23, p0, p1, p2, p3)
        _affine_row(nd, t3, b3, a30, a31, a32, a33, p0, p1, p2, p3)
        for d in range(nd):
            p0[d] = b0[d] + a00[d] * p0[d]
        for d in range(nd):
            p1[d] = b1[d] + a11[d] * p1[d]
        for d in range(nd):
            p2[d] = t2[d]
            p3[d] = t3[d]


@njit(**_FLAGS)
def _annual_unit(nd, tmp12, prec12, pet12, cover12, ef, rmod, smd0, periodic, s_max, b_slope,
                 s_bare, f_bio, f_hum, fd, fr, smd, rate, ehum, st, df12, smd_start, e):
    """Build each draw's annual affine map of the repeated year (12 months), as ``_k.annual``.

    ``tmp12``, ``prec12`` (12, nd) the draws' scaled months, ``pet12``, ``cover12`` (12,) the
    pixel's; ``smd0`` (nd,) the start deficit, moved to the periodic one (``smd_start``).
    Leaves in ``st`` (``_N_STATE``, nd) A's rows 2–3, A00, A11 and b_unit (plant input 1/12 each
    month) and in ``smd`` the end deficit (mm). ``fd``, ``fr`` (nd,) the input split; ``e`` (5, nd)
    scratch: the month's decay factors and the input share (:func:`_k.map_month`).
    """
    for d in range(nd):
        s = smd0[d]
        if periodic:
            for m in range(12):
                df12[m] = prec12[m, d] - ef * pet12[m]
            s = _k.steady_smd_pixel(s, df12, cover12, s_max[d], s_bare[d])
        smd_start[d] = s
        smd[d] = s
    for r in range(_N_STATE):
        one = 1.0 if r in (_A2 + 2, _A3 + 3, _A00, _A11) else 0.0
        for d in range(nd):
            st[r, d] = one
    e1, e2, e3, e4, p = e[0], e[1], e[2], e[3], e[4]
    for d in range(nd):
        p[d] = 1.0 / 12.0
    # _k.map_month's calls on the state's rows, bound once for the year
    a00, a11, u0, u1, u2, u3 = st[_A00], st[_A11], st[_BU], st[_BU + 1], st[_BU + 2], st[_BU + 3]
    a20, a21, a22, a23 = st[_A2], st[_A2 + 1], st[_A2 + 2], st[_A2 + 3]
    a30, a31, a32, a33 = st[_A3], st[_A3 + 1], st[_A3 + 2], st[_A3 + 3]
    for m in range(12):
        _rates(nd, tmp12[m], prec12[m], pet12[m], cover12[m], ef, rmod, s_max, b_slope, s_bare,
               smd, rate, ehum)
        _k._map_powers(nd, ehum, e1, e2, e3, e4)
        _k._map_column(nd, e1, e2, e3, e4, f_bio, f_hum, 0, a00, a00, a20, a30)
        _k._map_column(nd, e1, e2, e3, e4, f_bio, f_hum, 1, a11, a11, a21, a31)
        _k._map_column(nd, e1, e2, e3, e4, f_bio, f_hum, 2, a22, a22, a22, a32)
        _k._map_column(nd, e1, e2, e3, e4, f_bio, f_hum, 2, a23, a23, a23, a33)
        _k._map_input(nd, e1, e2, e3, e4, f_bio, f_hum, u0, u1, u2, u3, fd, fr, p)


@njit(**_FLAGS)
def _matrix(st, d, a):
    """Fill ``a`` (4, 4) with draw ``d``'s annual map from ``st`` (rows 0–1 diagonal)."""
    for c in range(4):
        a[0, c] = 0.0
        a[1, c] = 0.0
        a[2, c] = st[_A2 + c, d]
        a[3, c] = st[_A3 + c, d]
    a[0, 0] = st[_A00, d]
    a[1, 1] = st[_A11, d]


@njit(**_FLAGS)
def _step_months(nd, n_years, tmp12, prec12, pet12, cover12, ef, rmod, s_max, b_slope, s_bare,
                 f_bio, f_hum, fd, fr, cm, smd, rate, ehum, bau, unit):
    """Step ``n_years`` of the repeated year for the pools ``bau`` and ``unit`` (4, nd), in place.

    Both take the draw's monthly plant input ``cm`` (t C/ha) and share the deficit
    ``smd`` and the rates (as two ``_k.run`` calls from the same deficit would).
    """
    b0, b1, b2, b3, u0, u1, u2, u3 = bau[0], bau[1], bau[2], bau[3], unit[0], unit[1], unit[2], \
        unit[3]
    for _ in range(n_years):
        for m in range(12):
            _rates(nd, tmp12[m], prec12[m], pet12[m], cover12[m], ef, rmod, s_max, b_slope,
                   s_bare, smd, rate, ehum)
            _k.decay_add(nd, ehum, b0, b1, b2, b3, f_bio, f_hum, fd, fr, cm)
            _k.decay_add(nd, ehum, u0, u1, u2, u3, f_bio, f_hum, fd, fr, cm)


#: Rows of the compacted draws of :func:`_step_drifting`.
_N_GATHER = 12 + 12 + 7 + 2 + 8


@njit(**_FLAGS)
def _step_drifting(nd, n_years, smd_end, smd_start, start, tmp12, prec12, pet12, cover12, ef,
                   rmod, s_max, b_slope, s_bare, f_bio, f_hum, fd, fr, cm, smd0, bau, unit, g):
    """Step all ``n_years`` for the draws whose ``smd_end`` differs from ``smd_start``.

    Those draws are gathered into the rows of ``g`` (their months, soil, input, deficit ``smd0``
    and start pools ``start`` (8, nd): BAU then empty), stepped together (:func:`_step_months`)
    and scattered back into ``bau`` and ``unit``.
    """
    k = 0
    for d in range(nd):
        if not (smd_end[d] == smd_start[d]):
            for m in range(12):
                g[m, k] = tmp12[m, d]
                g[12 + m, k] = prec12[m, d]
            for r, v in enumerate((s_max[d], b_slope[d], s_bare[d], f_bio[d], f_hum[d], cm[d],
                                   smd0[d])):
                g[24 + r, k] = v
            for r in range(8):
                g[33 + r, k] = start[r, d]
            k += 1
    _step_months(k, n_years, g[0:12, :k], g[12:24, :k], pet12, cover12, ef, rmod, g[24, :k],
                 g[25, :k], g[26, :k], g[27, :k], g[28, :k], fd, fr, g[29, :k], g[30, :k],
                 g[31, :k], g[32, :k], g[33:37, :k], g[37:41, :k])
    k = 0
    for d in range(nd):
        if not (smd_end[d] == smd_start[d]):
            for r in range(4):
                bau[r, d] = g[33 + r, k]
                unit[r, d] = g[37 + r, k]
            k += 1


@njit(**_FLAGS)
def _warm_up(nd, months, cover12, ef, rm, f_t, f_p, s_max, b_slope, s_bare, f_bio, f_hum, fd, fr,
             cin_eq, npp_warm, npp_spin, cin_sum, cm, smd, rate, ehum, tt, pp, dpm, rpm, bio, hum):
    """Warm-up of every draw month by month: pools (``dpm`` … ``hum``) and ``smd`` in place.

    ``months`` (12·n_warm, 3) the pixel's tmp, prec, pet; ``cover12`` (12,) its cover; the
    year's input ``cin_eq`` · ``npp_warm[y]`` / ``npp_spin`` (``cin_sum`` their sum, ``cm`` the
    month's). One call for all months: the rows are views taken once (no views made a month),
    the month's three short loops over the draws (scale, rates, decay) vectorise.
    """
    for y in range(months.shape[0] // 12):
        for d in range(nd):
            cy = cin_eq[d] * (npp_warm[y, d] / npp_spin[d])
            cin_sum[d] = cy if y == 0 else cin_sum[d] + cy
            cm[d] = cy / 12.0
        for mm in range(12):
            m = 12 * y + mm
            t, p, e, c = months[m, 0], months[m, 1], months[m, 2], cover12[mm]
            for d in range(nd):
                tt[d] = t * f_t[d]
                pp[d] = p * f_p[d]
            _rates(nd, tt, pp, e, c, ef, rm, s_max, b_slope, s_bare, smd, rate, ehum)
            for d in range(nd):  # _k.decay_add, inline
                dpm1, rpm1, bio1, hum1, tot = _k._decay(ehum[d], dpm[d], rpm[d], bio[d], hum[d])
                dpm[d] = dpm1 + fd[d] * cm[d]
                rpm[d] = rpm1 + fr[d] * cm[d]
                bio[d] = bio1 + tot * f_bio[d]
                hum[d] = hum1 + tot * f_hum[d]


@njit(**_FLAGS)
def run_draws(soc, clay, clay_max, dpm_rpm, rmod, depth, ef, spin, forward, cover, w_tmp, w_prec,
              w_pet, t_year, p_year, n_spin_years, forward_years, fs, fc, ft, fp, t0, bau_out,
              unit_out):
    """Run every draw of every pixel; fill T0, the forward BAU total and its input response.

    Per pixel ``i`` (n,): ``soc`` t C/ha, ``clay`` %, ``dpm_rpm``, ``rmod`` (rate factor);
    ``depth`` cm, ``ef`` evaporation factor (scalars); ``spin``, ``forward`` (3, 12, n) monthly
    means of tmp °C, prec and pet mm; ``cover`` (12, n); ``w_*`` the warm-up months
    (12·n_warm_years, n); ``t_year``, ``p_year`` (n_years, n) annual mean °C and total mm. Draw
    factors ``fs``, ``fc``, ``ft``, ``fp`` (n, nd). Writes ``t0``, ``bau_out`` (total SOC after
    ``forward_years`` at the BAU input) and ``unit_out`` (the total reached from empty pools with
    that input), all (n, nd) t C/ha, NaN where a draw's spin-up fails.
    """
    n, n_draws = fs.shape
    n_warm = w_tmp.shape[0] // 12
    sc = np.empty((24, DRAWS_BLOCK))
    f_s, f_c, f_t, f_p, fd, fr = sc[18], sc[19], sc[20], sc[21], sc[22], sc[23]
    soc_d, iom, clay_d, f_bio, f_hum, s_max = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]
    b_slope, s_bare, smd, rate, ehum, cin_eq = sc[6], sc[7], sc[8], sc[9], sc[10], sc[11]
    cm, npp_spin, cin_sum, smd_start, smd_w, spin_ok = sc[12], sc[13], sc[14], sc[15], sc[16], sc[17]
    bau = np.empty((4, DRAWS_BLOCK))
    rhs = np.empty((4, DRAWS_BLOCK))
    epow = np.empty((5, DRAWS_BLOCK))
    gathered = np.empty((_N_GATHER, DRAWS_BLOCK))
    unit = np.empty((4, DRAWS_BLOCK))
    sa = np.empty((_N_STATE, DRAWS_BLOCK))
    tmp12 = np.empty((12, DRAWS_BLOCK))
    prec12 = np.empty((12, DRAWS_BLOCK))
    npp_warm = np.empty((n_warm, DRAWS_BLOCK))
    start = np.empty((8, DRAWS_BLOCK))
    df12 = np.empty(12)
    a = np.empty((4, 4))
    x_unit = np.empty(4)
    x_zero = np.empty(4)
    zero4 = np.zeros(4)
    tt = np.empty(DRAWS_BLOCK)
    which = np.empty(DRAWS_BLOCK)
    pp = np.empty(DRAWS_BLOCK)
    months = np.empty((12 * n_warm, 3))
    for i in range(n):
        for m in range(12 * n_warm):  # the pixel's months, gathered once (strided reads)
            months[m, 0] = w_tmp[m, i]
            months[m, 1] = w_prec[m, i]
            months[m, 2] = w_pet[m, i]
        dr = dpm_rpm[i]
        for d in range(DRAWS_BLOCK):  # the pixel's input split, one lane per draw
            fd[d] = dr / (1.0 + dr)
            fr[d] = 1.0 / (1.0 + dr)
        rm = rmod[i]
        for d0 in range(0, n_draws, DRAWS_BLOCK):  # blocks of a fixed width: see DRAWS_BLOCK
            nd = min(DRAWS_BLOCK, n_draws - d0)
            for d in range(nd):
                f_s[d], f_c[d] = fs[i, d0 + d], fc[i, d0 + d]
                f_t[d], f_p[d] = ft[i, d0 + d], fp[i, d0 + d]
            # spin-up: steady state of the 1981-2000 climatology per unit annual input
            for d in range(nd):
                soc_d[d] = soc[i] * f_s[d]
                iom[d] = 0.049 * soc_d[d] ** 1.139
                clay_d[d] = min(clay[i] * f_c[d], clay_max)
                _, f_bio[d], f_hum[d], s_max[d], b_slope[d], s_bare[d] = _k.soil_constants(
                    clay_d[d], depth)
                smd[d] = 0.0
                for m in range(12):
                    tmp12[m, d] = spin[0, m, i] * f_t[d]
                    prec12[m, d] = spin[1, m, i] * f_p[d]
            _annual_unit(nd, tmp12, prec12, spin[2, :, i], cover[:, i], ef, rm, smd, True, s_max,
                         b_slope, s_bare, f_bio, f_hum, fd, fr, smd, rate, ehum, sa, df12, smd_start,
                         epow)
            for d in range(nd):
                _matrix(sa, d, a)
                for r in range(4):
                    x_unit[r] = sa[_BU + r, d]
                _k.solve_steady(a, x_unit, zero4, x_unit, x_zero)
                cin_eq[d] = (soc_d[d] - iom[d]) / (((x_unit[0] + x_unit[1]) + x_unit[2]) + x_unit[3])
                spin_ok[d] = 1.0 if (math.isfinite(cin_eq[d]) and cin_eq[d] > 0.0) else 0.0
                for r in range(4):
                    bau[r, d] = cin_eq[d] * x_unit[r]
            # warm-up inputs: Cin_eq · NPP_y / mean(NPP of the spin-up years), MIAMI NPP
            for y in range(n_spin_years + n_warm):
                ty, py = t_year[y, i], p_year[y, i]
                _npp_limits(nd, ty, py, f_t, f_p, which)
                for d in range(nd):  # one libm exp a draw where the smaller limit is known
                    which[d] = _npp_min(which[d], ty * f_t[d], py * f_p[d])
                for d in range(nd):  # a loop of its own: the bytes of the fused loop before
                    v = which[d] * _NPP_C
                    if y < n_spin_years:
                        npp_spin[d] = v if y == 0 else npp_spin[d] + v
                    else:
                        npp_warm[y - n_spin_years, d] = v
            for d in range(nd):
                npp_spin[d] /= n_spin_years
            # warm-up: month by month, deficit carried from the spin-up's December
            _warm_up(nd, months, cover[:, i], ef, rm, f_t, f_p, s_max, b_slope, s_bare, f_bio,
                     f_hum, fd, fr, cin_eq, npp_warm, npp_spin, cin_sum, cm, smd, rate, ehum, tt,
                     pp, bau[0], bau[1], bau[2], bau[3])
            for d in range(nd):
                t0[i, d0 + d] = (((bau[0, d] + bau[1, d]) + bau[2, d]) + bau[3, d]) + iom[d]
                cin_sum[d] /= n_warm  # the BAU input: mean warm-up input
                cm[d] = cin_sum[d] / 12.0
                for r in range(4):
                    start[r, d] = bau[r, d]
                    start[4 + r, d] = 0.0
                    unit[r, d] = 0.0
                smd_w[d] = smd[d]
                for m in range(12):
                    tmp12[m, d] = forward[0, m, i] * f_t[d]
                    prec12[m, d] = forward[1, m, i] * f_p[d]
            # forward: year 1 stepped, years 2… one affine year map of the periodic deficit cycle
            fpet, fcov = forward[2, :, i], cover[:, i]
            _step_months(nd, 1, tmp12, prec12, fpet, fcov, ef, rm, s_max, b_slope, s_bare, f_bio,
                         f_hum, fd, fr, cm, smd, rate, ehum, bau, unit)
            drift = False
            if forward_years > 1:
                _annual_unit(nd, tmp12, prec12, fpet, fcov, ef, rm, smd, False, s_max, b_slope, s_bare,
                             f_bio, f_hum, fd, fr, smd, rate, ehum, sa, df12, smd_start, epow)
                for d in range(nd):
                    drift |= not (smd[d] == smd_start[d])
                    for r in range(4):
                        rhs[r, d] = cin_sum[d] * sa[_BU + r, d]
                for s in (bau, unit):
                    _affine_years(nd, forward_years - 1, s[0], s[1], s[2], s[3], sa[_A00], sa[_A11],
                                  sa[_A2], sa[_A2 + 1], sa[_A2 + 2], sa[_A2 + 3], sa[_A3],
                                  sa[_A3 + 1], sa[_A3 + 2], sa[_A3 + 3], rhs[0], rhs[1], rhs[2],
                                  rhs[3], epow[0], epow[1])
            if drift:  # rare: draws whose deficit cycle is not periodic from year 2 are stepped
                _step_drifting(nd, forward_years, smd, smd_start, start, tmp12, prec12, fpet, fcov, ef,
                               rm, s_max, b_slope, s_bare, f_bio, f_hum, fd, fr, cm, smd_w, bau, unit,
                               gathered)
            for d in range(nd):
                if spin_ok[d] == 0.0:
                    t0[i, d0 + d] = np.nan
                    bau_out[i, d0 + d] = np.nan
                    unit_out[i, d0 + d] = np.nan
                else:
                    bau_out[i, d0 + d] = (((bau[0, d] + bau[1, d]) + bau[2, d]) + bau[3, d]) + iom[d]
                    unit_out[i, d0 + d] = (((unit[0, d] + unit[1, d]) + unit[2, d]) + unit[3, d]) + 0.0
