"""RothC-26.3 kernels: the official example, closed-form equilibrium, reference, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsocseq.errors import InputValidationError
from gsocseq.model import reference, rothc

EXAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "rothc-example"
# Printed with 4 decimals (±5e-5); the shipped Fortran uses single-precision literal constants,
# which moves its unrounded values by up to ~1e-5 from a float64 run.
PRINT_TOL = 5e-5 + 1e-5


#: Keyword arguments that make up a :class:`rothc.Site`.
SITE = ("tmp", "prec", "pet", "cover", "dpm_rpm", "clay", "depth", "rate_modifier", "evap_factor")


def _call(fn, *args, validate=True, **kw):
    """Call ``fn(*args, site, **rest)`` with the site built (and checked) from the keywords."""
    site = rothc.site(**{k: kw.pop(k) for k in SITE if k in kw}, validate=validate)
    return fn(*args, site, validate=validate, **kw)


def _example():
    rows = np.loadtxt(EXAMPLE / "RothC_input.dat", skiprows=10)
    head = np.loadtxt(EXAMPLE / "RothC_input.dat", skiprows=7, max_rows=1)
    return rows, float(head[0]), float(head[1]), float(head[2])


def _inputs(rows: np.ndarray) -> dict[str, np.ndarray]:
    col = {"tmp": 3, "prec": 4, "pet": 5, "c_inp": 6, "fym": 7, "cover": 8, "dpm_rpm": 9}
    return {k: np.ascontiguousarray(rows[:, i, None]) for k, i in col.items()}


@pytest.fixture(scope="module")
def official_run():
    """Run the example like Shell.for: spin-up by cycling year 1, then rows 13…840."""
    rows, clay, depth, iom = _example()
    soil = {"clay": np.array([clay]), "depth": np.array([depth])}
    pools = np.array([[0.0, 0.0, 0.0, 0.0, iom]])
    smd = np.zeros(1)
    year = _inputs(rows[:12])
    toc1, months = 0.0, 0
    while True:
        pools, smd = _call(rothc.simulate, pools, smd, **year, **soil, validate=False)
        months += 12
        toc0, toc1 = toc1, pools[0, :4].sum()
        if abs(toc1 - toc0) < 1e-6:
            break
    spin = pools.copy()
    mp, ms, co2 = _call(rothc.simulate,
        pools, smd, **_inputs(rows[12:]), **soil, monthly=True, return_co2=True
    )
    return {"months": months, "spin": spin[0], "pools": mp[:, 0], "smd": ms[:, 0],
            "co2": np.cumsum(co2[:, 0]), "year1": year, "soil": soil, "iom": iom}


def test_official_example_spin_up(official_run):
    year = np.genfromtxt(EXAMPLE / "year_results.out", delimiter=",", skip_header=1)
    assert official_run["months"] == int(year[1, 1]) == 20916
    np.testing.assert_allclose(official_run["spin"], year[1, 2:7], rtol=0, atol=PRINT_TOL)


def test_official_example_every_month(official_run):
    ref = np.genfromtxt(EXAMPLE / "month_results.out", delimiter=",", skip_header=3)
    assert ref.shape[0] == official_run["pools"].shape[0] == 828
    got = official_run["pools"]
    np.testing.assert_allclose(got, ref[:, 12:17], rtol=0, atol=PRINT_TOL)
    np.testing.assert_allclose(got.sum(axis=1), ref[:, 17], rtol=0, atol=2 * PRINT_TOL)
    np.testing.assert_allclose(official_run["smd"], ref[:, 8], rtol=0, atol=5e-3 + 1e-3)
    np.testing.assert_allclose(official_run["co2"], ref[:, 18], rtol=0, atol=2 * PRINT_TOL)
    # most values round to exactly the printed ones
    same = np.abs(np.round(got[:, :4], 4) - ref[:, 12:16]) < 1e-9
    assert same.mean() > 0.97


def test_official_example_every_year(official_run):
    year = np.genfromtxt(EXAMPLE / "year_results.out", delimiter=",", skip_header=1)[2:]
    dec = official_run["pools"][11::12]
    assert dec.shape[0] == year.shape[0] == 69
    np.testing.assert_allclose(dec, year[:, 2:7], rtol=0, atol=PRINT_TOL)
    np.testing.assert_allclose(official_run["co2"][11::12], year[:, 8], atol=2 * PRINT_TOL)


def test_closed_form_equilibrium_of_example_is_the_limit_of_the_official_spin_up(official_run):
    pools, smd = _call(rothc.equilibrium, np.array([official_run["iom"]]),
                       **official_run["year1"], **official_run["soil"])
    # the official stop rule (< 1e-6 t C/ha per year) leaves the slow HUM pool ~1e-4 short
    np.testing.assert_allclose(pools[0], official_run["spin"], rtol=0, atol=3e-4)
    assert pools[0, 3] > official_run["spin"][3]
    assert smd[0] == 0.0


# --------------------------------------------------------------------------------------------
# equilibrium vs long iteration


def _sites() -> dict[str, np.ndarray]:
    """Five pixels: temperate, cold (500 years far from steady), bare & dry, paddy, tropical."""
    temperate = [3.7, 3.1, 5.5, 7.4, 10.9, 14.4, 16.3, 16.2, 13.8, 9.5, 6.2, 4.1]
    cold = [-20, -18, -12, -6, -2, 3, 6, 4, -1, -8, -15, -19]
    dry = [12, 14, 18, 22, 27, 31, 33, 32, 28, 22, 16, 13]
    trop = [26, 27, 27, 28, 28, 27, 26, 26, 27, 27, 27, 26]
    tmp = np.array([temperate, cold, dry, temperate, trop], dtype=float).T
    prec = np.array([[52, 43, 35, 52, 65, 46, 64, 61, 59, 63, 73, 61],
                     [10, 8, 9, 15, 30, 50, 70, 60, 40, 20, 12, 10],
                     [30, 20, 10, 5, 0, 0, 0, 0, 5, 15, 25, 35],
                     [52, 43, 35, 52, 65, 46, 64, 61, 59, 63, 73, 61],
                     [250, 230, 240, 200, 150, 90, 60, 50, 80, 150, 220, 260]], float).T
    pet = np.array([[7, 17, 41, 71, 104, 117, 130, 107, 62, 30, 9, 4],
                     [0, 0, 2, 10, 40, 70, 90, 70, 30, 8, 1, 0],
                     [60, 70, 100, 130, 170, 200, 210, 190, 150, 110, 70, 55],
                     [7, 17, 41, 71, 104, 117, 130, 107, 62, 30, 9, 4],
                     [130, 130, 150, 140, 130, 120, 120, 130, 140, 140, 130, 130]], float).T
    cover = np.ones((12, 5))
    cover[8, 0] = 0.0  # one bare month, as in the example
    cover[:, 2] = [0, 0, 0, 0.3, 0.8, 1, 1, 0.6, 0.2, 0, 0, 0]  # mostly bare, fractional
    cover[:, 4] = 0.7
    c_inp = np.zeros((12, 5))
    c_inp[7] = [1.7, 0.6, 1.0, 3.0, 0.0]
    c_inp[:, 4] = 0.5
    fym = np.zeros((12, 5))
    fym[2, 0] = 1.2
    return {
        "tmp": tmp, "prec": prec, "pet": pet, "cover": cover, "c_inp": c_inp, "fym": fym,
        "dpm_rpm": np.array([1.44, 0.67, 0.25, 1.44, 1.44]),
        "clay": np.array([23.4, 10.0, 55.0, 40.0, 70.0]),
        "depth": np.array([23.0, 30.0, 30.0, 30.0, 15.0]),
        "rate_modifier": np.array([1.0, 1.0, 1.0, 0.4, 1.0]),
    }


@pytest.fixture(scope="module")
def long_run():
    site = _sites()
    n = site["clay"].size
    start = np.zeros((n, 5))
    start[:, 4] = 2.5
    pools, smd = _call(rothc.simulate, start, np.zeros(n), **site, repeat=100_000)
    p500, _ = _call(rothc.simulate, start, np.zeros(n), **site, repeat=500)
    return site, pools, smd, p500


def test_equilibrium_equals_100000_year_iteration(long_run):
    site, pools, smd, _ = long_run
    eq, eq_smd = _call(rothc.equilibrium, np.full(5, 2.5), **site)
    np.testing.assert_allclose(eq, pools, rtol=1e-9, atol=0)
    np.testing.assert_allclose(eq_smd, smd, rtol=0, atol=1e-9)
    assert eq_smd[2] < 0.0  # the dry bare pixel keeps a deficit over the year end


def test_cold_site_is_far_from_equilibrium_after_500_years(long_run):
    site, pools, _, p500 = long_run
    eq, _ = _call(rothc.equilibrium, np.full(5, 2.5), **site)
    assert eq[1, 3] > 1.2 * p500[1, 3]  # HUM of the cold pixel
    np.testing.assert_allclose(eq[1], pools[1], rtol=1e-9)


def test_equilibrium_is_periodic():
    site = _sites()
    eq, smd = _call(rothc.equilibrium, np.full(5, 2.5), **site)
    again, smd2 = _call(rothc.simulate, eq, smd, **site)
    np.testing.assert_allclose(again, eq, rtol=1e-12)
    np.testing.assert_allclose(smd2, smd, atol=1e-12)


def test_equilibrium_nan_where_nothing_decomposes():
    site = _sites()
    site["tmp"][:, 1] = -10.0  # below -5 °C all year: no decomposition, no steady state
    eq, _ = _call(rothc.equilibrium, np.full(5, 2.5), **site)
    assert np.isnan(eq[1, :4]).all()
    assert np.isfinite(np.delete(eq, 1, axis=0)).all()


def test_steady_smd_follows_a_slow_drift():
    # covered months alternate -5 / +5 mm with a net -0.01 mm a year: the deficit creeps down
    # for ~3500 years until it reaches SMDmax; the closed form must land where iteration does.
    df = np.array([-5.0, 5.0] * 6)
    df[-1] -= 0.01
    prec = np.stack([np.maximum(df, 0), np.maximum(df, 0) + 3], axis=1)
    pet = np.stack([np.maximum(-df, 0), np.maximum(-df, 0) + 3], axis=1) / 0.75
    cover = np.stack([np.ones(12), np.r_[np.zeros(6), np.ones(6)]], axis=1)
    soil = {"clay": np.array([20.0, 35.0]), "depth": np.array([23.0, 20.0])}
    steady = rothc.steady_smd(rothc.site(tmp=np.zeros((12, 2)), prec=prec, pet=pet, cover=cover,
                                         dpm_rpm=np.ones(2), **soil))
    zeros = np.zeros((12, 2))
    _, smd = _call(rothc.simulate,
        np.zeros((2, 5)), np.zeros(2), tmp=zeros, prec=prec, pet=pet, cover=cover,
        c_inp=zeros, fym=zeros, dpm_rpm=np.ones(2), **soil, repeat=20_000,
    )
    np.testing.assert_allclose(steady, smd, atol=1e-6)
    smd_max = -(20 + 1.3 * 20 - 0.01 * 400)
    assert steady[0] < smd_max + 5.01  # it did creep all the way (from 0 to near SMDmax)


def test_steady_smd_of_a_denormal_drift_reaches_the_bare_limit():
    # bare all year, prec 0, pet denormal: the deficit drifts by ~1e-310 mm a year towards the
    # bare limit; the jump count (distance / drift) overflows and must not give -inf (a NaN map).
    soil = {"clay": np.zeros(1), "depth": np.ones(1)}
    year = rothc.site(tmp=np.full((12, 1), 15.0), prec=np.zeros((12, 1)),
                      pet=np.full((12, 1), 2.2e-311), cover=np.zeros((12, 1)),
                      dpm_rpm=np.zeros(1), **soil)
    smd_bare = 0.556 * rothc.smd_max(soil["clay"], soil["depth"])
    np.testing.assert_allclose(rothc.steady_smd(year), smd_bare, rtol=1e-12)
    parts = rothc.equilibrium_parts(year)
    assert np.isfinite(parts.p_unit).all() and parts.p_unit.sum() > 0


def test_block_steady_smd_is_the_per_pixel_fixed_point():
    """The block's steady deficit (a few years cycled for all pixels, then the per-pixel jumps)
    is, to the byte, steady_smd_pixel's from the same start, on every kind of year.

    Random climates (wet, dry, bare and covered months, some converging only after many years),
    slow drifts of a few mm a year, starts anywhere in [SMDmax, 0] and a NaN pixel.
    """
    from gsocseq.model import _rothc_kernels as k

    rng = np.random.default_rng(5)
    n = 700
    inp = _random_inputs(rng, 12, n)
    inp["prec"][:, :200] *= 0.05  # dry years: deficits deep, bare months keep them
    df_slow = np.tile(np.r_[-5.0, 5.0], 6)[:, None] - rng.uniform(0, 3, n)[None] / 12
    inp["prec"][:, 200:300] = np.maximum(df_slow[:, 200:300], 0) + 50
    inp["pet"][:, 200:300] = np.maximum(-df_slow[:, 200:300], 0) + 50
    inp["prec"][3, 7] = np.nan
    smd_max = rothc.smd_max(inp["clay"], inp["depth"])
    smd0 = rng.uniform(0, 1, n) * smd_max
    smd0[300:400] = 0.0
    year = rothc.site(**{key: inp[key] for key in ("tmp", "prec", "pet", "cover", "clay",
                                                     "depth")},
                      dpm_rpm=inp["dpm_rpm"][0], evap_factor=1.0, validate=False)
    got = rothc.steady_smd(year, smd0, validate=False)
    soil = [k.soil_constants(inp["clay"][i], inp["depth"][i]) for i in range(n)]  # the kernel's
    df = year.prec - year.pet  # evap_factor 1: prec - 1·pet is exact with or without an FMA
    want = np.array([k.steady_smd_pixel(smd0[i], df[:, i].copy(), year.cover[:, i].copy(),
                                        soil[i][3], soil[i][5]) for i in range(n)])
    assert np.isnan(got[7]) and np.isnan(want[7])
    assert np.array_equal(got, want, equal_nan=True)
    slow = got[200:300] != smd0[200:300]
    assert slow.all()  # the drifting pixels moved (the per-pixel path took them)


def test_equilibrium_input_recovers_target_soc():
    site = _sites()
    soc = np.array([42.0, 80.0, 15.0, 60.0, 35.0])
    fym = site.pop("fym")
    site.pop("c_inp")
    cin = _call(rothc.equilibrium_input, soc, fym=fym, **site)
    assert np.all(cin > 0)
    eq, _ = _call(rothc.equilibrium, 0.049 * soc**1.139,
                  c_inp=np.broadcast_to(cin / 12.0, (12, 5)), fym=fym, **site)
    np.testing.assert_allclose(eq.sum(axis=1), soc, rtol=1e-10)


def test_equilibrium_input_with_pattern_and_given_iom():
    site = _sites()
    site.pop("c_inp")
    site.pop("fym")
    soc = np.array([42.0, 80.0, 15.0, 60.0, 35.0])
    iom = np.array([3.0, 1.0, 0.5, 4.0, 2.0])
    pattern = np.zeros(12)
    pattern[[6, 7]] = [1.0, 3.0]  # 25 % in July, 75 % in August
    cin = _call(rothc.equilibrium_input, soc, iom=iom, fym=np.zeros((12, 5)), input_pattern=pattern,
                                  **site)
    c_inp = np.outer(pattern / 4.0, cin)
    eq, _ = _call(rothc.equilibrium, iom, c_inp=c_inp, fym=np.zeros((12, 5)), **site)
    np.testing.assert_allclose(eq.sum(axis=1), soc, rtol=1e-10)
    np.testing.assert_array_equal(eq[:, 4], iom)


def test_falloon_iom():
    np.testing.assert_allclose(rothc.falloon_iom(np.array([0.0, 1.0, 50.0])),
                               [0.0, 0.049, 0.049 * 50.0**1.139])
    assert np.isnan(rothc.falloon_iom(np.array([np.nan])))[0]


# --------------------------------------------------------------------------------------------
# affine building blocks


def test_annual_affine_map_reproduces_simulate():
    site = _sites()
    c_inp = site.pop("c_inp")
    fym = site.pop("fym")
    cin = c_inp.sum(axis=0) + 0.7  # annual plant input, spread evenly
    start, _ = _call(rothc.equilibrium, np.full(5, 2.5), c_inp=c_inp, fym=fym, **site)
    start[:, :4] *= 0.8
    m = _call(rothc.annual_affine_map, fym=fym, periodic=True, **site)
    assert np.all(m.smd_start == m.smd_end)
    b = m.b_fixed + cin[:, None] * m.b_unit
    years = rothc.simulate_years_affine(start, m.a, b, 20, yearly=True)
    ref, _ = _call(rothc.simulate, start, m.smd_start, c_inp=np.broadcast_to(cin / 12, (12, 5)),
                            fym=fym, **site, repeat=20)
    np.testing.assert_allclose(years[-1], ref, rtol=1e-12)
    np.testing.assert_allclose(
        rothc.simulate_years_affine(start, m.a, b, 20), years[-1], rtol=0, atol=0
    )
    first, _ = _call(rothc.simulate, start, m.smd_start, c_inp=np.broadcast_to(cin / 12, (12, 5)),
                              fym=fym, **site)
    np.testing.assert_allclose(years[0], first, rtol=1e-12)
    unit = start * np.linspace(0.1, 0.9, 5)[:, None]  # a second, different start
    got, got_unit = rothc.simulate_years_affine_pair(start, unit, m.a, b, 20)
    np.testing.assert_array_equal(got, years[-1])  # the same bytes as two single runs
    np.testing.assert_array_equal(got_unit, rothc.simulate_years_affine(unit, m.a, b, 20))


# --------------------------------------------------------------------------------------------
# reference, splitting


def _random_inputs(rng: np.random.Generator, n_months: int, n: int) -> dict[str, np.ndarray]:
    return {
        "tmp": rng.uniform(-12, 35, (n_months, n)),
        "prec": rng.uniform(0, 200, (n_months, n)),
        "pet": rng.uniform(0, 180, (n_months, n)),
        "cover": rng.choice([0.0, 0.3, 0.5, 1.0], (n_months, n)),
        "c_inp": rng.uniform(0, 1, (n_months, n)) * (rng.random((n_months, n)) < 0.5),
        "fym": rng.uniform(0, 2, (n_months, n)) * (rng.random((n_months, n)) < 0.1),
        "dpm_rpm": rng.uniform(0.2, 2, (n_months, n)),
        "clay": rng.uniform(0, 100, n),
        "depth": rng.uniform(10, 40, n),
        "rate_modifier": rng.choice([1.0, 0.4], n),
    }


def test_kernel_equals_pure_python_reference():
    rng = np.random.default_rng(42)
    n_months, n = 48, 6
    inp = _random_inputs(rng, n_months, n)
    pools0 = rng.uniform(0, 40, (n, 5))
    smd0 = rng.uniform(0, 1, n) * rothc.smd_max(inp["clay"], inp["depth"])
    pools, smd, co2 = _call(rothc.simulate, pools0, smd0, **inp, monthly=True, return_co2=True)
    for i in range(n):
        state = reference.State(*pools0[i], smd=smd0[i])
        months = [reference.Month(*(inp[k][m, i] for k in
                                    ("tmp", "prec", "pet", "cover", "c_inp", "fym", "dpm_rpm")))
                  for m in range(n_months)]
        out = reference.run(state, months, inp["clay"][i], inp["depth"][i],
                            rate_modifier=inp["rate_modifier"][i])
        ref_pools = np.array([[s.dpm, s.rpm, s.bio, s.hum, s.iom] for s, _ in out])
        np.testing.assert_allclose(pools[:, i], ref_pools, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(smd[:, i], [s.smd for s, _ in out], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(co2[:, i], [c for _, c in out], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("case", reference.KERNELS, ids=lambda c: c.name)
def test_kernel_table_kernel_equals_its_reference(case):
    """Every fast kernel against its independent reference (the table the benchmarks time)."""
    inputs = reference.synthetic_case(7, case.months, seed=11)
    got = case.kernel(inputs)
    np.testing.assert_allclose(got, case.reference(inputs), rtol=case.rtol, atol=case.atol)
    assert np.isfinite(got).all() and got.any()


def test_reference_official_spin_up_length():
    rows, clay, depth, iom = _example()
    year = [reference.Month(r[3], r[4], r[5], r[8], r[6], r[7], r[9]) for r in rows[:12]]
    state, months = reference.equilibrium_by_iteration(iom, year, clay, depth)
    assert months == 20916
    assert abs(state.soc - 42.4779) < PRINT_TOL


def test_split_run_equals_one_run():
    rng = np.random.default_rng(3)
    inp = _random_inputs(rng, 30, 5)
    pools0 = rng.uniform(0, 40, (5, 5))
    whole, smd_whole = _call(rothc.simulate, pools0, np.zeros(5), **inp)
    first = {k: v[:13] if v.ndim == 2 else v for k, v in inp.items()}
    second = {k: v[13:] if v.ndim == 2 else v for k, v in inp.items()}
    mid, smd_mid = _call(rothc.simulate, pools0, np.zeros(5), **first)
    end, smd_end = _call(rothc.simulate, mid, smd_mid, **second)
    np.testing.assert_array_equal(end, whole)
    np.testing.assert_array_equal(smd_end, smd_whole)


def test_monthly_output_ends_with_the_final_state_and_dpm_rpm_per_pixel():
    rng = np.random.default_rng(5)
    inp = _random_inputs(rng, 12, 4)
    inp["dpm_rpm"] = np.array([1.44, 0.67, 0.25, 1.0])
    pools0 = rng.uniform(0, 40, (4, 5))
    final, smd = _call(rothc.simulate, pools0, np.zeros(4), **inp)
    monthly, smd_m = _call(rothc.simulate, pools0, np.zeros(4), **inp, monthly=True)
    np.testing.assert_array_equal(monthly[-1], final)
    np.testing.assert_array_equal(smd_m[-1], smd)
    inp["dpm_rpm"] = np.repeat(inp["dpm_rpm"][None], 12, axis=0)
    again, _ = _call(rothc.simulate, pools0, np.zeros(4), **inp)
    np.testing.assert_array_equal(again, final)


def test_annual_input_run_equals_simulate_on_the_expanded_months():
    """The warm-up kernel (one input per year, cover year, scaled float32 climate) is simulate.

    Pixels 0–1 have rate modifiers so large that some months' HUM exponent leaves the
    polynomial's range (the libm path: the polynomial would be off by ~1e-2 there). Equal to
    1e-12 (FMA contraction of the scaled inputs and the zero manure can move the last bit).
    """
    rng = np.random.default_rng(17)
    n_years, n = 4, 300
    inp = _random_inputs(rng, 12 * n_years, n)
    tmp, prec, pet = (inp[k].astype(np.float32) for k in ("tmp", "prec", "pet"))
    cover, dpm_rpm = inp["cover"][:12], inp["dpm_rpm"][0]
    rmod = inp["rate_modifier"].copy()
    rmod[:2] = [400.0, 9.0]
    cin_years = rng.uniform(0.5, 4.0, (n_years, n))
    soil = {"clay": inp["clay"], "depth": inp["depth"], "rate_modifier": rmod}
    pools0 = rng.uniform(0, 40, (n, 5))
    smd0 = rng.uniform(0, 1, n) * rothc.smd_max(inp["clay"], inp["depth"])
    year = rothc.site(tmp=inp["tmp"][:12], prec=inp["prec"][:12], pet=inp["pet"][:12],
                      cover=cover, dpm_rpm=dpm_rpm, **soil)
    ft, fp = 1.02, 0.95
    got, smd = rothc.simulate_annual_input(pools0, smd0, year, tmp=tmp, prec=prec, pet=pet,
                                           cin_years=cin_years, tmp_factor=ft, prec_factor=fp)
    want, smd_want = _call(
        rothc.simulate, pools0, smd0, tmp=tmp.astype(np.float64) * ft,
        prec=prec.astype(np.float64) * fp, pet=pet.astype(np.float64),
        cover=np.tile(cover, (n_years, 1)), c_inp=np.repeat(cin_years / 12.0, 12, axis=0),
        dpm_rpm=dpm_rpm, **soil)
    # T > 20 °C: a > 2.8, b·c ≥ 0.12, so pixel 0's -rate·K_HUM < -0.22 (libm branch)
    assert (tmp[:, 0] * ft > 20.0).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(smd, smd_want, rtol=1e-12, atol=0)
    # the same climate as a block of larger arrays, read in place: the same bytes
    m0, c0 = 7, 3
    big = [rng.uniform(-1e3, 1e3, (m0 + tmp.shape[0] + 2, c0 + n + 4)).astype(np.float32)
           for _ in range(3)]
    for b, a in zip(big, (tmp, prec, pet), strict=True):
        b[m0 : m0 + a.shape[0], c0 : c0 + n] = a
    got_at, smd_at = rothc.simulate_annual_input(
        pools0, smd0, year, tmp=big[0], prec=big[1], pet=big[2], cin_years=cin_years,
        tmp_factor=ft, prec_factor=fp, at=(m0, c0))
    np.testing.assert_array_equal(got_at, got)
    np.testing.assert_array_equal(smd_at, smd)
    with pytest.raises(InputValidationError, match="tmp: shape"):
        rothc.simulate_annual_input(pools0, smd0, year, tmp=big[0][:-3], prec=big[1],
                                    pet=big[2], cin_years=cin_years, at=(m0, c0))


def test_pair_run_is_two_simulate_runs():
    """Both pool sets of simulate_pair (shared deficit and rates) are simulate's, to the byte.

    Pixel 0's rate modifier takes some months outside the exp polynomial's range (libm path).
    """
    rng = np.random.default_rng(23)
    n = 300
    inp = _random_inputs(rng, 12, n)
    rmod = inp["rate_modifier"].copy()
    rmod[0] = 400.0
    soil = {"clay": inp["clay"], "depth": inp["depth"], "rate_modifier": rmod}
    year = rothc.site(tmp=inp["tmp"], prec=inp["prec"], pet=inp["pet"], cover=inp["cover"],
                      dpm_rpm=inp["dpm_rpm"][0], **soil)
    pools0 = rng.uniform(0, 40, (n, 5))
    smd0 = rng.uniform(0, 1, n) * rothc.smd_max(inp["clay"], inp["depth"])
    cin = rng.uniform(0.5, 4.0, n)
    got, unit, smd = rothc.simulate_pair(pools0, smd0, year, cin=cin, repeat=3)
    c_inp = np.broadcast_to(cin / 12.0, (12, n))
    want, smd_want = rothc.simulate(pools0, smd0, year, c_inp=c_inp, repeat=3)
    unit_want, _ = rothc.simulate(np.zeros((n, 5)), smd0, year, c_inp=c_inp, repeat=3)
    assert np.array_equal(got, want) and np.array_equal(unit, unit_want)
    assert np.array_equal(smd, smd_want)
    assert np.all(unit[:, 4] == 0.0) and np.all(got[:, 4] == pools0[:, 4])


def test_repeat_equals_tiled_months():
    rng = np.random.default_rng(11)
    inp = _random_inputs(rng, 12, 3)
    pools0 = rng.uniform(0, 40, (3, 5))
    rep, smd_rep = _call(rothc.simulate, pools0, np.zeros(3), **inp, repeat=3)
    tiled = {k: np.tile(v, (3, 1)) if v.ndim == 2 else v for k, v in inp.items()}
    til, smd_til = _call(rothc.simulate, pools0, np.zeros(3), **tiled)
    np.testing.assert_array_equal(rep, til)
    np.testing.assert_array_equal(smd_rep, smd_til)


def _nan_at_pixel_2(arr: np.ndarray, month: int) -> np.ndarray:
    """Return a copy of ``arr`` with pixel 2 NaN (in ``month`` for a monthly input)."""
    arr = arr.copy()
    if arr.ndim == 2:
        arr[month, 2] = np.nan
    else:
        arr[2] = np.nan
    return arr


def _assert_only_pixel_2_nan(out: np.ndarray, clean: np.ndarray) -> None:
    assert np.isnan(out[2, :4]).all()
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), np.delete(clean, 2, axis=0))


@pytest.mark.parametrize(
    "name", ["tmp", "prec", "pet", "cover", "c_inp", "fym", "dpm_rpm", "clay", "depth",
             "rate_modifier"]
)
def test_nan_in_nan_out_without_touching_other_pixels(name):
    rng = np.random.default_rng(13)
    inp = _random_inputs(rng, 12, 4)
    pools0 = rng.uniform(1, 40, (4, 5))
    clean, _ = _call(rothc.simulate, pools0, np.zeros(4), **inp)
    inp[name] = _nan_at_pixel_2(inp[name], 5)
    out, _ = _call(rothc.simulate, pools0, np.zeros(4), **inp, validate=False)
    _assert_only_pixel_2_nan(out, clean)


# --------------------------------------------------------------------------------------------
# bad input


def _good(n_months: int = 12, n: int = 4) -> dict:
    inp = _random_inputs(np.random.default_rng(0), n_months, n)
    return {"pools": np.ones((n, 5)), "smd": np.zeros(n), **inp}


@pytest.mark.parametrize(
    ("name", "index", "value", "expected"),
    [
        ("clay", (3,), 120.0, "clay[3] = 120.0"),
        ("clay", (1,), -1.0, "clay[1] = -1.0"),
        ("tmp", (5, 2), np.nan, "tmp[5, 2] = nan"),
        ("prec", (0, 1), -3.0, "prec[0, 1] = -3.0"),
        ("cover", (11, 0), 1.5, "cover[11, 0] = 1.5"),
        ("c_inp", (2, 3), -0.1, "c_inp[2, 3] = -0.1"),
        ("fym", (4, 0), np.inf, "fym[4, 0] = inf"),
        ("pools", (1, 2), -0.5, "pools[1, 2] = -0.5"),
        ("smd", (2,), 4.0, "smd[2] = 4.0"),
        ("depth", (0,), 0.0, "depth[0] = 0.0"),
        ("dpm_rpm", (7, 1), -1.0, "dpm_rpm[7, 1] = -1.0"),
        ("rate_modifier", (3,), np.nan, "rate_modifier[3] = nan"),
    ],
)
def test_bad_value_names_argument_value_and_index(name, index, value, expected):
    kw = _good()
    arr = kw[name].copy()
    arr[index] = value
    kw[name] = arr
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(InputValidationError, match=expected.replace("[", r"\[")):
        _call(rothc.simulate, pools, smd, **kw)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tmp": np.zeros((12, 3))}, r"tmp: shape \(12, 3\)"),
        ({"prec": np.zeros((11, 4))}, r"prec: shape \(11, 4\)"),
        ({"clay": np.ones(5)}, r"tmp: shape \(12, 4\) given, \(n_months, 5\)"),
        ({"pools": np.ones((4, 4))}, r"pools: shape \(4, 4\)"),
        ({"dpm_rpm": np.ones((3, 4))}, r"dpm_rpm: shape \(3, 4\)"),
        ({"repeat": 0}, "repeat = 0"),
        ({"evap_factor": -1.0}, "evap_factor = -1.0"),
    ],
)
def test_bad_shapes_and_options(change, expected):
    kw = _good()
    kw.update(change)
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(InputValidationError, match=expected):
        _call(rothc.simulate, pools, smd, **kw)


def test_shapes_are_checked_even_without_validation():
    kw = _good()
    kw["fym"] = np.zeros((12, 3))
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(InputValidationError, match="fym: shape"):
        _call(rothc.simulate, pools, smd, **kw, validate=False)


def test_equilibrium_needs_one_year_of_months():
    kw = _good(n_months=24)
    kw.pop("pools")
    kw.pop("smd")
    with pytest.raises(InputValidationError, match="24 months given"):
        _call(rothc.equilibrium, np.ones(4), **kw)


def test_equilibrium_input_rejects_bad_soc_and_pattern():
    kw = _good()
    for k in ("pools", "smd", "c_inp"):
        kw.pop(k)
    with pytest.raises(InputValidationError, match=r"soc\[1\] = -2.0"):
        _call(rothc.equilibrium_input, np.array([1.0, -2.0, 3.0, 4.0]), **kw)
    with pytest.raises(InputValidationError, match=r"input_pattern\[:, 0\] sums to 0.0"):
        _call(rothc.equilibrium_input, np.ones(4), input_pattern=np.zeros(12), **kw)


def test_validation_error_is_a_value_error():
    kw = _good()
    kw["clay"] = np.array([10.0, 20.0, 101.0, 5.0])
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(ValueError, match=r"clay\[2\] = 101.0 is outside the valid range"):
        _call(rothc.simulate, pools, smd, **kw)


def test_start_deficit_below_smd_max_is_rejected():
    kw = _good()
    kw["clay"] = np.full(4, 20.0)
    kw["depth"] = np.full(4, 23.0)  # SMDmax = -(20 + 26 - 4) = -42 mm
    kw["smd"] = np.array([0.0, -42.0, -42.5, -10.0])
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(InputValidationError, match=r"smd\[2\] = -42.5 mm is below SMDmax = -42"):
        _call(rothc.simulate, pools, smd, **kw)
    smd[2] = -41.0
    _call(rothc.simulate, pools, smd, **kw)  # on the boundary and above: accepted


@pytest.mark.parametrize("name", ["tmp", "prec", "pet", "cover", "clay", "depth", "dpm_rpm"])
def test_equilibrium_nan_pixel_gives_nan_quickly(name):
    site = _sites()
    site[name] = _nan_at_pixel_2(site[name], 3)
    eq, _ = _call(rothc.equilibrium, np.full(5, 2.5), **site, validate=False)
    clean, _ = _call(rothc.equilibrium, np.full(5, 2.5), **_sites())
    _assert_only_pixel_2_nan(eq, clean)
    cin = _call(rothc.equilibrium_input, np.full(5, 40.0), fym=site["fym"],
                                  **{k: v for k, v in site.items() if k not in ("c_inp", "fym")},
                                  validate=False)
    assert np.isnan(cin[2]) and np.isfinite(np.delete(cin, 2)).all()


def test_temperature_in_kelvin_is_rejected():
    kw = _good()
    kw["tmp"] = kw["tmp"] + 273.15
    pools, smd = kw.pop("pools"), kw.pop("smd")
    with pytest.raises(InputValidationError, match=r"tmp\[0, 0\] = .* \(°C, not K\)"):
        _call(rothc.simulate, pools, smd, **kw)


def test_equilibrium_input_reaches_target_soc_after_100000_years():
    site = _sites()
    site.pop("c_inp")
    fym = site.pop("fym")
    soc = np.array([42.0, 80.0, 15.0, 60.0, 35.0])
    cin = _call(rothc.equilibrium_input, soc, fym=fym, **site)
    start = np.zeros((5, 5))
    start[:, 4] = 0.049 * soc**1.139
    pools, _ = _call(rothc.simulate, start, np.zeros(5), c_inp=np.broadcast_to(cin / 12.0, (12, 5)),
                              fym=fym, **site, repeat=100_000)
    np.testing.assert_allclose(pools.sum(axis=1), soc, rtol=1e-9)


def test_repeat_year_equals_simulate_for_every_input():
    site = _sites()
    site.pop("c_inp")
    fym = site.pop("fym")
    start, _ = _call(rothc.equilibrium, np.full(5, 2.5), c_inp=np.full((12, 5), 0.1), fym=fym,
                                 **site)
    smd0 = 0.5 * rothc.smd_max(site["clay"], site["depth"])  # not on the periodic cycle
    cin = np.array([[1.0, 2.0, 0.5, 3.0, 4.0], [1.2, 2.4, 0.6, 3.6, 4.8]])
    got, smd = _call(rothc.repeat_year, start, smd0, cin=cin, n_years=20, fym=fym, **site)
    assert got.shape == (2, 5, 5)
    for k in range(2):
        ref, ref_smd = _call(rothc.simulate, start, smd0, c_inp=np.broadcast_to(cin[k] / 12, (12, 5)),
                                      fym=fym, **site, repeat=20)
        np.testing.assert_allclose(got[k], ref, rtol=1e-12)
        np.testing.assert_array_equal(smd, ref_smd)
    single, _ = _call(rothc.repeat_year, start, smd0, cin=cin[1], n_years=20, fym=fym, **site)
    np.testing.assert_array_equal(single, got[1])
