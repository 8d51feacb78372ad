"""Prepare a run's stores: the demo world (if asked), the input cube (unbuilt tiles) and the product cube.

Every step is idempotent: the demo world is written only when missing, a built cube tile has its own
completion marker (``tile_status``), and an existing product cube is kept after its grid is checked.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from gsocseq import storage
from gsocseq.config import RunConfig
from gsocseq.cube.product_cube import create_product_cube
from gsocseq.errors import SourceError
from gsocseq.pipeline.plan import RunPlan, demo_inputs_url, resolve, sources_url

log = logging.getLogger(__name__)


def ensure_demo_world(config: RunConfig) -> str | None:
    """Write the demo world under ``{out}/demo-inputs`` if a demo run needs it and it is missing.

    Returns the URL of its ``sources.toml`` (``None`` when the run is not a default demo run).
    """
    if config.region != "demo" or config.sources is not None:
        return None
    url = sources_url(config)
    assert url is not None
    if not storage.exists(url, config.storage_options):
        from gsocseq.demo import write_demo_world

        write_demo_world(demo_inputs_url(config), config.storage_options,
                         tile_size=config.tile_size)
    return url


def fao_inputs_fields(
    folder: str, out: str, storage_options: dict[str, Any] | None = None
) -> dict[str, str]:
    """Convert an FAO raw-input folder under ``{out}/fao-inputs/{AOI}/``; return the run fields it sets.

    The fields are ``region`` (ISO3 of the AOI), ``scheme`` (``fao``) and ``sources`` (the converted
    inputs' ``sources.toml``).
    """
    from gsocseq.config import normalise_url
    from gsocseq.sources.fao_raw import FAO_INPUTS, find_fao_raw, write_fao_inputs

    so = dict(storage_options or {})
    out = normalise_url(out, what="out")
    raw = find_fao_raw(folder, so)
    toml = write_fao_inputs(raw, f"{out}/{FAO_INPUTS}/{raw.name}", so)
    return {"region": raw.iso3, "scheme": "fao", "sources": toml}


def _bundle(*parts: Any) -> tuple[Any, ...]:
    """Dask task: hold values many tasks share on a worker (sent once, recomputed if lost)."""
    return parts


def _build_task(shared: tuple[Any, Any, str, Any, str, Any], tile: Any) -> int:
    """Dask task: build one tile of the input cube from the shared run values.

    ``shared`` is (region, sources, url, storage options, run token, source digests).

    The worker's open rasters are kept between the run's tiles (one open per source file per
    worker) and dropped when a task of another run arrives (its files may have changed).
    """
    from gsocseq.cube.build import build_cube_tile
    from gsocseq.pipeline.malloc import reuse_large_allocations

    reuse_large_allocations()
    region, sources, url, so, token, keys = shared
    _rasters_for_run(token)
    return build_cube_tile(region, sources, url, tile, so, keys)


_RUN_TOKEN: list[str] = [""]


def _rasters_for_run(token: str) -> None:
    """Close this process's open rasters if they were opened for another run than ``token``."""
    from gsocseq.sources.readers import RASTERS

    if _RUN_TOKEN[0] != token:
        _RUN_TOKEN[0] = token
        RASTERS.clear()


def prepare_inputs(
    config: RunConfig, plan: RunPlan, client: Any = None, *, failures: dict[str, str] | None = None
) -> str:
    """Build the input cube (finished tiles skipped) and the empty product cube; return the cube URL.

    With a dask ``client`` each climate file still to read is one task (read once for the whole
    region), then the unbuilt tiles are built in parallel on its workers (each task gets a
    reference to the region, sources spec and URL, sent once, and a tile key); the final pass
    checks the whole cube. A tile whose sources cannot be read fails alone (the others are built
    and kept): with ``failures`` its error, naming source and URL, is recorded there by tile id;
    without it the first such error is raised after the other tiles are built. Built tiles and
    climate files whose sources changed since they were built are refreshed first
    (:func:`gsocseq.pipeline.incremental.refresh_inputs`; report in ``{run}/refresh.json``).
    """
    from gsocseq.cube.build import build_cube, describe_failure, ensure_cube
    from gsocseq.cube.climate import build_climate
    from gsocseq.cube.refresh import write_climate_record
    from gsocseq.cube.store import open_cube, tile_status
    from gsocseq.pipeline.incremental import refresh_inputs, refresh_url

    sources, region = resolve(config)
    so = config.storage_options
    token = uuid.uuid4().hex[:8]
    _rasters_for_run(token)
    errors: dict[str, BaseException] = {}
    report, keys, climate_key = refresh_inputs(region, sources, plan, so, client, token, errors)
    failed: dict[str, str] = {k: describe_failure(e) for k, e in errors.items()}
    if client is not None:
        from gsocseq.pipeline.malloc import reuse_large_allocations

        client.run(reuse_large_allocations)  # the climate and cube tasks too (see the module)
        ensure_cube(region, sources, plan.cube_url, so)
        try:
            build_climate(region, sources["climate"], plan.cube_url, so,
                          sources.storage_options, client=client)
        except Exception:
            if failures is None:
                raise  # otherwise build_cube below records it for every tile
        else:
            ds = open_cube(plan.cube_url, so)
            todo = [t for t in list(plan.tiles) if tile_status(ds, t) < 0]
            if todo:
                log.info("input cube %s: building %d tile(s) on the cluster", plan.cube_url,
                         len(todo))
                shared = client.submit(_bundle, region, sources, plan.cube_url, so, token, keys,
                                       key=f"gsocseq-cube-inputs-{token}", pure=False)
                futures = client.map(_build_task, [shared] * len(todo), todo,
                                     key=[f"gsocseq-cube-{t.id}-{token}" for t in todo],
                                     pure=False, retries=1)
                from distributed import wait

                wait(futures)
                for tile, future in zip(todo, futures, strict=True):
                    if future.status == "error":
                        errors[tile.id] = future.exception()
                        failed[tile.id] = describe_failure(errors[tile.id])
                        log.error("input cube %s: tile %s not built: %s", plan.cube_url,
                                  tile.id, failed[tile.id])
                del futures, shared
    rest = [t for t in plan.tiles if t.id not in failed]
    url = build_cube(region, sources, plan.cube_url, so, tiles=rest, source_digests=keys,
                     failures=failed if (failures is not None or failed) else None)
    write_climate_record(plan.cube_url, climate_key, so)  # once every climate file is stored
    storage.write_json_if_changed(refresh_url(plan), report.to_dict(), so)
    if failures is None and failed:
        first = next(iter(errors.values()), None)
        if first is not None:
            raise first
        raise SourceError("; ".join(f"tile {k}: {v}" for k, v in failed.items()))
    if failures is not None:
        failures.update(failed)
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
        storage_options=config.storage_options, montecarlo=config.draws > 0,
    )
    return plan.product_cube_url
