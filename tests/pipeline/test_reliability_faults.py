"""Faults during a run lose nothing: a SIGKILLed dask worker, a flaky or restarting S3 endpoint, a
persistently failing key. Real components only: the moto server process, a process LocalCluster
whose worker is killed with SIGKILL, and :class:`faultproxy.FaultProxy` (a real HTTP proxy that
answers 503 / drops connections / goes away) between the run and moto.

Every run's outputs are compared byte for byte with an uninterrupted synchronous run (``reference``).
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster
from faultproxy import FaultProxy
from reliability import (
    assert_complete_as_reference,
    assert_nothing_partial,
    make_config,
    remove_run,
    run_digest,
)

from gsocseq.pipeline import plan_run, prepare_inputs, publish, run, run_tile
from gsocseq.pipeline.tile import TileOutcome
from gsocseq.storage import read_json, retry_backoff_s

pytestmark = [pytest.mark.s3, pytest.mark.slow]


@pytest.fixture
def reference(reliability_reference: dict[str, str]) -> dict[str, str]:
    """Digest of an uninterrupted synchronous run (map version ``rel-ref``; root conftest)."""
    return reliability_reference


@pytest.fixture
def proxy(s3_server: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto (no faults until the test sets them); stopped afterwards."""
    p = FaultProxy(s3_server.endpoint_url, seed=7).start()
    yield p
    p.stop()


def test_sigkill_of_a_busy_dask_worker_is_rescheduled_and_changes_no_byte(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str]
) -> None:
    so = s3_server.storage_options
    config = make_config(so, demo_world_s3.sources_url, "rel-kill", cluster=None)
    remove_run(config, so)
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids: dict[str, int] = client.run(os.getpid)

        def kill_a_busy_worker(outcome: TileOutcome, n_done: int, n_total: int) -> None:
            if killed:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:  # the worker is computing a tile right now
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])

        summary = run(config, client=client, progress=False, on_tile=kill_a_busy_worker)
    assert killed, "no worker was busy after the first tile: nothing was killed"
    # a killed worker may have written its tile's completion marker just before dying: the
    # rescheduled task then finds it and skips (the bytes are checked against the reference below)
    accounted = set(summary.tiles_done) | set(summary.tiles_skipped)
    assert summary.ok and summary.published and not summary.tiles_failed
    assert len(accounted) == 6 and len(summary.tiles_done) >= 5, summary
    assert_complete_as_reference(config, so, reference)


def test_flaky_and_restarting_endpoint_is_retried_and_changes_no_byte(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str], proxy: FaultProxy
) -> None:
    so = s3_server.storage_options
    # of every request, writes included. A run makes ≈ 2500 requests; with the proxy's seeded draws
    # these rates give ≥ 3 errors and ≥ 3 drops from the 1000th request on (≈ 17 and 10 in all):
    # every retry costs botocore's jittered back-off (≈ half the back-off setting, 0.1 s in the
    # tests: conftest), so higher rates only add sleep
    proxy.error_rate, proxy.drop_rate = 0.004, 0.003
    # the endpoint's outage lasts twice the back-off (the product's defaults: 2 s and 1 s), so the
    # requests caught in it ride it out on their retries exactly as they would at full scale
    outage_s = 2 * retry_backoff_s()
    config = make_config(proxy.storage_options(so), demo_world_s3.sources_url, "rel-flaky")
    remove_run(config, so)
    restarts: list[threading.Timer] = []

    def restart_endpoint(outcome: TileOutcome, n_done: int, n_total: int) -> None:
        if n_done == 2:  # the endpoint goes away in the middle of the tiles
            proxy.stop()
            restarts.append(threading.Timer(outage_s, proxy.start))
            restarts[0].start()

    summary = run(config, progress=False, on_tile=restart_endpoint)
    restarts[0].join()
    assert proxy.counts["error"] >= 3 and proxy.counts["drop"] >= 3, proxy.counts
    assert summary.ok and summary.published, summary.tiles_failed
    clean = make_config(so, demo_world_s3.sources_url, "rel-flaky")
    assert run_digest(clean, so) == reference
    remove_run(clean, so)


def test_persistent_error_fails_only_its_tile_names_the_key_and_a_rerun_completes(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str], proxy: FaultProxy
) -> None:
    so = s3_server.storage_options
    clean = make_config(so, demo_world_s3.sources_url, "rel-persist")
    remove_run(clean, so)
    plan = plan_run(clean)
    tile = plan.tiles[1]
    rows, cols = tile.to_slices(plan.origin_row, plan.origin_col)
    chunk = f"T0/c/{rows.start // tile.size}/{cols.start // tile.size}"
    proxy.fail_paths = (f"product.zarr/{chunk}",)
    # 2 attempts per request instead of the default 6: the same code path, a shorter test
    retries = {"config_kwargs": {"retries": {"max_attempts": 2, "mode": "adaptive"}}}
    faulty = make_config(proxy.storage_options(so, **retries), demo_world_s3.sources_url, "rel-persist")
    summary = run(faulty, progress=False)
    assert not summary.ok and not summary.published
    assert list(summary.tiles_failed) == [tile.id]
    assert chunk in summary.tiles_failed[tile.id], summary.tiles_failed
    assert len(summary.tiles_done) == 5
    assert proxy.counts["fail"] >= 2  # the tile was retried after the client's own retries
    assert read_json(plan.published_url, so) is None
    assert assert_nothing_partial(clean, so) == 5
    again = run(clean, progress=False)
    assert again.ok and list(again.tiles_done) == [tile.id] and len(again.tiles_skipped) == 5
    assert run_digest(clean, so) == reference
    remove_run(clean, so)


def test_shuffled_tile_order_gives_the_same_bytes(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str]
) -> None:
    so = s3_server.storage_options
    config = make_config(so, demo_world_s3.sources_url, "rel-order")
    remove_run(config, so)
    plan = plan_run(config)
    prepare_inputs(config, plan)
    order = list(plan.tile_ids)
    random.Random(3).shuffle(order)
    assert order != list(plan.tile_ids)
    assert [run_tile(config, plan, t).status for t in order] == ["done"] * 6
    publish(config, plan)
    assert run_digest(config, so) == reference
    remove_run(config, so)
