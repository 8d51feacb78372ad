"""The climate store's status check and small-object reads: one listing, no HEAD before a GET.

A climate store built from the demo world's netCDF files on ``file://``, ``memory://`` and a real
moto server (``s3://``, root conftest ``s3_server``). ``file_status`` is checked by one listing of
its chunk keys (``block_status`` likewise); a store with files not stored fails with the same
message on every store. On S3 the HTTP requests are counted by a proxy before moto (whichever
client sends them: s3fs for JSON and listings, obstore for zarr chunks): opening the store costs
one LIST per status array and no read per file,
reading a tile one GET per variable (its window's chunk), a missing marker one GET.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr
from faultproxy import FaultProxy

from gsocseq.cube import resolve_region
from gsocseq.cube.climate import (
    ClimateStore,
    _open_group,
    build_climate,
    climate_files,
    climate_url,
    ensure_climate,
    not_stored,
    status_array,
)
from gsocseq.errors import SourceError
from gsocseq.sources import load_sources
from gsocseq.storage import filesystem, read_bytes, read_json, write_json

pytestmark = [pytest.mark.s3]


@pytest.fixture(scope="module", params=["file", "memory", "s3"])
def climate(request, demo_world, tmp_path_factory) -> tuple[str, dict[str, Any], Any, Any]:
    """``(cube_url, storage_options, region, climate spec)``: a built climate store on one store."""
    world = demo_world("file")
    sources = load_sources(world.sources_url)
    region = resolve_region("demo", sources, tile_size=world.tile_size)
    so: dict[str, Any] = {}
    if request.param == "file":
        cube = (tmp_path_factory.mktemp("climate") / "c.zarr").as_uri()
    elif request.param == "memory":
        cube = f"memory://climate-{uuid.uuid4().hex[:8]}/c.zarr"
    else:
        server = request.getfixturevalue("s3_server")
        bucket = f"climate-{uuid.uuid4().hex[:8]}"
        server.fs().mkdir(bucket)
        so = dict(server.storage_options)
        cube = f"s3://{bucket}/c.zarr"
    build_climate(region, sources["climate"], cube, so)
    return cube, so, region, sources["climate"]


def _reset(cube: str, so: dict[str, Any], index: list[int]) -> None:
    """Mark files ``index`` not stored, as ``refresh_climate`` does (status 0: chunk deleted)."""
    status = status_array(_open_group(climate_url(cube), so, "r+"))
    for i in index:
        status[i] = np.int8(0)


def _restore(cube: str, so: dict[str, Any], index: list[int]) -> None:
    status = status_array(_open_group(climate_url(cube), so, "r+"))
    status.set_coordinate_selection(np.asarray(index), np.ones(len(index), dtype="int8"))


def test_store_with_files_not_stored_fails_with_the_exact_count(climate) -> None:
    cube, so, region, spec = climate
    group = _open_group(climate_url(cube), so, "r")
    n = len(climate_files(spec))
    assert not not_stored(group).any() and not_stored(group).size == n
    ClimateStore(cube, so)  # every file stored: opens
    assert ensure_climate(region, spec, cube, so) == []
    gone = [1, n - 1]
    # a global write_empty_chunks=True must not leave a chunk holding 0 behind
    with zarr.config.set({"array.write_empty_chunks": True}):
        _reset(cube, so, gone)
    try:
        assert np.flatnonzero(not_stored(_open_group(climate_url(cube), so, "r"))).tolist() == gone
        with pytest.raises(SourceError) as err:
            ClimateStore(cube, so)
        assert str(err.value) == f"climate store at {climate_url(cube)}: 2 source file(s) not stored"
        files = climate_files(spec)
        assert ensure_climate(region, spec, cube, so) == [files[i] for i in gone]
    finally:
        _restore(cube, so, gone)
    assert not not_stored(_open_group(climate_url(cube), so, "r")).any()
    ClimateStore(cube, so)


def test_store_with_no_file_stored_names_them_all(climate) -> None:
    cube, so, _, spec = climate
    n = len(climate_files(spec))
    _reset(cube, so, list(range(n)))
    try:
        with pytest.raises(SourceError, match=rf"^climate store at .*: {n} source file\(s\) not stored$"):
            ClimateStore(cube, so)
    finally:
        _restore(cube, so, list(range(n)))
    ClimateStore(cube, so)


@pytest.fixture
def s3_proxy(s3_server) -> Iterator[FaultProxy]:
    """A proxy (no faults) before moto that logs every HTTP request reaching S3, from any client."""
    proxy = FaultProxy(s3_server.endpoint_url).start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("climate", ["s3"], indirect=True)
def test_s3_open_lists_once_and_reads_a_tile_without_heads(climate, s3_proxy) -> None:
    cube, so, region, spec = climate
    n_files = len(climate_files(spec))
    s3_requests = s3_proxy.requests
    s3_requests.clear()
    store = ClimateStore(cube, s3_proxy.storage_options(so))
    kinds = collections.Counter(m for m, _ in s3_requests)
    # root + latitude/longitude (metadata and one chunk each) + variables' (tile windows only),
    # file_status' and block_status' metadata + ONE listing of each status: no read per file or
    # block, no HEAD
    assert kinds["list_objects_v2"] == 2 and "head_object" not in kinds, s3_requests
    assert set(kinds) == {"get_object", "list_objects_v2"}, s3_requests
    assert kinds["get_object"] == 7 + len(store.packing) < n_files, s3_requests
    assert not any(key.split("/")[1].endswith("_grid") for _, key in s3_requests)
    s3_requests.clear()
    tile = region.tiles[0]
    raw, _, _ = store.native(tile)
    assert set(raw) == set(store.packing)
    # the tile's window is one chunk per variable and time chunk (all 480 months on the demo)
    chunks = sum(-(-arr.shape[2] // arr.chunks[2]) for arr in store.arrays.values())
    assert chunks == len(store.packing)
    assert s3_requests and all(m == "get_object" for m, _ in s3_requests), s3_requests
    assert len(s3_requests) == chunks
    i, j = store.tiles.index(tile, "test")
    assert sorted(key for _, key in s3_requests) == sorted(
        f"{climate_url(cube).split('/', 3)[3]}/{k}/c/{i}/{j}/0/0/0" for k in store.packing)


def test_s3_missing_object_is_one_get(s3_server, s3_bucket, s3_proxy) -> None:
    so = s3_proxy.storage_options(s3_server.storage_options)
    s3_requests = s3_proxy.requests
    s3_requests.clear()
    assert read_bytes(f"{s3_bucket}/x/_done/t.json", so) is None
    assert [m for m, _ in s3_requests] == ["get_object"]


def test_s3_marker_write_is_one_put_and_reads_back(s3_server, s3_bucket, s3_proxy) -> None:
    so = s3_proxy.storage_options(s3_server.storage_options)
    url = f"{s3_bucket}/x/_done/t.json"
    s3_requests = s3_proxy.requests
    s3_requests.clear()
    write_json(url, {"tile": "t", "modelled": 3}, so)
    assert [m for m, _ in s3_requests] == ["put_object"], s3_requests  # atomic on S3: no tmp
    assert read_json(url, so) == {"tile": "t", "modelled": 3}
    fs, path = filesystem(url, so)
    assert [k for k in fs.find(path.rsplit("/", 1)[0]) if ".tmp-" in k] == []
