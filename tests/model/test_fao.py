"""Tests of the FAO-compatible RothC building blocks (gsocseq.model.fao), hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsocseq.model import fao

# clay 0 % and 30 cm: covered max deficit -(20)*30/23 mm, bare = covered / 1.8
MAX_COVERED = -20.0 * 30.0 / 23.0  # -26.0869565 mm
MAX_BARE = MAX_COVERED / 1.8  # -14.4927536 mm
# clay 0 %: x = 1.67*(1.85+1.6) = 5.7615 → fractions of decomposed C to BIO / HUM
X0 = 1.67 * 3.45
F_BIO0 = 0.46 / (X0 + 1.0)
F_HUM0 = 0.54 / (X0 + 1.0)


def _b(acc: float, max_last: float) -> float:
    """Moisture factor of the scripts' fw1func for a deficit, before the 0.2 clamp."""
    if acc > 0.444 * max_last:
        return 1.0
    return 0.2 + 0.8 * (max_last - acc) / (max_last - 0.444 * max_last)


# --- temperature ---------------------------------------------------------------------------


def test_temperature_factor_soilr_values_and_undefined_below_minus_18_3():
    got = fao.temperature_factor(np.array([-18.31, -18.3, 0.0, 18.0, 30.0]))
    assert math.isnan(got[0])
    assert got[1] == 0.0  # 106/0 → exp(inf) → 0, SoilR's boundary value
    assert got[2] == pytest.approx(47.9 / (1.0 + math.exp(106.0 / 18.3)), rel=1e-12)
    assert got[3] == pytest.approx(2.45, abs=0.01)  # reference §2.8: fT(18 °C) ≈ 2.45
    assert got[4] == pytest.approx(4.8, abs=0.05)  # fT(30 °C) ≈ 4.8


def test_temperature_factor_nan_in_nan_out():
    assert math.isnan(fao.temperature_factor(np.array([np.nan]))[0])


# --- moisture ------------------------------------------------------------------------------


def _moisture(m: list[float], bare: list[bool] | None = None, clay: float = 0.0) -> np.ndarray:
    """Run the moisture factor for one pixel with P − PET = m (PET 100 mm)."""
    months = len(m)
    prec = (np.asarray(m, dtype=float) + 100.0)[:, None]
    pet = np.full((months, 1), 100.0)
    bare_arr = np.zeros((12, 1), dtype=bool) if bare is None else np.asarray(bare)[:, None]
    return fao.moisture_factor(prec, pet, np.array([clay]), bare_arr)[:, 0]


def test_moisture_first_month_not_clamped_to_max_deficit():
    # Jan −40 mm stays −40 (below the max −26.09); Feb +25 → −15 (a clamped Jan would give 0).
    b = _moisture([-40.0, 25.0] + [0.0] * 10)
    assert b[0] == 0.2  # raw value is negative, clamped up to 0.2
    assert _b(-40.0, MAX_COVERED) < 0.0
    assert b[1] == pytest.approx(0.2 + 0.8 * (MAX_COVERED + 15.0) / (0.556 * MAX_COVERED))
    assert b[1] == pytest.approx(0.81152, abs=1e-5)


def test_moisture_later_months_clamped_to_max_deficit():
    b = _moisture([0.0, -50.0, 0.0] + [0.0] * 9)
    assert b[0] == 1.0
    assert b[1] == pytest.approx(0.2)  # clamped to the max → exactly 0.2
    assert b[2] == pytest.approx(0.2)


def test_moisture_deficit_restarts_every_january():
    # −5 mm each month: Jan −5 (b = 1), … the deficit is full by June; January of year 2 is −5
    # again (restart), whereas a carried deficit would keep it at the max (b = 0.2).
    b = _moisture([-5.0] * 24)
    assert b[0] == 1.0
    assert b[11] == pytest.approx(0.2)
    assert b[12] == 1.0
    np.testing.assert_array_equal(b[:12], b[12:])
    assert b[2] == pytest.approx(_b(-15.0, MAX_COVERED))  # 0.444·max = −11.58 > −15


def test_moisture_bare_form_uses_the_last_months_maximum():
    m = [-10.0] + [0.0] * 11  # deficit −10 mm all year
    covered = _moisture(m)
    np.testing.assert_array_equal(covered, np.ones(12))  # −10 > 0.444·(−26.09)
    bare_december = _moisture(m, bare=[False] * 11 + [True])
    expected = 0.2 + 0.8 * (MAX_BARE + 10.0) / (0.556 * MAX_BARE)
    assert expected == pytest.approx(0.64604, abs=1e-5)
    np.testing.assert_allclose(bare_december, np.full(12, expected), rtol=1e-12)
    # bare in January only: the last month is covered, b against the covered maximum.
    np.testing.assert_array_equal(_moisture(m, bare=[True] + [False] * 11), np.ones(12))


def test_moisture_bare_month_clamped_to_its_own_bare_maximum():
    # July bare: the deficit is clamped to −14.49 in July, not to −26.09.
    bare = [False] * 12
    bare[6] = True
    b = _moisture([0.0] * 6 + [-40.0] + [0.0] * 5, bare=bare)
    assert b[6] == pytest.approx(_b(MAX_BARE, MAX_COVERED))
    assert b[6] == pytest.approx(0.2 + 0.8 * (MAX_COVERED - MAX_BARE) / (0.556 * MAX_COVERED))


def test_moisture_evaporation_factor_scales_pet():
    prec = np.full((12, 1), 90.0)
    pet = np.full((12, 1), 100.0)
    bare = np.zeros((12, 1), dtype=bool)
    with_pet = fao.moisture_factor(prec, pet, np.array([0.0]), bare, evap_factor=1.0)
    open_pan = fao.moisture_factor(prec, pet, np.array([0.0]), bare, evap_factor=0.75)
    assert with_pet[1] == pytest.approx(_b(-20.0, MAX_COVERED))  # −10 −10
    np.testing.assert_array_equal(open_pan, np.ones((12, 1)))  # 90 − 75 > 0


def test_moisture_nan_in_nan_out_per_pixel():
    prec = np.full((12, 2), 50.0)
    prec[3, 0] = np.nan
    out = fao.moisture_factor(prec, np.full((12, 2), 100.0), np.array([20.0, 20.0]),
                              np.zeros((12, 2), dtype=bool))
    assert np.isnan(out[3:, 0]).all()
    assert np.isfinite(out[:, 1]).all()


# --- combined modifier ---------------------------------------------------------------------


def test_rate_modifiers_product_and_paddy_factor():
    tmp = np.full((12, 2), 10.0)
    prec = np.full((12, 2), 200.0)  # wet: b = 1
    pet = np.full((12, 2), 50.0)
    cov = np.full((12, 2), 0.7)
    xi = fao.rate_modifiers(tmp, prec, pet, np.array([20.0, 20.0]), cov, np.array([1.0, 0.4]))
    ft10 = 47.9 / (1.0 + math.exp(106.0 / 28.3))
    np.testing.assert_allclose(xi[:, 0], ft10 * 0.7, rtol=1e-12)
    np.testing.assert_allclose(xi[:, 1], ft10 * 0.7 * 0.4, rtol=1e-12)


def test_rate_modifiers_cover_factor_above_0_8_is_bare_for_moisture():
    tmp = np.full((12, 1), 10.0)
    prec = np.full((12, 1), 90.0)
    pet = np.full((12, 1), 100.0)
    # cover factor 0.81 (bare) in every month vs 0.8 (not bare): moisture maxima differ
    bare = fao.rate_modifiers(tmp, prec, pet, np.array([0.0]), np.full((12, 1), 0.81), np.ones(1))
    cov = fao.rate_modifiers(tmp, prec, pet, np.array([0.0]), np.full((12, 1), 0.8), np.ones(1))
    ft10 = 47.9 / (1.0 + math.exp(106.0 / 28.3))
    assert bare[2, 0] / (ft10 * 0.81) == pytest.approx(0.2)  # −30 mm < bare max −14.49 → 0.2
    assert cov[2, 0] / (ft10 * 0.8) == pytest.approx(_b(-26.0869565, MAX_COVERED))


# --- Euler ---------------------------------------------------------------------------------


def _xi(values: list[float], n: int = 1) -> np.ndarray:
    return np.tile(np.asarray(values, dtype=float)[:, None], (1, n))


def test_euler_one_year_call_makes_eleven_steps_and_ignores_december():
    # xi = 0.6 → DPM factor 1 − 10·0.6/12 = 0.5 per step; December's xi never used.
    pools = np.array([[1.0], [0.0], [0.0], [0.0]])
    out = fao.euler_run(pools, np.zeros(1), np.ones(1), np.zeros(1), _xi([0.6] * 11 + [100.0]),
                        years_per_call=1)
    assert out[0, 0] == pytest.approx(0.5**11, rel=1e-12)


def test_euler_n_year_call_makes_12n_minus_1_steps():
    pools = np.array([[1.0], [0.0], [0.0], [0.0]])
    out = fao.euler_run(pools, np.zeros(1), np.ones(1), np.zeros(1), _xi([0.6] * 12),
                        years_per_call=2)
    assert out[0, 0] == pytest.approx(0.5**23, rel=1e-12)


def test_euler_constant_input_with_no_decomposition():
    # xi = 0: each step adds In/12 split by DR/(1+DR): 11 steps of 12 t/yr, DR 1 → 5.5 each.
    out = fao.euler_run(np.zeros((4, 1)), np.array([12.0]), np.array([1.0]), np.zeros(1),
                        _xi([0.0] * 12), years_per_call=1)
    np.testing.assert_allclose(out[:, 0], [5.5, 5.5, 0.0, 0.0], rtol=1e-12)


def test_euler_one_step_transfer_to_bio_and_hum():
    # Only January decomposes (xi 0.6): DPM 1 → 0.5; BIO gets h·f_bio·10·0.6 = 0.5·f_bio.
    pools = np.array([[1.0], [0.0], [0.0], [0.0]])
    out = fao.euler_run(pools, np.zeros(1), np.ones(1), np.zeros(1), _xi([0.6] + [0.0] * 11),
                        years_per_call=1)
    np.testing.assert_allclose(out[:, 0], [0.5, 0.0, 0.5 * F_BIO0, 0.5 * F_HUM0], rtol=1e-12)


def test_euler_consecutive_calls_equal_separate_calls():
    rng = np.random.default_rng(1)
    xi = rng.uniform(0.1, 1.5, (36, 3))
    cin = rng.uniform(1, 5, (3, 3))
    dr = np.full((3, 3), 1.44)
    clay = np.array([10.0, 25.0, 40.0])
    start = rng.uniform(0, 20, (4, 3))
    together = fao.euler_run(start, cin, dr, clay, xi, years_per_call=1)
    step = start
    for y in range(3):
        step = fao.euler_run(step, cin[y], dr[y], clay, xi[12 * y : 12 * y + 12], years_per_call=1)
    np.testing.assert_allclose(together, step, rtol=1e-13)


def test_euler_nan_pixel_does_not_affect_others():
    xi = _xi([0.5] * 12, n=2)
    xi[4, 0] = np.nan
    out = fao.euler_run(np.ones((4, 2)), np.ones(2), np.ones(2), np.full(2, 20.0), xi,
                        years_per_call=1)
    assert np.isnan(out[:, 0]).all()
    assert np.isfinite(out[:, 1]).all()


def test_euler_unstable_month_criterion_uses_only_stepped_months():
    xi = np.full((12, 3), 1.0)
    xi[5, 0] = 2.5  # June: one amplifying step
    xi[11, 1] = 3.0  # December: never stepped in a one-year call
    xi[:, 2] = 2.4  # at the limit: |1 − 10·2.4/12| = 1, not amplifying
    np.testing.assert_array_equal(fao.euler_unstable(xi, 1, criterion="month"),
                                  [True, False, False])
    np.testing.assert_array_equal(fao.euler_unstable(xi, 20, criterion="month"),
                                  [True, True, False])


def test_euler_unstable_cycle_criterion_needs_a_growing_year():
    xi = np.full((12, 3), 1.0)
    xi[5, 0] = 2.6  # one amplifying month: 1.1667 · (1/6)^10 ≪ 1 → damped over the year
    xi[:, 1] = 2.5  # every month: |1 − 2.0833|^11 = 1.083^11 ≈ 2.4 > 1 → grows
    xi[:11, 2] = 2.3  # |1 − 1.9167|^11 = 0.917^11 ≈ 0.39 → damped
    np.testing.assert_array_equal(fao.euler_unstable(xi, 1), [False, True, False])
    assert (1 - 10 * 2.5 / 12) ** 11 == pytest.approx(-2.41, abs=0.01)
    with pytest.raises(ValueError, match="criterion"):
        fao.euler_unstable(xi, 1, criterion="other")


def test_hot_bare_month_is_unstable_and_diverges():
    # 30 °C, wet, bare (c = 1): xi = fT(30) ≈ 4.8 > 2.4 → DPM factor |1 − 4| = 3 per step.
    tmp = np.full((12, 1), 30.0)
    xi = fao.rate_modifiers(tmp, np.full((12, 1), 300.0), np.full((12, 1), 50.0), np.zeros(1),
                            np.ones((12, 1)), np.ones(1))
    assert fao.euler_unstable(xi, 20)[0]
    assert fao.euler_unstable(xi, 20, criterion="month")[0]
    out = fao.euler_run(np.array([[1.0], [1.0], [1.0], [50.0]]), np.array([3.0]),
                        np.array([1.44]), np.zeros(1), xi, years_per_call=20)
    assert abs(out[0, 0]) > 1e50


# --- equilibrium ---------------------------------------------------------------------------


def test_falloon_iom():
    assert fao.falloon_iom(np.array([50.0]))[0] == pytest.approx(0.049 * 50.0**1.139)
    assert fao.falloon_iom(np.array([50.0]))[0] == pytest.approx(4.2201, abs=1e-4)


def test_analytical_equilibrium_matches_reference_example():
    # reference §1.1b: xi 0.8, SOC 50, clay 25, DR 1.44 → Ceq 3.888; DPM 0.287, RPM 6.639,
    # BIO 0.978, HUM 37.877
    soc = np.array([50.0])
    pools, ceq = fao.analytical_equilibrium(np.array([0.8]), soc, np.array([25.0]),
                                            np.array([1.44]), fao.falloon_iom(soc))
    assert ceq[0] == pytest.approx(3.888, abs=5e-4)
    np.testing.assert_allclose(pools[:4, 0], [0.287, 6.639, 0.978, 37.877], atol=5e-4)
    assert pools[:, 0].sum() == pytest.approx(50.0, rel=1e-12)


def test_analytical_equilibrium_dpm_and_rpm_closed_form():
    # DPM = f_dpm·Cin/(10·xi), RPM = f_rpm·Cin/(0.3·xi)
    pools, ceq = fao.analytical_equilibrium(np.array([1.2]), np.array([40.0]), np.array([30.0]),
                                            np.array([1.0]), np.array([3.0]))
    assert pools[0, 0] == pytest.approx(0.5 * ceq[0] / 12.0, rel=1e-12)
    assert pools[1, 0] == pytest.approx(0.5 * ceq[0] / 0.36, rel=1e-12)
    assert pools[4, 0] == 3.0


def test_analytical_equilibrium_is_a_fixed_point_of_the_euler_scheme():
    # With a constant modifier the Euler map's fixed point is the ODE steady state.
    xi_val = np.array([0.5, 1.0, 2.0])
    soc = np.array([30.0, 60.0, 90.0])
    clay = np.array([10.0, 25.0, 45.0])
    dr = np.array([1.44, 0.67, 0.25])
    pools, ceq = fao.analytical_equilibrium(xi_val, soc, clay, dr, fao.falloon_iom(soc))
    xi = np.tile(xi_val, (12, 1))
    out = fao.euler_run(pools[:4], ceq, dr, clay, xi, years_per_call=5)
    np.testing.assert_allclose(out, pools[:4], rtol=1e-10)
    # A 500-year run from empty pools with input 1 (the equilibrium script) gets there for
    # xi >= 1 but stays ~1 % short for xi = 0.5 (HUM turns over in ~50/xi years).
    long = fao.euler_run(np.zeros((4, 3)), np.ones(3), dr, clay, xi, years_per_call=500)
    steady = (soc - pools[4]) / ceq
    np.testing.assert_allclose(long.sum(axis=0)[1:], steady[1:], rtol=1e-3)
    assert 0.005 < 1.0 - long[:, 0].sum() / steady[0] < 0.015


def test_pedotransfer_pools_crop_class_by_hand():
    soc, clay = 50.0, 25.0
    iom = 0.049 * soc**1.139
    rpm = 0.9902 * ((0.184 * soc + 0.1555) * (clay + 1.275) ** -0.1158) + 0.4788
    bio = 1.09038 * ((0.014 * soc + 0.0075) * (clay + 8.8473) ** 0.0567) + 0.04055
    hum = 0.9878 * ((0.7148 * soc + 0.5069) * (clay + 0.3421) ** 0.0184) - 0.3818
    got = fao.pedotransfer_pools(np.array([soc, soc]), np.array([clay, clay]),
                                 np.array([iom, iom]), np.array([2, 1]))
    np.testing.assert_allclose(got[:, 0], [soc - iom - rpm - bio - hum, rpm, bio, hum, iom])
    np.testing.assert_array_equal(got[:, 1], np.zeros(5))  # class 1: no coefficients → zeros
    assert rpm == pytest.approx(6.5, abs=0.5)  # plausible magnitude (t C/ha)


def test_kernels_return_nan_instead_of_raising_on_zero_divisions():
    b = fao.moisture_factor(np.full((12, 1), 0.0), np.full((12, 1), 50.0), np.array([20.0]),
                            np.zeros((12, 1), dtype=bool), depth_cm=0.0)
    assert np.isnan(b).all()
    out = fao.euler_run(np.ones((4, 1)), np.ones(1), np.array([-1.0]), np.array([20.0]),
                        np.full((12, 1), 0.5), years_per_call=1)
    assert np.isnan(out[:2, 0]).all()


def test_wrappers_reject_bad_shapes():
    from gsocseq.errors import InputValidationError

    with pytest.raises(InputValidationError, match=r"\(12\*years, n\)"):
        fao.moisture_factor(np.ones((11, 2)), np.ones((11, 2)), np.ones(2), np.zeros((12, 2)))
    with pytest.raises(InputValidationError, match=r"\(12\*calls, n\)"):
        fao.euler_run(np.ones((4, 2)), np.ones(2), np.ones(2), np.ones(2), np.ones((24, 2)),
                      years_per_call=1)
    with pytest.raises(InputValidationError, match="years_per_call"):
        fao.euler_run(np.ones((4, 2)), np.ones(2), np.ones(2), np.ones(2), np.ones((12, 2)),
                      years_per_call=0)


# --- readable references (transliterations of the R code) ----------------------------------


def _fw1func_reference(P, E, pClay, bare, S_Thick=30.0, pE=1.0):
    """FAO's fw1func, line by line (R indices shifted by one)."""
    M = [p - e * pE for p, e in zip(P, E, strict=True)]
    acc = [0.0] * len(M)
    max_tsmd = None
    for i in range(1, len(M)):
        B = 1.0 if not bare[i] else 1.8
        max_tsmd = -(20 + 1.3 * pClay - 0.01 * pClay**2) * (S_Thick / 23) * (1 / B)
        acc[0] = 0.0 if M[0] > 0 else M[0]
        acc[i] = acc[i - 1] + M[i] if acc[i - 1] + M[i] < 0 else 0.0
        if acc[i] <= max_tsmd:
            acc[i] = max_tsmd
    b = [1.0 if a > 0.444 * max_tsmd else
         0.2 + 0.8 * ((max_tsmd - a) / (max_tsmd - 0.444 * max_tsmd)) for a in acc]
    return [max(v, 0.2) for v in b]


def _carbon_turnover_euler_reference(tt, C0, In, Dr, clay, xi):
    """soilassessment::carbonTurnover with deSolve's Euler on the grid tt; final state."""
    o = Dr / (1 + Dr)
    f = 1.67 * (1.85 + 1.6 * math.exp(-0.0786 * clay))
    k = (10.0, 0.3, 0.66, 0.02)
    a3 = [0.46 * kk / (f + 1) for kk in k]
    a4 = [0.54 * kk / (f + 1) for kk in k]
    c1, c2, c3, c4 = C0
    for j in range(len(tt) - 1):
        h = tt[j + 1] - tt[j]
        rr = xi[j]  # the spline through (tt, xi) evaluated at its knot tt[j]
        d1 = o * In - c1 * 10 * rr
        d2 = (1 - o) * In - c2 * 0.3 * rr
        d3 = (a3[0] * c1 + a3[1] * c2 + (-0.66 + a3[2]) * c3 + a3[3] * c4) * rr
        d4 = (a4[0] * c1 + a4[1] * c2 + a4[2] * c3 + (-0.02 + a4[3]) * c4) * rr
        c1, c2, c3, c4 = c1 + h * d1, c2 + h * d2, c3 + h * d3, c4 + h * d4
    return [c1, c2, c3, c4]


def test_moisture_kernel_matches_the_r_transliteration():
    rng = np.random.default_rng(7)
    n = 40
    prec = rng.uniform(0, 160, (12, n))
    pet = rng.uniform(20, 160, (12, n))
    clay = rng.uniform(5, 60, n)
    bare = rng.uniform(0, 1, (12, n)) < 0.4
    got = fao.moisture_factor(prec, pet, clay, bare)
    for p in range(n):
        ref = _fw1func_reference(prec[:, p], pet[:, p], clay[p], bare[:, p])
        np.testing.assert_allclose(got[:, p], ref, rtol=1e-13, atol=0)


def test_euler_kernel_matches_the_r_transliteration():
    rng = np.random.default_rng(8)
    n, years = 12, 3
    xi = rng.uniform(0.05, 2.3, (12, n))
    start = rng.uniform(0, 30, (4, n))
    cin = rng.uniform(0.5, 6, n)
    dr = rng.choice([1.44, 0.67, 0.25], n)
    clay = rng.uniform(5, 60, n)
    got = fao.euler_run(start, cin, dr, clay, xi, years_per_call=years)
    tt = [m / 12 for m in range(1, 12 * years + 1)]  # seq(1/12, years, by=1/12)
    for p in range(n):
        series = [xi[j % 12, p] for j in range(len(tt))]
        ref = _carbon_turnover_euler_reference(tt, start[:, p], cin[p], dr[p], clay[p], series)
        np.testing.assert_allclose(got[:, p], ref, rtol=1e-12)


# --- properties ----------------------------------------------------------------------------

_floats = st.floats(min_value=0.0, max_value=1.2, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(
    xi=st.lists(_floats, min_size=12, max_size=12),
    start=st.lists(st.floats(0.0, 100.0), min_size=4, max_size=4),
    cin=st.floats(0.0, 10.0),
    scale=st.floats(0.1, 10.0),
    clay=st.floats(0.0, 80.0),
)
def test_euler_is_linear_and_keeps_pools_nonnegative_when_xi_at_most_1_2(
    xi, start, cin, scale, clay
):
    x = np.asarray(xi)[:, None]
    p0 = np.asarray(start)[:, None]
    args = (np.array([1.44]), np.array([clay]), x)
    out = fao.euler_run(p0, np.array([cin]), *args, years_per_call=3)
    scaled = fao.euler_run(scale * p0, np.array([scale * cin]), *args, years_per_call=3)
    np.testing.assert_allclose(scaled, scale * out, rtol=1e-10, atol=1e-12)
    # every step factor 1 − k·xi/12 ≥ 0 and inputs ≥ 0 → no pool turns negative
    assert (out >= 0.0).all()


def test_euler_unstable_months_counts_stepped_months_outside_minus_one_one():
    # pixel 0: xi = 3.0 in Jan and Jul of year 1, in Dec of year 2; pixel 1: 2.4 exactly (factor
    # -1, inside), pixel 2: NaN months never count
    xi = np.full((24, 3), 1.0)
    xi[[0, 6, 23], 0] = 3.0
    xi[:, 1] = 2.4
    xi[3:9, 2] = np.nan
    xi[0, 2] = 2.5
    months = fao.euler_unstable_months(xi, 2)
    assert months.dtype == np.uint8
    np.testing.assert_array_equal(months, [2, 0, 1])
    # one-year calls never step through December: year 2 of pixel 0 has none
    np.testing.assert_array_equal(fao.euler_unstable_months(xi, 1), [2, 0, 1])
    xi[11, 0] = 2.5
    assert fao.euler_unstable_months(xi, 1)[0] == 2
    assert fao.euler_unstable_months(xi, 2)[0] == 3


def _lagrange(xs, ys, u):
    """Hand formula: the polynomial through the points (xs, ys) at u."""
    total = 0.0
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        term = yi
        for j, xj in enumerate(xs):
            if j != i:
                term *= (u - xj) / (xi - xj)
        total += term
    return total


@pytest.mark.parametrize("valid", [(2, 5, 6, 9), (1, 4, 10), (3, 8), (7,)])
def test_na_months_take_rs_fmm_spline_through_the_other_months(valid):
    """With ≤ 4 valid knots R's fmm spline is the polynomial through them (cubic: its end
    conditions are the cubic's own third derivative; 3 knots: a parabola; 2: the line; 1: a
    constant), so every NA month, inside or beyond the valid ones, is a hand-computable value."""
    ys = {2: 0.8, 5: 1.9, 6: 2.2, 9: 1.1, 1: 0.5, 4: 1.4, 10: 0.9, 3: 1.0, 8: 1.6, 7: 1.3}
    xi = np.full((12, 1), np.nan)
    for k in valid:
        xi[k, 0] = ys[k]
    got = fao.filled_modifiers(xi, 1)[:, 0]
    expected = [_lagrange(valid, [ys[k] for k in valid], float(u)) for u in range(12)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert got[0] != got[11] or len(valid) == 1  # extrapolated at both ends of the call


def test_fmm_spline_reproduces_a_cubic_and_repeats_each_year_of_a_call():
    k = np.arange(24.0)
    cubic = 0.002 * k**3 - 0.05 * k**2 + 0.3 * k + 1.0
    xi = np.tile(cubic[:12, None], (2, 1))  # two one-year calls
    xi[[0, 4, 11, 13], 0] = np.nan
    filled = fao.filled_modifiers(xi, 1)
    np.testing.assert_allclose(filled[:12, 0], cubic[:12], rtol=1e-12)
    np.testing.assert_allclose(filled[12:, 0], cubic[:12], rtol=1e-12)
    # a two-year call: its 12 months repeated, NA knots of both years filled from all 22 others
    two = fao.filled_modifiers(xi[:12], 2)
    assert two.shape == (24, 1) and np.isfinite(two).all()
    year = np.r_[cubic[:12], cubic[:12]]
    known = ~np.isnan(np.r_[xi[:12, 0], xi[:12, 0]])
    np.testing.assert_array_equal(two[known, 0], year[known])
    assert fao.filled_modifiers(np.ones((12, 3)), 20).shape == (12, 3)  # nothing to fill
    assert np.isnan(fao.filled_modifiers(np.full((12, 1), np.nan), 1)).all()  # R: no knots, NA


def test_euler_run_takes_every_month_of_a_call_or_its_repeated_year():
    rng = np.random.default_rng(4)
    xi = rng.uniform(0.2, 1.5, (12, 3))
    args = (rng.uniform(1, 20, (4, 3)), np.full(3, 2.0), np.full(3, 1.44), np.full(3, 30.0))
    short = fao.euler_run(*args, xi, years_per_call=3)
    full = fao.euler_run(*args, np.tile(xi, (3, 1)), years_per_call=3)
    np.testing.assert_array_equal(full, short)
    changed = np.tile(xi, (3, 1))
    changed[20] *= 2.0  # a month of year 2 only
    assert not np.allclose(fao.euler_run(*args, changed, years_per_call=3), short)
