"""Scheduler memory per queued tile task for a world plan (16 200 tiles of 240 cells), CLI and Prefect.

A real dask scheduler process and one worker process, the worker paused so nothing is computed: the
tasks stay queued on the scheduler, as behind a busy cluster. For each way of submitting, the
scheduler's resident memory (after ``gc``) is read before and after the tasks are queued:

Each measurement follows a warm-up (a few tasks, released): one-time costs are not counted per task.

* ``cli``: ``gsocseq.pipeline.run.submit_tiles`` (what ``gsocseq run`` does: plan and configuration
  sent once as a dask future, a reference and a tile id per task);
* ``cli-baseline``: the former submission, the configuration and the whole plan in every task;
* ``prefect``: the tasks of ``flows.gsocseq_flows`` submitted through prefect-dask's
  ``DaskTaskRunner`` from a flow whose parameters are the configurations (as ``compute_tiles``);
* ``prefect-baseline``: the former Prefect submission, the plan in the tile flow's parameters and in
  every task's parameters (Prefect sends the flow-run context, parameters included, with each task).

Goal: ≤ 20 kB per queued task. Usage::

    python benchmarks/bench_scheduler.py [--tasks 2000] [--baseline-tasks 100] [--no-prefect]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _scheduler_memory import measure, prefect_measures, wait_paused  # sys.path: benchmarks/
from distributed import Client

from gsocseq.config import RunConfig
from gsocseq.cube.grid import N_COLS, N_ROWS, tiles_of_rectangle
from gsocseq.pipeline.plan import RunPlan
from gsocseq.pipeline.run import submit_tiles

TILE = 240
GOAL_KB = 20.0


def world_plan(out: str) -> tuple[RunConfig, RunPlan]:
    """Return a world configuration and its plan (16 200 tiles), built without reading any source."""
    config = RunConfig(region="-180,-90,180,90", out=out, tile_size=TILE)
    tiles = tuple(tiles_of_rectangle(0, 0, N_ROWS, N_COLS, TILE))
    base = f"{out}/gsocseq/v1.1/exact"
    plan = RunPlan(
        region=config.region, region_name=config.region_slug, config_hash=config.config_hash,
        tile_size=TILE, tiles=tiles, origin_row=0, origin_col=0, n_rows=N_ROWS, n_cols=N_COLS,
        base_url=base, sources_url=None, cube_url=f"{out}/gsocseq/cube/world.zarr",
        run_url=f"{base}/runs/world-{config.config_hash[:12]}", products_url=f"{base}/products",
        stac_url=f"{base}/stac",
    )
    return config, plan


def _old_tile_task(config: RunConfig, plan: RunPlan, tile_id: str) -> None:  # former submission
    raise AssertionError("never runs: the worker is paused")


def cli_submit(client: Client, config: RunConfig, plan: RunPlan) -> Any:
    def submit(n: int) -> Any:
        return submit_tiles(client, config, plan, list(plan.tile_ids[:n]))
    return submit


def cli_baseline_submit(client: Client, config: RunConfig, plan: RunPlan) -> Any:
    def submit(n: int) -> Any:
        return [client.submit(_old_tile_task, config, plan, t, key=f"old-{t}", pure=False)
                for t in plan.tile_ids[:n]]
    return submit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--baseline-tasks", type=int, default=100)
    parser.add_argument("--prefect-tasks", type=int, default=None,
                        help="queued tasks for the Prefect path (default: --tasks; ~0.3 s each)")
    parser.add_argument("--no-prefect", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        sched_file = f"{tmp}/scheduler.json"
        # the scheduler unpickles the tasks: it imports what they reference (benchmarks/ for the
        # Prefect flows measured here)
        here = str(Path(__file__).resolve().parent)
        base_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (here, os.environ.get("PYTHONPATH", "")) if p)}
        procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", sched_file],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=base_env)]
        try:
            while not Path(sched_file).exists():
                time.sleep(0.2)
            # a worker whose memory limit is below its own footprint stays paused (never killed):
            # tasks reach the scheduler and wait there, nothing is computed
            env = {**base_env, "DASK_DISTRIBUTED__WORKER__MEMORY__TERMINATE": "False",
                   "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False"}
            procs.append(subprocess.Popen(
                [str(bindir / "dask"), "worker", "--nworkers", "1", "--nthreads", "1",
                 "--memory-limit", "64MB", "--no-dashboard", "--scheduler-file", sched_file],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
            with Client(scheduler_file=sched_file) as client:
                client.wait_for_workers(1, timeout=120)
                wait_paused(client)
                config, plan = world_plan(f"file://{tmp}/out")
                print(f"plan: {len(plan.tiles)} tiles of {TILE} cells")
                results = {
                    "cli": measure(client, args.tasks, cli_submit(client, config, plan)),
                    "cli-baseline": measure(client, args.baseline_tasks,
                                            cli_baseline_submit(client, config, plan)),
                }
                if not args.no_prefect:
                    address = client.scheduler.address
                    results.update(prefect_measures(address, config, plan, args.prefect_tasks or args.tasks,
                                                    max(args.baseline_tasks // 10, 5), client))
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(timeout=30)
    for name, r in results.items():
        print(f"{name:17s} {r['tasks']:6d} queued tasks: scheduler {r['scheduler_mib_before']:8.1f} → "
              f"{r['scheduler_mib_after']:8.1f} MiB, {r['kb_per_task']:9.1f} kB/task "
              f"(submitted in {r['submit_s']:.1f} s)")
    for new, old in (("cli", "cli-baseline"), ("prefect", "prefect-baseline")):
        if new in results and old in results:
            kb = results[new]["kb_per_task"]
            ok = "meets" if kb <= GOAL_KB else "MISSES"
            if kb < 1.0:  # RSS moves by a few MB on its own: below what this count can resolve
                print(f"{new}: growth below the resolution of {results[new]['tasks']} tasks "
                      f"({kb:.1f} kB/task) vs {results[old]['kb_per_task']:.0f} kB/task before; "
                      f"{ok} the goal of {GOAL_KB:g} kB/task")
            else:
                print(f"{new}: {results[old]['kb_per_task'] / kb:.0f}× less scheduler memory per task "
                      f"than before; {ok} the goal of {GOAL_KB:g} kB/task")
    world = max(max(results[k]["kb_per_task"], 0.0) for k in ("cli", "prefect") if k in results)
    print(f"scheduler memory for all {len(plan.tiles)} tiles queued at once: "
          f"{world * len(plan.tiles) / 1e6:.2f} GB (worst path)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
