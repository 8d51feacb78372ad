"""The GSOCseq procedure on plain arrays: spin-up, warm-up, forward scenarios and the 29 layers.

``run_phases`` takes per-pixel inputs (SOC, clay, land use, monthly climate, cover) and returns the 29
FAO product layers, a reason code per pixel and diagnostics. The ``exact`` scheme (default) is
implemented here with the RothC-26.3 kernels of :mod:`gsocseq.model.rothc`; ``fao`` dispatches to
:mod:`gsocseq.model.fao_phases`.

Procedure (``docs/gsocseq.md`` "The procedure", reference §1), per bracket run (central, min, max):

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

Brackets (reference §4.2): min run T×1.02, P×0.95, clay×0.9, SOC×0.8; max run T×0.98, P×1.05,
clay×1.1 (capped at 100 %), SOC×1.2, through all phases; forward BAU and SSM medium with input
factor f_med ∓ 0.15.
Unlike the FAO scripts, each bracket is self-consistent (its own IOM, its own climate in the spin-up,
its own mean NPP in the warm-up ratio); :mod:`gsocseq.model.fao_phases` reproduces the FAO quirks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from numba import njit

from gsocseq.errors import InputValidationError
from gsocseq.model import landuse, rothc
from gsocseq.model.codes import LAYERS, SSM_LABELS, Reason
from gsocseq.model.npp import miami_npp_carbon
from gsocseq.model.uncertainty import (
    CLAY_FACTORS,
    PRECIPITATION_FACTORS,
    SOC_FACTORS,
    SSM_INPUT_SHIFT,
    TEMPERATURE_FACTORS,
    uncertainty_layers,
)

#: Plausible input ranges; pixels outside get ``Reason.INPUT_OUT_OF_RANGE``.
CLAY_RANGE: tuple[float, float] = (0.0, 100.0)  # %
COVER_RANGE: tuple[float, float] = (0.0, 1.0)  # vegetated share
TMP_RANGE: tuple[float, float] = (-90.0, 60.0)  # °C
PREC_RANGE: tuple[float, float] = (0.0, 10000.0)  # mm/month (record monthly rainfall ≈ 9300 mm)
PET_RANGE: tuple[float, float] = (0.0, 1000.0)  # mm/month
SOC_RANGE: tuple[float, float] = (0.0, 1000.0)  # t C/ha, 0-30 cm (organic soils stay well below)
BLOCK_SIZE: int = 4096
"""Pixels processed together; bounds the (months × pixels) temporaries to a few hundred MB."""


@dataclass(frozen=True)
class PhaseConfig:
    """Settings of the GSOCseq procedure (frozen, hashable)."""

    scheme: Literal["exact", "fao"] = "exact"
    """Numerical scheme: ``exact`` RothC-26.3 monthly steps, or ``fao`` compatibility."""
    ssm_factors: tuple[float, float, float] = (1.05, 1.10, 1.20)
    """C input factors of the SSM low / medium / high scenarios relative to BAU."""
    evap_factor: float = 1.0
    """Evaporation factor: 1.0 for potential evapotranspiration input, 0.75 for open-pan."""
    depth_cm: float = 30.0
    """Soil depth in cm."""
    spinup_years: int = 20
    """Years of the spin-up climatology (1981–2000)."""
    warmup_years: int = 20
    """Years of the warm-up (2001–2020)."""
    forward_years: int = 20
    """Years of the forward runs (2021–2040); rates are differences divided by this."""
    uncertainty: bool = True
    """Run the FAO min/max bracket runs and compute the uncertainty layers (else NaN)."""
    fao_spinup_variant: Literal["analytical", "equilibrium"] = "analytical"
    """Spin-up variant of the ``fao`` scheme (ignored by ``exact``)."""
    fao_euler_criterion: Literal["month", "cycle"] = "month"
    """How the ``fao`` scheme detects an unstable explicit Euler step (ignored by ``exact``):
    ``month`` masks a pixel whose combined rate factor exceeds 2.4 in any stepped month (DPM's
    one-step factor ``1 − 10·ξ/12`` leaves [−1, 1]); ``cycle`` masks only pixels whose DPM pool is
    amplified over a whole yearly cycle (values would blow up). FAO's scripts mask neither."""


@dataclass
class PhaseResult:
    """Output of :func:`run_phases` for ``n`` pixels."""

    layers: dict[str, np.ndarray]
    """The 29 product layers of ``codes.LAYERS`` → float32 ``(n,)``, NaN where not modelled."""
    reason: np.ndarray
    """``uint8 (n,)`` :class:`~gsocseq.model.codes.Reason` per pixel, 0 = modelled."""
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    """float64 ``(n,)``: ``cin_eq``, ``cin_bau`` (t C/ha/yr), ``iom``, ``t0`` (t C/ha); with uncertainty
    also ``{cin_eq,iom,cin_bau,t0,bau,ssm_med}_{min,max}`` of the bracket runs (stocks t C/ha)."""


class _Inputs(NamedTuple):
    """The per-pixel arguments of :func:`run_phases` (same names, layout and units)."""

    soc: np.ndarray
    clay: np.ndarray
    land_use: np.ndarray
    tmp: np.ndarray
    prec: np.ndarray
    pet: np.ndarray
    cover: np.ndarray

    def block(self, idx: np.ndarray) -> _Inputs:
        """Return pixels ``idx`` (sorted, unique), the monthly arrays as C-contiguous float64."""
        return _Inputs(
            self.soc[idx], self.clay[idx], self.land_use[idx],
            *(_columns(a, idx) for a in (self.tmp, self.prec, self.pet, self.cover)),
        )


@dataclass(frozen=True)
class _Perturbation:
    """Multiplicative input factors of one bracket run (1.0: the central run)."""

    soc: float = 1.0
    clay: float = 1.0
    tmp: float = 1.0
    prec: float = 1.0


@dataclass
class _BracketRun:
    """Results of one bracket on a block of pixels (t C/ha, t C/ha/yr)."""

    cin_eq: np.ndarray
    iom: np.ndarray
    t0: np.ndarray
    cin_bau: np.ndarray
    finals: np.ndarray  # (n_factors, n): total SOC at the end of the forward run per input factor


def run_phases(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    land_use: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
    config: PhaseConfig = PhaseConfig(),
) -> PhaseResult:
    """Run the GSOCseq procedure per pixel and return the 29 layers, reason codes and diagnostics.

    Parameters
    ----------
    soc, clay, land_use
        ``(n,)``: SOC stock 0–30 cm in 2000 (t C/ha), clay (%), FAO land-use class (integer).
    tmp, prec, pet
        ``(12·(spinup_years + warmup_years), n)``, January 1981 first: mean air temperature (°C),
        precipitation (mm/month), potential evapotranspiration (mm/month).
    cover
        ``(12, n)`` vegetated share of each calendar month (0–1).
    config
        Procedure settings; ``scheme="fao"`` runs :func:`gsocseq.model.fao_phases.run_fao_phases`.

    Returns
    -------
    PhaseResult
        Stocks in t C/ha, rates in t C/ha/yr, uncertainties in %. Pixels not modelled have NaN in
        every layer and diagnostic and a reason code: ``NOT_AGRICULTURAL`` (class not 2, 3, 5, 12,
        13), ``MISSING_INPUT`` (NaN/inf in any input month), ``INPUT_OUT_OF_RANGE`` (SOC outside
        0–1000 t C/ha, clay outside 0–100 %, cover outside 0–1, precipitation outside 0–10 000 or
        PET outside 0–1000 mm/month, temperature outside −90…60 °C), ``SPINUP_FAILED`` (no
        positive equilibrium input in the central or a bracket run), ``NON_FINITE_RESULT``.
        Masked pixels never affect the others.

    Raises
    ------
    InputValidationError
        An argument has a wrong shape or dtype, or ``config`` an invalid value.
    """
    if config.scheme == "fao":
        from gsocseq.model.fao_phases import run_fao_phases

        return run_fao_phases(
            soc=soc, clay=clay, land_use=land_use, tmp=tmp, prec=prec, pet=pet, cover=cover,
            config=config,
        )
    if config.scheme != "exact":
        raise InputValidationError(f"config.scheme must be 'exact' or 'fao', got {config.scheme!r}")
    inputs = _validate(_Inputs(soc, clay, land_use, tmp, prec, pet, cover), config)
    n = inputs.soc.shape[0]
    reason = classify_pixels(**inputs._asdict())
    values = {name: np.full(n, np.nan) for name in LAYERS}
    diagnostics = {name: np.full(n, np.nan) for name in _diagnostic_names(config)}
    todo = np.flatnonzero(reason == Reason.OK)
    for start in range(0, todo.size, BLOCK_SIZE):
        idx = todo[start : start + BLOCK_SIZE]
        block_reason, block_values, block_diag = _run_block(inputs.block(idx), config)
        reason[idx] = block_reason
        for name, arr in block_values.items():
            values[name][idx] = arr
        for name, arr in block_diag.items():
            diagnostics[name][idx] = arr
    masked = reason != Reason.OK
    for arr in (*values.values(), *diagnostics.values()):
        arr[masked] = np.nan
    layers = {name: values[name].astype(np.float32) for name in LAYERS}
    return PhaseResult(layers=layers, reason=reason, diagnostics=diagnostics)


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

    The first applicable code wins in that order; pixels that pass get ``Reason.OK``.
    """
    finite = np.isfinite(soc) & np.isfinite(clay)
    with np.errstate(invalid="ignore"):
        in_range = ((soc >= SOC_RANGE[0]) & (soc <= SOC_RANGE[1])
                    & (clay >= CLAY_RANGE[0]) & (clay <= CLAY_RANGE[1]))
    for arr, (lo, hi) in ((tmp, TMP_RANGE), (prec, PREC_RANGE), (pet, PET_RANGE),
                          (cover, COVER_RANGE)):
        _monthly_flags(arr, lo, hi, finite, in_range)
    reason = np.full(soc.shape, Reason.OK, dtype=np.uint8)
    reason[~in_range] = Reason.INPUT_OUT_OF_RANGE
    reason[~finite] = Reason.MISSING_INPUT
    reason[~landuse.is_modelled(land_use)] = Reason.NOT_AGRICULTURAL
    return reason


@njit(cache=True, nogil=True)
def _monthly_flags(arr, lo, hi, finite, in_range):
    """Clear ``finite`` / ``in_range`` of pixels with a non-finite / out-of-range month."""
    for m in range(arr.shape[0]):
        for i in range(arr.shape[1]):
            v = arr[m, i]
            if not np.isfinite(v):
                finite[i] = False
            elif v < lo or v > hi:
                in_range[i] = False


_BRACKET_DIAGNOSTICS = ("cin_eq", "iom", "cin_bau", "t0", "bau", "ssm_med")


def _diagnostic_names(config: PhaseConfig) -> tuple[str, ...]:
    names: tuple[str, ...] = ("cin_eq", "iom", "cin_bau", "t0")
    if config.uncertainty:
        names += tuple(f"{name}_{b}" for b in ("min", "max") for name in _BRACKET_DIAGNOSTICS)
    return names


@dataclass
class _Climate:
    """Climate of a block of pixels, reduced once and shared by the bracket runs."""

    spin: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Spin-up monthly means (12, n): temperature °C, precipitation and PET mm/month."""
    forward: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Warm-up monthly means (12, n), the forward climate."""
    warm: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Warm-up months (12·warmup_years, n)."""
    t_year: np.ndarray
    """Annual mean temperature (°C) of every year, (spinup_years + warmup_years, n)."""
    p_year: np.ndarray
    """Annual precipitation (mm/yr) of every year."""
    cover: np.ndarray
    """(12, n) vegetated share."""
    cover_warm: np.ndarray
    """(12·warmup_years, n) vegetated share repeated over the warm-up."""
    scratch: list[np.ndarray] = field(default_factory=list)
    """Reused buffers for the perturbed warm-up temperature and precipitation."""

    def perturbed_warm(self, f_tmp: float, f_prec: float) -> tuple[np.ndarray, np.ndarray]:
        """Return the warm-up temperature × ``f_tmp`` and precipitation × ``f_prec``."""
        if f_tmp == 1.0 and f_prec == 1.0:
            return self.warm[0], self.warm[1]
        if not self.scratch:
            self.scratch.extend(np.empty_like(a) for a in self.warm[:2])
        return (np.multiply(self.warm[0], f_tmp, out=self.scratch[0]),
                np.multiply(self.warm[1], f_prec, out=self.scratch[1]))

    @classmethod
    def build(
        cls,
        tmp: np.ndarray,
        prec: np.ndarray,
        pet: np.ndarray,
        cover: np.ndarray,
        config: PhaseConfig,
    ) -> _Climate:
        """Reduce the ``(n_months, n)`` inputs of a block."""
        n_spin = 12 * config.spinup_years
        n = tmp.shape[1]
        return cls(
            spin=tuple(_climatology(a[:n_spin]) for a in (tmp, prec, pet)),
            forward=tuple(_climatology(a[n_spin:]) for a in (tmp, prec, pet)),
            warm=(tmp[n_spin:], prec[n_spin:], pet[n_spin:]),
            t_year=tmp.reshape(-1, 12, n).mean(axis=1),
            p_year=prec.reshape(-1, 12, n).sum(axis=1),
            cover=cover,
            cover_warm=np.tile(cover, (config.warmup_years, 1)),
        )

    def subset(self, idx: np.ndarray) -> _Climate:
        """Return the climate of pixels ``idx``."""
        def cols(arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            return tuple(_columns(a, idx) for a in arrays)

        return _Climate(
            cols(self.spin), cols(self.forward), cols(self.warm), *cols(
                (self.t_year, self.p_year, self.cover, self.cover_warm)
            )
        )


def _run_block(
    inputs: _Inputs, config: PhaseConfig
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run all brackets on a block of valid pixels; return reasons, layer values, diagnostics."""
    soc, clay, land_use, tmp, prec, pet, cover = inputs
    f_low, f_med, f_high = config.ssm_factors
    runs: dict[str, tuple[_Perturbation, tuple[float, ...]]] = {
        "": (_Perturbation(), (1.0, f_low, f_med, f_high)),
    }
    if config.uncertainty:
        runs["min"] = (
            _Perturbation(SOC_FACTORS[0], CLAY_FACTORS[0], TEMPERATURE_FACTORS[0],
                          PRECIPITATION_FACTORS[0]),
            (1.0, f_med - SSM_INPUT_SHIFT),
        )
        runs["max"] = (
            _Perturbation(SOC_FACTORS[1], CLAY_FACTORS[1], TEMPERATURE_FACTORS[1],
                          PRECIPITATION_FACTORS[1]),
            (1.0, f_med + SSM_INPUT_SHIFT),
        )
    climate = _Climate.build(tmp, prec, pet, cover, config)
    site = {"dpm_rpm": landuse.dpm_rpm_ratio(land_use), "depth": np.full(soc.shape, config.depth_cm),
            "rate_modifier": landuse.rate_factor(land_use)}
    results = {
        name: _run_bracket(soc, clay, climate, site, pert, factors, config)
        for name, (pert, factors) in runs.items()
    }
    values = _layers(results, config)
    n = soc.shape[0]
    reason = np.full(n, Reason.OK, dtype=np.uint8)
    spin_ok = np.ones(n, dtype=bool)
    for run in results.values():
        spin_ok &= np.isfinite(run.cin_eq) & (run.cin_eq > 0)
    finite = np.ones(n, dtype=bool)
    for name, arr in values.items():
        if config.uncertainty or not name.endswith("_Uncertainty"):
            finite &= np.isfinite(arr)
    reason[~finite] = Reason.NON_FINITE_RESULT
    reason[~spin_ok] = Reason.SPINUP_FAILED
    diagnostics: dict[str, np.ndarray] = {}
    for name, run in results.items():
        suffix = f"_{name}" if name else ""
        diagnostics[f"cin_eq{suffix}"] = run.cin_eq
        diagnostics[f"iom{suffix}"] = run.iom
        diagnostics[f"cin_bau{suffix}"] = run.cin_bau
        diagnostics[f"t0{suffix}"] = run.t0
        if name:  # bracket stocks (t C/ha): 2040 BAU, 2040 SSM medium ∓ 0.15
            diagnostics[f"bau{suffix}"] = run.finals[0]
            diagnostics[f"ssm_med{suffix}"] = run.finals[1]
    return reason, values, diagnostics


def _run_bracket(
    soc: np.ndarray,
    clay: np.ndarray,
    climate: _Climate,
    site: dict[str, np.ndarray],
    pert: _Perturbation,
    factors: tuple[float, ...],
    config: PhaseConfig,
) -> _BracketRun:
    """Run spin-up, warm-up and forward for one bracket; NaN where the spin-up fails."""
    n = soc.shape[0]
    ft, fp = pert.tmp, pert.prec
    soc = soc * pert.soc
    site = {**site, "clay": np.minimum(clay * pert.clay, CLAY_RANGE[1])}
    iom = rothc.falloon_iom(soc)
    out = _BracketRun(
        cin_eq=np.full(n, np.nan), iom=iom, t0=np.full(n, np.nan), cin_bau=np.full(n, np.nan),
        finals=np.full((len(factors), n), np.nan),
    )
    # Spin-up: 1981-2000 climatology; the steady state is affine in the annual input.
    tmp12, prec12, pet12 = climate.spin
    parts = rothc.equilibrium_parts(
        tmp=tmp12 * ft, rain=prec12 * fp, evap=pet12, cover=climate.cover,
        evap_factor=config.evap_factor, validate=False, **site,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out.cin_eq[:] = (soc - iom) / parts.p_unit.sum(axis=1)
    ok = np.flatnonzero(np.isfinite(out.cin_eq) & (out.cin_eq > 0))
    if ok.size == 0:
        return out
    if ok.size < n:
        site = {k: v[ok] for k, v in site.items()}
        climate = climate.subset(ok)
    cin_eq = out.cin_eq[ok]
    pools = np.empty((ok.size, 5))
    pools[:, :4] = cin_eq[:, None] * parts.p_unit[ok]
    pools[:, 4] = iom[ok]
    # Warm-up: year-to-year climate, inputs scaled by the MIAMI NPP ratio, deficit carried.
    npp = miami_npp_carbon(climate.t_year * ft, climate.p_year * fp)
    n_spin_years = config.spinup_years
    with np.errstate(divide="ignore", invalid="ignore"):
        cin_years = cin_eq * (npp[n_spin_years:] / npp[:n_spin_years].mean(axis=0))
    c_inp = np.repeat(cin_years / 12.0, 12, axis=0)  # t C/ha per month
    w_tmp, w_prec = climate.perturbed_warm(ft, fp)
    pools, smd = rothc.simulate(
        pools, parts.smd[ok], tmp=w_tmp, rain=w_prec, evap=climate.warm[2],
        cover=climate.cover_warm, c_inp=c_inp, fym=np.zeros(c_inp.shape),
        evap_factor=config.evap_factor, validate=False, **site,
    )
    out.t0[ok] = pools.sum(axis=1)
    cin_bau = cin_years.mean(axis=0)
    out.cin_bau[ok] = cin_bau
    # Forward: mean warm-up climate repeated; every scenario from the affine year maps.
    f_tmp, f_prec, f_pet = climate.forward
    bau, response = forward_response(
        pools, smd, cin_bau, tmp=f_tmp * ft, rain=f_prec * fp, evap=f_pet, cover=climate.cover,
        years=config.forward_years, evap_factor=config.evap_factor, **site,
    )
    out.finals[:, ok] = bau + (np.asarray(factors)[:, None] - 1.0) * response
    return out


def forward_response(
    pools: np.ndarray,
    smd: np.ndarray,
    cin: np.ndarray,
    *,
    tmp: np.ndarray,
    rain: np.ndarray,
    evap: np.ndarray,
    cover: np.ndarray,
    dpm_rpm: np.ndarray,
    clay: np.ndarray,
    depth: np.ndarray,
    rate_modifier: np.ndarray,
    evap_factor: float,
    years: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return total SOC (t C/ha) after ``years`` of one repeated climate year, and its input part.

    ``pools`` (n, 5) t C/ha and ``smd`` (n,) mm are the start state, ``cin`` (n,) the annual plant
    input (t C/ha/yr), climate ``(12, n)``. The second array is the total SOC reached from empty
    pools with the same input, so input factor ``f`` ends at ``first + (f − 1)·second``.

    Year 1 is stepped month by month from ``smd``; when the deficit cycle is periodic from year 2
    on (the usual case), years 2… apply one affine year map repeatedly; the other pixels are
    stepped month by month for all years (exact either way).
    """
    kw = {"tmp": tmp, "rain": rain, "evap": evap, "cover": cover, "dpm_rpm": dpm_rpm,
          "clay": clay, "depth": depth, "rate_modifier": rate_modifier,
          "evap_factor": evap_factor, "validate": False}
    bau, unit, smd1 = _forward_stepped(pools, smd, cin, kw, 1)
    if years > 1:
        later = rothc.annual_affine_map(smd0=smd1, **kw)
        b = cin[:, None] * later.b_unit
        bau = rothc.simulate_years_affine(bau, later.a, b, years - 1)
        unit = rothc.simulate_years_affine(unit, later.a, b, years - 1)
        drift = np.flatnonzero(~(later.smd_end == later.smd_start))
        if drift.size:
            sub = {k: _take(v, drift) for k, v in kw.items()}
            bau[drift], unit[drift], _ = _forward_stepped(
                pools[drift], smd[drift], cin[drift], sub, years
            )
    return bau.sum(axis=1), unit.sum(axis=1)


def _forward_stepped(
    pools: np.ndarray, smd: np.ndarray, cin: np.ndarray, kw: dict, years: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step ``years`` month by month from ``pools`` and from empty pools with input ``cin``.

    Returns both end states (n, 5) t C/ha and the end deficit (n,) mm.
    """
    n = cin.shape[0]
    c_inp = np.broadcast_to(cin / 12.0, (12, n))
    fym = np.zeros((12, n))
    end, smd_end = rothc.simulate(pools, smd, c_inp=c_inp, fym=fym, repeat=years, **kw)
    unit, _ = rothc.simulate(np.zeros_like(pools), smd, c_inp=c_inp, fym=fym, repeat=years, **kw)
    return end, unit, smd_end


def _take(value: object, idx: np.ndarray) -> object:
    """Select pixels ``idx`` (last axis) of an array argument; pass other values through."""
    return value[..., idx] if isinstance(value, np.ndarray) else value


def _layers(results: dict[str, _BracketRun], config: PhaseConfig) -> dict[str, np.ndarray]:
    """Return the 29 layers (float64) from the bracket runs."""
    central = results[""]
    t0 = central.t0
    finals = dict(zip(("BAU", *SSM_LABELS), central.finals, strict=True))
    years = float(config.forward_years)
    out: dict[str, np.ndarray] = {"T0": t0}
    for scen, final in finals.items():
        out[f"finalSOC_{scen}"] = final
    for scen, final in finals.items():
        out[f"AbsDiff_{scen}"] = final - t0
    for scen in finals:
        out[f"ASR_{scen}"] = out[f"AbsDiff_{scen}"] / years
    for scen in SSM_LABELS:
        out[f"RelDiff_{scen}"] = finals[scen] - finals["BAU"]
    for scen in SSM_LABELS:
        out[f"RSR_{scen}"] = out[f"RelDiff_{scen}"] / years
    if config.uncertainty:
        low, high = results["min"], results["max"]
        out.update(
            uncertainty_layers(
                t0=t0, t0_min=low.t0, t0_max=high.t0,
                bau=finals["BAU"], bau_min=low.finals[0], bau_max=high.finals[0],
                ssm_med=finals["SSM2"], ssm_med_min=low.finals[1], ssm_med_max=high.finals[1],
                ssm=(finals["SSM1"], finals["SSM2"], finals["SSM3"]),
            )
        )
    else:
        n = t0.shape[0]
        out.update({name: np.full(n, np.nan) for name in LAYERS if name.endswith("_Uncertainty")})
    return {name: out[name] for name in LAYERS}


def _climatology(monthly: np.ndarray) -> np.ndarray:
    """Return the 12 calendar-month means of a ``(12·years, n)`` series."""
    return monthly.reshape(-1, 12, monthly.shape[-1]).mean(axis=0)


def _validate(inputs: _Inputs, config: PhaseConfig) -> _Inputs:
    """Check shapes and dtypes of the whole arrays; return them (soc and clay as float64)."""
    soc, clay, land_use, tmp, prec, pet, cover = inputs
    for name, value in (
        ("spinup_years", config.spinup_years), ("warmup_years", config.warmup_years),
        ("forward_years", config.forward_years),
    ):
        if int(value) != value or value < 1:
            raise InputValidationError(f"config.{name} must be a positive integer, got {value!r}")
    factors = config.ssm_factors
    if len(factors) != 3 or not all(np.isfinite(f) and f > 0 for f in factors):
        raise InputValidationError(f"config.ssm_factors must be 3 positive numbers, got {factors}")
    if config.uncertainty and factors[1] <= SSM_INPUT_SHIFT:
        raise InputValidationError(
            f"config.ssm_factors[1] = {factors[1]} must exceed {SSM_INPUT_SHIFT} (its min bracket "
            f"input factor is {factors[1]} - {SSM_INPUT_SHIFT})"
        )
    if not (config.depth_cm > 0 and config.evap_factor > 0):
        raise InputValidationError(
            f"config.depth_cm ({config.depth_cm}) and config.evap_factor ({config.evap_factor}) "
            "must be > 0"
        )
    arrays = {k: np.asarray(v) for k, v in (("soc", soc), ("clay", clay), ("land_use", land_use))}
    if arrays["soc"].ndim != 1:
        raise InputValidationError(f"soc must have shape (n_pixels,), got {arrays['soc'].shape}")
    n = arrays["soc"].shape[0]
    for name, arr in arrays.items():
        if arr.shape != (n,):
            raise InputValidationError(f"{name} must have shape ({n},) like soc, got {arr.shape}")
    if not np.issubdtype(arrays["land_use"].dtype, np.integer):
        raise InputValidationError(
            f"land_use must be an integer array (FAO classes), got dtype {arrays['land_use'].dtype}"
        )
    n_months = 12 * (config.spinup_years + config.warmup_years)
    monthly = {"tmp": (tmp, n_months), "prec": (prec, n_months), "pet": (pet, n_months),
               "cover": (cover, 12)}
    out = {}
    for name, (value, rows) in monthly.items():
        arr = np.asarray(value)
        if arr.shape != (rows, n):
            raise InputValidationError(
                f"{name} must have shape ({rows}, {n}) (months, pixels), got {arr.shape}"
            )
        out[name] = arr
    for name, arr in {**out, "soc": arrays["soc"], "clay": arrays["clay"]}.items():
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputValidationError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return _Inputs(
        _f8(arrays["soc"]), _f8(arrays["clay"]), arrays["land_use"],
        out["tmp"], out["prec"], out["pet"], out["cover"],
    )


def _f8(arr: np.ndarray) -> np.ndarray:
    return np.asarray(arr, dtype=np.float64)


def _columns(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Return pixels ``idx`` (sorted, unique; last axis) of ``arr`` as C-contiguous float64."""
    if idx.size and idx[-1] - idx[0] == idx.size - 1:  # consecutive: a slice, no gather
        return np.ascontiguousarray(arr[..., idx[0] : idx[-1] + 1], dtype=np.float64)
    return np.ascontiguousarray(np.take(arr, idx, axis=-1), dtype=np.float64)



