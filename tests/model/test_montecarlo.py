"""Monte Carlo uncertainty (gsocseq.model.montecarlo): against a plain per-draw loop of run_phases,
seeded determinism keyed by global cell, degenerate single draw, the drawn distribution."""

from __future__ import annotations

import numpy as np
import pytest

from gsocseq.errors import InputValidationError
from gsocseq.model import exact, landuse
from gsocseq.model._montecarlo_kernels import DRAWS_BLOCK
from gsocseq.model.inputs import Pixels
from gsocseq.model.montecarlo import (
    DRAWN_INPUTS,
    HALF_WIDTHS,
    MIN_FACTOR,
    Z_95,
    draw_factors,
    montecarlo_layers,
    run_draws,
    statistics,
)
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.model.uncertainty import Bracket
from gsocseq.vocabulary import (
    MONTECARLO_BASES,
    MONTECARLO_LAYERS,
    MONTECARLO_STATISTICS,
    SCENARIOS,
)

N_MONTHS = PhaseConfig().n_months


def _pixels(n: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Seasonal climate 1981-2020 with noise; SOC 20-90 t C/ha, clay 5-60 %, modelled classes."""
    rng = np.random.default_rng(seed)
    season = np.cos(2 * np.pi * (np.arange(N_MONTHS) % 12 - 6) / 12)[:, None]
    tmp = rng.uniform(2, 24, n) + rng.uniform(2, 12, n) * season + rng.normal(0, 1, (N_MONTHS, n))
    return {
        "soc": rng.uniform(20, 90, n), "clay": rng.uniform(5, 60, n),
        "land_use": rng.choice(np.array([2, 3, 5, 12, 13]), n),
        "tmp": tmp, "prec": rng.uniform(0, 150, (N_MONTHS, n)),
        "pet": np.clip(20 + 4 * tmp, 0, None) * rng.uniform(0.8, 1.2, (N_MONTHS, n)),
        "cover": rng.uniform(0, 1, (12, n)),
    }


def _plain_loop(px: dict[str, np.ndarray], rows, cols, draws: int, seed: int) -> dict[str, np.ndarray]:
    """The reference: one run_phases call per pixel and draw on the scaled inputs, then statistics."""
    f = draw_factors(seed, rows, cols, draws)
    cfg = PhaseConfig(uncertainty=False)
    n = px["soc"].size
    per = {b: np.empty((n, draws)) for b in MONTECARLO_BASES}
    for i in range(n):
        for d in range(draws):
            s = slice(i, i + 1)
            res = run_phases(
                soc=px["soc"][s] * f["soc"][d, i],
                clay=np.minimum(px["clay"][s] * f["clay"][d, i], 100.0),
                land_use=px["land_use"][s], tmp=px["tmp"][:, s] * f["tmp"][d, i],
                prec=px["prec"][:, s] * f["prec"][d, i], pet=px["pet"][:, s],
                cover=px["cover"][:, s], config=cfg)
            for b in MONTECARLO_BASES:
                per[b][i, d] = res.layers[b][0]
    out = {}
    for b in MONTECARLO_BASES:
        for stat, arr in statistics(per[b]).items():
            out[f"{b}_{stat}"] = arr
    return out


def test_statistics_equal_a_plain_per_draw_loop_of_run_phases():
    px = _pixels(3)
    rows, cols = np.array([100, 100, 7000]), np.array([5, 6, 40000])
    got = montecarlo_layers(**px, rows=rows, cols=cols, draws=12, seed=11)
    want = _plain_loop(px, rows, cols, 12, 11)
    assert set(got) == set(MONTECARLO_LAYERS) == set(want)
    for name in MONTECARLO_LAYERS:
        assert got[name].dtype == np.float32
        # the loop's layers are float32 (run_phases), ours float64 until the end: float32 round-off
        np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=2e-7, err_msg=name)
    assert np.all(got["T0_MCsd"] > 0)
    assert np.all(got["T0_MCp05"] < got["T0_MCmean"]) and np.all(got["T0_MCmean"] < got["T0_MCp95"])


def test_same_seed_same_bytes_whatever_the_grouping_and_order_of_pixels():
    px = _pixels(7, seed=5)
    rows, cols = np.arange(200, 207), np.arange(900, 907)
    whole = montecarlo_layers(**px, rows=rows, cols=cols, draws=9, seed=4)
    order = np.array([6, 2, 4, 0, 5, 1, 3])
    part = {k: (v[:, order] if v.ndim == 2 else v[order]) for k, v in px.items()}
    shuffled = montecarlo_layers(**part, rows=rows[order], cols=cols[order], draws=9, seed=4)
    single = montecarlo_layers(**{k: (v[:, 2:3] if v.ndim == 2 else v[2:3]) for k, v in px.items()},
                               rows=rows[2:3], cols=cols[2:3], draws=9, seed=4)
    for name in MONTECARLO_LAYERS:
        assert whole[name][order].tobytes() == shuffled[name].tobytes(), name
        assert whole[name][2:3].tobytes() == single[name].tobytes(), name
    other_seed = montecarlo_layers(**px, rows=rows, cols=cols, draws=9, seed=5)
    assert not np.array_equal(other_seed["T0_MCmean"], whole["T0_MCmean"])
    # the draws belong to the cell: the same inputs at another cell get other draws
    moved = montecarlo_layers(**px, rows=rows + 1, cols=cols, draws=9, seed=4)
    assert not np.array_equal(moved["T0_MCsd"], whole["T0_MCsd"])


def test_draws_are_keyed_by_cell_and_draw_index():
    rows, cols = np.array([0, 21599, 5]), np.array([0, 43199, 5])
    a = draw_factors(42, rows, cols, 6)
    b = draw_factors(42, rows[::-1], cols[::-1], 10)  # more draws: the first 6 are the same
    for k in DRAWN_INPUTS:
        assert a[k].shape == (6, 3)
        np.testing.assert_array_equal(a[k], b[k][:6, ::-1])
    assert len({a[k][0, 2] for k in DRAWN_INPUTS}) == 4  # independent streams per input


def test_single_draw_is_degenerate():
    px = _pixels(2, seed=8)
    rows, cols = np.array([1, 2]), np.array([3, 4])
    got = montecarlo_layers(**px, rows=rows, cols=cols, draws=1, seed=0)
    want = _plain_loop(px, rows, cols, 1, 0)
    for base in MONTECARLO_BASES:
        assert np.all(got[f"{base}_MCsd"] == 0.0)
        for stat in ("MCp05", "MCp95"):
            assert got[f"{base}_{stat}"].tobytes() == got[f"{base}_MCmean"].tobytes()
        np.testing.assert_allclose(got[f"{base}_MCmean"], want[f"{base}_MCmean"], rtol=2e-6,
                                   atol=2e-7)


def test_drawn_factors_follow_the_documented_normal_and_the_soc_map_uncertainty():
    n = 20000
    rows, cols = np.arange(n) // 200, np.arange(n) % 200
    unc = np.where(np.arange(n) % 2 == 0, 40.0, np.nan)  # SOC map: ±40 % on even pixels
    f = draw_factors(1, rows, cols, 2, soc_uncertainty=unc)
    for k in ("clay", "tmp", "prec"):
        sigma = HALF_WIDTHS[k] / Z_95
        assert abs(f[k].mean() - 1.0) < 4 * sigma / np.sqrt(f[k].size)
        assert f[k].std() == pytest.approx(sigma, rel=0.03)
        assert np.abs(f[k] - 1.0).max() <= 4 * sigma + 1e-12
        inside = np.mean(np.abs(f[k] - 1.0) <= HALF_WIDTHS[k])  # 95 % inside FAO's range
        assert inside == pytest.approx(0.95, abs=0.01)
    assert f["soc"][:, 0::2].std() == pytest.approx(0.40 / Z_95, rel=0.03)
    assert f["soc"][:, 1::2].std() == pytest.approx(0.20 / Z_95, rel=0.03)


def test_a_large_soc_map_uncertainty_never_zeroes_soc_and_keeps_statistics_finite():
    """±100 % (σ ≈ 0.51): the lower tail is truncated at MIN_FACTOR, not at 0 (a NaN pixel)."""
    px = _pixels(4, seed=3)
    rows, cols = np.arange(4) + 50, np.arange(4) + 80
    unc = np.full(4, 100.0)
    f = draw_factors(2, rows, cols, 60, soc_uncertainty=unc)
    assert f["soc"].min() == MIN_FACTOR and np.mean(f["soc"] == MIN_FACTOR) > 0.01
    default = draw_factors(2, rows, cols, 60)  # FAO's ±20 %: the floor never acts
    assert default["soc"].min() > 0.5
    got = montecarlo_layers(**px, rows=rows, cols=cols, draws=60, seed=2, soc_uncertainty=unc)
    base = montecarlo_layers(**px, rows=rows, cols=cols, draws=60, seed=2)
    for name in MONTECARLO_LAYERS:
        assert np.all(np.isfinite(got[name])), name
    assert np.all(got["T0_MCsd"] > 2 * base["T0_MCsd"])


def test_failed_draw_makes_the_pixel_statistics_nan():
    values = np.array([[1.0, 2.0, 3.0], [1.0, np.nan, 3.0]])
    out = statistics(values)
    assert out["MCmean"][0] == 2.0 and np.isnan(out["MCmean"][1]) and np.isnan(out["MCp95"][1])
    assert out["MCsd"][0] == pytest.approx(np.sqrt(2 / 3))
    assert tuple(out) == MONTECARLO_STATISTICS


def test_bad_arguments_are_named():
    px = _pixels(2)
    with pytest.raises(InputValidationError, match="draws"):
        montecarlo_layers(**px, rows=np.zeros(2), cols=np.zeros(2), draws=0, seed=0)
    with pytest.raises(InputValidationError, match="rows and cols"):
        montecarlo_layers(**px, rows=np.zeros(3), cols=np.zeros(3), draws=2, seed=0)
    with pytest.raises(InputValidationError, match="exact"):
        montecarlo_layers(**px, rows=np.zeros(2), cols=np.zeros(2), draws=2, seed=0,
                          config=PhaseConfig(scheme="fao"))


def test_each_draw_is_the_exact_run_of_its_drawn_inputs():
    """run_draws against exact._run_bracket (float64) per pixel and draw, blocks of draws included.

    Pixels 14 and 28 of this set have forward deficit cycles that are not periodic from year 2
    (stepped instead of the affine year map, in the central run too).
    """
    cfg = PhaseConfig()
    n, n_draws = 3, DRAWS_BLOCK + 5  # two blocks of draws
    px = Pixels.checked(cfg, **_pixels(30, seed=5)).block(np.array([0, 14, 28]))
    f = draw_factors(3, np.arange(n), np.arange(n) + 7, n_draws)
    got = run_draws(px, f, cfg)
    climate = exact._Climate.build(px, cfg)
    soil = {"dpm_rpm": landuse.dpm_rpm_ratio(px.land_use), "depth": np.full(n, cfg.depth_cm),
            "rate_modifier": landuse.rate_factor(px.land_use)}
    scen = np.vstack([np.ones((1, n)), cfg.ssm_factors(px.land_use)])
    for i in range(n):
        one = np.array([i])
        for d in range(n_draws):
            br = Bracket(*(f[k][d, i] for k in DRAWN_INPUTS))
            want = exact._run_bracket(px.soc[one], px.clay[one], climate.subset(one),
                                      {k: v[one] for k, v in soil.items()}, br, scen[:, one], cfg)
            have = [got[k][i, d] for k in ("t0", *SCENARIOS)]
            np.testing.assert_allclose(have, [want.t0[0], *want.finals[:, 0]], rtol=1e-13,
                                       err_msg=f"pixel {i} draw {d}")


def test_miami_limit_screen_picks_the_exact_minimum():
    """The rough MIAMI screen of the Monte Carlo kernel: its pick is miami_npp_point's bytes."""
    from numba import njit

    from gsocseq.model._montecarlo_kernels import _npp_limit, _npp_min
    from gsocseq.model.npp import miami_npp_point

    @njit
    def both(t, p, out):
        n_known = 0
        for j in range(t.shape[0]):
            w = _npp_limit(t[j], p[j])
            n_known += w != 0.0
            out[0, j] = _npp_min(w, t[j], p[j])
            out[1, j] = miami_npp_point(t[j], p[j])
        return n_known

    rng = np.random.default_rng(5)
    t = np.concatenate([rng.uniform(-60, 70, 200_000), [np.nan, 1.0, np.inf, -np.inf, 20.0]])
    p = np.concatenate([rng.uniform(-100, 12_000, 200_000), [500.0, np.nan, 800.0, 800.0, -5.0]])
    # near ties: precipitation whose limit equals the temperature one
    tt = rng.uniform(-5, 35, 20_000)
    npp_t = 3000.0 / (1.0 + np.exp(1.315 - 0.119 * tt))
    pt = -np.log1p(-npp_t / 3000.0) / 0.000664 * (1.0 + rng.uniform(-1e-3, 1e-3, tt.size))
    t, p = np.concatenate([t, tt]), np.concatenate([p, pt])
    out = np.empty((2, t.size))
    n_known = both(t, p, out)
    assert n_known > 0.8 * t.size
    assert out[0].tobytes() == out[1].tobytes()
