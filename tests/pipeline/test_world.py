"""``--region world`` on the demo world, and ``gsocseq plan``.

The demo world (2 × 3 tiles of 60 cells, countries DEM and DMX) is written to a local ``file://``
store with its boundaries cut back so that one tile (south-east) lies in no country: the world run
must never build or compute it. The world run publishes on a real process LocalCluster (COG tasks
on its workers); each country's COGs must equal, byte for byte, a separate country run's, and a
country rerun under the same output replaces that country's part of the world and nothing else.
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


def test_world_leaves_antarctica_out(world_inputs: str, tmp_path: Path) -> None:
    """``world`` is every country of the boundaries less ``WORLD_EXCLUDED`` (Antarctica)."""
    src = Path(world_inputs.removeprefix("file://")).parent
    (tmp_path / "boundaries").mkdir()
    (tmp_path / "sources.toml").write_bytes((src / "sources.toml").read_bytes())
    meta, _, geoms, fields = ogr_read(io.BytesIO((src / "boundaries" / "admin0.geojson")
                                                 .read_bytes()))
    names = list(meta["fields"])
    ata = shapely.box(-64.0, -80.0, -63.5, -79.5)  # one tile of Antarctica
    geoms = np.array([*geoms, shapely.to_wkb(ata)], dtype=object)
    fields = [np.array([*col, "ATA" if n == "ADM0_A3" else col[0]], dtype=col.dtype)
              for n, col in zip(names, fields, strict=True)]
    buf = io.BytesIO()
    ogr_write(buf, geoms, fields, names, driver="GeoJSON", geometry_type="Polygon",
              crs="EPSG:4326", layer="admin0")
    (tmp_path / "boundaries" / "admin0.geojson").write_bytes(buf.getvalue())
    sources = load_sources(f"file://{tmp_path}/sources.toml")
    world = resolve_region("world", sources, tile_size=TILE)
    assert world.countries == ("DEM", "DMX") and len(world.tiles) == 5
    assert world.bbox[1] > -40  # Antarctica's tile is not in the rectangle either
    assert len(resolve_region("ATA", sources, tile_size=TILE).tiles) == 1  # itself still runs


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


def test_plan_counts_the_published_layers_and_the_monte_carlo_draws(world_inputs: str,
                                                                    tmp_path: Path) -> None:
    """Layers follow the run's scenarios and uncertainty method; draws scale the tile compute."""
    from gsocseq.pipeline.costing import Rates, cost_plan, load_rates
    from gsocseq.pipeline.publish import product_layers
    from gsocseq.vocabulary import MONTECARLO_LAYERS

    rates = Rates(input_core_s_per_cell=1e-3, tile_core_s_per_pixel=2e-3,
                  publish_core_s_per_cell_layer=1e-5, stored_bytes_per_cell=1000.0,
                  eligible_fraction=0.5, montecarlo_core_s_per_pixel_draw=4e-6)

    def plan(**kw: Any) -> Any:
        return cost_plan("DMX", sources_url=world_inputs, tile_size=TILE, workers=1, rates=rates,
                         read_sources=False, **kw)

    def core_s(p: Any, draws: int) -> float:
        return (p.cells * 1e-3 + p.eligible_pixels * (2e-3 + draws * 4e-6)
                + p.cells * p.layers * 1e-5)

    brackets = plan()
    assert (brackets.layers, brackets.draws, brackets.uncertainty) == (29, 0, "brackets")
    mc = plan(uncertainty="montecarlo")
    assert mc.layers == 29 + len(MONTECARLO_LAYERS) == 65 and mc.draws == 100
    assert mc.core_hours == pytest.approx(core_s(mc, 100) / 3600)
    mc400 = plan(uncertainty="montecarlo", draws=400)
    assert mc400.core_hours - mc.core_hours == pytest.approx(
        mc.eligible_pixels * 300 * 4e-6 / 3600)
    two = plan(uncertainty="montecarlo", draws=10, scenarios=("bau", "ssm_med"))
    assert two.layers == len(product_layers(("bau", "ssm_med"), True, "exact", True)) == 15 + 20
    assert two.core_hours == pytest.approx(core_s(two, 10) / 3600)
    assert plan(uncertainty="none", scenarios=("bau",)).layers == 4
    assert plan(scheme="fao").layers == 30  # + EulerUnstableMonths
    no_mc_rate = cost_plan("DMX", sources_url=world_inputs, tile_size=TILE, workers=1,
                           rates=Rates(**{**rates.__dict__,
                                          "montecarlo_core_s_per_pixel_draw": None}),
                           read_sources=False, uncertainty="montecarlo", draws=10)
    shipped = load_rates().montecarlo_core_s_per_pixel_draw
    assert shipped is not None and 0 < shipped < rates.tile_core_s_per_pixel
    assert no_mc_rate.core_hours == pytest.approx(
        (two.cells * 1e-3 + no_mc_rate.eligible_pixels * (2e-3 + 10 * shipped)
         + two.cells * 65 * 1e-5) / 3600)
    assert any("Monte Carlo rate" in n for n in no_mc_rate.notes)
    with pytest.raises(ValueError, match="draws=5 needs uncertainty 'montecarlo'"):
        plan(draws=5)
    with pytest.raises(ValueError, match="scenarios"):
        plan(scenarios=("bau", "ssm_max"))
    res = CliRunner().invoke(main, ["plan", "--region", "DMX", "--sources", world_inputs,
                                    "--tile-size", str(TILE), "--no-source-reads",
                                    "--uncertainty", "montecarlo", "--draws", "50",
                                    "--scenarios", "bau,ssm_med"])
    assert res.exit_code == 0, res.output
    assert "layers published: 35 (uncertainty montecarlo, 50 Monte Carlo draws" in res.output
    assert "Monte Carlo rate: benchmarks/bench_montecarlo.py" in res.output
    bad = CliRunner().invoke(main, ["plan", "--region", "DMX", "--sources", world_inputs,
                                    "--no-source-reads", "--draws", "50"])
    assert bad.exit_code == 2 and "needs uncertainty 'montecarlo'" in bad.output


def _scale_soc_inside(inputs: Path, iso3: str, factor: float) -> None:
    """Multiply the demo GSOCmap's stocks by ``factor`` in cells well inside country ``iso3``."""
    import rasterio
    from rasterio.features import rasterize

    meta, _, geoms, fields = ogr_read(io.BytesIO((inputs / "boundaries" / "admin0.geojson")
                                                 .read_bytes()))
    names = list(meta["fields"])
    codes = fields[names.index("ADM0_A3")]
    (geom,) = [shapely.from_wkb(g) for g, c in zip(geoms, codes, strict=True) if c == iso3]
    inner = shapely.buffer(geom, -2.5 / 120)  # 2.5 cells inside: no cell of another country
    path = inputs / "soc" / "GSOCmap_demo.tif"
    with rasterio.open(path) as src:
        profile, soc = src.profile, src.read(1)
    hit = rasterize([(inner, 1)], out_shape=soc.shape, transform=profile["transform"]).astype(bool)
    hit &= soc > 0
    assert hit.sum() > 1000
    soc[hit] *= np.float32(factor)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(soc, 1)


@pytest.mark.slow
def test_world_run_national_sets_and_a_country_rerun(world_inputs: str, tmp_path: Path) -> None:
    """One world, three checks (one test: each run is costly).

    1. ``--region world`` on a process LocalCluster: the tile in no country is never built, the
       global set and both national sets are published, DMX's equal a DMX run byte for byte.
    2. DEM's input changes (GSOCmap stocks × 1.25 well inside DEM) and DEM is rerun under the
       same output: DEM's COGs and item and the global layers, totals and tile markers equal a
       fresh world run with the change (whose DEM set thereby equals a DEM run); DMX's files keep
       their modification times.
    3. A world rerun after that finds everything current: nothing recomputed or rewritten.
    """
    import shutil

    from distributed import Client, LocalCluster

    inputs = tmp_path / "inputs"  # a copy: this test changes it
    shutil.copytree(Path(world_inputs.removeprefix("file://")).parent, inputs)
    sources = f"file://{inputs}/sources.toml"
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    config = _config("world", sources, f"file://{out_a}")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        summary = run(config, client=client, progress=False)
        assert summary.ok and summary.published and summary.tiles_total == 5
        plan = plan_run(config)
        world = resolve_region("world", load_sources(sources), tile_size=TILE)
        (outside,) = [t for t in world.all_tiles() if t not in world.tiles]
        cube = open_cube(plan.cube_url)  # the tile in no country was never read or built
        assert tile_status(cube, outside) == -1
        assert all(tile_status(cube, t) >= 0 for t in world.tiles)
        done = Path(plan.done_url.removeprefix("file://"))
        assert sorted(p.stem for p in done.glob("*.json")) == sorted(t.id for t in world.tiles)

        base_a = out_a / "gsocseq" / "v1.1" / "exact"
        products = base_a / "products"
        globals_ = sorted(p.name for p in (products / "world").glob("*.tif"))
        assert "GSOCseq_T0_Map030.tif" in globals_ and len(globals_) == 9
        assert all(not n.startswith("world") for n in globals_)
        # DMX's national set equals a DMX run's, byte for byte (DEM's: in part 2)
        csum = run(_config("DMX", sources, f"file://{tmp_path}/DMX", cluster="synchronous"),
                   progress=False)
        assert csum.ok
        ours = sorted((products / "DMX").glob("*.tif"))
        theirs = tmp_path / "DMX" / "gsocseq" / "v1.1" / "exact" / "products" / "DMX"
        assert len(ours) == 9
        for f in ours:
            assert f.read_bytes() == (theirs / f.name).read_bytes(), f.name
        got = summary.country_totals["DMX"]
        assert got["T0_MtC"] == pytest.approx(csum.t0_stock_mt, rel=1e-9)
        assert got["ssm_med_rate_MtC_per_yr"] == pytest.approx(
            csum.scenarios[1].rate_mt_per_yr, rel=1e-9)
        assert sum(t["T0_MtC"] for t in summary.country_totals.values()) == pytest.approx(
            summary.t0_stock_mt, rel=1e-9)
        # STAC: one global item and one per country, in one collection
        coll = "stac/gsocseq-v1.1-exact"
        assert sorted(p.name for p in (base_a / coll).iterdir() if p.is_dir()) == [
            "DEM", "DMX", "world"]
        published = json.loads(Path(plan.published_url.removeprefix("file://")).read_text())
        assert set(published["countries"]) == {"DEM", "DMX"}
        assert summary.to_dict()["countries"]["DMX"]["T0_MtC"] == pytest.approx(got["T0_MtC"])

        # 2. DEM's input changes; DEM is rerun under the same output (merge tasks on the cluster)
        before = (products / "world" / "GSOCseq_T0_Map030.tif").read_bytes()
        dmx = {**_snapshot(products / "DMX"), **_snapshot(base_a / coll / "DMX")}
        assert len(dmx) > 9
        _scale_soc_inside(inputs, "DEM", 1.25)
        dem = run(_config("DEM", sources, f"file://{out_a}"), client=client, progress=False)
        assert dem.ok and dem.published
    world_b = _config("world", sources, f"file://{out_b}", cluster="synchronous")
    fresh = run(world_b, progress=False)
    assert fresh.published
    base_b = out_b / "gsocseq" / "v1.1" / "exact"
    for region in ("world", "DEM"):  # the rerun's products equal a fresh world run's
        ours = sorted((products / region).glob("*.tif"))
        assert len(ours) == 9
        for f in ours:
            assert f.read_bytes() == (base_b / "products" / region / f.name).read_bytes(), f.name
    assert before != (products / "world" / "GSOCseq_T0_Map030.tif").read_bytes()
    assert {**_snapshot(products / "DMX"), **_snapshot(base_a / coll / "DMX")} == dmx

    def item_checksums(base: Path, region: str) -> dict[str, str]:
        item = json.loads((base / coll / region / f"{region}.json").read_text())
        return {k: a["file:checksum"] for k, a in item["assets"].items() if "file:checksum" in a}

    for region in ("world", "DEM"):
        assert item_checksums(base_a, region) == item_checksums(base_b, region) != {}
    plan_b = plan_run(world_b)
    pub_a, pub_b = (json.loads(Path(p.published_url.removeprefix("file://")).read_text())
                    for p in (plan, plan_b))
    assert pub_a["totals"] == pytest.approx(pub_b["totals"], rel=1e-12)
    for iso3 in ("DEM", "DMX"):
        assert pub_a["countries"][iso3] == pytest.approx(pub_b["countries"][iso3], rel=1e-12)
    assert pub_a["countries"]["DEM"]["T0_MtC"] > 1.05 * published["countries"]["DEM"]["T0_MtC"]
    assert pub_a["countries"]["DEM"]["T0_MtC"] == pytest.approx(dem.t0_stock_mt, rel=1e-9)
    assert pub_a["countries"]["DMX"] == published["countries"]["DMX"]
    for tile_id in plan.tile_ids:  # markers describe the merged tiles as a world run would
        ma, mb = (json.loads(Path(p.marker_url(tile_id).removeprefix("file://")).read_text())
                  for p in (plan, plan_b))
        assert ma["checksums"] == mb["checksums"], tile_id

    # 3. a world rerun under the first output: DEM's SOC changed since the world's cube was built,
    # so its tiles are extracted and computed again (incremental rebuild) — to the bytes the
    # merged country rerun gave them: nothing is rewritten
    world_files = _snapshot(products / "world")
    again = run(config.model_copy(update={"cluster": "synchronous"}), progress=False)
    assert again.ok and again.reuse["inputs"]["sources_changed"] == ["soc"]
    assert again.reuse["publication"]["layers_rewritten"] == []
    assert _snapshot(products / "world") == world_files


def test_global_layers_are_encoded_in_parts_and_patched(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A global layer taller than a part is encoded by several tasks and assembled (issue 17).

    The demo world of 3 × 1 tiles of 180 cells (its countries' rectangle: 720 rows, parts of 512 +
    208 rows, as a world layer's 21 600 rows are cut into parts of 2 048 rows). On a process
    LocalCluster every global layer is written by 2 part tasks and 1 assembly; each COG is valid
    and has the pixels, at every level, of the one-piece writer. Then one tile of the first row
    changes in the product cube: republishing with that tile re-encodes part 0 only — part 1's
    file is not rewritten and its encoded blocks in the global COG keep their bytes.
    """
    from distributed import Client, LocalCluster, get_task_stream

    from gsocseq.cube.grid import TileKey
    from gsocseq.cube.product_cube import REASON_VAR, read_product_tile, write_product_tile
    from gsocseq.demo import write_demo_world
    from gsocseq.pipeline import publish
    from gsocseq.pipeline import publish_tasks as tasks
    from gsocseq.pipeline.tile import tile_statistics
    from gsocseq.products.cog import check_cog, read_levels, write_cog
    from gsocseq.products.tiff_layout import read_ifds

    sources = write_demo_world(f"file://{tmp_path}/inputs", tiles_y=3, tiles_x=1, tile_size=180)
    config = RunConfig(region="world", out=f"file://{tmp_path}/out", sources=sources,
                       tile_size=180, uncertainty=False, scenarios=("bau",))
    plan = plan_run(config)
    monkeypatch.setattr(tasks, "PART_ROWS", 512)  # the layout is chosen by the client
    layout = tasks.layer_layout(plan)
    assert layout is not None and layout.n_parts == 2 and plan.n_rows == 720
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            summary = run(config, client=client, progress=False)
        assert summary.ok and summary.published
        keys = [str(r["key"]) for r in stream.data]
        world = Path(plan.products_url.removeprefix("file://")) / "world"
        cogs = sorted(world.glob("*.tif"))
        assert len(cogs) == 4  # T0 and BAU's finalSOC, AbsDiff and ASR
        assert sum("gsocseq-part-" in k for k in keys) == 2 * len(cogs)
        assert sum("gsocseq-assemble-" in k for k in keys) == len(cogs)

        def same_as_one_piece(cog: Path) -> None:
            layer = next(n for n in _layer_names(cog))
            ds = open_product_cube_layer(plan, layer)
            one = write_cog(ds, str(tmp_path / "one.tif"), tags={"GSOCSEQ_REGION": "world"})
            assert check_cog(cog, expected_shape=(plan.n_rows, plan.n_cols)) == []
            for a, b in zip(read_levels(Path(one.href)), read_levels(cog), strict=True):
                assert np.array_equal(a, b, equal_nan=True), cog.name

        for cog in cogs:
            same_as_one_piece(cog)

        # a tile of part 0 with values changes (as a country rerun's merge writes it)
        tile = next(t for t in map(TileKey.from_id, plan.tile_ids)
                    if t.row0 - plan.origin_row + 180 <= 512
                    and np.isfinite(read_product_tile(plan.product_cube_url, t)["T0"]).any())
        values = read_product_tile(plan.product_cube_url, tile)
        reason = values.pop(REASON_VAR)
        values = {n: np.where(np.isfinite(v), v * 1.1, v).astype(v.dtype) for n, v in values.items()}
        write_product_tile(plan.product_cube_url, tile, values, reason)
        marker_path = Path(plan.marker_url(tile.id).removeprefix("file://"))
        marker = json.loads(marker_path.read_text())
        marker_path.write_text(json.dumps({**marker, **tile_statistics(tile, values, reason)}))
        t0 = world / "GSOCseq_T0_Map030.tif"
        before = t0.read_bytes()
        folder = Path(tasks.parts_url(plan, "T0", layout).removeprefix("file://"))
        kept = (folder / "part-0001.tif").stat().st_mtime_ns
        changed = (folder / "part-0000.tif").stat().st_mtime_ns
        result = publish(config, plan, client, changed_tiles=[tile.id])
        assert not result.skipped and "T0" in (result.rewritten or ())
    assert (folder / "part-0001.tif").stat().st_mtime_ns == kept
    assert (folder / "part-0000.tif").stat().st_mtime_ns != changed
    after = t0.read_bytes()
    assert after != before
    for cog in cogs:
        same_as_one_piece(cog)
    old, new = read_ifds(io.BytesIO(before)), read_ifds(io.BytesIO(after))
    blocks = -(-plan.n_cols // 512)
    for k, (o, n) in enumerate(zip(old[0].tiles(), new[0].tiles(), strict=True)):
        equal = before[o[0]:o[0] + o[1]] == after[n[0]:n[0] + n[1]]
        assert equal == (k >= blocks), f"block {k}"  # part 1's block row kept its bytes


def _layer_names(cog: Path) -> list[str]:
    import rasterio

    with rasterio.open(cog) as src:
        return [src.tags()["GSOCSEQ_LAYER"]]


def open_product_cube_layer(plan: Any, layer: str) -> Any:
    from gsocseq.cube.product_cube import open_product_cube

    return open_product_cube(plan.product_cube_url)[layer].rename(layer).compute()
