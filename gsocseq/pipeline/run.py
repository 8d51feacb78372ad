"""Run a whole region: demo world (if asked) → plan → input cube → tiles on dask → publish → summary.

Owns the region-level steps both front ends call, one call each: :func:`start_region` (explicit demo
world, then the plan), :func:`run_tiles` and :func:`finish_region` (publish only when every tile
finished, then the summary), plus the dask client of a CLI run (:func:`open_client`). The plan and the
configuration travel to the workers once, as one dask future (:func:`share_run`); each tile task
carries only that reference and its tile id, so scheduler memory does not grow with the plan.
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
from gsocseq.errors import InputValidationError, PipelineError
from gsocseq.lease import held
from gsocseq.pipeline.cpu_meter import cluster_cpu, cpu_between
from gsocseq.pipeline.exclusive import ensure_demo_world_once, product_set_lease
from gsocseq.pipeline.incremental import (
    changed_since_publication,
    inputs_changed,
    read_refresh,
)
from gsocseq.pipeline.plan import RunPlan, plan_run, resolve
from gsocseq.pipeline.prepare import fao_inputs_fields, prepare_inputs
from gsocseq.pipeline.publish import PublishResult, publish
from gsocseq.pipeline.summary import RunSummary, reuse_report, summarise
from gsocseq.pipeline.tile import TileOutcome, finished_tiles, run_tile
from gsocseq.pipeline.versions import check_versions

log = logging.getLogger(__name__)

LOCAL_WORKER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}
"""dask settings of the workers of a LocalCluster built here (:func:`local_cluster`): no statistical
profiler (it samples every thread every 10 ms, ≈ 1 % of a core per worker, for a dashboard such a
cluster does not serve). Remote clusters keep their own settings."""

WORKER_WAIT_S: float = 120.0
"""How long to wait for a remote scheduler to have at least one worker, s."""
CONNECT_S: float = 10.0
"""How long to wait for a remote scheduler to answer, s."""

ProgressCallback = Callable[[TileOutcome, int, int], None]
"""Called after each tile with (outcome, tiles finished so far, tiles total)."""

RunContext = tuple[RunConfig, RunPlan]
"""What every tile task needs besides its tile id (sent once per run, see :func:`share_run`)."""


def _run_context(config: RunConfig, plan: RunPlan) -> RunContext:
    """Dask task: hold the run's configuration and plan on a worker (recomputed if it is lost)."""
    return config, plan


def _tile_task(context: RunContext, tile_id: str) -> TileOutcome:
    """Dask task: :func:`run_tile` raising on failure, so dask can retry the tile."""
    config, plan = context
    return run_tile(config, plan, tile_id, raise_errors=True)


def share_run(client: Any, config: RunConfig, plan: RunPlan, token: str) -> Any:
    """Send the configuration and plan to the cluster once; return the dask future holding them.

    A future computed from one task (not ``scatter``): if the worker holding it dies, the scheduler
    recomputes it instead of failing every tile that depends on it.
    """
    return client.submit(_run_context, config, plan, key=f"gsocseq-run-{token}", pure=False)


def submit_tiles(
    client: Any, config: RunConfig, plan: RunPlan, tile_ids: list[str], *, retries: int = 1
) -> tuple[Any, dict[Any, str]]:
    """Submit one task per tile id; return the shared run future and ``{future: tile id}``.

    The plan and configuration go once (:func:`share_run`); each task holds that reference and its
    tile id. Keep the returned run future until the tile futures are done.
    """
    token = uuid.uuid4().hex[:8]  # task keys readable on the dashboard, unique per call
    context = share_run(client, config, plan, token)
    keys = [f"gsocseq-tile-{tile_id}-{token}" for tile_id in tile_ids]
    futures = client.map(_tile_task, [context] * len(tile_ids), tile_ids, key=keys,
                         retries=retries, pure=False)  # one message to the scheduler
    return context, dict(zip(futures, tile_ids, strict=True))


def start_region(config: RunConfig) -> RunPlan:
    """Write the demo world if a default demo run needs it (one writer at a time), then plan."""
    ensure_demo_world_once(config)
    return plan_run(config)


def connect(address: str, *, wait_s: float = WORKER_WAIT_S, connect_s: float = CONNECT_S) -> Any:
    """Return a dask ``Client`` of the scheduler at ``address`` once it has a worker.

    Raises :class:`ClusterUnavailableError` if the scheduler cannot be reached within ``connect_s``
    seconds or has no worker after ``wait_s`` seconds (instead of waiting forever for one).
    """
    from distributed import Client

    try:
        client = Client(address, timeout=connect_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailableError(
            f"dask scheduler {address} unreachable after {connect_s:g} s: {exc}"
        ) from exc
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError as exc:
        client.close()
        raise ClusterUnavailableError(
            f"dask scheduler {address} has no workers after {wait_s:g} s; start workers or "
            "leave the cluster address empty to use a LocalCluster"
        ) from exc
    try:
        check_versions(client)  # same gsocseq/dask on client, scheduler and workers
    except PipelineError:
        client.close()
        raise
    return client


class ClusterUnavailableError(PipelineError):
    """The dask scheduler cannot be reached or has no workers."""


def local_cluster(n_workers: int, threads_per_worker: int, processes: bool) -> Any:
    """Return a ``distributed.LocalCluster`` (no dashboard) with :data:`LOCAL_WORKER_CONFIG`.

    Use it as a context manager; its workers (nanny processes) take the settings at creation.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set(LOCAL_WORKER_CONFIG):
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                            processes=processes, dashboard_address=None)


@contextlib.contextmanager
def open_client(config: RunConfig, client: Any = None) -> Iterator[Any]:
    """Yield a dask client for the run (``None`` for the synchronous scheduler).

    An existing ``client`` is used as is; a cluster built here is closed on exit.
    """
    if client is not None or config.cluster == "synchronous":
        yield client
        return
    from distributed import Client

    if config.cluster is not None and "://" in config.cluster:
        with connect(config.cluster) as c:
            yield c
        return
    n = os.cpu_count() or 1
    if config.cluster == "threads":
        kwargs: dict[str, Any] = {"n_workers": 1, "threads_per_worker": n, "processes": False}
    else:
        kwargs = {"n_workers": n, "threads_per_worker": 1, "processes": True}
    with local_cluster(**kwargs) as cluster, Client(cluster) as c:
        yield c


def run_tiles(
    config: RunConfig,
    plan: RunPlan,
    client: Any = None,
    *,
    on_tile: ProgressCallback | None = None,
    retries: int = 1,
    failed_inputs: dict[str, str] | None = None,
) -> list[TileOutcome]:
    """Run every tile of the plan on ``client`` (or in this process when ``None``).

    Tiles whose completion marker is already there are reported as skipped without a task; tiles
    in ``failed_inputs`` (tile id → error of the input stage) are reported failed without one.
    """
    failed_inputs = failed_inputs or {}
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

    for tile_id in plan.tile_ids:  # inputs that could not be brought up to date fail the tile
        if tile_id in failed_inputs:  # even when its products are from older inputs
            record(TileOutcome(tile_id, "failed", error=failed_inputs[tile_id]))
        elif tile_id in finished:
            record(finished[tile_id])
    todo = [t for t in plan.tile_ids if t not in finished and t not in failed_inputs]
    if client is None or not todo:
        for tile_id in todo:
            record(run_tile(config, plan, tile_id))
        return outcomes
    from distributed import as_completed

    context, futures = submit_tiles(client, config, plan, todo, retries=retries)
    for future in as_completed(futures):
        tile_id = futures[future]
        if future.status == "finished":
            record(future.result())
        else:
            exc = future.exception() if future.status == "error" else None
            record(TileOutcome(tile_id, "failed", error=str(exc) if exc else future.status))
        future.release()
    context.release()
    return outcomes


def finish_region(
    config: RunConfig,
    plan: RunPlan,
    outcomes: list[TileOutcome],
    *,
    started: float,
    stage_seconds: dict[str, float] | None = None,
    stage_cpu_seconds: dict[str, float] | None = None,
    client: Any = None,
) -> tuple[RunSummary, PublishResult | None]:
    """Publish the region when every tile finished (COGs, then STAC), and summarise the run.

    A region with a failed tile is not published (``None``); its finished tiles stay finished, so a
    rerun resumes. ``started`` is the run's start, :func:`time.time` seconds (the wall time runs
    until after publication); ``stage_seconds`` (if given) gets the publication's wall time and
    ``stage_cpu_seconds`` its CPU-seconds (this process + the cluster's), s. With a
    dask ``client`` the COGs are written by tasks on its workers.
    """
    published = None
    changed: list[str] | None = None
    if not any(o.status == "failed" for o in outcomes):
        with _stage(stage_seconds if stage_seconds is not None else {}, "publish",
                    stage_cpu_seconds if stage_cpu_seconds is not None else {}, client):
            changed = changed_since_publication(plan, config.storage_options)
            published = publish(config, plan, client, changed_tiles=changed)
    else:
        log.error("%s: tile(s) failed; not publishing", plan.region)
    urls = {"cube": plan.cube_url, "product_cube": plan.product_cube_url, "run": plan.run_url,
            "products": f"{plan.products_url}/{plan.region_name}", "stac": plan.stac_url}
    if published is not None:
        urls["stac"] = published.stac_url
    refreshed = read_refresh(plan, config.storage_options)
    reuse = reuse_report(
        refreshed.to_dict() if refreshed is not None else None, outcomes,
        published=published is not None,
        rewritten=published.rewritten if published is not None else None,
        layers=tuple(published.cogs) if published is not None else (),
        changed_tiles=changed if published is not None else None,
        items_rewritten=published.items_rewritten if published is not None else (),
        publish_skipped=published is not None and published.skipped,
    )
    summary = summarise(
        outcomes, region=plan.region, config_hash=plan.config_hash, scenarios=config.scenarios,
        wall_seconds=time.time() - started, urls=urls, published=published is not None,
        stage_seconds=stage_seconds, stage_cpu_seconds=stage_cpu_seconds,
        country_totals=published.country_totals if published is not None else None,
        reuse=reuse,
    )
    return summary, published


def run(
    config: RunConfig,
    *,
    client: Any = None,
    progress: bool = True,
    on_tile: ProgressCallback | None = None,
) -> RunSummary:
    """Run GSOCseq for ``config.region`` end to end and return the summary.

    Publishes COGs and STAC only when every tile finished; check ``summary.ok``. Holds the lease of
    the region's product set from the first tile to publication: while another run holds it, this
    one waits (stage ``wait`` of the summary), then skips the tiles that run finished.
    """
    t_start = time.time()
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with _stage(stages, "plan", cpu):
        plan = start_region(config)
    lease = product_set_lease(config, plan)
    with held(lease):  # another run of these products: wait for it, then skip what it finished
        if lease.waited_for is not None:
            stages["wait"] = round(lease.waited_s, 3)
        all_done = (len(finished_tiles(config, plan)) == len(plan.tiles)
                    and not inputs_changed(resolve(config)[0], plan, config.storage_options))
        if all_done and client is None:  # nothing to compute: no cluster needed
            config = config.model_copy(update={"cluster": "synchronous"})
        with open_client(config, client) as c:
            failed_inputs: dict[str, str] = {}  # a source down fails only the tiles it feeds
            with _stage(stages, "inputs", cpu, c):
                prepare_inputs(config, plan, c, failures=failed_inputs)
            with (_stage(stages, "tiles", cpu, c),
                  _progress(progress, len(plan.tiles), on_tile) as cb):
                outcomes = run_tiles(config, plan, c, on_tile=cb, failed_inputs=failed_inputs)
            lease.check()  # never publish after losing the lease to another run
            summary, _ = finish_region(config, plan, outcomes, started=t_start,
                                       stage_seconds=stages, stage_cpu_seconds=cpu,
                                       client=c)  # COGs on the cluster
    return summary


def run_fao_inputs(
    folder: str,
    out: str,
    *,
    storage_options: dict[str, Any] | None = None,
    progress: bool = False,
    **run_kwargs: Any,
) -> RunSummary:
    """Run GSOCseq (scheme ``fao``) on an FAO raw-input folder; returns the ``RunSummary``.

    The converted inputs go to ``{out}/fao-inputs/{AOI}/``; products are
    ``{out}/gsocseq/{map_version}/fao/products/{ISO3}/{ISO3}_GSOCseq_*.tif`` plus STAC, as for any
    run. ``run_kwargs`` are further :class:`~gsocseq.config.RunConfig` fields (``tile_size``,
    ``uncertainty``, ``cluster``, ``scenarios`` …); ``region``, ``scheme`` and ``sources`` are set
    here.
    """
    from gsocseq.config import normalise_url

    fixed = sorted({"region", "scheme", "sources"} & set(run_kwargs))
    if fixed:
        raise InputValidationError(
            f"run_fao_inputs: {fixed} cannot be given; an FAO raw folder sets region = ISO3 of the "
            "AOI, scheme = 'fao' and sources = the converted inputs"
        )
    so = dict(storage_options or {})
    out = normalise_url(out, what="out")
    config = RunConfig(out=out, storage_options=so, **fao_inputs_fields(folder, out, so),
                       **run_kwargs)
    return run(config, progress=progress)


@contextlib.contextmanager
def _stage(
    stages: dict[str, float], name: str, cpu: dict[str, float], client: Any = None
) -> Iterator[None]:
    """Record a stage's wall time in ``stages`` and its CPU-seconds in ``cpu`` (s), and log them.

    CPU-seconds are this process's plus the ``client``'s cluster processes' (:mod:`cpu_meter`).
    """
    t, before = time.perf_counter(), cluster_cpu(client)
    try:
        yield
    finally:
        stages[name] = round(time.perf_counter() - t, 3)
        cpu[name] = round(cpu_between(before, cluster_cpu(client)), 3)
        log.info("stage %s: %.2f s, %.2f CPU-s", name, stages[name], cpu[name])


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
