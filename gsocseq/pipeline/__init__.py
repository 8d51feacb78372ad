"""The distributed tile run: plan, input cube, tiles on dask, product cube, COGs + STAC, summary.

Each public function is one step a CLI command or a Prefect task calls with plain values (a
:class:`~gsocseq.config.RunConfig`, a :class:`RunPlan`, a tile id)::

    plan = plan_run(config)             # tiles and URLs; writes the demo world if needed
    prepare_inputs(config, plan)        # input cube (finished tiles skipped)
    prepare_outputs(config, plan)       # empty product cube from its template
    run_tile(config, plan, tile_id)     # one tile → product cube + completion marker (last)
    publish(config, plan)               # COGs, then STAC, then published.json
    run(config)                         # all of the above on dask, with progress → RunSummary
"""

from gsocseq.pipeline.plan import RunPlan, plan_run
from gsocseq.pipeline.prepare import prepare_inputs, prepare_outputs
from gsocseq.pipeline.publish import PublishResult, publish
from gsocseq.pipeline.run import open_client, run, run_tiles
from gsocseq.pipeline.summary import RunSummary, ScenarioTotals, format_summary, summarise
from gsocseq.pipeline.tile import TileOutcome, compute_tile, run_tile

__all__ = [
    "PublishResult",
    "RunPlan",
    "RunSummary",
    "ScenarioTotals",
    "TileOutcome",
    "compute_tile",
    "format_summary",
    "open_client",
    "plan_run",
    "prepare_inputs",
    "prepare_outputs",
    "publish",
    "run",
    "run_tile",
    "run_tiles",
    "summarise",
]
