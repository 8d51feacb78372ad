"""Pipeline building blocks on a real local zarr store: product cube, markers, layers, summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsocseq.cube.grid import TileKey, cell_area_ha
from gsocseq.cube.product_cube import (
    cached_product_cube,
    create_product_cube,
    open_product_cube,
    read_product_tile,
    write_product_tile,
)
from gsocseq.errors import GridMismatchError
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.pipeline import RunPlan, compute_tile, summarise
from gsocseq.pipeline.publish import product_layers
from gsocseq.pipeline.tile import TileOutcome, outcome_from_marker, tile_statistics
from gsocseq.storage import list_names, read_json, write_json, write_json_if_changed
from gsocseq.vocabulary import LAYER_NAMES, Reason

SIZE = 30
TILES = [TileKey(100, 200, SIZE), TileKey(100, 201, SIZE), TileKey(101, 201, SIZE)]


def _cube(tmp_path: Path) -> str:
    url = f"file://{tmp_path}/product.zarr"
    created = create_product_cube(url, origin_row=100 * SIZE, origin_col=200 * SIZE,
                                  n_rows=2 * SIZE, n_cols=2 * SIZE, tile_size=SIZE,
                                  attrs={"region": "test"})
    assert created
    return url


def _layers(value: float) -> dict[str, np.ndarray]:
    return {name: np.full((SIZE, SIZE), value + i, np.float32) for i, name in enumerate(LAYER_NAMES)}


def test_product_cube_opened_once_for_reading_and_reopened_when_recreated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil

    from gsocseq.cube import product_cube

    url = _cube(tmp_path)
    opened = []
    opener = product_cube._READERS.opener
    monkeypatch.setattr(product_cube._READERS, "opener",
                        lambda *a: opened.append(a[0]) or opener(*a))
    try:
        first = cached_product_cube(url)
        first.attrs["region"] = "changed by a caller"  # a shallow copy: not seen by others
        write_product_tile(url, TILES[1], _layers(1.0), np.zeros((SIZE, SIZE), np.uint8))
        again = cached_product_cube(url)
        assert opened == [url] and again.attrs["region"] == "test"
        assert float(again["T0"].values[0, SIZE]) == 1.0  # values read on compute: new tile seen
        shutil.rmtree(tmp_path / "product.zarr")  # recreated with another grid: reopened
        create_product_cube(url, origin_row=0, origin_col=0, n_rows=SIZE, n_cols=SIZE,
                            tile_size=SIZE, attrs={"region": "other"})
        fresh = cached_product_cube(url)
        assert opened == [url, url] and fresh.attrs["region"] == "other"
        assert fresh.sizes["latitude"] == SIZE
    finally:
        product_cube._READERS.clear()


def test_product_cube_template_then_tile_writes(tmp_path: Path) -> None:
    url = _cube(tmp_path)
    reason = np.zeros((SIZE, SIZE), np.uint8)
    reason[0, :5] = Reason.NOT_AGRICULTURAL
    write_product_tile(url, TILES[1], _layers(1.0), reason)
    got = read_product_tile(url, TILES[1])
    np.testing.assert_array_equal(got["T0"], np.float32(1.0))
    np.testing.assert_array_equal(got["reason"], reason)
    ds = open_product_cube(url)
    assert ds["T0"].dims == ("latitude", "longitude") and ds["T0"].dtype == np.float32
    assert ds["reason"].dtype == np.uint8 and ds["T0"].attrs["units"] == "t C/ha"
    assert ds["T0"].chunks == ((SIZE, SIZE), (SIZE, SIZE))
    np.testing.assert_allclose(ds["latitude"].values[:SIZE], TILES[1].latitudes())
    np.testing.assert_allclose(ds["longitude"].values[SIZE:], TILES[1].longitudes())
    # unwritten tiles read as the fill values
    assert np.isnan(ds["T0"].values[:SIZE, :SIZE]).all()
    assert (ds["reason"].values[:SIZE, :SIZE] == Reason.OUTSIDE_REGION).all()
    # chunk files exist only for the written tile (one per variable)
    assert sorted(p.name for p in (tmp_path / "product.zarr" / "T0" / "c").rglob("*")
                  if p.is_file()) == ["1"]


def test_product_cube_is_created_once_and_checks_its_grid(tmp_path: Path) -> None:
    url = _cube(tmp_path)
    write_product_tile(url, TILES[0], _layers(5.0), np.zeros((SIZE, SIZE), np.uint8))
    again = create_product_cube(url, origin_row=100 * SIZE, origin_col=200 * SIZE,
                                n_rows=2 * SIZE, n_cols=2 * SIZE, tile_size=SIZE, attrs={})
    assert again is False
    assert read_product_tile(url, TILES[0])["T0"][0, 0] == 5.0  # data kept
    with pytest.raises(GridMismatchError, match="origin_row"):
        create_product_cube(url, origin_row=99 * SIZE, origin_col=200 * SIZE, n_rows=2 * SIZE,
                            n_cols=2 * SIZE, tile_size=SIZE, attrs={})


def test_json_documents_are_written_atomically_and_only_when_changed(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/d/_done/t.json"
    assert read_json(url) is None
    write_json(url, {"b": 1, "a": [1, 2]})
    assert read_json(url) == {"a": [1, 2], "b": 1}
    assert list_names(f"file://{tmp_path}/d/_done") == ["t.json"]  # no temporary key left
    mtime = (tmp_path / "d/_done/t.json").stat().st_mtime_ns
    assert write_json_if_changed(url, {"a": [1, 2], "b": 1}) is False
    assert (tmp_path / "d/_done/t.json").stat().st_mtime_ns == mtime
    assert write_json_if_changed(url, {"a": 3}) is True and read_json(url) == {"a": 3}


def test_compute_tile_equals_run_phases_and_keeps_input_reasons() -> None:
    rng = np.random.default_rng(1)
    shape = (12, 10)
    n = 120
    arrays = {
        "soc": rng.uniform(20, 90, shape).astype(np.float32),
        "clay": rng.uniform(5, 60, shape).astype(np.float32),
        "land_use": rng.choice(np.array([2, 3, 5, 12, 13, 1], np.uint8), shape),
        "tmp": (12 + 8 * np.sin(np.arange(480) * np.pi / 6) + rng.normal(0, 1, (*shape, 480))
                ).astype(np.float32),
        "prec": rng.uniform(10, 150, (*shape, 480)).astype(np.float32),
        "pet": rng.uniform(10, 120, (*shape, 480)).astype(np.float32),
        "cover": rng.uniform(0, 1, (*shape, 12)).astype(np.float32),
        "reason": np.where(rng.uniform(size=shape) < 0.2, Reason.OUTSIDE_REGION, 0).astype(np.uint8),
    }
    layers, reason = compute_tile(arrays, PhaseConfig(uncertainty=False), batch=7)
    inside = arrays["reason"].ravel() == 0

    def flat(name: str) -> np.ndarray:
        a = arrays[name].reshape(n, -1)[inside]
        return a[:, 0] if a.shape[1] == 1 else np.ascontiguousarray(a.T)

    direct = run_phases(**{k: flat(k) for k in ("soc", "clay", "land_use", "tmp", "prec", "pet",
                                                 "cover")}, config=PhaseConfig(uncertainty=False))
    for name in LAYER_NAMES:
        np.testing.assert_array_equal(layers[name].ravel()[inside], direct.layers[name])
        assert layers[name].dtype == np.float32 and layers[name].shape == shape
    np.testing.assert_array_equal(reason.ravel()[inside], direct.reason)
    assert (reason.ravel()[~inside] == Reason.OUTSIDE_REGION).all()
    assert np.isnan(layers["T0"].ravel()[~inside]).all()
    assert (direct.reason == 0).sum() > 0 and (direct.reason == Reason.NOT_AGRICULTURAL).sum() > 0


def test_tile_statistics_and_summary_totals() -> None:
    tile = TileKey(100, 200, 4)
    layers = {name: np.full((4, 4), np.nan, np.float32) for name in LAYER_NAMES}
    layers["T0"][:2] = 50.0
    layers["ASR_BAU"][:2] = 0.25
    reason = np.full((4, 4), Reason.NOT_AGRICULTURAL, np.uint8)
    reason[:2] = Reason.OK
    stats = tile_statistics(tile, layers, reason)
    area = cell_area_ha(tile.latitudes())
    assert stats["modelled"] == 8 and stats["reasons"] == {"0": 8, "2": 8}
    assert stats["totals"]["T0"] == pytest.approx(50.0 * 4 * area[:2].sum())
    assert "T0_Uncertainty" not in stats["totals"]  # % layers are not summed
    assert len(stats["checksums"]) == 30
    marker = {"tile": tile.id, **stats}
    outcomes = [outcome_from_marker(marker, "done"), outcome_from_marker(marker, "skipped"),
                TileOutcome("t4_r100_c201", "failed", error="boom")]
    s = summarise(outcomes, region="demo", config_hash="x" * 64, scenarios=("bau",),
                  wall_seconds=1.0, urls={})
    assert not s.ok and s.tiles_failed == {"t4_r100_c201": "boom"}
    assert s.modelled == 16 and s.masked == {2: 16} and s.pixels == 32
    assert s.t0_stock_mt == pytest.approx(2 * stats["totals"]["T0"] / 1e6)
    assert s.scenarios[0].rate_mt_per_yr == pytest.approx(2 * stats["totals"]["ASR_BAU"] / 1e6)
    assert s.to_dict()["pixels"]["masked"] == {"not_agricultural": 16}


def test_product_layers_follow_scenarios_and_uncertainty() -> None:
    assert len(product_layers(("bau", "ssm_low", "ssm_med", "ssm_high"), True)) == 29
    assert product_layers(("bau",), False) == ("T0", "finalSOC_BAU", "AbsDiff_BAU", "ASR_BAU")
    med = product_layers(("ssm_med",), True)
    assert "RSR_SSM2" in med and "SSM_Uncertainty" in med and "BAU_Uncertainty" not in med
    assert list(med) == [n for n in LAYER_NAMES if n in med]  # FAO order


def test_run_plan_round_trips_through_json() -> None:
    plan = RunPlan(region="demo", region_name="DEM", config_hash="a" * 64, tile_size=SIZE,
                   tiles=tuple(TILES), origin_row=3000, origin_col=6000, n_rows=60, n_cols=60,
                   base_url="s3://b/gsocseq/v1.1/exact", sources_url=None,
                   cube_url="s3://b/gsocseq/cube/x.zarr", run_url="s3://b/r",
                   products_url="s3://b/p", stac_url="s3://b/s")
    assert RunPlan.from_dict(plan.to_dict()) == plan
    assert plan.to_dict()["tiles"] == [t.id for t in TILES]
    assert plan.marker_url(TILES[0].id) == f"s3://b/r/_done/{TILES[0].id}.json"


def test_summary_counts_euler_unstable_pixels_and_says_how_exact_differs() -> None:
    from gsocseq.pipeline import format_summary

    tile = TileKey(100, 200, 4)
    layers = {name: np.full((4, 4), np.nan, np.float32) for name in LAYER_NAMES}
    layers["T0"][:1] = 40.0
    reason = np.full((4, 4), Reason.FAO_EULER_UNSTABLE, np.uint8)
    reason[:1] = Reason.OK
    marker = {"tile": tile.id, **tile_statistics(tile, layers, reason)}
    s = summarise([outcome_from_marker(marker, "done")], region="ARG", config_hash="y" * 64,
                  scenarios=("bau",), wall_seconds=1.0, urls={})
    assert s.masked == {int(Reason.FAO_EULER_UNSTABLE): 12} and s.modelled == 4
    text = format_summary(s)
    assert "masked         12  reason 7" in text
    assert "exact scheme" in text and "2.4" in text
    clean = summarise([outcome_from_marker({"tile": tile.id, **tile_statistics(
        tile, layers, np.where(reason == Reason.OK, reason, Reason.NOT_AGRICULTURAL))}, "done")],
        region="ARG", config_hash="y" * 64, scenarios=("bau",), wall_seconds=1.0, urls={})
    assert "exact scheme" not in format_summary(clean)
