"""Monte Carlo runs end to end on the demo world (file store, tiles of 60, BAU only, 4 draws).

Real components: the demo world's files, the zarr cubes, a synchronous run and a real process
LocalCluster, COG + STAC validators. Checks: same seed → same product-cube bytes on both schedulers
(the cluster recomputes the tiles of the same input cube; the COGs, a function of those bytes, are
published and checked once); the same bytes when a tile is computed as quadrants of 30 cells in
another order; the Monte Carlo COGs are valid and have their own STAC assets; the provenance
records the method.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, LocalCluster

from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey
from gsocseq.cube.product_cube import read_product_tile
from gsocseq.cube.store import open_cube, read_tile
from gsocseq.pipeline import plan_run, prepare_outputs, run, run_tiles
from gsocseq.pipeline.publish import product_layers
from gsocseq.pipeline.tile import compute_tile, phase_config
from gsocseq.products.validate import validate_products
from gsocseq.storage import read_json
from gsocseq.vocabulary import MONTECARLO_LAYERS, fao_file_name

pytestmark = pytest.mark.slow

TILE = 60
MC_BAU = tuple(n for n in MONTECARLO_LAYERS if n.startswith(("T0_", "finalSOC_BAU_", "ASR_BAU_")))


@pytest.fixture(scope="module")
def config(demo_world: Any, tmp_path_factory: pytest.TempPathFactory) -> RunConfig:
    world = demo_world("file")
    out = tmp_path_factory.mktemp("montecarlo-run")
    return RunConfig(region="demo", out=f"file://{out}", sources=world.sources_url, tile_size=TILE,
                     cluster="synchronous", scenarios=("bau",), uncertainty="montecarlo", draws=4,
                     seed=9)


def _cube_digests(config: RunConfig) -> dict[str, str]:
    """sha256 of every tile's Monte Carlo arrays in the product cube."""
    plan = plan_run(config)
    cube: dict[str, str] = {}
    for tile in plan.tiles:
        arrays = read_product_tile(plan.product_cube_url, tile)
        for name in MC_BAU:
            cube[f"{tile.id}/{name}"] = hashlib.sha256(arrays[name].tobytes()).hexdigest()
    return cube


def test_same_bytes_on_both_schedulers_and_valid_products(config: RunConfig) -> None:
    summary = run(config, progress=False)
    assert summary.ok and len(summary.tiles_done) == 6
    plan = plan_run(config)
    layers = product_layers(config.scenarios, True, "exact", montecarlo=True)
    assert set(MC_BAU) <= set(layers) and len(layers) == 7 + len(MC_BAU)
    report = validate_products(plan.stac_url, {}, expected_layers=layers,
                               regions=[plan.region_name])
    assert not report.problems, report.problems
    item_path = next(Path(plan.stac_url.removeprefix("file://")).parent.rglob("DEM.json"))
    item = json.loads(item_path.read_text())
    for name in MC_BAU:
        asset = item["assets"][name]
        assert asset["href"].endswith(fao_file_name("DEM", name))
        assert asset["raster:bands"][0]["unit"] == MONTECARLO_LAYERS[name].units
    unc = item["properties"]["gsocseq:uncertainty"]
    assert (unc["method"], unc["draws"], unc["seed"]) == ("montecarlo", 4, 9)
    reference = _cube_digests(config)
    assert len(reference) == 6 * len(MC_BAU) and len(set(reference.values())) > len(MC_BAU)
    modelled = read_product_tile(plan.product_cube_url, plan.tiles[0])
    ok = modelled["reason"] == 0
    assert ok.any() and np.all(np.isfinite(modelled["T0_MCsd"][ok]))
    assert np.all(np.isnan(modelled["T0_MCsd"][~ok]))
    # the tiles again on a real process cluster (product cube and markers removed; the COGs,
    # checked above, are not republished): the same bytes
    published = Path(plan.published_url.removeprefix("file://")).read_bytes()
    shutil.rmtree(plan.run_url.removeprefix("file://"))
    procs_config = config.model_copy(update={"cluster": None})
    procs_plan = plan_run(procs_config)
    prepare_outputs(procs_config, procs_plan)  # the input cube is kept: only the tiles run again
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        outcomes = run_tiles(procs_config, procs_plan, client)
    assert sorted(o.status for o in outcomes) == ["done"] * 6, outcomes
    assert _cube_digests(config) == reference
    (Path(plan.published_url.removeprefix("file://"))).write_bytes(published)  # for the next test


def test_same_bytes_for_other_tile_sizes_and_orders(config: RunConfig) -> None:
    plan = plan_run(config)
    if read_json(plan.published_url, {}) is None:
        run(config, progress=False)
    tile = plan.tiles[1]
    arrays = read_tile(open_cube(plan.cube_url, {}), tile)
    pc = phase_config(config)
    mc = (config.draws, config.seed)
    whole, _ = compute_tile(arrays, pc, montecarlo=mc, origin=(tile.row0, tile.col0))
    stored = read_product_tile(plan.product_cube_url, tile)
    half = TILE // 2
    for name in MC_BAU:
        assert whole[name].tobytes() == stored[name].tobytes(), name
    # the same cells as four quadrant tiles of 30, last quadrant first
    for qi, qj in ((1, 1), (0, 1), (1, 0), (0, 0)):
        sl = (slice(qi * half, (qi + 1) * half), slice(qj * half, (qj + 1) * half))
        sub = {k: v[sl] for k, v in arrays.items()}  # (ny, nx, ...) arrays
        key = TileKey(tile.row * 2 + qi, tile.col * 2 + qj, half)
        part, _ = compute_tile(sub, pc, montecarlo=mc, origin=(key.row0, key.col0))
        for name in MC_BAU:
            assert part[name].tobytes() == np.ascontiguousarray(whole[name][sl]).tobytes(), name


def test_plan_stored_bytes_follow_the_published_layers(config: RunConfig) -> None:
    """Monte Carlo's 36 more layers are stored: the plan's bytes move by the per-layer rate."""
    from gsocseq.pipeline.costing import Rates, cost_plan, load_rates

    rates = Rates(input_core_s_per_cell=1e-3, tile_core_s_per_pixel=2e-3,
                  publish_core_s_per_cell_layer=1e-5, stored_bytes_per_cell=1000.0,
                  eligible_fraction=0.5, montecarlo_core_s_per_pixel_draw=4e-6,
                  stored_bytes_per_cell_layer=20.0, stored_layers=29)

    def plan(rates: Rates = rates, **kw: Any) -> Any:
        return cost_plan("demo", sources_url=config.sources, tile_size=TILE, workers=1,
                         rates=rates, read_sources=False, **kw)

    brackets, mc = plan(), plan(uncertainty="montecarlo", draws=7)
    assert (brackets.layers, mc.layers) == (29, 29 + len(MONTECARLO_LAYERS))
    assert brackets.stored_bytes == pytest.approx(brackets.cells * 1000.0)
    assert mc.stored_bytes - brackets.stored_bytes == pytest.approx(
        brackets.cells * len(MONTECARLO_LAYERS) * 20.0)
    bau = plan(uncertainty="none", scenarios=("bau",))
    assert bau.stored_bytes == pytest.approx(bau.cells * (1000.0 - (29 - bau.layers) * 20.0))
    # rates without the per-layer figures (an older rates file): the shipped ones, with a note
    shipped = load_rates()
    assert shipped.stored_layers == 29 and shipped.stored_bytes_per_cell_layer is not None
    assert 0 < shipped.stored_bytes_per_cell_layer * 29 < shipped.stored_bytes_per_cell
    old = plan(Rates(**{**rates.__dict__, "stored_bytes_per_cell_layer": None,
                        "stored_layers": None}), uncertainty="montecarlo")
    assert old.stored_bytes == pytest.approx(old.cells * (
        1000.0 + len(MONTECARLO_LAYERS) * shipped.stored_bytes_per_cell_layer))
    assert any("per layer" in n for n in old.notes)
