"""Tests of the GSOCseq procedure on plain arrays (exact scheme)."""

import dataclasses

import numpy as np
import pytest

from gsocseq.errors import InputValidationError
from gsocseq.model import exact, phases, rothc
from gsocseq.model.layers import SchemeOutput, Stocks
from gsocseq.model.phases import PhaseConfig, classify_pixels, run_phases
from gsocseq.vocabulary import LAYERS, SCENARIOS, Reason

SPIN, WARM = 20, 20
N_MONTHS = 12 * (SPIN + WARM)
MONTH = np.arange(12)


def _climate(n, seed=0, varying=True):
    """Seasonal climate for n pixels, (N_MONTHS, n); year-to-year noise when varying."""
    rng = np.random.default_rng(seed)
    t_mean = rng.uniform(2.0, 24.0, n)
    t_amp = rng.uniform(2.0, 12.0, n)
    season = np.cos(2 * np.pi * (MONTH - 6) / 12)[:, None]
    tmp12 = t_mean + t_amp * season
    prec12 = rng.uniform(10.0, 120.0, (12, n))
    pet12 = np.clip(20.0 + 4.0 * tmp12 + rng.uniform(-5, 5, (12, n)), 0.0, None)
    tmp, prec, pet = (np.tile(a, (SPIN + WARM, 1)) for a in (tmp12, prec12, pet12))
    if varying:
        # a warming trend in the warm-up years plus monthly noise
        year = np.repeat(np.arange(SPIN + WARM), 12)[:, None]
        tmp = tmp + rng.normal(0, 1.0, tmp.shape) + np.where(year >= SPIN, 0.05 * (year - SPIN), 0)
        prec = prec * rng.uniform(0.6, 1.4, prec.shape)
        pet = pet * rng.uniform(0.9, 1.1, pet.shape)
    cover = rng.uniform(0.0, 1.0, (12, n))
    return tmp, prec, pet, cover


def _inputs(n=6, seed=0, varying=True):
    rng = np.random.default_rng(seed + 100)
    tmp, prec, pet, cover = _climate(n, seed, varying)
    return {
        "soc": rng.uniform(20.0, 90.0, n),
        "clay": rng.uniform(5.0, 60.0, n),
        "land_use": rng.choice(np.array([2, 3, 5, 12, 13], dtype=np.uint8), n),
        "tmp": tmp, "prec": prec, "pet": pet, "cover": cover,
    }


@pytest.fixture(scope="module")
def varying():
    inputs = _inputs(n=8, seed=1)
    return inputs, run_phases(**inputs)


@pytest.fixture(scope="module")
def constant():
    inputs = _inputs(n=5, seed=2, varying=False)
    return inputs, run_phases(**inputs)


def test_result_structure(varying):
    inputs, res = varying
    n = inputs["soc"].size
    assert list(res.layers) == list(LAYERS)
    assert all(a.dtype == np.float32 and a.shape == (n,) for a in res.layers.values())
    assert res.reason.dtype == np.uint8 and res.reason.shape == (n,)
    assert (res.reason == Reason.OK).all()
    assert all(np.isfinite(a).all() for a in res.layers.values())
    for key in ("cin_eq", "iom", "cin_bau"):
        assert res.diagnostics[key].dtype == np.float64 and np.isfinite(res.diagnostics[key]).all()


def test_constant_climate_keeps_observed_soc(constant):
    """Warm-up and forward in the spin-up climate stay at the spin-up steady state."""
    inputs, res = constant
    soc = inputs["soc"]
    np.testing.assert_allclose(res.layers["T0"], soc, rtol=2e-6)
    np.testing.assert_allclose(res.layers["finalSOC_BAU"], soc, rtol=2e-6)
    np.testing.assert_allclose(res.diagnostics["cin_bau"], res.diagnostics["cin_eq"], rtol=1e-12)
    np.testing.assert_allclose(res.diagnostics["iom"], 0.049 * soc**1.139, rtol=1e-12)
    assert np.abs(res.layers["ASR_BAU"]).max() < 1e-4


def test_constant_climate_uncertainties_are_hand_computable(constant):
    """Brackets stay at 0.8·SOC and 1.2·SOC: U = 100·0.4/2 = 20 %, ASR_BAU: 20·√2/2 %."""
    _, res = constant
    np.testing.assert_allclose(res.layers["T0_Uncertainty"], 20.0, rtol=1e-5)
    np.testing.assert_allclose(res.layers["BAU_Uncertainty"], 20.0, rtol=1e-5)
    np.testing.assert_allclose(res.layers["ASR_BAU_Uncertainty"], 20.0 / np.sqrt(2), rtol=1e-5)


def test_t0_in_a_constant_climate_equals_observed_soc_to_rounding(constant):
    inputs, _ = constant
    res = run_phases(**inputs, config=PhaseConfig(uncertainty=False))
    np.testing.assert_allclose(res.diagnostics["t0"], inputs["soc"], rtol=1e-11)
    np.testing.assert_allclose(res.layers["T0"], inputs["soc"].astype(np.float32), rtol=1e-6)
    assert all(np.isnan(res.layers[k]).all() for k in LAYERS if k.endswith("_Uncertainty"))
    assert "cin_eq_min" not in res.diagnostics


def test_layer_formulas(varying):
    _, res = varying
    lay = {k: v.astype(np.float64) for k, v in res.layers.items()}
    for s in ("BAU", "SSM1", "SSM2", "SSM3"):
        np.testing.assert_allclose(lay[f"AbsDiff_{s}"], lay[f"finalSOC_{s}"] - lay["T0"], atol=1e-4)
        np.testing.assert_allclose(lay[f"ASR_{s}"], lay[f"AbsDiff_{s}"] / 20.0, atol=1e-5)
    for s in ("SSM1", "SSM2", "SSM3"):
        np.testing.assert_allclose(
            lay[f"RelDiff_{s}"], lay[f"finalSOC_{s}"] - lay["finalSOC_BAU"], atol=1e-4
        )
        np.testing.assert_allclose(lay[f"RSR_{s}"], lay[f"RelDiff_{s}"] / 20.0, atol=1e-5)
    # uncertainty layers from the FAO formulas, recomputed from the stock layers
    u0, ub, us = lay["T0_Uncertainty"], lay["BAU_Uncertainty"], lay["SSM_Uncertainty"]
    t0, bau = lay["T0"], lay["finalSOC_BAU"]
    expect = np.sqrt((ub * bau) ** 2 + (u0 * t0) ** 2) / np.abs(t0 + bau)
    np.testing.assert_allclose(lay["ASR_BAU_Uncertainty"], expect, rtol=1e-5)
    for s in ("SSM1", "SSM2", "SSM3"):
        f = lay[f"finalSOC_{s}"]
        expect = np.sqrt((us * f) ** 2 + (u0 * t0) ** 2) / np.abs(t0 + f)
        np.testing.assert_allclose(lay[f"ASR_{s}_Uncertainty"], expect, rtol=1e-5)
        expect = np.sqrt((us * f) ** 2 + (ub * bau) ** 2) / np.abs(bau + f)
        np.testing.assert_allclose(lay[f"RSR_{s}_Uncertainty"], expect, rtol=1e-5)


def test_scenarios_are_ordered(varying):
    _, res = varying
    lay = res.layers
    assert (lay["finalSOC_SSM3"] > lay["finalSOC_SSM2"]).all()
    assert (lay["finalSOC_SSM2"] > lay["finalSOC_SSM1"]).all()
    assert (lay["finalSOC_SSM1"] > lay["finalSOC_BAU"]).all()
    assert (lay["RSR_SSM1"] > 0).all()


def test_brackets_bracket_the_central_run(varying):
    """The min run (less SOC, warmer, drier, less clay) ends below, the max run above."""
    _, res = varying
    for name in ("T0_Uncertainty", "BAU_Uncertainty", "SSM_Uncertainty"):
        u = res.layers[name]
        assert ((u > 5.0) & (u < 60.0)).all(), (name, u)
    d = res.diagnostics
    assert (d["iom_min"] < d["iom"]).all() and (d["iom"] < d["iom_max"]).all()
    np.testing.assert_allclose(d["iom_max"], 0.049 * (1.2 * _soc(varying)) ** 1.139, rtol=1e-12)
    t0 = res.layers["T0"]
    assert (d["t0_min"] < t0).all() and (t0 < d["t0_max"]).all()
    bau = res.layers["finalSOC_BAU"]
    assert (d["bau_min"] < bau).all() and (bau < d["bau_max"]).all()
    # SSM medium brackets use input factors 1.10 -/+ 0.15: below / above their own BAU bracket
    assert (d["ssm_med_min"] < d["bau_min"]).all() and (d["ssm_med_max"] > d["bau_max"]).all()
    np.testing.assert_allclose(
        res.layers["T0_Uncertainty"], 100 * (d["t0_max"] - d["t0_min"]) / (2 * t0), rtol=1e-5
    )
    np.testing.assert_allclose(
        res.layers["SSM_Uncertainty"],
        100 * (d["ssm_med_max"] - d["ssm_med_min"]) / (2 * res.layers["finalSOC_SSM2"]), rtol=1e-5,
    )


def _soc(fixture):
    return fixture[0]["soc"]


def test_warmup_input_follows_the_miami_npp_ratio(varying):
    """cin_bau = cin_eq · mean_y NPP_y / mean NPP_1981-2000 (MIAMI recomputed here)."""
    inputs, res = varying
    t, p = inputs["tmp"], inputs["prec"]
    t_y = t.reshape(SPIN + WARM, 12, -1).mean(axis=1)
    p_y = p.reshape(SPIN + WARM, 12, -1).sum(axis=1)
    npp = np.minimum(3000 / (1 + np.exp(1.315 - 0.119 * t_y)), 3000 * (1 - np.exp(-0.000664 * p_y)))
    ratio = npp[SPIN:].mean(axis=0) / npp[:SPIN].mean(axis=0)
    np.testing.assert_allclose(res.diagnostics["cin_bau"], res.diagnostics["cin_eq"] * ratio, rtol=1e-10)
    assert not np.allclose(ratio, 1.0)  # the test climate does change NPP


def test_against_month_by_month_reference():
    """Whole procedure re-done the slow way with rothc.simulate: long spin-up, 4 direct forward runs."""
    inputs = _inputs(n=2, seed=5)
    inputs["land_use"] = np.array([13, 3], dtype=np.uint8)  # paddy (DPM/RPM 1.44, x0.4), grass 0.67
    res = run_phases(**inputs, config=PhaseConfig(uncertainty=False))
    n = 2
    dr = np.array([1.44, 0.67])
    rate = np.array([0.4, 1.0])
    kw = dict(dpm_rpm=dr, clay=inputs["clay"], depth=np.full(n, 30.0), evap_factor=1.0,
              rate_modifier=rate)
    t, p, e, cov = inputs["tmp"], inputs["prec"], inputs["pet"], inputs["cover"]
    clim = [a[: 12 * SPIN].reshape(SPIN, 12, n).mean(axis=0) for a in (t, p, e)]
    soc = inputs["soc"]
    iom = 0.049 * soc**1.139
    # spin-up: 20000 years of the climatology with 1 t C/ha/yr (slow paddy HUM pool converges to
    # ~1e-9); active C is linear in the input
    years = 20000
    pools0 = np.zeros((n, 5))
    pools0[:, 4] = iom
    unit, smd = rothc.simulate(
        pools0, np.zeros(n), rothc.site(tmp=clim[0], prec=clim[1], pet=clim[2], cover=cov, **kw),
        c_inp=np.full((12, n), 1.0 / 12), repeat=years,
    )
    cin_eq = (soc - iom) / unit[:, :4].sum(axis=1)
    np.testing.assert_allclose(res.diagnostics["cin_eq"], cin_eq, rtol=1e-8)
    pools = unit.copy()
    pools[:, :4] *= cin_eq[:, None]
    # warm-up, month by month
    w = slice(12 * SPIN, None)
    t_y = t[w].reshape(WARM, 12, n).mean(axis=1)
    p_y = p[w].reshape(WARM, 12, n).sum(axis=1)
    npp = np.minimum(3000 / (1 + np.exp(1.315 - 0.119 * t_y)), 3000 * (1 - np.exp(-0.000664 * p_y)))
    ts = t[: 12 * SPIN].reshape(SPIN, 12, n).mean(axis=1)
    ps = p[: 12 * SPIN].reshape(SPIN, 12, n).sum(axis=1)
    npp_ref = np.minimum(3000 / (1 + np.exp(1.315 - 0.119 * ts)),
                         3000 * (1 - np.exp(-0.000664 * ps))).mean(axis=0)
    cin_y = cin_eq * npp / npp_ref
    pools, smd = rothc.simulate(
        pools, smd, rothc.site(tmp=t[w], prec=p[w], pet=e[w], cover=np.tile(cov, (WARM, 1)), **kw),
        c_inp=np.repeat(cin_y / 12, 12, axis=0),
    )
    t0 = pools.sum(axis=1)
    np.testing.assert_allclose(res.diagnostics["t0"], t0, rtol=1e-9)
    np.testing.assert_allclose(res.layers["T0"], t0, rtol=1e-6)
    fclim = [a[w].reshape(WARM, 12, n).mean(axis=0) for a in (t, p, e)]
    for scen, f in (("BAU", 1.0), ("SSM1", 1.05), ("SSM2", 1.10), ("SSM3", 1.20)):
        forward = rothc.site(tmp=np.tile(fclim[0], (20, 1)), prec=np.tile(fclim[1], (20, 1)),
                             pet=np.tile(fclim[2], (20, 1)), cover=np.tile(cov, (20, 1)), **kw)
        final, _ = rothc.simulate(
            pools, smd, forward, c_inp=np.tile(f * cin_y.mean(axis=0) / 12, (240, 1)),
        )
        np.testing.assert_allclose(res.layers[f"finalSOC_{scen}"], final.sum(axis=1), rtol=1e-6)


def test_pixel_result_independent_of_neighbours_and_blocking(varying, monkeypatch):
    inputs, res = varying
    order = np.array([5, 2, 7])
    sub = {k: (v[..., order]) for k, v in inputs.items()}
    alone = run_phases(**sub)
    monkeypatch.setattr(phases, "BLOCK_SIZE", 2)
    blocked = run_phases(**inputs)
    for name in LAYERS:
        np.testing.assert_array_equal(alone.layers[name], res.layers[name][order])
        np.testing.assert_array_equal(blocked.layers[name], res.layers[name])


def test_masked_pixels_get_reason_codes_and_nan(varying):
    inputs, res = varying
    bad = {k: v.copy() for k, v in inputs.items()}
    bad["land_use"][0] = 4                      # tree cover: not modelled
    bad["tmp"][300, 1] = np.nan                 # missing climate month
    bad["clay"][2] = 120.0                      # out of range
    bad["cover"][3, 3] = 1.5                    # out of range
    bad["soc"][4] = -3.0                        # out of range
    bad["soc"][5] = 0.0                         # no positive equilibrium input
    bad["prec"][:, 6] = 0.0                     # no rain ever: NPP ratio 0/0
    out = run_phases(**bad)
    expected = [Reason.NOT_AGRICULTURAL, Reason.MISSING_INPUT, Reason.INPUT_OUT_OF_RANGE,
                Reason.INPUT_OUT_OF_RANGE, Reason.INPUT_OUT_OF_RANGE, Reason.SPINUP_FAILED,
                Reason.NON_FINITE_RESULT, Reason.OK]
    assert out.reason.tolist() == [int(r) for r in expected]
    for name in LAYERS:
        assert np.isnan(out.layers[name][:7]).all(), name
        assert out.layers[name][7] == res.layers[name][7], name
    assert np.isnan(out.diagnostics["cin_eq"][:7]).all()


def test_classification_missing_wins_over_out_of_range(varying):
    inputs, _ = varying
    bad = {k: v.copy() for k, v in inputs.items()}
    bad["tmp"][10, 0] = np.inf                  # non-finite ...
    bad["pet"][20, 0] = -60.0                   # ... and out of range in another month
    bad["prec"][30, 1] = -np.inf
    bad["cover"][4, 2] = np.nan
    bad["pet"][5, 3] = 1e6                      # only out of range
    bad["tmp"][479, 4] = 60.5                   # the last month counts
    got = classify_pixels(**bad).tolist()
    missing, out_of_range = int(Reason.MISSING_INPUT), int(Reason.INPUT_OUT_OF_RANGE)
    assert got == [missing] * 3 + [out_of_range] * 2 + [int(Reason.OK)] * 3


def test_cold_site_without_decomposition_fails_spinup():
    inputs = _inputs(n=2, seed=3)
    inputs["tmp"][:, 0] = -20.0  # a = 0 every month: no steady state
    out = run_phases(**inputs)
    assert out.reason.tolist() == [Reason.SPINUP_FAILED, Reason.OK]


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("soc", np.ones((3, 2)), "soc"),
        ("clay", np.ones(5), "clay"),
        ("tmp", np.ones((N_MONTHS - 12, 6)), r"tmp must have shape \(480, 6\)"),
        ("cover", np.ones((13, 6)), r"cover must have shape \(12, 6\)"),
        ("land_use", np.full(6, 2.0), "land_use must be an integer"),
        ("prec", np.full((N_MONTHS, 6), "x"), "prec must be a real numeric"),
    ],
)
def test_whole_array_errors_name_the_argument(name, value, match):
    inputs = _inputs(n=6)
    inputs[name] = value
    with pytest.raises(InputValidationError, match=match):
        run_phases(**inputs)


def test_fao_scheme_dispatches(monkeypatch):
    """The procedure hands the scheme the valid pixels and turns its stocks into the 29 layers."""
    import types

    calls = {}
    fake = types.ModuleType("fake_scheme")

    def run(px, config):
        calls["px"], calls["config"] = px, config
        stock = px.soc * 2.0
        stocks = Stocks(stock, {k: stock + 1.0 for k in SCENARIOS}, None)
        return SchemeOutput(stocks, np.zeros(px.n, np.uint8), {"x": px.clay})

    fake.run = run
    fake.diagnostic_names = lambda config: ("x",)
    monkeypatch.setitem(phases.SCHEMES, "fao", fake)
    cfg = dataclasses.replace(PhaseConfig(), scheme="fao", uncertainty=False)
    inputs = _inputs(n=2)
    res = run_phases(**inputs, config=cfg)
    assert calls["config"] is cfg
    np.testing.assert_array_equal(calls["px"].soc, inputs["soc"])
    np.testing.assert_allclose(res.layers["T0"], 2.0 * inputs["soc"], rtol=1e-7)
    np.testing.assert_allclose(res.layers["ASR_SSM2"], 1.0 / 20, rtol=1e-6)
    np.testing.assert_array_equal(res.diagnostics["x"], inputs["clay"])


def test_forward_response_matches_monthly_steps_with_and_without_drifting_deficit():
    """Pixel 0: deficit drifts for years (constant small deficit), pixel 1: periodic from year 2."""
    n = 2
    tmp = np.tile(np.array([8.0, 15.0])[None, :], (12, 1)) + np.arange(12)[:, None]
    prec = np.column_stack([np.full(12, 40.0), 30.0 + 60.0 * (np.arange(12) % 2)])
    pet = np.column_stack([np.full(12, 41.0), np.full(12, 45.0)])  # pixel 0: -1 mm every month
    cover = np.ones((12, n))
    site = rothc.site(tmp=tmp, prec=prec, pet=pet, cover=cover, dpm_rpm=np.array([1.44, 0.67]),
                      clay=np.array([30.0, 20.0]), depth=np.full(n, 30.0),
                      rate_modifier=np.array([1.0, 0.4]), evap_factor=1.0)
    pools = np.array([[0.5, 5.0, 1.0, 30.0, 3.0], [0.2, 3.0, 0.8, 25.0, 2.0]])
    smd = np.array([0.0, -10.0])
    cin = np.array([2.0, 1.5])
    years = 20
    bau, response = exact.forward_response(pools, smd, cin, site, years)
    for f in (1.0, 1.2):
        end, _ = rothc.simulate(pools, smd, site, c_inp=np.tile(f * cin / 12, (12, 1)),
                                repeat=years)
        np.testing.assert_allclose(bau + (f - 1.0) * response, end.sum(axis=1), rtol=1e-10)
    # the drifting pixel really takes the month-by-month path: its deficit is still moving in year 2
    m1 = rothc.annual_affine_map(site, smd0=smd)
    assert m1.smd_end[0] == pytest.approx(-12.0)


def test_ssm_increase_scales_the_relative_gain_linearly(varying):
    """RelDiff is proportional to the increase: increases 0 / 0.5 / 1.0 give 0 / x / 2x."""
    inputs, _ = varying
    res = run_phases(**inputs, config=PhaseConfig(ssm_increase=((0.0, 0.5, 1.0),) * 3,
                                                  uncertainty=False))
    np.testing.assert_allclose(res.layers["finalSOC_SSM1"], res.layers["finalSOC_BAU"], rtol=1e-6)
    np.testing.assert_allclose(
        res.layers["RelDiff_SSM3"], 2 * res.layers["RelDiff_SSM2"], rtol=1e-4, atol=1e-5
    )
    assert (res.layers["RelDiff_SSM2"] > 0.1).all()


def test_ssm_increase_per_land_use_group_and_zero_increase_is_bau(varying):
    """Each pixel takes its group's increases; with every increase 0 each SSM layer is BAU."""
    inputs, ref = varying
    lu = inputs["land_use"]
    crops = np.isin(lu, (2, 12))
    assert crops.any() and (~crops).any()
    cfg = PhaseConfig(ssm_increase=((0.05, 0.10, 0.20), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    res = run_phases(**inputs, config=cfg)
    for label in ("SSM1", "SSM2", "SSM3"):
        np.testing.assert_array_equal(res.layers[f"finalSOC_{label}"][crops],
                                      ref.layers[f"finalSOC_{label}"][crops])
        np.testing.assert_array_equal(res.layers[f"finalSOC_{label}"][~crops],
                                      res.layers["finalSOC_BAU"][~crops])
        np.testing.assert_array_equal(res.layers[f"RelDiff_{label}"][~crops], 0.0)
    for scheme in ("exact", "fao"):
        zero = run_phases(**inputs, config=PhaseConfig(scheme=scheme, ssm_increase=((0, 0, 0),) * 3))
        ok = zero.reason == Reason.OK
        assert ok.any()
        for label in ("SSM1", "SSM2", "SSM3"):
            np.testing.assert_array_equal(zero.layers[f"finalSOC_{label}"][ok],
                                          zero.layers["finalSOC_BAU"][ok])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"spinup_years": 0}, "spinup_years"),
        ({"ssm_increase": ((0.05, 0.1, 0.2), (0.2, 0.1, 0.3), (0, 0, 0))},
         r"ssm_increase\['grass'\] .* non-decreasing"),
        ({"ssm_increase": ((0.05, -0.1, 0.2),) * 3}, r"ssm_increase\['crops'\] .* in \[0, 1\]"),
        ({"ssm_increase": ((0.05, 0.1, 1.2),) * 3}, r"in \[0, 1\]"),
        ({"ssm_increase": ((0.05, 0.1, 0.2),) * 2}, "one \\[low, medium, high\\] per group"),
        ({"depth_cm": 0.0}, "depth_cm"),
        ({"scheme": "euler"}, "scheme"),
    ],
)
def test_bad_config_is_rejected(change, match):
    with pytest.raises(InputValidationError, match=match):
        run_phases(**_inputs(n=2), config=dataclasses.replace(PhaseConfig(), **change))


def test_float32_inputs_give_the_same_layers_as_float64():
    inputs = _inputs(n=3, seed=7)
    as32 = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in inputs.items()}
    ref = run_phases(**{k: (v.astype(np.float64) if k != "land_use" else v)
                        for k, v in as32.items()})
    out = run_phases(**as32)
    for name in LAYERS:
        np.testing.assert_array_equal(out.layers[name], ref.layers[name])
