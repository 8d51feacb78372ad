"""The ``exact`` scheme: the GSOCseq phases with RothC-26.3 monthly steps, each bracket self-consistent.

Owns the scheme's run of a block of valid pixels (spin-up, warm-up, forward per bracket) on the
kernels of :mod:`gsocseq.model.rothc`; the procedure (:mod:`gsocseq.model.phases`) calls :func:`run`.

Per bracket run (central, min, max; ``docs/gsocseq.md`` "The procedure", reference §1):

1. spin-up: 1981–2000 monthly climatology, IOM = Falloon(SOC), ``Cin_eq`` = the annual plant input
   whose periodic steady state has total SOC = observed SOC, pools and moisture deficit = that
   steady state (end of December);
2. warm-up: 2001–2020 month by month, deficit carried, ``Cin_y = Cin_eq · NPP_y / mean(NPP_1981–2000)``
   with MIAMI NPP (the land-use coefficient cancels in the ratio: the land use is fixed per pixel);
   T0 = total SOC at the end;
3. forward: the 2001–2020 monthly mean climate repeated for ``forward_years``; BAU input = mean
   warm-up input; SSM = BAU × factor. RothC is affine in (pools, input) for a fixed climate, so all
   scenarios come from two runs: ``final(f) = final(BAU) + (f − 1) · response(BAU input from 0)``;
   year 1 is stepped (it starts from the 2020 deficit), years 2… are one affine year map applied
   repeatedly (pixels whose deficit cycle is not yet periodic in year 2 are stepped instead).

Brackets (reference §4.2, :data:`~gsocseq.model.uncertainty.BRACKET_RUNS`) perturb T, P, clay
(capped at 100 %) and SOC through all phases; forward BAU and SSM medium with input factor
f_med ∓ 0.15. Unlike the FAO scripts, each bracket is self-consistent (its own IOM, its own climate
in the spin-up, its own mean NPP in the warm-up ratio); :mod:`gsocseq.model.fao_phases` reproduces
the FAO quirks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from gsocseq.model import landuse, rothc
from gsocseq.model.inputs import PhaseConfig, Pixels, columns, f8, real_dtype
from gsocseq.model.layers import SchemeOutput, Stocks
from gsocseq.model.npp import miami_npp_carbon
from gsocseq.model.uncertainty import BRACKET_RUNS, CENTRAL, Bracket
from gsocseq.vocabulary import PLAUSIBLE_RANGES, SCENARIOS, Reason

_BRACKET_DIAGNOSTICS = ("cin_eq", "iom", "cin_bau", "t0", "bau", "ssm_med")


def diagnostic_names(config: PhaseConfig) -> tuple[str, ...]:
    """Return the names of the float64 diagnostics of :func:`run`.

    ``cin_eq``, ``cin_bau`` (t C/ha/yr), ``iom``, ``t0`` (t C/ha); with uncertainty also
    ``{cin_eq,iom,cin_bau,t0,bau,ssm_med}_{min,max}`` of the bracket runs (stocks t C/ha).
    """
    names: tuple[str, ...] = ("cin_eq", "iom", "cin_bau", "t0")
    if config.uncertainty:
        names += tuple(f"{name}_{b}" for b in BRACKET_RUNS for name in _BRACKET_DIAGNOSTICS)
    return names


@dataclass
class _Climate:
    """Climate of a block of pixels, reduced once and shared by the bracket runs."""

    spin: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Spin-up monthly means (12, n): temperature °C, precipitation and PET mm/month."""
    forward: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Warm-up monthly means (12, n), the forward climate."""
    warm: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Warm-up months (12·warmup_years, n), or the whole inputs when ``warm_at`` is set."""
    t_year: np.ndarray
    """Annual mean temperature (°C) of every year, (spinup_years + warmup_years, n)."""
    p_year: np.ndarray
    """Annual precipitation (mm/yr) of every year."""
    cover: np.ndarray
    """(12, n) vegetated share."""
    warm_at: tuple[int, int] | None = None
    """(month, column) of the block's first warm-up month and first pixel in ``warm`` when that
    holds the whole ``(n_months, n_all)`` inputs (read in place, not copied)."""

    @classmethod
    def build(cls, px: Pixels, config: PhaseConfig, idx: np.ndarray | None = None,
              in_place: bool = False) -> _Climate:
        """Reduce pixels ``idx`` (sorted, unique; all by default) of the inputs in one pass.

        Every input value of the block is read once (float32 as is): the reductions and the
        copy of the warm-up months (:func:`~gsocseq.model.inputs.columns`' dtype) come from it.
        With ``in_place``, consecutive pixels of C-contiguous float32/float64 inputs are not
        copied: ``warm`` holds the whole inputs and ``warm_at`` where the block starts.
        """
        idx = np.arange(px.n) if idx is None else idx
        n_spin = 12 * config.spinup_years
        n = idx.size
        n_years = px.tmp.shape[0] // 12
        spin = np.empty((3, 12, n))
        forward = np.empty((3, 12, n))
        t_year = np.empty((n_years, n))
        p_year = np.empty((n_years, n))
        inputs = (px.tmp, px.prec, px.pet)
        i0 = int(idx[0]) if n else 0
        consecutive = bool(n == 0 or idx[-1] - idx[0] == n - 1)
        keep = not (in_place and consecutive and n > 0 and all(
            a.dtype == real_dtype(a) and a.flags.c_contiguous for a in inputs))
        rows = px.tmp.shape[0] - n_spin if keep else 1
        copies = tuple(np.empty((rows, n), real_dtype(a)) for a in inputs)
        _gather_climate(*inputs, idx, i0, consecutive, config.spinup_years, spin, forward,
                        t_year, p_year, *copies, keep)
        return cls(
            spin=tuple(spin), forward=tuple(forward), warm=copies if keep else inputs,
            t_year=t_year, p_year=p_year, cover=f8(columns(px.cover, idx)),
            warm_at=None if keep else (n_spin, i0),
        )

    def subset(self, idx: np.ndarray) -> _Climate:
        """Return the climate of pixels ``idx``."""
        def cols(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            return tuple(columns(a, idx) for a in arrays)

        if self.warm_at is None:
            warm = cols(self.warm)
        else:
            m0, c0 = self.warm_at
            warm = tuple(columns(a[m0:], idx + c0) for a in self.warm)
        return _Climate(
            cols(self.spin), cols(self.forward), warm, *cols(
                (self.t_year, self.p_year, self.cover)
            )
        )


#: Pixels reduced together by :func:`_gather_climate` (a whole block: 512, its sums in L2, was
#: 1.6x slower, the input rows read in shorter runs).
GATHER_CHUNK = 4096


@njit(nogil=True, cache=True, error_model="numpy")
def _gather_climate(tmp, prec, pet, idx, i0, consecutive, n_spin_years, spin, forward, t_year,
                    p_year, w_tmp, w_prec, w_pet, copy_warm):
    """Fill the climate of pixels ``idx`` (columns ``i0…`` when ``consecutive``) in one pass.

    ``spin``, ``forward`` (3, 12, nb): tmp, prec, pet means of years ``:n_spin_years`` and
    ``n_spin_years:``; ``t_year`` (n_years, nb) annual mean temperature (°C), ``p_year`` annual
    precipitation (mm/yr); ``w_tmp``, ``w_prec``, ``w_pet`` (months after the spin-up years, nb)
    the warm-up months as read (only with ``copy_warm``). Sums run year after year (month after
    month) in float64, then are divided by the count: the numbers of NumPy's ``mean``/``sum``
    over those axes on float64 arrays.
    """
    n_months = tmp.shape[0]
    nb = idx.shape[0]
    n_years = n_months // 12
    m_spin = 12 * n_spin_years
    t_row = np.empty(GATHER_CHUNK, tmp.dtype)  # gather buffers (non-consecutive pixels)
    p_row = np.empty(GATHER_CHUNK, prec.dtype)
    e_row = np.empty(GATHER_CHUNK, pet.dtype)
    for c0 in range(0, nb, GATHER_CHUNK):  # the sums of a chunk stay in L2
        c1 = min(nb, c0 + GATHER_CHUNK)
        for m in range(n_months):
            y = m // 12
            mm = m % 12
            out = spin if y < n_spin_years else forward
            first = y == 0 or y == n_spin_years
            keep = copy_warm and m >= m_spin  # a warm-up month: copied
            w = m - m_spin if keep else 0
            ty, py = t_year[y, c0:c1], p_year[y, c0:c1]
            w_rows = (w_tmp[w, c0:c1], w_prec[w, c0:c1], w_pet[w, c0:c1])
            if consecutive:  # views of the rows
                _take_month(tmp[m, i0 + c0 : i0 + c1], prec[m, i0 + c0 : i0 + c1],
                            pet[m, i0 + c0 : i0 + c1], out[:, mm, c0:c1], first, ty, py, mm == 0,
                            w_rows, keep)
            else:  # the chunk's columns gathered first
                k = c1 - c0
                for j in range(k):
                    t_row[j] = tmp[m, idx[c0 + j]]
                    p_row[j] = prec[m, idx[c0 + j]]
                    e_row[j] = pet[m, idx[c0 + j]]
                _take_month(t_row[:k], p_row[:k], e_row[:k], out[:, mm, c0:c1], first, ty, py,
                            mm == 0, w_rows, keep)
    for y in range(n_years):
        for j in range(nb):
            t_year[y, j] /= 12.0
    n_fwd = n_years - n_spin_years
    for k in range(3):
        for mm in range(12):
            for j in range(nb):
                spin[k, mm, j] /= n_spin_years
                forward[k, mm, j] /= n_fwd


@njit(nogil=True, cache=True, error_model="numpy")
def _take_month(t, p, e, acc, first, t_acc, p_acc, first_of_year, warm, keep):
    """:func:`_take_row` for a month's temperature, precipitation and PET rows (``acc`` (3, k))."""
    _take_row(t, acc[0], first, t_acc, first_of_year, warm[0], keep)
    _take_row(p, acc[1], first, p_acc, first_of_year, warm[1], keep)
    _take_row(e, acc[2], first, None, False, warm[2], keep)


@njit(nogil=True, cache=True, error_model="numpy")
def _take_row(row, acc, first, year_acc, first_of_year, warm, keep):
    """Add a month's ``row`` (as float64) to ``acc`` and ``year_acc`` (``None``: not kept).

    A sum starts (``acc`` = ``row``) where ``first`` / ``first_of_year``; the row is copied to
    ``warm`` when ``keep`` (a warm-up month). Short loops that vectorise.
    """
    nb = row.shape[0]
    if keep:
        for j in range(nb):
            warm[j] = row[j]
    _sum_into(row, acc, first)
    if year_acc is not None:
        _sum_into(row, year_acc, first_of_year)


@njit(nogil=True, cache=True, error_model="numpy")
def _sum_into(row, acc, start):
    """``acc`` = ``row`` (as float64) if ``start``, else ``acc + row``."""
    if start:
        for j in range(row.shape[0]):
            acc[j] = np.float64(row[j])
    else:
        for j in range(row.shape[0]):
            acc[j] += np.float64(row[j])


@dataclass
class _BracketRun:
    """Results of one bracket on a block of pixels (t C/ha, t C/ha/yr)."""

    cin_eq: np.ndarray
    iom: np.ndarray
    t0: np.ndarray
    cin_bau: np.ndarray
    finals: np.ndarray  # (n_factors, n): total SOC at the end of the forward run per input factor


def run(px: Pixels, config: PhaseConfig) -> SchemeOutput:
    """Run all brackets on a block of valid pixels; return stocks, reasons and diagnostics."""
    return run_columns(px, np.arange(px.n), config)


def run_columns(px: Pixels, idx: np.ndarray, config: PhaseConfig) -> SchemeOutput:
    """Run all brackets on pixels ``idx`` (sorted, unique, valid) of ``px``: :func:`run`'s output.

    The block's monthly climate is read from ``px``'s arrays in one pass (no block copy of the
    spin-up months, no second pass for the reductions).
    """
    soc, clay, land_use = px.soc[idx], px.clay[idx], px.land_use[idx]
    n = idx.size
    f_low, f_med, f_high = config.ssm_factors(land_use)  # (n,) each, by land-use group
    one = np.ones(n)
    runs: dict[str, tuple[Bracket, np.ndarray]] = {
        "": (CENTRAL, np.stack([one, f_low, f_med, f_high]))}
    if config.uncertainty:
        for name, br in BRACKET_RUNS.items():
            runs[name] = (br, np.stack([one, f_med + br.ssm_shift]))
    climate = _Climate.build(px, config, idx, in_place=True)
    soil = {"dpm_rpm": landuse.dpm_rpm_ratio(land_use), "depth": np.full(n, config.depth_cm),
            "rate_modifier": landuse.rate_factor(land_use)}
    results = {
        name: _run_bracket(soc, clay, climate, soil, br, factors, config)
        for name, (br, factors) in runs.items()
    }
    central = results[""]
    brackets = None
    if config.uncertainty:
        brackets = {name: {"t0": results[name].t0, "bau": results[name].finals[0],
                           "ssm_med": results[name].finals[1]} for name in BRACKET_RUNS}
    stocks = Stocks(central.t0, dict(zip(SCENARIOS, central.finals, strict=True)), brackets)
    spin_ok = np.ones(n, dtype=bool)
    for r in results.values():
        spin_ok &= np.isfinite(r.cin_eq) & (r.cin_eq > 0)
    reason = np.where(spin_ok, Reason.OK, Reason.SPINUP_FAILED).astype(np.uint8)
    diagnostics: dict[str, np.ndarray] = {}
    for name, r in results.items():
        suffix = f"_{name}" if name else ""
        diagnostics[f"cin_eq{suffix}"] = r.cin_eq
        diagnostics[f"iom{suffix}"] = r.iom
        diagnostics[f"cin_bau{suffix}"] = r.cin_bau
        diagnostics[f"t0{suffix}"] = r.t0
        if name:  # bracket stocks (t C/ha): 2040 BAU, 2040 SSM medium ∓ 0.15
            diagnostics[f"bau{suffix}"] = r.finals[0]
            diagnostics[f"ssm_med{suffix}"] = r.finals[1]
    return SchemeOutput(stocks, reason, diagnostics)


def _run_bracket(
    soc: np.ndarray,
    clay: np.ndarray,
    climate: _Climate,
    soil: dict[str, np.ndarray],
    br: Bracket,
    factors: np.ndarray,
    config: PhaseConfig,
) -> _BracketRun:
    """Run spin-up, warm-up and forward for one bracket; NaN where the spin-up fails."""
    n = soc.shape[0]
    ft, fp = br.tmp, br.prec
    soc = soc * br.soc
    soil = {**soil, "clay": np.minimum(clay * br.clay, PLAUSIBLE_RANGES["clay"][1])}
    iom = rothc.falloon_iom(soc)
    out = _BracketRun(
        cin_eq=np.full(n, np.nan), iom=iom, t0=np.full(n, np.nan), cin_bau=np.full(n, np.nan),
        finals=np.full((len(factors), n), np.nan),
    )
    ef = config.evap_factor
    # Spin-up: 1981-2000 climatology; the steady state is affine in the annual input.
    tmp12, prec12, pet12 = climate.spin
    spin_site = rothc.site(tmp=tmp12 * ft, prec=prec12 * fp, pet=pet12, cover=climate.cover,
                           evap_factor=ef, validate=False, **soil)
    parts = rothc.equilibrium_parts(spin_site, validate=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.cin_eq[:] = (soc - iom) / parts.p_unit.sum(axis=1)
    ok = np.flatnonzero(np.isfinite(out.cin_eq) & (out.cin_eq > 0))
    if ok.size == 0:
        return out
    if ok.size < n:
        soil = {k: v[ok] for k, v in soil.items()}
        climate = climate.subset(ok)
    cin_eq = out.cin_eq[ok]
    pools = np.empty((ok.size, 5))
    pools[:, :4] = cin_eq[:, None] * parts.p_unit[ok]
    pools[:, 4] = iom[ok]
    # Warm-up: year-to-year climate, inputs scaled by the MIAMI NPP ratio, deficit carried.
    npp = miami_npp_carbon(climate.t_year * ft, climate.p_year * fp)
    n_spin_years = config.spinup_years
    with np.errstate(divide="ignore", invalid="ignore"):  # cin_eq · (NPP_y / mean), in place
        cin_years = np.divide(npp[n_spin_years:], npp[:n_spin_years].mean(axis=0))
        np.multiply(cin_eq, cin_years, out=cin_years)
    f_tmp, f_prec, f_pet = climate.forward
    fwd_site = rothc.site(tmp=f_tmp * ft, prec=f_prec * fp, pet=f_pet, cover=climate.cover,
                          evap_factor=ef, validate=False, **soil)
    w_tmp, w_prec, w_pet = climate.warm
    pools, smd = rothc.simulate_annual_input(
        pools, parts.smd[ok], fwd_site, tmp=w_tmp, prec=w_prec, pet=w_pet, cin_years=cin_years,
        tmp_factor=ft, prec_factor=fp, at=climate.warm_at or (0, 0))
    out.t0[ok] = pools.sum(axis=1)
    cin_bau = cin_years.mean(axis=0)
    out.cin_bau[ok] = cin_bau
    # Forward: mean warm-up climate repeated; every scenario from the affine year maps.
    bau, response = forward_response(pools, smd, cin_bau, fwd_site, config.forward_years)
    out.finals[:, ok] = bau + (factors[:, ok] - 1.0) * response
    return out


def forward_response(
    pools: np.ndarray, smd: np.ndarray, cin: np.ndarray, site: rothc.Site, years: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return total SOC (t C/ha) after ``years`` of one repeated climate year, and its input part.

    ``pools`` (n, 5) t C/ha and ``smd`` (n,) mm are the start state, ``cin`` (n,) the annual plant
    input (t C/ha/yr), ``site`` one climate year (12 months). The second array is the total SOC
    reached from empty pools with the same input, so input factor ``f`` ends at
    ``first + (f − 1)·second``.

    Year 1 is stepped month by month from ``smd``; when the deficit cycle is periodic from year 2
    on (the usual case), years 2… apply one affine year map repeatedly; the other pixels are
    stepped month by month for all years (exact either way).
    """
    bau, unit, smd1 = _forward_stepped(pools, smd, cin, site, 1)
    if years > 1:
        later = rothc.annual_affine_map(site, smd0=smd1, validate=False)
        b = cin[:, None] * later.b_unit
        bau, unit = rothc.simulate_years_affine_pair(bau, unit, later.a, b, years - 1)
        drift = np.flatnonzero(~(later.smd_end == later.smd_start))
        if drift.size:
            bau[drift], unit[drift], _ = _forward_stepped(
                pools[drift], smd[drift], cin[drift], site.take(drift), years
            )
    return bau.sum(axis=1), unit.sum(axis=1)


def _forward_stepped(
    pools: np.ndarray, smd: np.ndarray, cin: np.ndarray, site: rothc.Site, years: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step ``years`` month by month from ``pools`` and from empty pools with input ``cin``.

    Returns both end states (n, 5) t C/ha and the end deficit (n,) mm.
    """
    end, unit, smd_end = rothc.simulate_pair(pools, smd, site, cin=cin, repeat=years)
    return end, unit, smd_end
