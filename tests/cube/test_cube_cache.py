"""The per-process cube cache (``cached_cube``): reused while unchanged, never stale after a rebuild.

Real stores only: the demo world in its real formats, cubes built by ``build_cube`` on the local
disk, then copied as they are to a fresh place on the disk or on a real moto S3 server process
(root conftest ``s3_server``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gsocseq.cube import build_cube, open_cube, read_tile, resolve_region
from gsocseq.cube import store as cube_store
from gsocseq.cube.climate import climate_url
from gsocseq.cube.store import cached_cube, clear_cube_cache, create_cube
from gsocseq.demo import write_demo_world
from gsocseq.errors import SourceError
from gsocseq.sources import load_sources
from gsocseq.storage import ensure_parent, filesystem

pytestmark = [pytest.mark.s3]

TILE = 60


@pytest.fixture(scope="module")
def cubes(tmp_path_factory) -> tuple[Path, Path, Any]:
    """A 1 × 2-tile demo world built on disk twice: (first tile only, both tiles, sources)."""
    root = tmp_path_factory.mktemp("cache")
    sources = load_sources(write_demo_world(f"file://{root}/world", tiles_y=1, tiles_x=2,
                                            tile_size=TILE))
    region = resolve_region("demo", sources, tile_size=TILE)
    partial, full = root / "partial.zarr", root / "full.zarr"
    build_cube(region, sources, f"file://{partial}", tiles=region.tiles[:1])
    shutil.copytree(partial, full)
    shutil.copytree(_climate(partial), _climate(full))  # the climate store beside the cube
    build_cube(region, sources, f"file://{full}", tiles=region.tiles[1:2])
    return partial, full, sources


@pytest.fixture(params=["file", "s3"])
def target(request, tmp_path) -> tuple[str, dict[str, Any]]:
    """A fresh cube URL on the store (the cubes are copied there); the cache starts empty."""
    clear_cube_cache()
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        so = dict(request.getfixturevalue("s3_server").storage_options)
        yield f"{bucket}/cube.zarr", so
    else:
        yield f"file://{tmp_path}/cube.zarr", {}
    clear_cube_cache()


def _climate(cube: Path) -> Path:
    """The climate store beside a cube on disk (``climate_url``'s rule)."""
    return Path(climate_url(f"file://{cube}").removeprefix("file://"))


def _upload(local: Path, url: str, so: dict[str, Any]) -> None:
    """Copy a cube built on disk and its climate store to ``url``, file by file (overwriting)."""
    for src, dst in ((local, url), (_climate(local), climate_url(url))):
        fs, path = filesystem(dst, so)
        for f in sorted(src.rglob("*")):
            if f.is_file():
                dest = f"{path}/{f.relative_to(src).as_posix()}"
                ensure_parent(fs, dest)
                fs.pipe_file(dest, f.read_bytes())


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_cube_is_opened_once_and_reads_the_same_tiles(cubes, target) -> None:
    partial, _, sources = cubes
    url, so = target
    _upload(partial, url, so)
    tile = resolve_region("demo", sources, tile_size=TILE).tiles[0]
    first = cached_cube(url, so)
    assert cached_cube(url, so) is first  # reused: no second open
    _same(read_tile(first, tile), read_tile(open_cube(url, so), tile))
    # other storage options are another entry (they may name another endpoint or credentials)
    assert cached_cube(url, {**so, "skip_instance_cache": True}) is not first


def test_tile_built_after_the_first_open_is_read_fresh(cubes, target) -> None:
    partial, full, sources = cubes
    url, so = target
    later = resolve_region("demo", sources, tile_size=TILE).tiles[1]
    _upload(partial, url, so)
    ds = cached_cube(url, so)
    with pytest.raises(SourceError, match=rf"tile {later.id} was not built"):
        read_tile(ds, later)
    _upload(full, url, so)  # same metadata, the second tile's chunks and marker added
    assert cached_cube(url, so) is ds
    _same(read_tile(ds, later), read_tile(open_cube(f"file://{full}"), later))


def test_rebuilt_cube_is_not_served_stale(cubes, target) -> None:
    partial, _, sources = cubes
    url, so = target
    region = resolve_region("demo", sources, tile_size=TILE)
    _upload(partial, url, so)
    old = cached_cube(url, so)
    assert read_tile(old, region.tiles[0])["reason"].shape == (TILE, TILE)
    fs, path = filesystem(url, so)
    # removed and rebuilt with another tile size: every array's metadata and chunking change
    bigger = resolve_region("demo", sources, tile_size=2 * TILE)
    fs.rm(path, recursive=True)
    assert create_cube(bigger, url, so) is not False
    new = cached_cube(url, so)
    assert new is not old
    assert int(new.attrs["tile_size"]) == 2 * TILE
    with pytest.raises(SourceError, match="was not built"):  # the old tile's data is gone
        read_tile(new, bigger.tiles[0])
    # rebuilt again with the first layout and other attributes: reopened again, empty markers
    fs.rm(path, recursive=True)
    assert create_cube(region, url, so, attrs={"note": "rebuilt"}) is not False
    again = cached_cube(url, so)
    assert again is not new and again.attrs["note"] == "rebuilt"
    with pytest.raises(SourceError, match="was not built"):
        read_tile(again, region.tiles[0])


def test_deleted_cube_is_an_error_and_size_zero_disables_the_cache(
    cubes, target, monkeypatch
) -> None:
    url, so = target
    _upload(cubes[0], url, so)
    monkeypatch.setattr(cube_store, "CUBE_CACHE_SIZE", 0)
    assert cached_cube(url, so) is not cached_cube(url, so)
    monkeypatch.setattr(cube_store, "CUBE_CACHE_SIZE", 4)
    cached_cube(url, so)
    fs, path = filesystem(url, so)
    fs.rm(path, recursive=True)
    with pytest.raises(SourceError, match=rf"cube at {url}"):
        cached_cube(url, so)
