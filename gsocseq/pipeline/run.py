"""Run a whole region on dask: plan → input cube → tiles (in parallel) → COGs + STAC → summary.

Tasks carry the configuration, the plan and a tile id, never arrays; workers read the input cube and
write the product cube themselves. The scheduler is chosen at call time: an existing ``client``, the
``cluster`` address of the configuration, ``threads`` / ``processes`` (a LocalCluster built here and
closed afterwards), or ``synchronous`` (tiles one after another in this process, no dask).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from gsocseq.config import RunConfig
from gsocseq.errors import PipelineError
from gsocseq.pipeline.plan import RunPlan, plan_run
from gsocseq.pipeline.prepare import prepare_inputs
from gsocseq.pipeline.publish import publish
from gsocseq.pipeline.summary import RunSummary, summarise
from gsocseq.pipeline.tile import TileOutcome, finished_tiles, run_tile

log = logging.getLogger(__name__)

WORKER_WAIT_S: float = 120.0
"""How long to wait for a remote scheduler to have at least one worker, s."""

ProgressCallback = Callable[[TileOutcome, int, int], None]
"""Called after each tile with (outcome, tiles finished so far, tiles total)."""


def _tile_task(config: RunConfig, plan: RunPlan, tile_id: str) -> TileOutcome:
    """Dask task: :func:`run_tile` raising on failure, so dask can retry the tile."""
    return run_tile(config, plan, tile_id, raise_errors=True)


@contextlib.contextmanager
def open_client(config: RunConfig, client: Any = None) -> Iterator[Any]:
    """Yield a dask client for the run (``None`` for the synchronous scheduler).

    An existing ``client`` is used as is; a cluster built here is closed on exit.
    """
    if client is not None or config.cluster == "synchronous":
        yield client
        return
    from distributed import Client, LocalCluster

    if config.cluster is not None and "://" in config.cluster:
        with Client(config.cluster, timeout=WORKER_WAIT_S) as c:
            try:
                c.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError as exc:
                raise PipelineError(
                    f"scheduler {config.cluster} has no worker after {WORKER_WAIT_S:.0f} s"
                ) from exc
            yield c
        return
    n = os.cpu_count() or 1
    if config.cluster == "threads":
        kwargs: dict[str, Any] = {"n_workers": 1, "threads_per_worker": n, "processes": False}
    else:
        kwargs = {"n_workers": n, "threads_per_worker": 1, "processes": True}
    with LocalCluster(dashboard_address=None, **kwargs) as cluster, Client(cluster) as c:
        yield c


def run_tiles(
    config: RunConfig,
    plan: RunPlan,
    client: Any = None,
    *,
    on_tile: ProgressCallback | None = None,
    retries: int = 1,
) -> list[TileOutcome]:
    """Run every tile of the plan on ``client`` (or in this process when ``None``).

    Tiles whose completion marker is already there are reported as skipped without a task.
    """
    total = len(plan.tiles)
    outcomes: list[TileOutcome] = []
    finished = finished_tiles(config, plan)

    def record(outcome: TileOutcome) -> None:
        outcomes.append(outcome)
        if outcome.status == "failed":
            log.error("tile %s failed: %s", outcome.tile_id, outcome.error)
        elif outcome.status == "skipped":
            log.info("tile %s skipped: completion marker found", outcome.tile_id)
        if on_tile is not None:
            on_tile(outcome, len(outcomes), total)

    for tile_id in plan.tile_ids:
        if tile_id in finished:
            record(finished[tile_id])
    todo = [t for t in plan.tile_ids if t not in finished]
    if client is None or not todo:
        for tile_id in todo:
            record(run_tile(config, plan, tile_id))
        return outcomes
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # task keys readable on the dashboard, unique per call
    futures = {
        client.submit(_tile_task, config, plan, tile_id, key=f"gsocseq-tile-{tile_id}-{token}",
                      retries=retries, pure=False): tile_id
        for tile_id in todo
    }
    for future in as_completed(futures):
        tile_id = futures[future]
        if future.status == "finished":
            record(future.result())
        else:
            exc = future.exception() if future.status == "error" else None
            record(TileOutcome(tile_id, "failed", error=str(exc) if exc else future.status))
        future.release()
    return outcomes


def run(
    config: RunConfig,
    *,
    client: Any = None,
    progress: bool = True,
    on_tile: ProgressCallback | None = None,
) -> RunSummary:
    """Run GSOCseq for ``config.region`` end to end and return the summary.

    Publishes COGs and STAC only when every tile finished; check ``summary.ok``.
    """
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    with _stage(stages, "plan"):
        plan = plan_run(config)
        all_done = len(finished_tiles(config, plan)) == len(plan.tiles)
    if all_done and client is None:  # nothing to compute: no cluster needed
        config = config.model_copy(update={"cluster": "synchronous"})
    with open_client(config, client) as c:
        with _stage(stages, "inputs"):
            prepare_inputs(config, plan, c)
        with _stage(stages, "tiles"), _progress(progress, len(plan.tiles), on_tile) as cb:
            outcomes = run_tiles(config, plan, c, on_tile=cb)
        failed = [o for o in outcomes if o.status == "failed"]
        published = None
        if not failed:
            with _stage(stages, "publish"):  # COG tasks on the cluster (one per layer / country)
                published = publish(config, plan, c)
    urls = {"cube": plan.cube_url, "product_cube": plan.product_cube_url, "run": plan.run_url,
            "products": f"{plan.products_url}/{plan.region_name}", "stac": plan.stac_url}
    if published is not None:
        urls["stac"] = published.stac_url
    return summarise(
        outcomes, region=plan.region, config_hash=plan.config_hash, scenarios=config.scenarios,
        wall_seconds=time.perf_counter() - t_start, urls=urls, published=published is not None,
        stage_seconds=stages,
        country_totals=published.country_totals if published is not None else None,
    )


@contextlib.contextmanager
def _stage(stages: dict[str, float], name: str) -> Iterator[None]:
    """Record the wall time of a stage (s) in ``stages`` and log it."""
    t = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = round(time.perf_counter() - t, 3)
        log.info("stage %s: %.2f s", name, stages[name])


@contextlib.contextmanager
def _progress(
    enabled: bool, total: int, on_tile: ProgressCallback | None
) -> Iterator[ProgressCallback | None]:
    """Yield a per-tile callback that drives a rich progress bar (tiles done/total, ETA)."""
    if not enabled:
        yield on_tile
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("tiles"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
               TimeRemainingColumn(), TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("tiles", total=total, last="")

        def callback(outcome: TileOutcome, n_done: int, n_total: int) -> None:
            bar.update(task, completed=n_done, last=f"{outcome.tile_id} {outcome.status}")
            if on_tile is not None:
                on_tile(outcome, n_done, n_total)

        yield callback
