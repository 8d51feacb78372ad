"""Helpers of ``bench_scheduler.py`` importable by the scheduler process (``PYTHONPATH=benchmarks``).

Prefect sends each task's flow-run context, the flow included, to the scheduler: the flows measured
here must be importable there, and must not capture the client.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from distributed import Client
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import DaskTaskRunner

from flows.gsocseq_flows import share_task, tile_task
from gsocseq.config import RunConfig
from gsocseq.pipeline.plan import RunPlan

STATE: dict[str, Any] = {}
"""``client`` (the measuring client), ``plan``, ``n``, ``n_old``, ``results`` (set by the bench)."""


def _scheduler_rss(dask_scheduler: Any = None) -> int:
    import ctypes

    import psutil

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return int(psutil.Process().memory_info().rss)


def _n_tasks(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def wait_paused(client: Client, timeout: float = 60.0) -> None:
    t = time.monotonic()
    while True:
        status = [w["status"] for w in client.scheduler_info(n_workers=-1)["workers"].values()]
        if status == ["paused"]:
            print("worker: paused")
            return
        if time.monotonic() - t > timeout:
            raise TimeoutError(f"worker status {status}, expected paused")
        time.sleep(0.5)


def _states(dask_scheduler: Any) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(ts.state for ts in dask_scheduler.tasks.values()))


def _wait_tasks(client: Client, n: int, timeout: float = 600.0) -> None:
    t = time.monotonic()
    while client.run_on_scheduler(_n_tasks) < n:
        if time.monotonic() - t > timeout:
            raise TimeoutError(f"scheduler holds {client.run_on_scheduler(_n_tasks)} < {n} tasks")
        time.sleep(0.2)


def measure(client: Client, n: int, submit: Any) -> dict[str, float]:
    """Queue ``n`` tasks with ``submit(n)`` (returns what keeps them alive); scheduler bytes per task.

    A warm-up of a few tasks first, released before measuring: the scheduler's one-time costs
    (modules imported to unpickle the plan, first buffers) are not counted per task.
    """
    base_tasks = client.run_on_scheduler(_n_tasks)
    warm = submit(min(n, 5))
    _wait_tasks(client, base_tasks + min(n, 5))
    del warm
    _wait_released(client, base_tasks)
    before = client.run_on_scheduler(_scheduler_rss)
    t0 = time.perf_counter()
    keep = submit(n)
    _wait_tasks(client, base_tasks + n)
    seconds = time.perf_counter() - t0
    time.sleep(1.0)
    after = client.run_on_scheduler(_scheduler_rss)
    states = client.run_on_scheduler(_states)
    if set(states) - {"queued", "waiting", "released", "no-worker", "processing"}:
        raise AssertionError(f"tasks ran although the worker is paused: {states}")
    del keep
    _wait_released(client, base_tasks)
    print(f"  measured {n} queued tasks: {(after - before) / n / 1000.0:.1f} kB/task", flush=True)
    return {"tasks": n, "scheduler_mib_before": before / 2**20, "scheduler_mib_after": after / 2**20,
            "kb_per_task": (after - before) / n / 1000.0, "submit_s": seconds}


def _wait_released(client: Client, n: int, timeout: float = 120.0) -> None:
    t = time.monotonic()
    while client.run_on_scheduler(_n_tasks) > n and time.monotonic() - t < timeout:
        gc.collect()
        time.sleep(0.2)


@task(name="run-tile", cache_policy=NO_CACHE, persist_result=False)
def old_tile_task(config: RunConfig, plan: RunPlan, tile_id: str) -> None:
    """The former Prefect tile task: configuration and whole plan as parameters."""
    raise AssertionError("never runs: the worker is paused")


def _submit_new(configs: list[RunConfig]) -> Any:
    plan = STATE["plan"]

    def submit(k: int) -> Any:
        run = share_task.submit(configs[0], plan)
        return [run] + [tile_task.submit(run, t, configs[0].region) for t in plan.tile_ids[:k]]
    return submit


def _measure_new(configs: list[RunConfig]) -> None:
    STATE["results"]["prefect"] = measure(STATE["client"], STATE["n"], _submit_new(configs))


def _measure_old(jobs: list[tuple[RunConfig, RunPlan]]) -> None:
    def submit(k: int) -> Any:
        return [old_tile_task.submit(jobs[0][0], jobs[0][1], t) for t in jobs[0][1].tile_ids[:k]]
    STATE["results"]["prefect-baseline"] = measure(STATE["client"], STATE["n_old"], submit)


# The flow bodies are pickled by value (with each task's context): they reference only module
# functions (pickled by reference), never STATE and its client.
@flow(name="bench-tiles", validate_parameters=False)
def new_flow(configs: list[RunConfig]) -> None:
    """As ``compute_tiles``: configurations as parameters, the run shared once, tile ids per task."""
    _measure_new(configs)


@flow(name="bench-tiles-old", validate_parameters=False)
def old_flow(jobs: list[tuple[RunConfig, RunPlan]]) -> None:
    """The former tile flow: (configuration, plan) pairs as parameters, the plan in every task."""
    _measure_old(jobs)


def prefect_measures(address: str, config: RunConfig, plan: RunPlan, n: int, n_old: int,
                     client: Client) -> dict[str, dict[str, float]]:
    """Measure the Prefect submission (and the former one) inside real flow runs."""
    import os
    import tempfile

    from prefect.testing.utilities import prefect_test_harness

    STATE.update(client=client, plan=plan, n=n, n_old=n_old, results={})
    runner = DaskTaskRunner(address=address)
    with tempfile.TemporaryDirectory() as home:
        os.environ["PREFECT_HOME"] = home
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        with prefect_test_harness(server_startup_timeout=180):
            new_flow.with_options(task_runner=runner)([config])
            old_flow.with_options(task_runner=DaskTaskRunner(address=address))([(config, plan)])
    return dict(STATE["results"])
