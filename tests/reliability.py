"""Helpers of the reliability tests: run digests and the "nothing partial is visible" invariants.

Runs write under the shared pipeline-test prefix (so the session's input cube is built once), each
test with its own map version. Digests are keyed by the path *inside* the run (chunk keys of the
product cube, COG file names), so runs with different map versions can be compared byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import numpy as np
import rasterio
import s3fs

from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey
from gsocseq.cube.product_cube import read_product_tile
from gsocseq.pipeline import plan_run
from gsocseq.storage import read_json
from gsocseq.vocabulary import LAYER_NAMES

BUCKET = "gsocseq-pipeline-shared"
OUT = f"s3://{BUCKET}/runs"
TILE = 60


def fs_for(storage_options: dict[str, Any]) -> s3fs.S3FileSystem:
    """A fresh s3fs filesystem (listing cache cleared)."""
    fs = s3fs.S3FileSystem(**storage_options)
    fs.invalidate_cache()
    return fs


def ensure_bucket(storage_options: dict[str, Any]) -> None:
    """Create the shared bucket if needed."""
    fs = fs_for(storage_options)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)


def make_config(storage_options: dict[str, Any], sources: str, version: str, **kw: Any
                ) -> RunConfig:
    """A demo-world run config under the shared prefix (uncertainty off: faster, same code paths)."""
    return RunConfig(**{"region": "demo", "out": OUT, "sources": sources, "tile_size": TILE,
                        "cluster": "synchronous", "uncertainty": False, "map_version": version,
                        "storage_options": dict(storage_options), **kw})


def run_digest(config: RunConfig, storage_options: dict[str, Any]) -> dict[str, str]:
    """sha256 of every product-cube chunk object, COG and quick look, keyed by path inside the run."""
    plan = plan_run(config)
    fs = fs_for(storage_options)
    out: dict[str, str] = {}
    cube = plan.product_cube_url.removeprefix("s3://")
    for key in fs.find(cube):
        if "/c/" in key:
            out["cube:" + key.removeprefix(cube)] = hashlib.sha256(fs.cat_file(key)).hexdigest()
    products = f"{plan.products_url}/{plan.region_name}".removeprefix("s3://")
    for key in fs.find(products):  # COGs and their quick-look PNGs
        kind = "cog:" if key.endswith(".tif") else "png:"
        out[kind + key.rsplit("/", 1)[-1]] = hashlib.sha256(fs.cat_file(key)).hexdigest()
    return out


def remove_run(config: RunConfig, storage_options: dict[str, Any]) -> None:
    """Delete everything under the config's map version (the input cube stays)."""
    fs = fs_for(storage_options)
    base = f"{config.out}/gsocseq/{config.map_version}".removeprefix("s3://")
    if fs.exists(base):
        fs.rm(base, recursive=True)


def assert_nothing_partial(config: RunConfig, storage_options: dict[str, Any]) -> int:
    """Assert the invariants of an interrupted run; return the number of finished tiles.

    * every completion marker's checksums equal the product cube's bytes of that tile;
    * every final-named COG opens and holds a full raster (temporary uploads are ``*.tmp-*``);
    * no STAC document links to an object that does not exist.
    """
    plan = plan_run(config)
    fs = fs_for(storage_options)
    finished = 0
    for tile_id in plan.tile_ids:
        marker = read_json(plan.marker_url(tile_id), storage_options)
        if marker is None:
            continue
        finished += 1
        got = read_product_tile(plan.product_cube_url, TileKey.from_id(tile_id), storage_options)
        for name in (*LAYER_NAMES, "reason"):
            digest = hashlib.sha256(np.ascontiguousarray(got[name]).tobytes()).hexdigest()
            assert digest == marker["checksums"][name], (tile_id, name)
    products = f"{plan.products_url}/{plan.region_name}".removeprefix("s3://")
    for key in fs.find(products):
        if ".tmp-" in key:
            continue
        with rasterio.open(io.BytesIO(fs.cat_file(key))) as src:
            assert src.read(1).shape == (src.height, src.width) and src.height > 0, key
    stac = plan.stac_url.removeprefix("s3://")
    for key in fs.find(stac):
        if not key.endswith(".json") or ".tmp-" in key:
            continue
        doc = json.loads(fs.cat_file(key))
        hrefs = [ln["href"] for ln in doc.get("links", []) if ln.get("rel") in ("child", "item")]
        hrefs += [a["href"] for a in doc.get("assets", {}).values()]
        for href in hrefs:
            target = href if "://" in href else f"{key.rsplit('/', 1)[0]}/{href}"
            parts: list[str] = []
            for p in target.removeprefix("s3://").split("/"):
                if p == "..":
                    parts.pop()
                elif p != ".":
                    parts.append(p)
            assert fs.exists("/".join(parts)), f"{key} links to missing {href}"
    return finished


def assert_complete_as_reference(
    config: RunConfig, storage_options: dict[str, Any], reference: dict[str, str]
) -> None:
    """Assert a finished run equals the uninterrupted reference byte for byte, then remove it."""
    assert run_digest(config, storage_options) == reference
    assert assert_nothing_partial(config, storage_options) == 6
    remove_run(config, storage_options)
