"""Check that the runs recorded under an output URL are complete: every tile marked, products listed.

Used by ``gsocseq validate``. Finds the manifests ``{out}/gsocseq/*/*/runs/*/run.json`` and, for each,
checks the tile completion markers, the publication marker and that every published COG exists.
"""

from __future__ import annotations

from typing import Any

from gsocseq import storage
from gsocseq.pipeline.plan import RunPlan


def find_manifests(out: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Return the URLs of the run manifests under ``out`` (sorted)."""
    fs, path = storage.filesystem(out, storage_options)
    fs.invalidate_cache()
    found = fs.glob(f"{path.rstrip('/')}/gsocseq/*/*/runs/*/run.json")
    return sorted(fs.unstrip_protocol(p) for p in found)


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
    published = storage.read_json(plan.published_url, so)
    if published is None:
        problems.append(f"{plan.region}: not published ({plan.published_url} missing)")
        return problems
    for url in [*published["cogs"].values(), published["catalog"]]:
        if not storage.exists(url, so):
            problems.append(f"{plan.region}: published file missing: {url}")
    return problems
