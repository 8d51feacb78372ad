"""Check that the runs recorded under an output URL are complete: every tile marked, products listed.

Used by ``gsocseq validate``. Finds the manifests ``{out}/gsocseq/*/*/runs/*/run.json`` and, for each,
checks the tile completion markers (present, and computed from the input cube tiles as they are now:
:func:`gsocseq.pipeline.incremental.input_keys`), the publication marker and that every published COG
exists.
"""

from __future__ import annotations

import json
from typing import Any

from gsocseq import storage
from gsocseq.pipeline.incremental import input_keys
from gsocseq.pipeline.plan import RunPlan


def find_manifests(out: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Return the URLs of the run manifests under ``out`` (sorted)."""
    fs, path = storage.filesystem(out, storage_options)
    fs.invalidate_cache()
    found = fs.glob(f"{path.rstrip('/')}/gsocseq/*/*/runs/*/run.json")
    return sorted(fs.unstrip_protocol(p) for p in found)


def _stale_tiles(plan: RunPlan, tile_ids: list[str], so: dict[str, Any] | None) -> list[str]:
    """Return the finished tiles whose marker names another input key than the cube's now."""
    if not tile_ids:
        return []
    keys = input_keys(plan.cube_url, tile_ids, so)
    fs, path = storage.filesystem(plan.done_url, so)
    blobs = fs.cat([f"{path}/{t}.json" for t in tile_ids], on_error="omit")
    markers = {json.loads(b)["tile"]: json.loads(b) for b in blobs.values()}
    return [t for t in tile_ids if markers.get(t, {}).get("inputs") != keys.get(t)]


def check_run(manifest_url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Return the completeness problems of one run (empty when complete)."""
    so = storage_options
    doc = storage.read_json(manifest_url, so)
    if doc is None:
        return [f"{manifest_url}: manifest missing"]
    plan = RunPlan.from_dict(doc["plan"])
    problems = []
    done = set(storage.list_names(plan.done_url, so))
    missing = [t for t in plan.tile_ids if f"{t}.json" not in done]
    if missing:
        problems.append(
            f"{plan.region}: {len(missing)}/{len(plan.tiles)} tile(s) not finished: "
            + ", ".join(missing)
        )
    stale = _stale_tiles(plan, [t for t in plan.tile_ids if t not in missing], so)
    if stale:
        problems.append(
            f"{plan.region}: {len(stale)} tile(s) computed from older inputs than the cube "
            f"{plan.cube_url} holds (rerun to update): " + ", ".join(stale)
        )
    published = storage.read_json(plan.published_url, so)
    if published is None:
        problems.append(f"{plan.region}: not published ({plan.published_url} missing)")
        return problems
    for url in [*published["cogs"].values(), published["catalog"]]:
        if not storage.exists(url, so):
            problems.append(f"{plan.region}: published file missing: {url}")
    return problems
