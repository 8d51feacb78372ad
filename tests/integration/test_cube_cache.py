"""The per-process cube cache (``cached_cube``): reused while unchanged, never stale after a rebuild.

Real stores only: the demo world in its real formats, cubes built by ``build_cube`` on the local
disk and on a real moto S3 server process (root conftest ``s3_server``).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from gsocseq.cube import build_cube, open_cube, read_tile, resolve_region
from gsocseq.cube import store as cube_store
from gsocseq.cube.store import cached_cube, clear_cube_cache, create_cube
from gsocseq.demo import write_demo_world
from gsocseq.errors import SourceError
from gsocseq.sources import load_sources

pytestmark = [pytest.mark.s3]

TILE = 60


@pytest.fixture(scope="module", params=["file", "s3"])
def world(request, tmp_path_factory) -> tuple[str, dict[str, Any], Any]:
    """(root URL for cubes, storage options, sources) of a 1 × 2-tile demo world."""
    if request.param == "s3":
        demo = request.getfixturevalue("demo_world_s3")
        so = dict(demo.storage_options)
        root = f"s3://{demo.sources_url.split('/')[2]}/cache-{uuid.uuid4().hex[:6]}"
        sources = load_sources(demo.sources_url, storage_options=so)
    else:
        root = f"file://{tmp_path_factory.mktemp('cache')}"
        so = {}
        sources = load_sources(write_demo_world(f"{root}/world", tiles_y=1, tiles_x=2,
                                                tile_size=TILE))
    yield root, so, sources


@pytest.fixture
def cube_url(world) -> str:
    """A fresh cube URL under the world's root; the cache starts empty."""
    clear_cube_cache()
    yield f"{world[0]}/cube-{uuid.uuid4().hex[:6]}.zarr"
    clear_cube_cache()


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_cube_is_opened_once_and_reads_the_same_tiles(world, cube_url) -> None:
    _, so, sources = world
    region = resolve_region("demo", sources, tile_size=TILE)
    url = cube_url
    build_cube(region, sources, url, so, tiles=region.tiles[:1])
    first = cached_cube(url, so)
    assert cached_cube(url, so) is first  # reused: no second open
    _same(read_tile(first, region.tiles[0]), read_tile(open_cube(url, so), region.tiles[0]))
    # other storage options are another entry (they may name another endpoint or credentials)
    other = cached_cube(url, {**so, "skip_instance_cache": True}) if so else None
    assert other is None or other is not first


def test_tile_built_after_the_first_open_is_read_fresh(world, cube_url) -> None:
    _, so, sources = world
    region = resolve_region("demo", sources, tile_size=TILE)
    url = cube_url
    first, later = region.tiles[0], region.tiles[1]
    build_cube(region, sources, url, so, tiles=[first])
    ds = cached_cube(url, so)
    with pytest.raises(SourceError, match=rf"tile {later.id} was not built"):
        read_tile(ds, later)
    build_cube(region, sources, url, so, tiles=[later])  # same metadata, new chunks + marker
    assert cached_cube(url, so) is ds
    _same(read_tile(ds, later), read_tile(open_cube(url, so), later))


def test_rebuilt_cube_is_not_served_stale(world, cube_url) -> None:
    _, so, sources = world
    region = resolve_region("demo", sources, tile_size=TILE)
    url = cube_url
    build_cube(region, sources, url, so, tiles=region.tiles[:1])
    old = cached_cube(url, so)
    assert read_tile(old, region.tiles[0])["reason"].size == TILE * TILE
    # rebuilt in place with another tile size: every array's metadata and chunking change
    bigger = resolve_region("demo", sources, tile_size=2 * TILE)
    create_cube(bigger, url, so)
    new = cached_cube(url, so)
    assert new is not old
    assert int(new.attrs["tile_size"]) == 2 * TILE
    with pytest.raises(SourceError, match="was not built"):  # the old tile's data is gone
        read_tile(new, bigger.tiles[0])
    # rebuilt again with the first layout and other attributes: reopened again, empty markers
    create_cube(region, url, so, attrs={"note": "rebuilt"})
    again = cached_cube(url, so)
    assert again is not new and again.attrs["note"] == "rebuilt"
    with pytest.raises(SourceError, match="was not built"):
        read_tile(again, region.tiles[0])


def test_deleted_cube_is_an_error_and_size_zero_disables_the_cache(world, cube_url, monkeypatch) -> None:
    _, so, sources = world
    region = resolve_region("demo", sources, tile_size=TILE)
    url = cube_url
    build_cube(region, sources, url, so, tiles=region.tiles[:1])
    monkeypatch.setattr(cube_store, "CUBE_CACHE_SIZE", 0)
    assert cached_cube(url, so) is not cached_cube(url, so)
    monkeypatch.setattr(cube_store, "CUBE_CACHE_SIZE", 4)
    cached_cube(url, so)
    from gsocseq.storage import filesystem

    fs, path = filesystem(url, so)
    fs.rm(path, recursive=True)
    with pytest.raises(SourceError, match=rf"cube at {url}"):
        cached_cube(url, so)
