"""Tests of FAO's phases (gsocseq.model.fao_phases): quirks, skip rules, map entry point."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from gsocseq.model import fao, fao_phases, rothc
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.vocabulary import LAYERS, QUALITY_NODATA, Reason

WET = {"prec": 200.0, "pet": 50.0}  # P > PET every month: moisture factor 1


def _miami_c(t: float, p: float) -> float:
    """MIAMI NPP in t C/ha/yr, written out by hand (reference §3.4)."""
    return min(3000 / (1 + math.exp(1.315 - 0.119 * t)), 3000 * (1 - math.exp(-0.000664 * p))) \
        * 0.01 * 0.5


def _clim(n: int, t: float | np.ndarray, months: int = 12, prec: float = 200.0,
          pet: float = 50.0) -> dict[str, np.ndarray]:
    tmp = np.broadcast_to(np.asarray(t, dtype=float), (months, n)).copy()
    return {"tmp": tmp, "prec": np.full((months, n), prec), "pet": np.full((months, n), pet)}


def _spin(n=1, soc=50.0, clay=25.0, t=10.0, lu=2, variant="analytical", cov=0.7, **kw):
    clim = _clim(n, t, **kw)
    return fao_phases.spin_up(
        soc=np.full(n, soc), clay=np.full(n, clay), cover_factor=np.full((12, n), cov),
        dpm_ratio=np.full(n, 1.44), land_use=np.full(n, lu), variant=variant, **clim,
    )


def _ft(t: float) -> float:
    return 47.9 / (1 + math.exp(106 / (t + 18.3)))


# --- spin-up -------------------------------------------------------------------------------


def test_spin_up_analytical_columns_and_central_iom_quirk():
    table = _spin()
    c = table.columns
    assert tuple(c) == fao_phases.SPINUP_COLUMNS
    iom = 0.049 * 50.0**1.139
    assert c["SOC_FAO"][0] == 50.0
    assert c["SOC_pedotransfer"][0] == pytest.approx(50.0)
    assert c["IOM_pedotransfer"][0] == pytest.approx(iom)
    # brackets: SOC ×0.8 / ×1.2 but the *central* IOM (FAO's fIOM reads the global SOC)
    assert c["IOM_min"][0] == pytest.approx(iom)
    assert c["IOM_max"][0] == pytest.approx(iom)
    assert c["SOC_min"][0] == pytest.approx(40.0)
    assert c["SOC_max"][0] == pytest.approx(60.0)
    # climate not perturbed, clay ×0.9: xi = fT(10)·1·0.7 (wet) for every bracket
    xi = np.array([_ft(10.0) * 0.7])
    _, ceq_min = fao.analytical_equilibrium(xi, np.array([40.0]), np.array([22.5]),
                                            np.array([1.44]), np.array([iom]))
    assert c["CIneq_min"][0] == pytest.approx(ceq_min[0], rel=1e-12)
    _, self_consistent = fao.analytical_equilibrium(xi, np.array([40.0]), np.array([22.5]),
                                                    np.array([1.44]), np.array([0.8**1.139 * iom]))
    assert abs(c["CIneq_min"][0] - self_consistent[0]) > 0.01  # the quirk matters


def test_spin_up_analytical_bracket_clay_enters_the_moisture_factor():
    # Dry months: b depends on clay; the min bracket recomputes xi with clay ×0.9.
    table = _spin(clay=30.0, prec=60.0, pet=100.0)
    clim = _clim(1, 10.0, prec=60.0, pet=100.0)
    xi_min = fao.rate_modifiers(clim["tmp"], clim["prec"], clim["pet"], np.array([27.0]),
                                np.full((12, 1), 0.7), np.ones(1)).mean(axis=0)
    xi_central = fao.rate_modifiers(clim["tmp"], clim["prec"], clim["pet"], np.array([30.0]),
                                    np.full((12, 1), 0.7), np.ones(1)).mean(axis=0)
    assert xi_min[0] != pytest.approx(xi_central[0], rel=1e-3)
    iom = np.array([0.049 * 50.0**1.139])
    _, ceq_min = fao.analytical_equilibrium(xi_min, np.array([40.0]), np.array([27.0]),
                                            np.array([1.44]), iom)
    assert table.columns["CIneq_min"][0] == pytest.approx(ceq_min[0], rel=1e-12)


def test_spin_up_equilibrium_variant_bracket_iom_quirk_and_pedotransfer_pools():
    # Warm constant climate (xi ≈ 2): 500 years reach the steady state.
    table = _spin(t=20.0, variant="equilibrium", cov=0.8)
    c = table.columns
    iom = 0.049 * 50.0**1.139
    iom_min = 0.049 * 40.0**1.139
    xi_min = np.array([_ft(20.0 * 1.02) * 0.8])  # T ×1.02 (P ×0.95 stays wet)
    _, c_unit = fao.analytical_equilibrium(xi_min, np.array([1.0]), np.array([22.5]),
                                           np.array([1.44]), np.array([0.0]))
    active_per_input = 1.0 / c_unit[0]
    expected = (40.0 - iom_min) / (active_per_input + iom - iom_min)
    assert c["CIneq_min"][0] == pytest.approx(expected, rel=1e-4)
    assert c["IOM_min"][0] == pytest.approx(iom_min)  # PTF pools use the bracket IOM
    ptf = fao.pedotransfer_pools(np.array([50.0]), np.array([25.0]), np.array([iom]),
                                 np.array([2]))
    np.testing.assert_allclose([c[f"{p}_pedotransfer"][0] for p in ("DPM", "RPM", "BIO", "HUM")],
                               ptf[:4, 0])
    # central: Ceq = (SOC − IOM) / active per unit input of the central climate
    xi = np.array([_ft(20.0) * 0.8])
    _, c_central = fao.analytical_equilibrium(xi, np.array([1.0]), np.array([25.0]),
                                              np.array([1.44]), np.array([0.0]))
    assert c["Cinput_EQ"][0] == pytest.approx((50.0 - iom) * c_central[0], rel=1e-4)


def test_spin_up_skip_rules_and_classes_without_pools():
    n = 4
    clim = _clim(n, 10.0)
    clim["tmp"][3, 0] = np.nan
    soc = np.array([50.0, -1.0, 50.0, 50.0])
    table = fao_phases.spin_up(
        soc=soc, clay=np.full(n, 25.0), cover_factor=np.full((12, n), 0.7),
        dpm_ratio=np.full(n, 1.44), land_use=np.array([2, 2, 1, 2]), **clim,
    )
    c = table.columns
    np.testing.assert_array_equal(table.skipped, [True, True, False, False])
    for i in (0, 1):  # skipped: SOC_FAO = 0, NA elsewhere
        assert c["SOC_FAO"][i] == 0.0
        assert all(np.isnan(c[k][i]) for k in fao_phases.SPINUP_COLUMNS[1:])
    # class 1: SOC_FAO and Cinput_EQ written, all pools and brackets 0
    assert c["SOC_FAO"][2] == 50.0
    assert c["Cinput_EQ"][2] == pytest.approx(c["Cinput_EQ"][3])
    assert all(c[k][2] == 0.0 for k in fao_phases.SPINUP_COLUMNS[2:])


def test_spin_up_undefined_temperature_gives_nan_not_skip():
    table = _spin(t=np.array([-19.0] + [5.0] * 11)[:, None])
    assert not table.skipped[0]
    assert table.columns["SOC_FAO"][0] == 50.0
    assert math.isnan(table.columns["Cinput_EQ"][0])


def test_spin_up_paddy_input_is_0_4_times_the_crop_input():
    crop = _spin(lu=2).columns["Cinput_EQ"][0]
    paddy = _spin(lu=13).columns["Cinput_EQ"][0]
    assert paddy == pytest.approx(0.4 * crop, rel=1e-12)  # den ∝ 1/xi, xi ×0.4


# --- warm-up -------------------------------------------------------------------------------


def _warm(spin, years, t, prec=200.0, lu=None, npp_mean=None, n=1, clay=25.0):
    clim = _clim(n, t, months=12 * years, prec=prec)
    lu = np.full((years, n), 2) if lu is None else lu
    return fao_phases.warm_up(
        spin=spin.columns, soc=np.full(n, 50.0), clay=np.full(n, clay),
        cover_factor=np.full((12, n), 0.7), dpm_ratio=np.full((years, n), 1.44), land_use=lu,
        npp_mean=np.full(n, 4.0) if npp_mean is None else npp_mean, **clim,
    )


def test_warm_up_npp_scaled_inputs_recursion_and_central_divisor_for_brackets():
    spin = _spin()
    t_year = np.array([10.0, 12.0, 14.0])
    t = np.repeat(t_year, 12)[:, None]
    table = _warm(spin, 3, t, prec=50.0)  # 600 mm/yr
    npp = [_miami_c(ty, 600.0) * 0.53 for ty in t_year]
    ceq = spin.columns["Cinput_EQ"][0]
    cin = [ceq / 4.0 * npp[0]]
    cin += [cin[0] / npp[0] * npp[1], cin[0] / npp[0] * npp[1] / npp[1] * npp[2]]
    assert table.columns["Cin_mean"][0] == pytest.approx(np.mean(cin), rel=1e-12)
    assert math.isnan(table.columns["Cin_t0"][0])  # hard-coded 18th year: absent with 3 years
    npp_min = [_miami_c(ty * 1.02, 600.0 * 0.95) * 0.53 for ty in t_year]
    cin_min0 = spin.columns["CIneq_min"][0] / 4.0 * npp_min[0]  # central NPP_81_00 divisor
    expected_min = np.mean([cin_min0 * npp_min[w] / npp_min[0] for w in range(3)])
    assert table.columns["Cin_min"][0] == pytest.approx(expected_min, rel=1e-12)


def test_warm_up_cin_t0_is_the_18th_input():
    spin = _spin()
    t = np.repeat(np.linspace(8.0, 16.0, 20), 12)[:, None]
    table = _warm(spin, 20, t)
    ceq = spin.columns["Cinput_EQ"][0]
    expected = ceq / 4.0 * _miami_c(np.linspace(8.0, 16.0, 20)[17], 2400.0) * 0.53
    assert table.columns["Cin_t0"][0] == pytest.approx(expected, rel=1e-12)


def test_warm_up_zero_npp_year_breaks_the_recursion():
    # year 2 class 1 (no NPP coefficient): Cin_2 = 0, Cin_3 = 0/0 → NaN → nothing written.
    spin = _spin()
    lu = np.array([[2], [1], [2]])
    table = _warm(spin, 3, 10.0, lu=lu)
    assert not table.skipped[0]
    assert all(np.isnan(table.columns[k][0]) for k in fao_phases.WARMUP_COLUMNS)


def test_warm_up_from_equilibrium_with_constant_climate_stays_at_soc():
    # constant modifier + NPP ratio 1 → the analytical steady state is the Euler fixed point
    spin = _spin(t=12.0)
    npp = _miami_c(12.0, 2400.0) * 0.53
    table = _warm(spin, 5, 12.0, npp_mean=np.array([npp]))
    c = table.columns
    assert c["SOC_FAO"][0] == 50.0
    assert c["SOC_t0"][0] == pytest.approx(50.0, rel=1e-10)
    assert c["Cin_mean"][0] == pytest.approx(spin.columns["Cinput_EQ"][0], rel=1e-12)
    assert c["IOM_w_up"][0] == pytest.approx(0.049 * 50.0**1.139)


def test_warm_up_skip_rules():
    spin = _spin(n=3)
    spin.columns["Cinput_EQ"][1] = 0.0  # Ceq <= 0
    npp_mean = np.array([4.0, 4.0, np.nan])
    table = _warm(spin, 2, 10.0, n=3, npp_mean=npp_mean, lu=np.full((2, 3), 2))
    np.testing.assert_array_equal(table.skipped, [False, True, True])
    for i in (1, 2):
        assert table.columns["SOC_FAO"][i] == 0.0
        assert all(np.isnan(table.columns[k][i]) for k in fao_phases.WARMUP_COLUMNS[1:])


# --- forward -------------------------------------------------------------------------------


def _warm_table(n, soc=50.0, cin=4.0):
    cols = {k: np.full(n, np.nan) for k in fao_phases.WARMUP_COLUMNS}
    for sfx, f, tot in (("w_up", 1.0, "SOC_t0"), ("w_min", 0.8, "SOC_t0min"),
                        ("w_max", 1.2, "SOC_t0max")):
        parts = np.array([0.3, 7.0, 1.0, 36.7, 5.0]) * soc / 50.0 * f
        for p, v in zip(("DPM", "RPM", "BIO", "HUM", "IOM"), parts, strict=True):
            cols[f"{p}_{sfx}"] = np.full(n, v)
        cols[tot] = np.full(n, parts.sum())
    cols["Cin_mean"] = np.full(n, cin)
    cols["Cin_min"] = np.full(n, 0.8 * cin)
    cols["Cin_max"] = np.full(n, 1.2 * cin)
    return cols


def _forward(warm, lu, t=10.0, n=None, years=20):
    n = len(lu)
    clim = _clim(n, t)
    return fao_phases.forward(
        warm=warm, clay=np.full(n, 25.0), cover_factor=np.full((12, n), 0.7),
        dpm_ratio=np.full(n, 1.44), land_use=np.asarray(lu), years=years, **clim,
    )


def test_forward_scenarios_uncertainty_and_group_zeros():
    warm = _warm_table(2)
    table = _forward(warm, [2, 4])
    c = table.columns
    assert tuple(c) == fao_phases.FORWARD_COLUMNS
    assert c["Low_Scenario"][0] > c["SOC_BAU_20"][0]
    assert c["High_Scenario"][0] > c["Med_Scenario"][0] > c["Low_Scenario"][0]
    # SSM response is linear in the input factor: (High − BAU) = 4 · (Low − BAU)
    assert c["High_Scenario"][0] - c["SOC_BAU_20"][0] == pytest.approx(
        4.0 * (c["Low_Scenario"][0] - c["SOC_BAU_20"][0]), rel=1e-9)
    t0, t0min, t0max = 50.0, 40.0, 60.0
    assert c["SOC_t0"][0] == pytest.approx(t0)
    assert c["UNC_t0"][0] == pytest.approx((t0max - t0min) / (2 * t0) * 100)  # 20 %
    assert c["UNC_BAU"][0] == pytest.approx(
        (c["SOC_BAU_20_max"][0] - c["SOC_BAU_20_min"][0]) / (2 * c["SOC_BAU_20"][0]) * 100)
    assert c["LandUse"][1] == 4.0
    # class 4 is in no SSM group: totals 0, BAU pools still written
    for k in ("SOC_BAU_20", "Low_Scenario", "Med_Scen_max", "SOC_t0_min", "SOC_BAU_20_max"):
        assert c[k][1] == 0.0
    assert c["DPM_BAU_20"][1] == pytest.approx(c["DPM_BAU_20"][0])


def test_forward_med_brackets_use_input_factor_minus_and_plus_0_15():
    warm = _warm_table(1)
    table = _forward(warm, [3])
    # Med_Scen_min with 0.95·Cin_min vs BAU_min with Cin_min: difference = −0.05·response
    c = table.columns
    warm_zero = _warm_table(1, cin=0.0)
    base_min = _forward(warm_zero, [3]).columns["SOC_BAU_20_min"][0]
    response_min = c["SOC_BAU_20_min"][0] - base_min
    assert c["Med_Scen_min"][0] == pytest.approx(base_min + 0.95 * response_min, rel=1e-9)


def test_forward_in_model_filter_and_skip():
    warm = _warm_table(3, soc=400.0, cin=30.0)  # stays above 300 t C/ha
    warm_ok = _warm_table(3)
    for k in warm:
        warm[k][1:] = warm_ok[k][1:]
    warm["Cin_mean"][2] = np.nan
    table = _forward(warm, [2, 2, 2])
    c = table.columns
    np.testing.assert_array_equal(table.filtered, [True, False, False])
    for k in fao_phases.FILTERED_COLUMNS:
        assert math.isnan(c[k][0])
    assert c["SOC_BAU_20_min"][0] > 300  # BAU brackets are not filtered (as the script)
    assert c["SOC_t0"][0] == pytest.approx(400.0)
    assert np.isfinite(c["SOC_BAU_20"][1])
    assert table.skipped[2]
    assert c["SOC_t0"][2] == 0.0
    assert all(np.isnan(c[k][2]) for k in fao_phases.FORWARD_COLUMNS[1:])


# --- map entry point -----------------------------------------------------------------------


def _map_inputs(n, t=12.0, months=480):
    return {
        "soc": np.full(n, 50.0), "clay": np.full(n, 25.0), "land_use": np.full(n, 2, np.uint8),
        "tmp": np.full((months, n), t), "prec": np.full((months, n), 150.0),
        "pet": np.full((months, n), 60.0), "cover": np.full((12, n), 0.75),
    }


def test_run_fao_phases_constant_climate_equilibrium_and_layers():
    inp = _map_inputs(3)
    inp["land_use"] = np.array([2, 13, 1], np.uint8)
    res = run_phases(config=PhaseConfig(scheme="fao"), **inp)
    assert set(res.layers) == set(LAYERS)
    assert all(v.dtype == np.float32 and v.shape == (3,) for v in res.layers.values())
    np.testing.assert_array_equal(res.reason, [Reason.OK, Reason.OK, Reason.NOT_AGRICULTURAL])
    for i in (0, 1):  # at equilibrium: nothing changes under BAU
        assert res.layers["T0"][i] == pytest.approx(50.0, rel=1e-6)
        assert res.layers["finalSOC_BAU"][i] == pytest.approx(50.0, rel=1e-6)
        assert abs(res.layers["ASR_BAU"][i]) < 1e-5
    rel = res.layers["RelDiff_SSM2"][0]
    assert res.layers["RSR_SSM2"][0] == pytest.approx(rel / 20.0, rel=1e-6)
    assert res.layers["RelDiff_SSM3"][0] == pytest.approx(2.0 * rel, rel=1e-4)
    assert res.diagnostics["cin_eq"][1] == pytest.approx(0.4 * res.diagnostics["cin_eq"][0])
    assert np.isnan(res.layers["T0"][2])
    assert res.layers["T0_Uncertainty"][0] > 0


def test_run_fao_phases_reason_codes():
    inp = _map_inputs(6)
    inp["tmp"][5:240:12, 1] = -25.0  # June of the spin-up climatology below −18.3 °C: NA
    inp["tmp"][:, 2] = 30.0  # hot
    inp["cover"][:, 2] = 0.0  # bare: xi ≈ 4.8 > 2.4
    inp["soc"][3] = 400.0  # stays ~400 t C/ha > 300
    inp["clay"][4] = np.nan
    inp["tmp"][300, 5] = -25.0  # a single cold warm-up month: spline-filled as in R, modelled
    res = run_phases(config=PhaseConfig(scheme="fao"), **inp)
    np.testing.assert_array_equal(res.reason, [
        Reason.OK, Reason.FAO_TEMPERATURE_UNDEFINED, Reason.FAO_EULER_UNSTABLE,
        Reason.FAO_IN_MODEL_FILTER, Reason.MISSING_INPUT, Reason.OK,
    ])
    for name in LAYERS:
        assert np.isnan(res.layers[name][1:5]).all()
        assert np.isfinite(res.layers[name][[0, 5]]).all()
    assert 45.0 < res.layers["T0"][5] < 55.0


def test_run_fao_phases_without_uncertainty_and_equilibrium_variant():
    inp = _map_inputs(2)
    res = run_phases(
        config=PhaseConfig(scheme="fao", uncertainty=False, fao_spinup_variant="equilibrium"),
        **inp,
    )
    np.testing.assert_array_equal(res.reason, [Reason.OK, Reason.OK])
    assert np.isnan(res.layers["T0_Uncertainty"]).all()
    assert np.isnan(res.diagnostics["cin_eq_min"]).all()  # bracket runs skipped
    assert np.isfinite(res.diagnostics["cin_eq"]).all()
    # pedotransfer pools are not the model's steady state: the warm-up drifts a little
    assert res.layers["T0"][0] == pytest.approx(50.0, rel=1e-2)
    assert res.layers["T0"][0] != pytest.approx(50.0, rel=1e-4)


def test_run_fao_phases_rejects_wrong_month_count():
    inp = _map_inputs(2, months=360)
    with pytest.raises(ValueError, match="tmp must have shape"):
        run_phases(config=PhaseConfig(scheme="fao"), **inp)


# --- fao vs exact --------------------------------------------------------------------------


def test_fao_and_exact_equilibrium_stocks_agree_within_two_percent():
    """Active C at equilibrium per 1 t C/ha/yr input, wet climate (b = 1), fully covered.

    The schemes differ by the temperature constants (SoilR 47.9/106/18.3 vs 47.91/106.06/18.27),
    the monthly exponential decay with inputs after decay (exact) vs the continuous steady state
    of the mean modifier (fao). Measured: fao is 1.0–1.4 % lower for clay 10–40 %, T 5–20 °C.
    """
    n = 3
    tmp = np.tile(np.array([5.0, 12.0, 20.0]), (12, 1))
    prec, pet = np.full((12, n), 100.0), np.full((12, n), 40.0)
    clay, dr = np.array([10.0, 25.0, 40.0]), np.full(n, 1.44)
    site = rothc.site(tmp=tmp, prec=prec, pet=pet, cover=np.ones((12, n)), dpm_rpm=dr, clay=clay,
                      depth=np.full(n, 30.0), evap_factor=1.0)
    pools, _ = rothc.equilibrium(np.zeros(n), site, c_inp=np.full((12, n), 1 / 12))
    xi = fao.rate_modifiers(tmp, prec, pet, clay, np.full((12, n), 0.6), np.ones(n))
    _, ceq = fao.analytical_equilibrium(xi.mean(axis=0), np.ones(n), clay, dr, np.zeros(n))
    exact = pools.sum(axis=1)
    fao_active = 1.0 / ceq
    rel = exact / fao_active - 1.0
    assert np.all(rel > 0.005)
    assert np.all(rel < 0.02)


def test_warm_summer_month_above_2_4_masked_by_month_rule_kept_by_cycle_rule():
    # January 25 °C, covered share 0 in January only (c = 1): xi ≈ 3.9 in one month. The "month"
    # rule masks it; with the "cycle" rule (the default) the year's DPM amplification stays ≪ 1,
    # the run is finite and plausible → modelled.
    inp = _map_inputs(1)
    inp["tmp"][0::12] = 25.0
    inp["cover"][0] = 0.0
    res = run_phases(config=PhaseConfig(scheme="fao", fao_euler_criterion="month"), **inp)
    assert res.reason[0] == Reason.FAO_EULER_UNSTABLE
    assert np.isnan(res.layers["T0"][0])
    cyc = run_phases(config=PhaseConfig(scheme="fao"), **inp)
    assert cyc.reason[0] == Reason.OK
    assert cyc.diagnostics["xi_max"][0] > 2.4
    assert 40.0 < cyc.layers["T0"][0] < 60.0
    # one default for the maps and the per-point tables (``gsocseq fao-points``)
    assert PhaseConfig().fao_euler_criterion == "cycle"
    assert inspect.signature(fao_phases.forward).parameters["euler_criterion"].default == "cycle"


def test_fao_quality_layer_counts_unstable_months_and_is_kept_where_masked():
    inp = _map_inputs(3)
    inp["tmp"][0::12, 0] = 25.0  # January warm and bare: xi ≈ 3.9 in one month a year
    inp["cover"][0, 0] = 0.0
    inp["soc"][2] = np.nan  # never run: nodata
    month = run_phases(config=PhaseConfig(scheme="fao", fao_euler_criterion="month"), **inp)
    cycle = run_phases(config=PhaseConfig(scheme="fao"), **inp)
    for res in (month, cycle):
        q = res.quality["EulerUnstableMonths"]
        assert q.dtype == np.uint8
        np.testing.assert_array_equal(q, [1, 0, QUALITY_NODATA])
    assert month.reason[0] == Reason.FAO_EULER_UNSTABLE and cycle.reason[0] == Reason.OK
    assert run_phases(config=PhaseConfig(scheme="exact"), **inp).quality == {}


def test_fao_and_exact_schemes_agree_on_rates_for_a_constant_climate():
    # Both schemes keep an equilibrium stock under BAU; the SSM response differs by the
    # integration scheme only (measured 0.5–0.6 % for crops/grass at 12 °C, b = 1, c = 0.68).
    inp = _map_inputs(2)
    inp["land_use"] = np.array([2, 3], np.uint8)
    fao_res = run_phases(config=PhaseConfig(scheme="fao"), **inp)
    exact = run_phases(config=PhaseConfig(scheme="exact"), **inp)
    np.testing.assert_allclose(fao_res.layers["T0"], exact.layers["T0"], rtol=1e-5)
    rel = fao_res.layers["RSR_SSM3"] / exact.layers["RSR_SSM3"] - 1.0
    assert np.all(np.abs(rel) < 0.02)
    assert np.all(np.abs(rel) > 1e-4)  # not the same computation
