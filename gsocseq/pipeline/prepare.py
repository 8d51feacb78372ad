"""Prepare a run's stores: build the input cube (unbuilt tiles only) and create the product cube.

Both steps are idempotent: a built cube tile has its own completion marker (``tile_status``), and
an existing product cube is kept after its grid is checked.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from gsocseq.config import RunConfig
from gsocseq.pipeline.plan import RunPlan, resolve
from gsocseq.pipeline.product_cube import create_product_cube

log = logging.getLogger(__name__)


def prepare_inputs(config: RunConfig, plan: RunPlan, client: Any = None) -> str:
    """Build the input cube (finished tiles skipped) and the empty product cube; return the cube URL.

    With a dask ``client`` each climate file still to read is one task (read once for the whole
    region), then the unbuilt tiles are built in parallel on its workers (each task gets the
    region, the sources spec, the URL and a tile key); the final pass checks the whole cube.
    """
    from gsocseq.cube.build import build_cube, build_cube_tile, ensure_cube
    from gsocseq.cube.climate import build_climate
    from gsocseq.cube.store import open_cube, tile_status

    sources, region = resolve(config)
    so = config.storage_options
    if client is not None:
        ensure_cube(region, sources, plan.cube_url, so)
        build_climate(region, sources["climate"], plan.cube_url, so, sources.storage_options,
                      client=client)
        ds = open_cube(plan.cube_url, so)
        todo = [t for t in list(plan.tiles) if tile_status(ds, t) < 0]
        if todo:
            log.info("input cube %s: building %d tile(s) on the cluster", plan.cube_url, len(todo))
            futures = client.map(build_cube_tile, [region] * len(todo), [sources] * len(todo),
                                 [plan.cube_url] * len(todo), todo, [so] * len(todo),
                                 key=[f"gsocseq-cube-{t.id}-{uuid.uuid4().hex[:8]}" for t in todo],
                                 pure=False, retries=1)
            client.gather(futures, errors="skip")
    url = build_cube(region, sources, plan.cube_url, so, tiles=list(plan.tiles))
    prepare_outputs(config, plan)
    return url


def prepare_outputs(config: RunConfig, plan: RunPlan) -> str:
    """Create the empty product cube of the plan unless it exists; return its URL."""
    create_product_cube(
        plan.product_cube_url, origin_row=plan.origin_row, origin_col=plan.origin_col,
        n_rows=plan.n_rows, n_cols=plan.n_cols, tile_size=plan.tile_size,
        attrs={"region": plan.region, "config_hash": plan.config_hash,
               "code_version": plan.code_version, "scheme": config.scheme,
               "map_version": config.map_version, "input_cube": plan.cube_url},
        storage_options=config.storage_options,
    )
    return plan.product_cube_url
