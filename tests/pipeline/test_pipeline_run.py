"""End-to-end pipeline runs on the local S3 server (real moto process, real dask clusters).

The session's demo world (2 × 3 tiles of 60 cells) on S3 is the input; runs go S3 in → input cube →
product cube → COG + STAC out, and are compared across schedulers and with the model run directly
on a tile. ``OUT`` is shared with the CLI tests (other map versions), so the input cube is built once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import s3fs
from distributed import Client, LocalCluster

from gsocseq.config import RunConfig
from gsocseq.cube.product_cube import open_product_cube, read_product_tile
from gsocseq.cube.store import open_cube, read_tile
from gsocseq.errors import SourceError
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.pipeline import RunSummary, plan_run, prepare_inputs, run, run_tile, start_region
from gsocseq.products.validate import validate_products
from gsocseq.storage import read_json
from gsocseq.vocabulary import LAYER_NAMES, Reason

pytestmark = [pytest.mark.s3, pytest.mark.slow]

BUCKET = "gsocseq-pipeline-shared"
OUT = f"s3://{BUCKET}/runs"
TILE = 60


def _fs(s3: Any) -> s3fs.S3FileSystem:
    fs = s3fs.S3FileSystem(**s3.storage_options)
    fs.invalidate_cache()
    return fs


def _objects(s3: Any, prefix: str) -> dict[str, tuple[str, Any]]:
    """Map every key under prefix to (ETag, LastModified), lease documents (``*.lease``) aside."""
    fs = _fs(s3)
    found = fs.find(prefix.removeprefix("s3://"), detail=True)
    return {k: (v["ETag"], v["LastModified"]) for k, v in found.items() if not k.endswith(".lease")}


@pytest.fixture(scope="module")
def first_run(s3_server: Any, demo_world_s3: Any) -> Iterator[tuple[RunConfig, RunSummary]]:
    """A demo run with the synchronous scheduler (every tile computed unless a test left them)."""
    fs = _fs(s3_server)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    config = RunConfig(region="demo", out=OUT, sources=demo_world_s3.sources_url, tile_size=TILE,
                       cluster="synchronous", storage_options=dict(s3_server.storage_options))
    summary = run(config, progress=False)
    yield config, summary


def test_region_demo_without_sources_writes_the_demo_world_once(
    s3_server: Any, s3_bucket: str
) -> None:
    config = RunConfig(region="demo", out=f"{s3_bucket}/fresh", tile_size=TILE,
                       storage_options=dict(s3_server.storage_options))
    with pytest.raises(SourceError, match="demo-inputs/sources.toml"):
        plan_run(config)  # a plan never writes inputs: the demo world is an explicit step
    assert not _objects(s3_server, f"{s3_bucket}/fresh/demo-inputs")
    plan = start_region(config)
    assert plan.sources_url == f"{s3_bucket}/fresh/demo-inputs/sources.toml"
    assert len(plan.tiles) == 6 and all(t.size == TILE for t in plan.tiles)
    before = _objects(s3_server, f"{s3_bucket}/fresh/demo-inputs")
    assert any(k.endswith("sources.toml") for k in before) and len(before) > 10
    assert start_region(config) == plan
    assert _objects(s3_server, f"{s3_bucket}/fresh/demo-inputs") == before


def test_demo_run_publishes_valid_cogs_and_stac(
    first_run: tuple[RunConfig, RunSummary], s3_server: Any
) -> None:
    config, summary = first_run
    assert summary.ok and summary.published
    assert summary.tiles_total == 6 and len(summary.tiles_done) == 6
    assert summary.pixels == 6 * TILE * TILE
    assert summary.modelled > 0 and summary.modelled + sum(summary.masked.values()) == summary.pixels
    assert summary.t0_stock_mt > 0
    cpu = summary.stage_cpu_seconds  # synchronous: every stage's CPU is this process's
    assert set(cpu) == {"plan", "inputs", "tiles", "publish"} and cpu["tiles"] > 0
    rates = {s.scenario: s.rate_mt_per_yr for s in summary.scenarios}
    assert rates["bau"] < rates["ssm_low"] < rates["ssm_med"] < rates["ssm_high"]
    report = validate_products(summary.urls["stac"], config.storage_options)
    assert report.ok, report.problems
    assert report.n_assets == 29
    plan = plan_run(config)
    published = read_json(plan.published_url, config.storage_options)
    assert published is not None and set(published["cogs"]) == set(LAYER_NAMES)


def test_totals_equal_area_weighted_sums_of_the_product_cube(
    first_run: tuple[RunConfig, RunSummary],
) -> None:
    from gsocseq.cube.grid import cell_area_ha

    config, summary = first_run
    plan = plan_run(config)
    ds = open_product_cube(plan.product_cube_url, config.storage_options)
    area = cell_area_ha(ds["latitude"].values)[:, None]
    t0 = float(np.nansum(ds["T0"].values.astype(np.float64) * area)) / 1e6
    assert t0 == pytest.approx(summary.t0_stock_mt, rel=1e-9)
    asr = float(np.nansum(ds["ASR_SSM3"].values.astype(np.float64) * area)) / 1e6
    assert asr == pytest.approx(summary.scenarios[-1].rate_mt_per_yr, rel=1e-9)
    assert int((ds["reason"].values == Reason.OK).sum()) == summary.modelled


def test_rerun_skips_every_tile_and_rewrites_nothing(
    first_run: tuple[RunConfig, RunSummary], s3_server: Any
) -> None:
    config, summary = first_run
    before = _objects(s3_server, config.out)
    again = run(config, progress=False)
    after = _objects(s3_server, config.out)
    assert len(again.tiles_skipped) == 6 and not again.tiles_done and again.ok
    assert again.t0_stock_mt == summary.t0_stock_mt
    assert after == before


def test_tile_values_equal_run_phases_on_the_tile_arrays(
    first_run: tuple[RunConfig, RunSummary],
) -> None:
    config, _ = first_run
    plan = plan_run(config)
    tile = plan.tiles[1]
    arrays = read_tile(open_cube(plan.cube_url, config.storage_options), tile)
    got = read_product_tile(plan.product_cube_url, tile, config.storage_options)
    inside = arrays["reason"].ravel() == Reason.OK
    n = inside.sum()
    assert n > 0

    def pick(name: str) -> np.ndarray:
        a = arrays[name].reshape(TILE * TILE, -1)[inside]
        return a[:, 0] if a.shape[1] == 1 else np.ascontiguousarray(a.T)

    direct = run_phases(soc=pick("soc"), clay=pick("clay"), land_use=pick("land_use"),
                        tmp=pick("tmp"), prec=pick("prec"), pet=pick("pet"), cover=pick("cover"),
                        config=PhaseConfig())
    for name in LAYER_NAMES:
        np.testing.assert_array_equal(got[name].ravel()[inside], direct.layers[name], err_msg=name)
        assert np.isnan(got[name].ravel()[~inside]).all()
    np.testing.assert_array_equal(got["reason"].ravel()[inside], direct.reason)
    np.testing.assert_array_equal(got["reason"].ravel()[~inside], arrays["reason"].ravel()[~inside])


def _product_digest(config: RunConfig) -> tuple[dict[str, str], dict[str, str]]:
    """sha256 of every product-cube variable and of every COG's bytes."""
    plan = plan_run(config)
    ds = open_product_cube(plan.product_cube_url, config.storage_options)
    cube = {name: hashlib.sha256(ds[name].values.tobytes()).hexdigest()
            for name in (*LAYER_NAMES, "reason")}
    published = read_json(plan.published_url, config.storage_options)
    assert published is not None
    fs = s3fs.S3FileSystem(**config.storage_options)
    cogs = {layer: hashlib.sha256(fs.cat_file(href)).hexdigest()
            for layer, href in published["cogs"].items()}
    return cube, cogs


def _remove_outputs(s3: Any, config: RunConfig) -> None:
    """Delete everything the run produced (the input cube and demo inputs stay)."""
    fs = _fs(s3)
    base = f"{config.out}/gsocseq/{config.map_version}".removeprefix("s3://")
    fs.rm(base, recursive=True)
    fs.invalidate_cache()
    assert not fs.exists(base)


def test_same_bytes_with_synchronous_threads_and_process_cluster(
    first_run: tuple[RunConfig, RunSummary], s3_server: Any
) -> None:
    config, summary = first_run
    reference = _product_digest(config)
    assert len(reference[1]) == 29
    _remove_outputs(s3_server, config)
    threads = run(config.model_copy(update={"cluster": "threads"}), progress=False)
    assert threads.ok and len(threads.tiles_done) == 6
    assert _product_digest(config) == reference
    _remove_outputs(s3_server, config)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        procs = run(config.model_copy(update={"cluster": None}), client=client, progress=False)
        assert len(client.scheduler_info()["workers"]) == 2
    assert procs.ok and len(procs.tiles_done) == 6
    assert _product_digest(config) == reference
    assert procs.t0_stock_mt == threads.t0_stock_mt == summary.t0_stock_mt


def test_run_tile_reports_failure_with_the_tile_named(
    first_run: tuple[RunConfig, RunSummary], s3_server: Any
) -> None:
    config, _ = first_run
    broken = config.model_copy(update={"uncertainty": False})  # new config hash: tiles not done
    plan = plan_run(broken)
    prepare_inputs(broken, plan)
    tile = plan.tiles[0]
    fs = _fs(s3_server)
    key = f"{plan.cube_url.removeprefix('s3://')}/soc/c/0/0"
    original = fs.cat_file(key)
    fs.pipe_file(key, b"not a zstd chunk")
    try:
        outcome = run_tile(broken, plan, tile.id)
    finally:
        fs.pipe_file(key, original)
    assert outcome.status == "failed"
    assert "soc" in (outcome.error or "") and tile.id in (outcome.error or "")
    assert read_json(plan.marker_url(tile.id), config.storage_options) is None
    assert run_tile(broken, plan, tile.id).status == "done"
    assert run_tile(broken, plan, tile.id).status == "skipped"
    fs.rm(plan.run_url.removeprefix("s3://"), recursive=True)  # leave no unfinished run behind
