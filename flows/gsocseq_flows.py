"""Prefect 3 flows: the scheduled global rebuild and the on-demand country rerun.

Orchestration only. Each task body is one call into :mod:`gsocseq.pipeline`; tasks exchange
configurations, plans, tile ids and URLs, never arrays. A run goes:

1. **plan** (in the flow's own process, before any cluster starts): ``plan_run`` resolves the region;
   an unknown ISO3 raises ``InputValidationError`` and the run fails with its message;
2. **region slots** (:mod:`flows.concurrency`): the run waits for the Prefect concurrency slot and
   the storage lease of each region it writes, so two runs of one region queue (other regions run
   side by side);
3. **runtime**: an existing dask cluster (parameter or Prefect variable ``gsocseq-dask-address``,
   checked for workers) or a LocalCluster;
4. **tiles** (a subflow whose task runner is prefect-dask's ``DaskTaskRunner`` on that runtime):
   ``prepare_inputs`` and ``prepare_outputs`` per region, then one task per tile (``run_tile``;
   retried on transient storage errors; the pipeline skips tiles already complete, so a retry or a
   rerun resumes), then ``publish`` per region, one region after another (they share the STAC root
   catalog), once all of its tiles succeeded: COGs first, the STAC catalog last;
5. **report**: a markdown artifact with per-region totals and links to the COGs and STAC items.
   A region with a failed tile is not published and the run ends Failed, naming it.

Why a subflow: the task runner of a flow is fixed when it is called, and the cluster is known only at
run time (a parameter), so the outer flow picks it and calls the tile flow ``with_options``.

Prefect pickles task functions by value: the bodies here reference only the ``gsocseq.pipeline``
module (pickled by reference, imported on the worker), so nothing relies on import side effects of
this file on a remote worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from distributed import worker_client
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect.states import State

from flows.cluster import DaskRuntime, resolve_runtime
from flows.concurrency import hold_regions
from flows.params import (
    ALL_SCENARIOS,
    ISO3,
    DaskAddress,
    Draws,
    MapVersion,
    OutUrl,
    Scenarios,
    Scheme,
    Seed,
    TileSize,
    UncertaintyMethod,
    build_config,
)
from flows.report import RegionReport, render_markdown
from gsocseq import pipeline
from gsocseq.config import RunConfig
from gsocseq.errors import PipelineError
from gsocseq.pipeline import PublishResult, RunPlan, RunSummary, TileOutcome
from gsocseq.pipeline.run import RunContext
from gsocseq.storage import is_transient

WORLD = "world"
"""The default region of a global rebuild: every country of the boundaries source (land tiles only)."""

# ---------------------------------------------------------------------------------------- retries


def retry_transient(task: Any, task_run: Any, state: State) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task only for transient storage errors.

    Uses the pipeline's own classification (:func:`gsocseq.storage.is_transient`: dropped
    connections, timeouts, 5xx, anywhere in the exception chain; not missing keys, denied access
    or bad data), so a task is retried for exactly the faults the pipeline itself retries.
    """
    try:
        state.result()
    except Exception as exc:  # the state's own exception, classified below
        return is_transient(exc)
    return False


STORAGE_TASK_OPTIONS: dict[str, Any] = {  # tasks that read or write the object store
    # on top of botocore's per-request retries and the pipeline's per-tile retry: a task retry
    # rides out a longer outage (store or worker), after a pause
    "retries": 2,
    "retry_delay_seconds": [10, 60],
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,  # the pipeline's completion markers decide what is done
    "persist_result": False,
}

# ------------------------------------------------------------------------------------------ tasks
# Each task body is one call into gsocseq.pipeline. The tile tasks get the run (configuration and plan)
# as one dask future, computed once per region (``share_task``), and their tile id: the scheduler holds
# a reference per task, never a copy of the plan.


@task(name="plan", task_run_name="plan-{config.region}", cache_policy=NO_CACHE,
      persist_result=False)
def plan_task(config: RunConfig) -> RunPlan:
    """Write the demo world if a default demo run needs it, then plan the region.

    Raises ``InputValidationError`` for an unknown region.
    """
    return pipeline.start_region(config)


@task(name="share-run", task_run_name="run-{config.region}", cache_policy=NO_CACHE,
      persist_result=False)
def share_task(config: RunConfig, plan: RunPlan) -> RunContext:
    """Hold the region's configuration and plan on a worker for the tasks that reference it."""
    return config, plan


@task(name="prepare-inputs", task_run_name="inputs-{region}", **STORAGE_TASK_OPTIONS)
def prepare_inputs_task(run: RunContext, region: str) -> dict[str, str]:
    """Build the region's input cube (finished tiles kept) on this cluster.

    Returns the tiles whose inputs could not be built (tile id → error naming the source and
    URL): a source that stays down fails only the tiles it feeds, the others are built and run.
    ``worker_client`` secedes this task from the worker's thread pool while the cube's tiles are
    built, so it cannot deadlock a cluster with a single thread (prefect-dask's
    ``get_dask_client`` opens a second client without seceding, and does).
    """
    failures: dict[str, str] = {}
    with worker_client() as client:
        pipeline.prepare_inputs(*run, client, failures=failures)
    return failures


@task(name="prepare-outputs", task_run_name="outputs-{region}", **STORAGE_TASK_OPTIONS)
def prepare_outputs_task(run: RunContext, region: str) -> str:
    """Create the region's empty product cube unless it exists; return its URL."""
    return pipeline.prepare_outputs(*run)


@task(name="run-tile", task_run_name="tile-{region}-{tile_id}", **STORAGE_TASK_OPTIONS)
def tile_task(
    run: RunContext, tile_id: str, region: str, failed_inputs: dict[str, str]
) -> TileOutcome:
    """Run the RothC phases on one tile; skipped by the pipeline when already complete.

    A tile whose inputs could not be built (``failed_inputs``, from the input stage) fails with
    that error, naming the source and URL.
    """
    if tile_id in failed_inputs:
        return TileOutcome(tile_id, "failed", error=failed_inputs[tile_id])
    return pipeline.run_tile(*run, tile_id, raise_errors=True)


@task(name="publish", task_run_name="publish-{region}", **STORAGE_TASK_OPTIONS)
def publish_task(
    run: RunContext, outcomes: list[TileOutcome], started: float, region: str
) -> tuple[RunSummary, PublishResult | None]:
    """Publish the region if all its tiles finished (COGs, then STAC items and catalog); summarise.

    On a dask worker the COGs are written by tasks on the same cluster (one per layer / country).
    """
    from distributed import get_worker, worker_client

    try:
        get_worker()
    except ValueError:  # not running on a dask worker: publish in this process
        return pipeline.finish_region(*run, outcomes, started=started)
    with worker_client() as client:
        return pipeline.finish_region(*run, outcomes, started=started, client=client)


# ---------------------------------------------------------------------------------- tile subflow


@flow(name="gsocseq-tiles", validate_parameters=False)
def compute_tiles(configs: list[RunConfig]) -> list[RegionReport]:
    """Prepare inputs, run every tile, then publish each region whose tiles all finished.

    Runs under the ``DaskTaskRunner`` its caller chose: tiles are independent tasks. Regions are
    published one after another (they share the STAC root catalog), after all tiles. Its parameters
    are the (small) configurations, never plans: Prefect sends a flow's parameters with every task.
    """
    logger = get_run_logger()
    t0 = time.time()
    futures: dict[PrefectFuture[TileOutcome], tuple[int, str]] = {}
    runs = []
    for i, config in enumerate(configs):
        plan = pipeline.plan_run(config)  # tile ids; the manifest is already current
        run = share_task.submit(config, plan)
        runs.append(run)
        failed_inputs = prepare_inputs_task.submit(run, config.region)
        ready = [prepare_outputs_task.submit(run, config.region)]
        for tile_id in plan.tile_ids:  # the tile id names the task run, marker and COG window
            future = tile_task.submit(run, tile_id, config.region, failed_inputs, wait_for=ready)
            futures[future] = (i, tile_id)
        del plan
    n = len(futures)
    logger.info("running %d tile(s) of %d region(s)", n, len(configs))

    outcomes: list[list[TileOutcome]] = [[] for _ in configs]
    for k, fut in enumerate(as_completed(list(futures)), start=1):
        i, tile_id = futures[fut]
        try:
            outcome = fut.result()
        except Exception as exc:  # recorded: the region is not published
            outcome = TileOutcome(tile_id, "failed", error=f"{type(exc).__name__}: {exc}")
        outcomes[i].append(outcome)
        log = logger.error if outcome.status == "failed" else logger.info
        log("tile %d/%d %s %s: %s%s (%.0f s)", k, n, configs[i].region, tile_id, outcome.status,
            f" ({outcome.error})" if outcome.error else "", time.time() - t0)

    reports = []
    for i, config in enumerate(configs):
        summary, published = publish_task.submit(runs[i], outcomes[i], t0, config.region).result()
        if published is None:
            logger.error("%s: %d tile(s) failed; not publishing", config.region,
                         len(summary.tiles_failed))
        else:
            logger.info("%s: %d COGs, STAC %s%s", config.region, len(published.cogs),
                        published.stac_url, " (already up to date)" if published.skipped else "")
        reports.append(RegionReport.from_pipeline(summary, published, config.storage_options))
    return reports


# ------------------------------------------------------------------------------------ the flows


def _run(
    title: str,
    artifact_key: str,
    configs: Sequence[RunConfig],
    cluster_address: str | None,
    local_workers: int,
    cluster_wait_s: float,
) -> dict[str, Any]:
    """Plan every region, pick the runtime, run the tiles, publish, report; return the report."""
    logger = get_run_logger()
    plans = [plan_task(config) for config in configs]  # an unknown region fails here, before compute
    for config, plan in zip(configs, plans, strict=True):
        logger.info("%s: %d tile(s) of %d cells", config.region, len(plan.tiles), config.tile_size)
    with hold_regions(list(zip(configs, plans, strict=True))):  # same region: queue
        runtime: DaskRuntime = resolve_runtime(
            cluster_address, local_workers=local_workers, wait_s=cluster_wait_s
        )
        logger.info("computing on %s", runtime.description)
        tiles_flow = compute_tiles.with_options(task_runner=runtime.task_runner())
        reports = tiles_flow(list(configs))  # configurations only (see compute_tiles)
    create_markdown_artifact(markdown=render_markdown(title, runtime.description, reports),
                             key=artifact_key, description=title)
    failed = [r.region for r in reports if not r.published]
    if failed:
        raise PipelineError(f"tiles failed in {', '.join(failed)}, which were not published; "
                            "rerun to resume from the finished tiles")
    return {"runtime": runtime.description, "regions": [r.as_dict() for r in reports]}


@flow(name="gsocseq-country-rerun", log_prints=True)
def country_rerun(
    iso3: ISO3,
    out: OutUrl,
    scenarios: Scenarios = ALL_SCENARIOS,
    scheme: Scheme = "exact",
    map_version: MapVersion = "v1.1",
    cluster_address: DaskAddress | None = None,
    sources: str | None = None,
    tile_size: TileSize = 240,
    uncertainty: bool | UncertaintyMethod = True,
    draws: Draws | None = None,
    seed: Seed = 0,
    local_workers: int = 2,
    cluster_wait_s: float = 60.0,
    ssm_increase: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Rerun GSOCseq for one country and republish its COGs and STAC items.

    Args:
        iso3: Country to rerun: ISO 3166-1 alpha-3 code in upper case (e.g. KEN). An unknown code
            fails the run before any computation.
        out: Output URL prefix; products go to {out}/gsocseq/{map_version}/{scheme}/.
        scenarios: Forward scenarios to model (bau, ssm_low, ssm_med, ssm_high).
        scheme: Numerical scheme: exact (RothC-26.3) or fao (FAO R scripts' explicit Euler).
        map_version: Product version used in output keys and the STAC collection (e.g. v1.1).
        cluster_address: Dask scheduler address (tcp://host:8786). Empty: the Prefect variable
            gsocseq-dask-address, else a LocalCluster on the flow's machine.
        sources: URL of a sources.toml listing the input datasets. Empty: the shipped defaults.
        tile_size: Tile edge in 30-arc-second cells (240 = 2 degrees); must divide 21600.
        uncertainty: Uncertainty layers: "brackets" (FAO's min/max runs; true), "montecarlo"
            (brackets plus per-pixel mean, sd, 5/95 % percentiles of seeded draws) or "none"
            (false).
        draws: Monte Carlo draws per pixel (montecarlo only). Empty: 100.
        seed: Seed of the Monte Carlo draws (same seed: same bytes on any cluster).
        local_workers: Worker processes of the LocalCluster when no address is given.
        cluster_wait_s: Seconds to wait for a worker at cluster_address before failing.
        ssm_increase: SSM input increases over BAU per land-use group (crops, grass, paddy):
            three fractions [low, medium, high] in [0, 1], non-decreasing. Empty: 0.05, 0.10,
            0.20 for every group.
    """
    config = build_config(
        iso3, out=out, scenarios=list(scenarios), scheme=scheme, map_version=map_version,
        sources=sources, tile_size=tile_size, uncertainty=uncertainty,
        ssm_increase=ssm_increase, draws=draws, seed=seed,
    )
    return _run(f"GSOCseq {map_version} country rerun: {iso3}", f"gsocseq-country-{iso3.lower()}",
                [config], cluster_address, local_workers, cluster_wait_s)


@flow(name="gsocseq-global-rebuild", log_prints=True)
def global_rebuild(
    out: OutUrl,
    countries: list[ISO3] | None = None,
    world: str = WORLD,
    scenarios: Scenarios = ALL_SCENARIOS,
    scheme: Scheme = "exact",
    map_version: MapVersion = "v1.1",
    cluster_address: DaskAddress | None = None,
    sources: str | None = None,
    tile_size: TileSize = 240,
    uncertainty: bool | UncertaintyMethod = True,
    draws: Draws | None = None,
    seed: Seed = 0,
    local_workers: int = 2,
    cluster_wait_s: float = 60.0,
    ssm_increase: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """Rebuild the GSOCseq map: every tile of the world, or of a list of countries.

    Args:
        out: Output URL prefix; products go to {out}/gsocseq/{map_version}/{scheme}/.
        countries: ISO3 codes to rebuild, one product set each. Empty: the whole world (see world).
        world: Region of a whole-world rebuild: "world" (every country of the boundaries
            source, with one product set per country), a bbox "west,south,east,north" in
            degrees, or "demo" for the demo world.
        scenarios: Forward scenarios to model (bau, ssm_low, ssm_med, ssm_high).
        scheme: Numerical scheme: exact (RothC-26.3) or fao (FAO R scripts' explicit Euler).
        map_version: Product version used in output keys and the STAC collection (e.g. v1.1).
        cluster_address: Dask scheduler address (tcp://host:8786). Empty: the Prefect variable
            gsocseq-dask-address, else a LocalCluster on the flow's machine.
        sources: URL of a sources.toml listing the input datasets. Empty: the shipped defaults.
        tile_size: Tile edge in 30-arc-second cells (240 = 2 degrees); must divide 21600.
        uncertainty: Uncertainty layers: "brackets" (FAO's min/max runs; true), "montecarlo"
            (brackets plus per-pixel mean, sd, 5/95 % percentiles of seeded draws) or "none"
            (false).
        draws: Monte Carlo draws per pixel (montecarlo only). Empty: 100.
        seed: Seed of the Monte Carlo draws (same seed: same bytes on any cluster).
        local_workers: Worker processes of the LocalCluster when no address is given.
        cluster_wait_s: Seconds to wait for a worker at cluster_address before failing.
        ssm_increase: SSM input increases over BAU per land-use group (crops, grass, paddy):
            three fractions [low, medium, high] in [0, 1], non-decreasing. Empty: 0.05, 0.10,
            0.20 for every group.
    """
    regions = list(dict.fromkeys(countries)) if countries else [world]
    configs = [
        build_config(region, out=out, scenarios=list(scenarios), scheme=scheme,
                     map_version=map_version, sources=sources, tile_size=tile_size,
                     uncertainty=uncertainty, ssm_increase=ssm_increase, draws=draws,
                     seed=seed)
        for region in regions
    ]
    return _run(f"GSOCseq {map_version} global rebuild", "gsocseq-global-rebuild", configs,
                cluster_address, local_workers, cluster_wait_s)
