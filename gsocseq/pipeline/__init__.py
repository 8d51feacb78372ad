"""The distributed tile run: plan, input cube, tiles on dask, product cube, COGs + STAC, summary.

Each public function is one step a CLI command or a Prefect task calls with plain values (a
:class:`~gsocseq.config.RunConfig`, a :class:`RunPlan`, a tile id)::

    plan = start_region(config)         # demo world (default demo run only), then plan_run
    prepare_inputs(config, plan)        # input cube (finished tiles skipped)
    prepare_outputs(config, plan)       # empty product cube from its template
    run_tile(config, plan, tile_id)     # one tile → product cube + completion marker (last)
    run_tiles(config, plan, client)     # every unfinished tile on dask (plan sent once)
    finish_region(config, plan, outcomes, started=t0)  # publish if all finished; summary
    run(config)                         # all of the above on dask, with progress → RunSummary
"""

from gsocseq.pipeline.plan import RunPlan, plan_run
from gsocseq.pipeline.prepare import ensure_demo_world, prepare_inputs, prepare_outputs
from gsocseq.pipeline.publish import PublishResult, publish
from gsocseq.pipeline.run import (
    ClusterUnavailableError,
    connect,
    finish_region,
    open_client,
    run,
    run_tiles,
    start_region,
)
from gsocseq.pipeline.summary import RunSummary, ScenarioTotals, format_summary, summarise
from gsocseq.pipeline.tile import TileOutcome, compute_tile, run_tile

__all__ = [
    "ClusterUnavailableError",
    "PublishResult",
    "RunPlan",
    "RunSummary",
    "ScenarioTotals",
    "TileOutcome",
    "compute_tile",
    "connect",
    "ensure_demo_world",
    "finish_region",
    "format_summary",
    "open_client",
    "plan_run",
    "prepare_inputs",
    "prepare_outputs",
    "publish",
    "run",
    "run_tile",
    "run_tiles",
    "start_region",
    "summarise",
]
