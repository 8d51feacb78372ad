"""A country rerun's share of a published world: its cells into the world product cube, then republish.

Owns what happens after a country run published its own products (``products/{ISO3}/`` and its
STAC item) when a ``world`` run with the same configuration (``region`` aside) was published under
the same output: each of the country's tiles is read from both product cubes, the country's cells
(reason other than ``OUTSIDE_REGION`` in the country run) replace the world's, and a tile whose
bytes changed is written back with its completion marker updated (counts, totals, checksums of the
merged tile, as a world run computing it would write them). Nothing is recomputed. The world is
then republished with those tiles (:func:`gsocseq.pipeline.publish.publish` ``changed_tiles``):
of each global COG only the parts holding a changed tile are re-encoded and the COG reassembled
(:mod:`gsocseq.products.cog_parts`), uploaded where its bytes changed; no other country's files
rewritten. All of it under the world's product-set lease: a country run that
finishes while the world run is still computing waits for it, then merges (so the world never
keeps the country's old values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from gsocseq import storage
from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey
from gsocseq.cube.product_cube import REASON_VAR, read_product_tile, write_product_tile
from gsocseq.cube.region import WORLD
from gsocseq.lease import held
from gsocseq.pipeline.exclusive import product_set_lease
from gsocseq.pipeline.plan import RunPlan, run_url
from gsocseq.pipeline.tile import tile_statistics
from gsocseq.vocabulary import LAYER_NAMES, SCHEME_QUALITY_LAYERS, WORLD_EXCLUDED, Reason

log = logging.getLogger(__name__)


def world_of(config: RunConfig) -> tuple[RunConfig, RunPlan] | None:
    """Return the world run (config, plan) a country run of ``config`` belongs to, if planned.

    The world run is ``config`` with ``region = "world"`` under the same output, map version,
    scheme and tile size; ``None`` when it has no manifest there.
    """
    world = config.model_copy(update={"region": WORLD})
    manifest = storage.read_json(f"{run_url(world)}/run.json", config.storage_options)
    if manifest is None:
        return None
    return world, RunPlan.from_dict(manifest["plan"])


def merge_tile_task(config: RunConfig, plan: RunPlan, world: RunPlan, tile_id: str) -> bool:
    """Task: put the country run's cells of one tile into the world product cube; return if changed.

    Cells the country run marks ``OUTSIDE_REGION`` keep the world's values (another country's, or
    nodata). A changed tile is written (its own chunks only) and its world completion marker
    rewritten from the merged arrays (:func:`~gsocseq.pipeline.tile.tile_statistics`).
    """
    so = config.storage_options
    tile = TileKey.from_id(tile_id)
    ours = read_product_tile(plan.product_cube_url, tile, so)
    theirs = read_product_tile(world.product_cube_url, tile, so)
    inside = ours[REASON_VAR] != Reason.OUTSIDE_REGION
    names = (*LAYER_NAMES, *SCHEME_QUALITY_LAYERS[config.scheme], REASON_VAR)
    merged = {n: np.where(inside, ours[n], theirs[n]).astype(theirs[n].dtype) for n in names}
    if all(merged[n].tobytes() == theirs[n].tobytes() for n in names):
        return False
    reason = merged.pop(REASON_VAR)
    write_product_tile(world.product_cube_url, tile, merged, reason, so)
    marker = storage.read_json(world.marker_url(tile_id), so) or {}
    storage.write_json(world.marker_url(tile_id), {
        **marker, "tile": tile_id, "config_hash": world.config_hash,
        "product_cube": world.product_cube_url, **tile_statistics(tile, merged, reason),
        "merged_from": plan.run_url,
    }, so)
    return True


def update_world(
    config: RunConfig, plan: RunPlan, client: Any, republish: Callable[..., Any]
) -> tuple[str, ...]:
    """After a country run published its products: update the published world run it belongs to.

    Returns the world tiles changed (empty: no published world run with this configuration, or
    nothing changed). The merge is skipped when the world's publication digest is the one this
    country's publication last merged into (recorded as ``world_digest`` in its
    ``published.json``). Merge tasks run on ``client``'s workers (one per tile) when given.
    ``republish(config, plan, client, changed_tiles)`` publishes the world (the publisher's own
    function, passed in: publishing calls this module, not the other way round).
    """
    from gsocseq.pipeline.publish_tasks import is_world, map_tasks

    if (is_world(plan) or len(plan.region) != 3 or not plan.region.isalpha()
            or plan.region in WORLD_EXCLUDED):  # not a country of the world
        return ()
    found = world_of(config)
    if found is None:
        return ()
    world_config, world = found
    so = config.storage_options
    if world.tile_size != plan.tile_size or not set(plan.tiles) <= set(world.tiles):
        log.warning("%s: world run %s does not hold this country's tiles; not updated",
                    plan.region, world.run_url)
        return ()
    mine = storage.read_json(plan.published_url, so) or {}
    with held(product_set_lease(world_config, world)):
        published = storage.read_json(world.published_url, so)
        if published is None:
            log.info("%s: world run %s not published; not updated", plan.region, world.run_url)
            return ()
        if mine.get("world_digest") == published["digest"]:
            return ()
        calls = [((config, plan, world, t), {}) for t in plan.tile_ids]
        flags = map_tasks(client, merge_tile_task, calls, "merge")
        changed = tuple(t for t, f in zip(plan.tile_ids, flags, strict=True) if f)
        digest = published["digest"]
        if changed:
            log.info("%s: %d tile(s) of the world product cube replaced; republishing the world",
                     plan.region, len(changed))
            digest = republish(world_config, world, client, changed).digest
    storage.write_json(plan.published_url, {**mine, "world_digest": digest}, so)
    return changed
