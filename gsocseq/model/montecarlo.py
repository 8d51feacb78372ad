"""Seeded Monte Carlo uncertainty beside FAO's brackets: per-pixel draws and their statistics.

Owns the draws of the uncertain inputs (:func:`draw_factors`, counter-based: keyed by seed, global
pixel row/column and draw, never by task or tile) and the per-pixel statistics (mean, standard
deviation, 5 and 95 % percentiles) of T0, final SOC and ASR of each scenario
(:func:`montecarlo_layers`, layer names ``vocabulary.MONTECARLO_LAYERS``).

Distributions (a design choice: FAO's manual asks for normal draws, ≥ 100 runs, but fixes no
spread; reference §4.2 "Manual's Monte Carlo option"): each draw multiplies the pixel's inputs by
``1 + σ·z``, ``z`` standard normal (clipped to ±4), one factor per input and draw for all months
(a systematic input error, like the brackets), with ``σ`` = the bracket half-width / 1.96 (so 95 %
of the draws fall inside FAO's Table 12.1 range, :mod:`~gsocseq.model.uncertainty`):
SOC ±20 % (or ±U % of the SOC map's own uncertainty layer where given), clay ±10 % (capped at
100 % as in the brackets), monthly temperature (°C) ±2 %, monthly precipitation ±5 %; NPP follows
from the drawn temperature and precipitation through MIAMI (as FAO's NPP_MIN/MAX rasters do); PET,
cover, land use and the SSM increases are not drawn. The four inputs are independent.

Uniforms come from a splitmix64 hash of (seed, row, column, draw, input) and normals from
Box–Muller, so a pixel's draws are the same bytes whatever tile, block or worker computes it. Each
draw is one self-consistent ``exact`` run (:func:`gsocseq.model.exact._run_bracket`) on the scaled
inputs; the SSM scenarios of a draw come from its BAU run by the model's linearity in the input
(:func:`~gsocseq.model.exact.forward_response`), and the climate reductions (climatologies, annual
means) are computed once per pixel and scaled per draw (exact for multiplicative factors). A
pixel's statistics are NaN where any of its draws is not finite (e.g. a draw's spin-up fails).
Standard deviation over the N draws with ``ddof=0``; percentiles by linear interpolation
(``numpy.percentile``). Stocks t C/ha, rates t C/ha/yr.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gsocseq.errors import InputValidationError
from gsocseq.model import _rothc_kernels as _k
from gsocseq.model import exact, landuse, rothc
from gsocseq.model.inputs import PhaseConfig, Pixels
from gsocseq.model.npp import miami_npp_carbon
from gsocseq.model.uncertainty import (
    CLAY_FACTORS,
    PRECIPITATION_FACTORS,
    SOC_FACTORS,
    TEMPERATURE_FACTORS,
)
from gsocseq.vocabulary import (
    MONTECARLO_BASES,
    MONTECARLO_STATISTICS,
    PLAUSIBLE_RANGES,
    SCENARIO_TABLE,
    SCENARIOS,
    montecarlo_layer,
)

__all__ = ["DRAWN_INPUTS", "HALF_WIDTHS", "draw_factors", "montecarlo_layers", "run_draws",
           "statistics"]

#: Inputs drawn, in the order of their hash stream (the ``input`` key of the counter).
DRAWN_INPUTS: tuple[str, ...] = ("soc", "clay", "tmp", "prec")
#: Half-widths of FAO's ranges (fractions), from the bracket factors of :mod:`uncertainty`.
HALF_WIDTHS: dict[str, float] = {
    "soc": round(SOC_FACTORS[1] - 1.0, 9),
    "clay": round(CLAY_FACTORS[1] - 1.0, 9),
    "tmp": round(TEMPERATURE_FACTORS[0] - 1.0, 9),
    "prec": round(PRECIPITATION_FACTORS[1] - 1.0, 9),
}
Z_95: float = 1.959963984540054
"""Standard normal 97.5 % quantile: σ = half-width / Z_95."""
Z_CLIP: float = 4.0
"""Draws are clipped to ±Z_CLIP σ (keeps every factor positive for FAO's ranges)."""
PERCENTILES: tuple[float, float] = (5.0, 95.0)
COLUMNS_PER_BLOCK: int = 4096
"""Pixel-draw columns run together (bounds the replicated climate to ~50 MB)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True)
def _mix(x):
    """splitmix64 finaliser (a bijection of uint64 with full avalanche)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True)
def _uniform(seed, row, col, draw, stream):
    """Uniform in (0, 1) keyed by the counter (seed, row, col, draw, stream)."""
    h = _mix(np.uint64(seed) + _GOLDEN)
    h = _mix(h ^ (np.uint64(row) + _GOLDEN))
    h = _mix(h ^ (np.uint64(col) + _GOLDEN))
    h = _mix(h ^ (np.uint64(draw) + _GOLDEN))
    h = _mix(h ^ (np.uint64(stream) + _GOLDEN))
    return (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _normals(seed, rows, cols, n_draws, n_inputs, z_clip, out):
    """Fill ``out`` (n_inputs, n_draws, n) with clipped standard normals (Box–Muller)."""
    for i in range(rows.shape[0]):
        for d in range(n_draws):
            for k in range(n_inputs):
                u1 = _uniform(seed, rows[i], cols[i], d, 2 * k)
                u2 = _uniform(seed, rows[i], cols[i], d, 2 * k + 1)
                z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
                out[k, d, i] = min(max(z, -z_clip), z_clip)


def draw_factors(
    seed: int, rows: np.ndarray, cols: np.ndarray, n_draws: int,
    soc_uncertainty: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return the multiplicative input factors ``(n_draws, n)`` per input of :data:`DRAWN_INPUTS`.

    ``rows``, ``cols`` ``(n,)`` are the pixels' global 30″ cell indices (the key of the draws with
    ``seed`` ≥ 0); ``soc_uncertainty`` ``(n,)`` the SOC map's own uncertainty (%, half-width of
    its range) replacing ±20 % where finite.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise InputValidationError(f"rows {rows.shape} and cols {cols.shape} must be equal (n,)")
    if int(seed) < 0 or int(n_draws) < 1:
        raise InputValidationError(f"seed ({seed}) must be >= 0 and draws ({n_draws}) >= 1")
    z = np.empty((len(DRAWN_INPUTS), int(n_draws), rows.shape[0]))
    _normals(np.uint64(seed), rows, cols, int(n_draws), len(DRAWN_INPUTS), Z_CLIP, z)
    out = {}
    for k, name in enumerate(DRAWN_INPUTS):
        half = np.full(rows.shape[0], HALF_WIDTHS[name])
        if name == "soc" and soc_uncertainty is not None:
            unc = np.asarray(soc_uncertainty, dtype=np.float64)
            half = np.where(np.isfinite(unc), unc / 100.0, half)
        out[name] = np.maximum(1.0 + (half / Z_95) * z[k], 0.0)
    return out


def run_draws(
    px: Pixels, factors: dict[str, np.ndarray], config: PhaseConfig
) -> dict[str, np.ndarray]:
    """Run every draw of every pixel of ``px`` (valid pixels); return ``(n, n_draws)`` per quantity.

    Keys ``t0`` and each scenario key (its final stock), t C/ha; NaN where a draw's spin-up fails.
    """
    n_draws = factors["soc"].shape[0]
    n = px.n
    climate = exact._Climate.build(px, config)  # reductions once per pixel, scaled per draw
    scen = np.vstack([np.ones((1, n)), config.ssm_factors(px.land_use)])  # (4, n): bau low med high
    out = {k: np.full((n, n_draws), np.nan) for k in ("t0", *SCENARIOS)}
    per_block = max(1, COLUMNS_PER_BLOCK // n_draws)
    for start in range(0, n, per_block):
        pix = np.arange(start, min(n, start + per_block))
        col = np.repeat(pix, n_draws)  # column j: pixel pix[j // N], draw j % N
        d = np.tile(np.arange(n_draws), pix.size)
        t0, finals = _run_columns(px, climate, col, *(factors[k][d, col] for k in DRAWN_INPUTS),
                                  scen[:, col], config)
        shape = (pix.size, n_draws)
        out["t0"][pix] = t0.reshape(shape)
        for k, final in zip(SCENARIOS, finals, strict=True):
            out[k][pix] = final.reshape(shape)
    return out


def _run_columns(
    px: Pixels, c: exact._Climate, col: np.ndarray, fs: np.ndarray, fc: np.ndarray,
    ft: np.ndarray, fp: np.ndarray, scen: np.ndarray, config: PhaseConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """One ``exact`` run per column (pixel ``col[j]``, inputs scaled by the column's factors).

    The steps of :func:`gsocseq.model.exact._run_bracket` with per-column factors; the warm-up
    reads each pixel's months once for all its draws (:func:`_warm_columns`). Returns T0 ``(m,)``
    and the final stocks ``(4, m)`` per input factor of ``scen`` (t C/ha), NaN where the spin-up
    fails.
    """
    m = col.size
    t0, finals = np.full(m, np.nan), np.full((scen.shape[0], m), np.nan)
    soc = px.soc[col] * fs
    soil = {"dpm_rpm": landuse.dpm_rpm_ratio(px.land_use[col]), "depth": np.full(m, config.depth_cm),
            "rate_modifier": landuse.rate_factor(px.land_use[col]),
            "clay": np.minimum(px.clay[col] * fc, PLAUSIBLE_RANGES["clay"][1])}
    iom = rothc.falloon_iom(soc)
    ef = config.evap_factor

    def site(arrays: tuple[np.ndarray, ...], k: np.ndarray, sl: dict[str, np.ndarray]) -> rothc.Site:
        t, p, e = arrays
        return rothc.site(tmp=t[:, col[k]] * ft[k], prec=p[:, col[k]] * fp[k], pet=e[:, col[k]],
                          cover=c.cover[:, col[k]], evap_factor=ef, validate=False, **sl)

    parts = rothc.equilibrium_parts(site(c.spin, np.arange(m), soil), validate=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        cin_eq = (soc - iom) / parts.p_unit.sum(axis=1)
    ok = np.flatnonzero(np.isfinite(cin_eq) & (cin_eq > 0))
    if ok.size == 0:
        return t0, finals
    soil = {k: v[ok] for k, v in soil.items()}
    pools = np.empty((ok.size, 5))
    pools[:, :4] = cin_eq[ok, None] * parts.p_unit[ok]
    pools[:, 4] = iom[ok]
    npp = miami_npp_carbon(c.t_year[:, col[ok]] * ft[ok], c.p_year[:, col[ok]] * fp[ok])
    ns = config.spinup_years
    with np.errstate(divide="ignore", invalid="ignore"):
        cin_years = np.ascontiguousarray(cin_eq[ok] * (npp[ns:] / npp[:ns].mean(axis=0)))
    smd = np.array(parts.smd[ok], dtype=np.float64)
    w_t, w_p, w_e = c.warm
    _warm_columns(pools, smd, w_t, w_p, w_e, c.cover, cin_years, soil["dpm_rpm"], soil["clay"],
                  soil["depth"], float(ef), soil["rate_modifier"], col[ok], ft[ok], fp[ok])
    t0[ok] = pools.sum(axis=1)
    bau, response = exact.forward_response(pools, smd, cin_years.mean(axis=0),
                                           site(c.forward, ok, soil), config.forward_years)
    finals[:, ok] = bau + (scen[:, ok] - 1.0) * response
    return t0, finals


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def _warm_columns(pools, smd, tmp, prec, pet, cover, cin_years, dpm_rpm, clay, depth, evap_factor,
                  rmod, pix, t_scale, p_scale):
    """Warm-up of columns in place: :func:`~gsocseq.model._rothc_kernels.run_years` per column.

    Column ``j`` reads the months of pixel ``pix[j]`` of ``tmp``/``prec``/``pet``/``cover`` with
    temperature × ``t_scale[j]`` and precipitation × ``p_scale[j]`` (no replicated copies of the
    months); its soil, input and state are its own. The month step is ``run_years``'s own
    (``_rothc_kernels._month_rate``, ``_exp_far``, ``_decay``, input split, block start and
    write-back).
    """
    n = pools.shape[0]
    for i0 in range(0, n, _k.BLOCK):
        nb = min(_k.BLOCK, n - i0)
        _, f_bio, f_hum, s_max, s_1bar, s_bare, dpm, rpm, bio, hum, sm = _k._block_start(
            i0, nb, clay, depth, pools, smd)
        fd, fr = _k._input_split(i0, nb, dpm_rpm)
        scratch = np.empty((6, nb))
        cm, rate, ehum, tt, df, cv = (scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
                                      scratch[5])
        for y in range(cin_years.shape[0]):
            for j in range(nb):
                cm[j] = cin_years[y, i0 + j] / 12.0
            for mm in range(12):
                m = 12 * y + mm
                far = 0
                for j in range(nb):  # gather the pixels' month, scaled per column (apart:
                    i, q = i0 + j, pix[i0 + j]  # the step's loop below then vectorises)
                    tt[j] = tmp[m, q] * t_scale[i]
                    df[j] = prec[m, q] * p_scale[i] - evap_factor * pet[m, q]
                    cv[j] = cover[mm, q]
                for j in range(nb):
                    sm[j], rate[j], ehum[j], f = _k._month_rate(
                        tt[j], df[j], cv[j], rmod[i0 + j], sm[j], s_max[j], s_1bar[j], s_bare[j])
                    far += f
                if far:
                    _k._exp_far(rate, ehum)
                for j in range(nb):
                    dpm1, rpm1, bio1, hum1, tot = _k._decay(ehum[j], dpm[j], rpm[j], bio[j],
                                                            hum[j])
                    dpm[j] = dpm1 + fd[j] * cm[j]
                    rpm[j] = rpm1 + fr[j] * cm[j]
                    bio[j] = bio1 + tot * f_bio[j]
                    hum[j] = hum1 + tot * f_hum[j]
        _k._block_end(i0, dpm, rpm, bio, hum, sm, pools, smd)


def statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """Return mean, sd (ddof 0), p05 and p95 over the last axis; NaN where any draw is NaN."""
    v = np.asarray(values, dtype=np.float64)
    bad = ~np.all(np.isfinite(v), axis=-1)
    with np.errstate(invalid="ignore"):
        p05, p95 = np.percentile(v, PERCENTILES, axis=-1)
        out = {"MCmean": v.mean(axis=-1), "MCsd": v.std(axis=-1), "MCp05": p05, "MCp95": p95}
    out = {k: np.where(bad, np.nan, a) for k, a in out.items()}
    assert tuple(out) == MONTECARLO_STATISTICS
    return out


def montecarlo_layers(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    land_use: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    draws: int,
    seed: int,
    config: PhaseConfig = PhaseConfig(),
    soc_uncertainty: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return the Monte Carlo layers (``vocabulary.MONTECARLO_LAYERS`` → float32 ``(n,)``).

    Inputs as for :func:`~gsocseq.model.phases.run_phases` (pixels the caller has found valid, the
    ``exact`` scheme), plus each pixel's global cell ``rows``/``cols``, the number of ``draws``, the
    ``seed`` and optionally the SOC map's uncertainty (%). T0 and final stocks t C/ha, ASR
    t C/ha/yr.
    """
    if config.scheme != "exact":
        raise InputValidationError(
            f"Monte Carlo uncertainty runs the exact scheme; config.scheme is {config.scheme!r}")
    config.check()
    px = Pixels.checked(config, soc=soc, clay=clay, land_use=land_use, tmp=tmp, prec=prec,
                        pet=pet, cover=cover)
    px = px.block(np.arange(px.n))
    if np.shape(rows) != (px.n,) or np.shape(cols) != (px.n,):
        raise InputValidationError(f"rows and cols must have shape ({px.n},) like soc")
    factors = draw_factors(seed, rows, cols, draws, soc_uncertainty)
    runs = run_draws(px, factors, config)
    years = float(config.forward_years)
    per_base = {"T0": runs["t0"]}
    for k in SCENARIOS:
        label = SCENARIO_TABLE[k].product
        per_base[f"finalSOC_{label}"] = runs[k]
        per_base[f"ASR_{label}"] = (runs[k] - runs["t0"]) / years
    out = {}
    for base in MONTECARLO_BASES:
        for stat, arr in statistics(per_base[base]).items():
            out[montecarlo_layer(base, stat)] = arr.astype(np.float32)
    return out
