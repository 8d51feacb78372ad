"""The ``fao`` scheme: the GSOCseq phases exactly as FAO's R scripts run them, vectorised over pixels.

Owns FAO's point tables (one function per script) and the scheme's run of a block of map pixels
(:func:`run`), on the SoilR/Euler kernels of :mod:`gsocseq.model.fao`.

One function per script, returning the script's output table as arrays keyed by FAO's column names
(reference §1.1–1.3), with the scripts' skip rules: a skipped point has ``SOC_FAO = 0`` (spin-up,
warm-up) or ``SOC_t0 = 0`` (forward) and NaN in every other column.

* :func:`spin_up` — ``13_1_ROTH_C_SPIN_UP_UNC_v66.R`` (analytical, Dechow; default) or
  ``13_ROTH_C_SPIN_UP_UNC_v2.R`` (500-year Euler run with input 1 + pedotransfer pools);
* :func:`warm_up` — ``12_ROTH_C_WARM_UP.R``: one 1-year Euler call (11 steps) per year, inputs
  scaled recursively by the MIAMI NPP ratio, land use and DPM/RPM per year;
* :func:`forward` — ``13_ROTH_C_FORWARD.R``: one 20-year call (239 steps) per scenario, in-model
  filter and the uncertainty columns;
* :func:`run` — the scheme's run of a block of map pixels, called by :mod:`gsocseq.model.phases`.

Quirks reproduced on purpose (reference §1, §6.8): analytical brackets keep the central IOM and
the central climate but use the bracket clay (also in the moisture factor); the equilibrium
brackets start from the central IOM and subtract the bracket IOM; warm-up brackets divide by the
*central* mean NPP; ``Cin_t0`` is the 18th warm-up input; the warm-up inputs are chained
``Cin_w = Cin_{w−1} / NPP_{w−1} · NPP_w`` (a year with zero NPP makes the rest NaN).
Beyond the scripts (map entry point only): pixels whose Euler runs blow up (yearly DPM
amplification > 1, :data:`EULER_CRITERION`) are masked with ``Reason.FAO_EULER_UNSTABLE`` and the
in-model filter's NaNs get ``Reason.FAO_IN_MODEL_FILTER``; the point tables keep FAO's numbers.
Not reproduced: the parallel scripts' check of ``Spin_up@data[i, 3]`` with a block-local index
(depends on the number of cores), and a per-year skip in the middle of a warm-up (the R loop would
fail): any missing warm-up value skips the point.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gsocseq.errors import InputValidationError
from gsocseq.model import fao, landuse
from gsocseq.model.inputs import EULER_CRITERION, PhaseConfig, Pixels, climatology, f8
from gsocseq.model.layers import SchemeOutput, Stocks
from gsocseq.model.npp import annual_npp, miami_npp_carbon
from gsocseq.model.uncertainty import (
    BRACKET_RUNS,
    CENTRAL,
    SSM_INPUT_SHIFT,
    TEMPERATURE_FACTORS,
    Bracket,
)
from gsocseq.vocabulary import SCENARIO_TABLE, SCENARIOS, Reason

_POOLS = ("DPM", "RPM", "BIO", "HUM", "IOM")
SPINUP_COLUMNS: tuple[str, ...] = (
    "SOC_FAO", "Cinput_EQ", "SOC_pedotransfer",
    *(f"{p}_pedotransfer" for p in _POOLS),
    "CIneq_min", "CIneq_max",
    "SOC_min", *(f"{p}_min" for p in _POOLS),
    "SOC_max", *(f"{p}_max" for p in _POOLS),
)
"""Columns 2–23 of FAO's ``SPIN_UP`` table."""
WARMUP_COLUMNS: tuple[str, ...] = (
    "SOC_FAO", "Cin_t0", "SOC_t0", *(f"{p}_w_up" for p in _POOLS), "Cin_mean",
    "SOC_t0min", *(f"{p}_w_min" for p in _POOLS),
    "SOC_t0max", *(f"{p}_w_max" for p in _POOLS),
    "Cin_min", "Cin_max",
)
"""Columns 2–24 of FAO's ``WARM_UP`` table."""
FORWARD_COLUMNS: tuple[str, ...] = (
    "SOC_t0", "SOC_BAU_20", *(f"{p}_BAU_20" for p in _POOLS), "LandUse",
    "Low_Scenario", "Med_Scenario", "High_Scenario", "SOC_BAU_20_min", "SOC_BAU_20_max",
    "Med_Scen_min", "Med_Scen_max", "SOC_t0_min", "SOC_t0_max", "UNC_BAU", "UNC_t0", "UNC_SSM",
)
"""Columns 2–21 of FAO's ``FORWARD`` table."""
FILTERED_COLUMNS: tuple[str, ...] = (
    "SOC_BAU_20", "Low_Scenario", "Med_Scenario", "High_Scenario", "Med_Scen_min", "Med_Scen_max",
)
"""Forward columns set to NaN when outside [0, 300] t C/ha (in-model filter, script 13/15)."""
FILTER_RANGE: tuple[float, float] = (0.0, 300.0)
#: Land-use classes with spin-up pools (the scripts' ``good_landuse_classes``).
SPINUP_CLASSES: tuple[int, ...] = (2, 12, 13, 4, 3, 5, 6, 8)
#: Forward SSM groups of the scripts: crops & tree crops, grass/shrub/flooded/sparse, paddy.
SSM_GROUPS: dict[str, tuple[int, ...]] = {"crops": (2, 12), "grass": (3, 5, 6, 8), "paddy": (13,)}
#: Index (1-based in R) of the warm-up input reported as ``Cin_t0`` (hard-coded 18 in the scripts).
CIN_T0_YEAR: int = 18


@dataclass
class FaoTable:
    """One phase's output table for ``n`` points plus per-point flags."""

    columns: dict[str, np.ndarray]
    """FAO column name → float64 ``(n,)``."""
    skipped: np.ndarray
    """bool ``(n,)``: the script's skip rule applied (missing or negative input)."""
    unstable: np.ndarray
    """bool ``(n,)``: an Euler run of the phase met a month with rate factor > 2.4."""
    filtered: np.ndarray
    """bool ``(n,)``: the in-model filter removed a value (forward only)."""
    unstable_months: np.ndarray | None = None
    """uint8 ``(n,)``: most months in a year of the central Euler run whose DPM step factor leaves
    [−1, 1] (:func:`gsocseq.model.fao.euler_unstable_months`); None when the phase has no Euler
    run (analytical spin-up)."""


_CENTRAL = CENTRAL
_MIN = BRACKET_RUNS["min"]
_MAX = BRACKET_RUNS["max"]


def _any_nan(*arrays: np.ndarray) -> np.ndarray:
    """Return True per point (last axis) where any array holds NaN."""
    out = np.zeros(np.shape(arrays[0])[-1], dtype=bool)
    for arr in arrays:
        a = f8(arr)
        out |= np.isnan(a).any(axis=0) if a.ndim == 2 else np.isnan(a)
    return out


def _empty(columns: tuple[str, ...], n: int) -> dict[str, np.ndarray]:
    return {name: np.full(n, np.nan) for name in columns}


def _modifiers(
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    clay: np.ndarray,
    cover_factor: np.ndarray,
    land_use: np.ndarray,
    br: Bracket,
    depth_cm: float,
    evap_factor: float,
) -> np.ndarray:
    """Return ``xi`` (12·years, n) for a bracket (temperature, precipitation and clay scaled)."""
    return fao.rate_modifiers(
        f8(tmp) * br.tmp, f8(prec) * br.prec, pet, f8(clay) * br.clay, cover_factor,
        landuse.rate_factor(land_use), depth_cm=depth_cm, evap_factor=evap_factor,
    )


def spin_up(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover_factor: np.ndarray,
    dpm_ratio: np.ndarray,
    land_use: np.ndarray,
    variant: str = "analytical",
    depth_cm: float = 30.0,
    evap_factor: float = 1.0,
    equilibrium_years: int = 500,
    brackets: bool = True,
    euler_criterion: str = EULER_CRITERION,
) -> FaoTable:
    """Return FAO's spin-up table: equilibrium input (t C/ha/yr) and pools (t C/ha) + brackets.

    ``soc`` (t C/ha), ``clay`` (%), ``dpm_ratio`` and ``land_use`` (FAO class) ``(n,)``; ``tmp``
    (°C), ``prec``, ``pet`` (mm/month) and ``cover_factor`` (0.6–1.0) ``(12, n)``, the 1981–2000
    monthly climatology. ``variant`` is ``"analytical"`` (Dechow, mean annual modifier) or
    ``"equilibrium"`` (``equilibrium_years`` Euler run with input 1, pedotransfer pools).
    ``brackets=False`` skips the min/max runs (their columns stay NaN).
    """
    if variant not in ("analytical", "equilibrium"):
        raise InputValidationError(
            f"variant must be 'analytical' or 'equilibrium', got {variant!r}"
        )
    soc, clay, dr = f8(soc), f8(clay), f8(dpm_ratio)
    lu = np.asarray(land_use)
    n = soc.shape[0]
    with np.errstate(invalid="ignore"):
        skipped = _any_nan(tmp, prec, pet, cover_factor, soc, clay, dr) | (soc < 0) | (clay < 0)
    iom = fao.falloon_iom(soc)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    unstable = np.zeros(n, dtype=bool)
    months = None
    runs = (("", _CENTRAL), ("min", _MIN), ("max", _MAX)) if brackets else (("", _CENTRAL),)
    for name, br in runs:
        soc_b, clay_b = soc * br.soc, clay * br.clay
        if variant == "analytical":
            # Climate not perturbed; bracket clay in moisture and partition; central IOM (quirk).
            xi = _modifiers(tmp, prec, pet, clay, cover_factor, lu,
                            Bracket(clay=br.clay), depth_cm, evap_factor)
            out[name] = fao.analytical_equilibrium(xi.mean(axis=0), soc_b, clay_b, dr, iom)
        else:
            xi = fao.filled_modifiers(
                _modifiers(tmp, prec, pet, clay, cover_factor, lu, br, depth_cm, evap_factor),
                equilibrium_years)
            unstable |= fao.euler_unstable(xi, equilibrium_years, criterion=euler_criterion)
            if name == "":
                months = fao.euler_unstable_months(xi, equilibrium_years)
            active = fao.euler_run(np.zeros((4, n)), np.ones(n), dr, clay_b, xi,
                                   years_per_call=equilibrium_years)
            iom_b = fao.falloon_iom(soc_b)
            # Bracket runs carry the central IOM, the bracket IOM is subtracted (quirk).
            with np.errstate(divide="ignore", invalid="ignore"):
                ceq = (soc_b - iom_b) / (active.sum(axis=0) + iom - iom_b)
            out[name] = (fao.pedotransfer_pools(soc_b, clay_b, iom_b, lu), ceq)
    cols = _empty(SPINUP_COLUMNS, n)
    cols["SOC_FAO"] = soc.copy()
    cols["Cinput_EQ"] = out[""][1]
    has_pools = np.isin(lu, SPINUP_CLASSES)
    for name, prefix in (("", None), ("min", "min"), ("max", "max"))[: len(out)]:
        pools, ceq = out[name]
        keys = (
            ("SOC_pedotransfer", *(f"{p}_pedotransfer" for p in _POOLS)) if prefix is None
            else (f"SOC_{prefix}", *(f"{p}_{prefix}" for p in _POOLS))
        )
        for key, value in zip(keys, (pools.sum(axis=0), *pools), strict=True):
            cols[key] = np.where(has_pools, value, 0.0)
        if prefix is not None:
            cols[f"CIneq_{prefix}"] = np.where(has_pools, ceq, 0.0)
    _apply_skip(cols, skipped, "SOC_FAO")
    unstable &= ~skipped
    return FaoTable(cols, skipped, unstable, np.zeros(n, dtype=bool), months)


def _apply_skip(cols: dict[str, np.ndarray], skipped: np.ndarray, key: str) -> None:
    """Set a skipped point's ``key`` column to 0 and every other column to NaN (in place)."""
    for name, arr in cols.items():
        arr[skipped] = 0.0 if name == key else np.nan


def warm_up(
    *,
    spin: Mapping[str, np.ndarray],
    soc: np.ndarray,
    clay: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover_factor: np.ndarray,
    dpm_ratio: np.ndarray,
    land_use: np.ndarray,
    npp_mean: np.ndarray,
    depth_cm: float = 30.0,
    evap_factor: float = 1.0,
    brackets: bool = True,
    euler_criterion: str = EULER_CRITERION,
) -> FaoTable:
    """Return FAO's warm-up table: stocks at t0 (t C/ha) and inputs (t C/ha/yr) + brackets.

    ``spin`` is the spin-up table (:data:`SPINUP_COLUMNS`); ``soc`` (t C/ha), ``clay`` (%) and
    ``npp_mean`` (mean 1981–2000 MIAMI NPP × land-use coefficient, t C/ha/yr) ``(n,)``; ``tmp``
    (°C), ``prec``, ``pet`` (mm/month) ``(12·years, n)`` year by year; ``cover_factor`` ``(12, n)``;
    ``dpm_ratio`` and ``land_use`` ``(years, n)`` per year. ``brackets=False`` skips the min/max
    runs (their columns stay NaN).
    """
    soc, clay, npp_mean = f8(soc), f8(clay), f8(npp_mean)
    tmp, prec, pet = f8(tmp), f8(prec), f8(pet)
    n = soc.shape[0]
    years = tmp.shape[0] // 12
    dr = np.broadcast_to(f8(dpm_ratio), (years, n))
    lu = np.broadcast_to(np.asarray(land_use), (years, n))
    ceq = f8(spin["Cinput_EQ"])
    with np.errstate(invalid="ignore"):
        skipped = (
            _any_nan(tmp, prec, pet, cover_factor, soc, clay, dr, npp_mean, ceq)
            | (soc < 0) | (clay < 0) | (ceq <= 0)
        )
    coef = np.nan_to_num(landuse.npp_coefficient(lu), nan=0.0)  # the scripts' boolean sums
    rate = landuse.rate_factor(lu)
    t_year = tmp.reshape(years, 12, n).mean(axis=1)
    p_year = prec.reshape(years, 12, n).sum(axis=1)
    cols = _empty(WARMUP_COLUMNS, n)
    unstable = np.zeros(n, dtype=bool)
    months = np.zeros(n, dtype=np.uint8)
    means = {name: np.full(n, np.nan) for name in ("", "min", "max")}
    runs = (
        ("", _CENTRAL, "Cinput_EQ", tuple(f"{p}_pedotransfer" for p in _POOLS)),
        ("min", _MIN, "CIneq_min", tuple(f"{p}_min" for p in _POOLS)),
        ("max", _MAX, "CIneq_max", tuple(f"{p}_max" for p in _POOLS)),
    )
    for name, br, ceq_key, pool_keys in runs if brackets else runs[:1]:
        npp = miami_npp_carbon(t_year * br.tmp, p_year * br.prec) * coef
        cin = np.empty((years, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            cin[0] = f8(spin[ceq_key]) / npp_mean * npp[0]  # central mean NPP divisor (quirk)
            for w in range(1, years):
                cin[w] = cin[w - 1] / npp[w - 1] * npp[w]
        xi = fao.filled_modifiers(
            fao.rate_modifiers(tmp * br.tmp, prec * br.prec, pet, clay * br.clay, cover_factor,
                               rate, depth_cm=depth_cm, evap_factor=evap_factor), 1)
        unstable |= fao.euler_unstable(xi, 1, criterion=euler_criterion)
        if name == "":
            months = fao.euler_unstable_months(xi, 1)
        start = np.stack([f8(spin[k]) for k in pool_keys[:4]])
        active = fao.euler_run(start, cin, dr, clay * br.clay, xi, years_per_call=1)
        pools = np.vstack([active, f8(spin[pool_keys[4]])[None]])
        total = pools.sum(axis=0)
        means[name] = cin.mean(axis=0)
        if name == "":
            cols["Cin_t0"] = cin[CIN_T0_YEAR - 1] if years >= CIN_T0_YEAR else np.full(n, np.nan)
            keys = ("SOC_t0", *(f"{p}_w_up" for p in _POOLS))
        else:
            keys = (f"SOC_t0{name}", *(f"{p}_w_{name}" for p in _POOLS))
        for key, value in zip(keys, (total, *pools), strict=True):
            cols[key] = value
    cols["SOC_FAO"] = soc.copy()
    cols["Cin_mean"] = means[""]
    cols["Cin_min"] = means["min"]
    cols["Cin_max"] = means["max"]
    # ``is.na(mean(Cinputs))``: nothing is written for the point (SOC_FAO stays NA too).
    no_mean = np.isnan(means[""]) & ~skipped
    for arr in cols.values():
        arr[no_mean] = np.nan
    _apply_skip(cols, skipped, "SOC_FAO")
    unstable &= ~skipped
    return FaoTable(cols, skipped, unstable, np.zeros(n, dtype=bool), months)


def forward(
    *,
    warm: Mapping[str, np.ndarray],
    clay: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover_factor: np.ndarray,
    dpm_ratio: np.ndarray,
    land_use: np.ndarray,
    ssm_factors: tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray] = (
        1.05, 1.10, 1.20),
    years: int = 20,
    depth_cm: float = 30.0,
    evap_factor: float = 1.0,
    brackets: bool = True,
    euler_criterion: str = EULER_CRITERION,
) -> FaoTable:
    """Return FAO's forward table: stocks after ``years`` (t C/ha) per scenario, uncertainty (%).

    ``warm`` is the warm-up table (:data:`WARMUP_COLUMNS`); ``clay`` (%), ``dpm_ratio``,
    ``land_use`` ``(n,)``; ``tmp`` (°C), ``prec``, ``pet`` (mm/month), ``cover_factor`` ``(12, n)``,
    the 2001–2020 monthly means; ``ssm_factors`` the low/medium/high input factors (scalars for
    every group, or ``(n,)`` per point from its land-use group).
    ``brackets=False`` skips the min/max runs (their columns and the uncertainties stay NaN).
    """
    clay, dr = f8(clay), f8(dpm_ratio)
    lu = np.asarray(land_use)
    n = clay.shape[0]
    soc_t0, cin = f8(warm["SOC_t0"]), f8(warm["Cin_mean"])
    with np.errstate(invalid="ignore"):
        skipped = (
            _any_nan(tmp, prec, pet, cover_factor, soc_t0, clay, cin, dr)
            | (cin < 0) | (soc_t0 < 0) | (clay < 0)
        )
    rate = landuse.rate_factor(lu)
    f_low, f_med, f_high = ssm_factors
    unstable = np.zeros(n, dtype=bool)
    months = np.zeros(n, dtype=np.uint8)

    def run(br: Bracket, suffix: str, c_input: np.ndarray) -> np.ndarray:
        xi = fao.filled_modifiers(
            fao.rate_modifiers(f8(tmp) * br.tmp, f8(prec) * br.prec, pet, clay * br.clay,
                               cover_factor, rate, depth_cm=depth_cm, evap_factor=evap_factor),
            years)
        nonlocal unstable, months
        unstable |= fao.euler_unstable(xi, years, criterion=euler_criterion)
        if br is _CENTRAL:
            months = fao.euler_unstable_months(xi, years)
        start = np.stack([f8(warm[f"{p}_{suffix}"]) for p in _POOLS[:4]])
        active = fao.euler_run(start, c_input, dr, clay * br.clay, xi, years_per_call=years)
        return np.vstack([active, f8(warm[f"IOM_{suffix}"])[None]])

    bau = run(_CENTRAL, "w_up", cin)
    cin_min, cin_max = f8(warm["Cin_min"]), f8(warm["Cin_max"])
    cols = _empty(FORWARD_COLUMNS, n)
    cols["SOC_t0"] = soc_t0.copy()
    cols["SOC_BAU_20"] = bau.sum(axis=0)
    for p, value in zip(_POOLS, bau, strict=True):
        cols[f"{p}_BAU_20"] = value
    cols["LandUse"] = lu.astype(np.float64)
    cols["Low_Scenario"] = run(_CENTRAL, "w_up", cin * f_low).sum(axis=0)
    cols["Med_Scenario"] = run(_CENTRAL, "w_up", cin * f_med).sum(axis=0)
    cols["High_Scenario"] = run(_CENTRAL, "w_up", cin * f_high).sum(axis=0)
    if brackets:
        cols["SOC_BAU_20_min"] = run(_MIN, "w_min", cin_min).sum(axis=0)
        cols["SOC_BAU_20_max"] = run(_MAX, "w_max", cin_max).sum(axis=0)
        cols["Med_Scen_min"] = run(_MIN, "w_min", cin_min * (f_med - SSM_INPUT_SHIFT)).sum(axis=0)
        cols["Med_Scen_max"] = run(_MAX, "w_max", cin_max * (f_med + SSM_INPUT_SHIFT)).sum(axis=0)
        cols["SOC_t0_min"] = f8(warm["SOC_t0min"]).copy()
        cols["SOC_t0_max"] = f8(warm["SOC_t0max"]).copy()
    grouped = np.isin(lu, sum(SSM_GROUPS.values(), ()))
    zeroed = (*FILTERED_COLUMNS, "SOC_BAU_20_min", "SOC_BAU_20_max", "SOC_t0_min", "SOC_t0_max")
    for key in zeroed if brackets else zeroed[:4]:
        cols[key] = np.where(grouped, cols[key], 0.0)
    filtered = np.zeros(n, dtype=bool)
    lo, hi = FILTER_RANGE
    for key in FILTERED_COLUMNS if brackets else FILTERED_COLUMNS[:4]:
        with np.errstate(invalid="ignore"):
            bad = (cols[key] < lo) | (cols[key] > hi)
        cols[key][bad] = np.nan
        filtered |= bad
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["UNC_BAU"] = (cols["SOC_BAU_20_max"] - cols["SOC_BAU_20_min"]) / (
            2 * cols["SOC_BAU_20"]) * 100
        cols["UNC_t0"] = (cols["SOC_t0_max"] - cols["SOC_t0_min"]) / (2 * cols["SOC_t0"]) * 100
        cols["UNC_SSM"] = (cols["Med_Scen_max"] - cols["Med_Scen_min"]) / (
            2 * cols["Med_Scenario"]) * 100
    _apply_skip(cols, skipped, "SOC_t0")
    return FaoTable(cols, skipped, unstable & ~skipped, filtered & ~skipped, months)


def npp_reference(tmp: np.ndarray, prec: np.ndarray, land_use: np.ndarray) -> np.ndarray:
    """Return mean annual MIAMI NPP × land-use coefficient (t C/ha/yr), the warm-up divisor.

    ``tmp`` (°C) and ``prec`` (mm/month) ``(12·years, n)`` of 1981–2000; ``land_use`` ``(n,)``.
    """
    coef = np.nan_to_num(landuse.npp_coefficient(land_use), nan=0.0)
    return annual_npp(tmp, prec).mean(axis=0) * coef


DIAGNOSE_MASKED = True
"""The procedure keeps this scheme's diagnostics on pixels it masks (they explain the masks)."""


def diagnostic_names(config: PhaseConfig) -> tuple[str, ...]:
    """Return the names of the float64 diagnostics of :func:`run`.

    Inputs ``cin_eq``, ``cin_bau``, ``cin_t0`` (t C/ha/yr), ``iom`` (t C/ha), the forward
    climate's largest rate factor ``xi_max``, and ``{cin_eq,iom,cin_bau}_{min,max}`` of the
    bracket runs.
    """
    return ("cin_eq", "iom", "cin_bau", "cin_t0", "xi_max",
            *(f"{k}_{b}" for b in BRACKET_RUNS for k in ("cin_eq", "iom", "cin_bau")))


def run(px: Pixels, config: PhaseConfig) -> SchemeOutput:
    """Run FAO's three scripts on a block of valid pixels; return stocks, reasons, diagnostics.

    Reasons the scripts would drop or write as garbage, most specific last (it wins):
    ``FAO_IN_MODEL_FILTER``, ``FAO_EULER_UNSTABLE``, ``SPINUP_FAILED``,
    ``FAO_TEMPERATURE_UNDEFINED``.
    """
    soc, clay, lu = px.soc, px.clay, px.land_use
    tmp, prec, pet, cover = f8(px.tmp), f8(px.prec), f8(px.pet), f8(px.cover)
    n = soc.shape[0]
    n_spin = 12 * config.spinup_years
    cov_f = 1.0 - 0.4 * cover
    dr = landuse.dpm_rpm_ratio(lu)
    common = dict(depth_cm=config.depth_cm, evap_factor=config.evap_factor,
                  euler_criterion=config.fao_euler_criterion)
    w_tmp, w_prec, w_pet = tmp[n_spin:], prec[n_spin:], pet[n_spin:]
    spin = spin_up(soc=soc, clay=clay, tmp=climatology(tmp[:n_spin]),
                   prec=climatology(prec[:n_spin]), pet=climatology(pet[:n_spin]),
                   cover_factor=cov_f, dpm_ratio=dr, land_use=lu,
                   variant=config.fao_spinup_variant, brackets=config.uncertainty, **common)
    warm = warm_up(spin=spin.columns, soc=soc, clay=clay, tmp=w_tmp, prec=w_prec, pet=w_pet,
                   cover_factor=cov_f, dpm_ratio=dr, land_use=lu,
                   npp_mean=npp_reference(tmp[:n_spin], prec[:n_spin], lu),
                   brackets=config.uncertainty, **common)
    f_tmp = climatology(w_tmp)
    fwd = forward(warm=warm.columns, clay=clay, tmp=f_tmp, prec=climatology(w_prec),
                  pet=climatology(w_pet), cover_factor=cov_f, dpm_ratio=dr, land_use=lu,
                  ssm_factors=tuple(config.ssm_factors(lu)), years=config.forward_years,
                  brackets=config.uncertainty, **common)
    c = fwd.columns
    finals = {k: c[SCENARIO_TABLE[k].fao_column] for k in SCENARIOS}
    brackets = None
    if config.uncertainty:
        brackets = {b: {"t0": c[f"SOC_t0_{b}"], "bau": c[f"SOC_BAU_20_{b}"],
                        "ssm_med": c[f"Med_Scen_{b}"]} for b in BRACKET_RUNS}
    stocks = Stocks(c["SOC_t0"], finals, brackets)
    # Reasons, most specific last (later assignments win).
    reason = np.full(n, Reason.OK, dtype=np.uint8)
    reason[fwd.filtered] = Reason.FAO_IN_MODEL_FILTER
    reason[spin.unstable | warm.unstable | fwd.unstable] = Reason.FAO_EULER_UNSTABLE
    spin_keys = ("Cinput_EQ", "CIneq_min", "CIneq_max") if config.uncertainty else ("Cinput_EQ",)
    with np.errstate(invalid="ignore"):
        spin_bad = np.any([~(spin.columns[k] > 0) for k in spin_keys], axis=0)
    reason[spin_bad] = Reason.SPINUP_FAILED
    factors = (1.0, *TEMPERATURE_FACTORS) if config.uncertainty else (1.0,)
    with np.errstate(invalid="ignore"):
        cold = np.zeros(n, dtype=bool)
        for f in factors:
            for series in (tmp[:n_spin], w_tmp, f_tmp):
                cold |= (series * f < fao.FT_MIN_TEMPERATURE).any(axis=0)
    # NA months inside Euler runs are spline-filled as in R (``fao.filled_modifiers``): only a
    # pixel the scripts leave NA (analytical spin-up, a call without any defined month) keeps 6.
    stock_arrays = [stocks.t0, *finals.values(),
                    *(a for br in (brackets or {}).values() for a in br.values())]
    with np.errstate(invalid="ignore"):
        scripts_na = spin_bad | np.any([~np.isfinite(a) for a in stock_arrays], axis=0)
    reason[cold & scripts_na & ~fwd.filtered] = Reason.FAO_TEMPERATURE_UNDEFINED
    s, w = spin.columns, warm.columns
    xi_f = fao.rate_modifiers(f_tmp, climatology(w_prec), climatology(w_pet), clay, cov_f,
                              landuse.rate_factor(lu), depth_cm=config.depth_cm,
                              evap_factor=config.evap_factor)
    diag = {
        "cin_eq": s["Cinput_EQ"], "iom": s["IOM_pedotransfer"], "cin_bau": w["Cin_mean"],
        "cin_t0": w["Cin_t0"], "xi_max": xi_f.max(axis=0),
        "cin_eq_min": s["CIneq_min"], "iom_min": s["IOM_min"], "cin_bau_min": w["Cin_min"],
        "cin_eq_max": s["CIneq_max"], "iom_max": s["IOM_max"], "cin_bau_max": w["Cin_max"],
    }
    months = np.max([t.unstable_months for t in (spin, warm, fwd) if t.unstable_months is not None],
                    axis=0).astype(np.uint8)
    return SchemeOutput(stocks, reason, diag, {"EulerUnstableMonths": months})
