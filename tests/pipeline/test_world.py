"""``--region world`` on the demo world, and ``gsocseq plan``.

The demo world (2 × 3 tiles of 60 cells, countries DEM and DMX) is written to a local ``file://``
store with its boundaries cut back so that one tile (south-east) lies in no country: the world run
must never build or compute it. The world run publishes on a real process LocalCluster (COG tasks
on its workers); each country's COGs must equal, byte for byte, a separate country run's.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from pyogrio.raw import read as ogr_read
from pyogrio.raw import write as ogr_write

from gsocseq.cli import main
from gsocseq.config import RunConfig
from gsocseq.cube import resolve_region
from gsocseq.cube.store import open_cube, tile_status
from gsocseq.pipeline import plan_run, run
from gsocseq.sources import load_sources

TILE = 60
#: The demo world's south-east tile (row 1, col 2 of 2 × 3 tiles whose NW corner is 64°W 34°S).
GAP = shapely.box(-63.01, -35.2, -62.3, -34.49)


@pytest.fixture(scope="module")
def world_inputs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo world with the south-east tile removed from both countries; its sources URL."""
    from gsocseq.demo import write_demo_world

    root = tmp_path_factory.mktemp("world-inputs")
    url = write_demo_world(f"file://{root}", tiles_y=2, tiles_x=3, tile_size=TILE, seed=0)
    path = root / "boundaries" / "admin0.geojson"
    meta, _, geoms, fields = ogr_read(io.BytesIO(path.read_bytes()))
    cut = np.array([shapely.to_wkb(shapely.difference(shapely.from_wkb(g), GAP)) for g in geoms],
                   dtype=object)
    buf = io.BytesIO()
    ogr_write(buf, cut, list(fields), list(meta["fields"]), driver="GeoJSON",
              geometry_type="Polygon", crs="EPSG:4326", layer="admin0")
    path.write_bytes(buf.getvalue())
    return url


def _config(region: str, sources: str, out: str, **kw: Any) -> RunConfig:
    return RunConfig(region=region, out=out, sources=sources, tile_size=TILE, uncertainty=False,
                     scenarios=("bau", "ssm_med"), **kw)


def test_world_region_is_the_union_of_the_countries(world_inputs: str) -> None:
    sources = load_sources(world_inputs)
    world = resolve_region("world", sources, tile_size=TILE)
    assert world.countries == ("DEM", "DMX")
    assert len(world.all_tiles()) == 6 and len(world.tiles) == 5
    (outside,) = [t for t in world.all_tiles() if t not in world.tiles]
    assert outside.bounds[0] == pytest.approx(-63.0) and outside.bounds[3] == pytest.approx(-34.5)
    dem = resolve_region("DEM", sources, tile_size=TILE)
    dmx = resolve_region("DMX", sources, tile_size=TILE)
    for tile in world.tiles:  # the union's mask is the two countries' masks together
        both = (dem.mask(tile) if tile in dem.tiles else False) | (
            dmx.mask(tile) if tile in dmx.tiles else False)
        assert np.array_equal(world.mask(tile), np.broadcast_to(both, (TILE, TILE)))


@pytest.mark.slow
def test_world_run_publishes_global_and_national_sets_equal_to_country_runs(
    world_inputs: str, tmp_path: Path
) -> None:
    from distributed import Client, LocalCluster

    out = f"file://{tmp_path}/out"
    config = _config("world", world_inputs, out)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        summary = run(config, client=client, progress=False)
    assert summary.ok and summary.published and summary.tiles_total == 5
    plan = plan_run(config)
    world = resolve_region("world", load_sources(world_inputs), tile_size=TILE)
    (outside,) = [t for t in world.all_tiles() if t not in world.tiles]
    cube = open_cube(plan.cube_url)  # the tile in no country was never read or built
    assert tile_status(cube, outside) == -1
    assert all(tile_status(cube, t) >= 0 for t in world.tiles)
    done = Path(plan.done_url.removeprefix("file://"))
    assert sorted(p.stem for p in done.glob("*.json")) == sorted(t.id for t in world.tiles)

    products = tmp_path / "out" / "gsocseq" / "v1.1" / "exact" / "products"
    globals_ = sorted(p.name for p in (products / "world").glob("*.tif"))
    assert "GSOCseq_T0_Map030.tif" in globals_ and len(globals_) == 9
    assert all(not n.startswith("world") for n in globals_)

    # national sets equal a country run of each country, byte for byte
    for iso3 in ("DEM", "DMX"):
        country_out = f"file://{tmp_path}/{iso3}"
        csum = run(_config(iso3, world_inputs, country_out, cluster="synchronous"), progress=False)
        assert csum.ok
        ours = sorted((products / iso3).glob("*.tif"))
        theirs = tmp_path / iso3 / "gsocseq" / "v1.1" / "exact" / "products" / iso3
        assert len(ours) == 9
        for f in ours:
            assert f.read_bytes() == (theirs / f.name).read_bytes(), f.name
        got = summary.country_totals[iso3]
        assert got["T0_MtC"] == pytest.approx(csum.t0_stock_mt, rel=1e-9)
        assert got["ssm_med_rate_MtC_per_yr"] == pytest.approx(
            csum.scenarios[1].rate_mt_per_yr, rel=1e-9)
    world_t0 = summary.t0_stock_mt
    assert sum(t["T0_MtC"] for t in summary.country_totals.values()) == pytest.approx(world_t0,
                                                                                      rel=1e-9)
    # STAC: one global item and one per country, in one collection
    coll = products.parent / "stac" / "gsocseq-v1.1-exact"
    assert sorted(p.name for p in coll.iterdir() if p.is_dir()) == ["DEM", "DMX", "world"]
    published = json.loads(Path(plan.published_url.removeprefix("file://")).read_text())
    assert set(published["countries"]) == {"DEM", "DMX"}
    assert summary.to_dict()["countries"]["DMX"]["T0_MtC"] == pytest.approx(
        summary.country_totals["DMX"]["T0_MtC"])


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_plan_prints_the_figures_and_writes_nothing(world_inputs: str, tmp_path: Path) -> None:
    inputs = Path(world_inputs.removeprefix("file://")).parent
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({
        "input_core_s_per_cell": 1e-3, "tile_core_s_per_pixel": 2e-3,
        "publish_core_s_per_cell_layer": 1e-5, "stored_bytes_per_cell": 1000.0,
        "eligible_fraction": 0.5, "measured": "test rates"}))
    before, here = _snapshot(inputs), _snapshot(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = CliRunner().invoke(main, ["plan", "--region", "world", "--sources", world_inputs,
                                        "--tile-size", str(TILE), "--workers", "2",
                                        "--rates", str(rates), "--json"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    assert _snapshot(inputs) == before and _snapshot(tmp_path) == here
    doc = json.loads(res.output)
    assert doc["tiles"] == 5 and doc["tiles_in_rectangle"] == 6
    assert doc["cells"] == 5 * TILE * TILE
    assert 0.8 * doc["cells"] < doc["region_cells"] < doc["cells"]
    assert doc["eligible_source"] == "land cover"
    assert 0 < doc["eligible_pixels"] < doc["region_cells"]
    reads = {s["name"]: s for s in doc["sources"]}
    assert reads["climate"]["files"] == 160 and reads["climate"]["bytes"] > 0
    assert all(s["bytes"] is not None for s in doc["sources"])
    core_s = (doc["cells"] * 1e-3 + doc["eligible_pixels"] * 2e-3 + doc["cells"] * 29 * 1e-5)
    assert doc["core_hours"] == pytest.approx(core_s / 3600)
    assert doc["wall_hours"] == pytest.approx(core_s / 3600 / 2)
    assert doc["stored_bytes"] == pytest.approx(doc["cells"] * 1000.0)
    text = CliRunner().invoke(main, ["plan", "--region", "DMX", "--sources", world_inputs,
                                     "--tile-size", str(TILE), "--no-source-reads"])
    assert text.exit_code == 0 and "core-hours" in text.output and "eligible pixels" in text.output
