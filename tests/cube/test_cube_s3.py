"""The cube on every store: build from the demo world, open, read tiles; bad inputs fail clearly.

Real components only: the demo world is written in the real formats (COG, netCDF-4, GeoJSON) and
the ``s3`` cases go through a real moto server process (root conftest ``s3_server``). The same
tests run on ``file://``, ``memory://`` and ``s3://``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pytest
import xarray as xr

from gsocseq.cube import build_cube, open_cube, read_tile, resolve_region, tile_status
from gsocseq.cube.build import tile_arrays
from gsocseq.cube.climate import ClimateStore
from gsocseq.cube.region import Region
from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources import SourcesConfig, load_sources
from gsocseq.sources.spec import apply_overrides
from gsocseq.vocabulary import Reason

pytestmark = [pytest.mark.s3]

TILE = 60


@dataclass
class Built:
    store: str
    sources: SourcesConfig
    region: Region
    root: str
    cube_url: str
    so: dict[str, Any]
    built: tuple[Any, ...]


@pytest.fixture(scope="module", params=["file", "memory", "s3"])
def built(request, demo_world, tmp_path_factory) -> Built:
    store = request.param
    if store == "s3":
        world = demo_world("s3")
        root = f"s3://{world.sources_url.split('/')[2]}/cubes-{uuid.uuid4().hex[:6]}"
    else:
        world = demo_world(store, tiles_y=1, tiles_x=2, tile_size=TILE)
        root = (f"file://{tmp_path_factory.mktemp('cubes')}" if store == "file"
                else f"memory://cube-it-{uuid.uuid4().hex[:6]}")
    so = dict(world.storage_options)
    sources_url = world.sources_url
    sources = load_sources(sources_url, storage_options=so)
    region = resolve_region("demo", sources, tile_size=TILE)
    tiles = region.tiles[:2]
    cube_url = f"{root}/cube.zarr"
    build_cube(region, sources, cube_url, so, tiles=tiles)
    return Built(store, sources, region, root, cube_url, so, tuple(tiles))


def _nan_equal(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(np.nan_to_num(a), np.nan_to_num(b))


def test_read_tile_round_trips_the_in_memory_tile(built: Built) -> None:
    ds = open_cube(built.cube_url, built.so)
    for tile in built.built[-1:]:  # tile 0 is compared in the kg/m2 test on the file store
        got = read_tile(ds, tile)
        static = tile_arrays(built.region, built.sources, tile)
        assert tile_status(ds, tile) == int((static["reason"] == Reason.OK).sum())
        want = ClimateStore(built.cube_url, built.so).add_climate(static, tile)
        assert set(got) == {"soc", "clay", "land_use", "tmp", "prec", "pet", "cover", "reason"}
        for name in ("soc", "clay", "tmp", "prec", "pet", "cover"):
            assert got[name].dtype == np.float32
            _nan_equal(got[name], want[name])
        for name in ("land_use", "reason"):
            assert got[name].dtype == np.uint8
            np.testing.assert_array_equal(got[name], want[name])
        assert got["tmp"].shape == (TILE, TILE, 480) and got["cover"].shape == (TILE, TILE, 12)
        assert tile_status(ds, tile) >= int((got["reason"] == Reason.OK).sum())


def test_cube_values_are_realistic_and_masked_consistently(built: Built) -> None:
    ds = open_cube(built.cube_url, built.so)
    arrays = read_tile(ds, built.built[0])
    ok = arrays["reason"] == Reason.OK
    assert ok.sum() > 0.3 * TILE * TILE
    assert np.isin(arrays["land_use"][ok], [2, 3, 5, 12, 13]).all()
    assert 15 <= arrays["soc"][ok].min() and arrays["soc"][ok].max() <= 125
    assert 4 <= arrays["clay"][ok].min() and arrays["clay"][ok].max() <= 61
    tmp = arrays["tmp"][ok]
    assert -5 <= tmp.min() and tmp.max() <= 32
    # southern hemisphere: January warmer than July, every year
    assert (tmp[:, 0::12].mean(axis=0) > tmp[:, 6::12].mean(axis=0) + 5).all()
    assert 0 <= arrays["prec"][ok].min() and arrays["prec"][ok].max() <= 300
    outside = arrays["reason"] == Reason.OUTSIDE_REGION
    assert np.isnan(arrays["soc"][outside]).all() and (arrays["land_use"][outside] == 0).all()
    assert ds.attrs["region"] == "DEM" and ds["time"].values[0] == np.datetime64("1981-01-01")


def test_rebuild_skips_finished_tiles_without_reading_sources(built: Built) -> None:
    gone = {
        name: f"{built.root}/missing/{name}_{{year}}{{var}}{{depth}}{{month}}.tif"
        for name in ("soc", "clay", "land_cover", "climate", "cover")
    }
    broken = apply_overrides(built.sources, gone)
    assert build_cube(built.region, broken, built.cube_url, built.so, tiles=built.built) == (
        built.cube_url
    )
    pending = [t for t in built.region.tiles if t not in built.built]
    if pending:  # the s3 world has more tiles: an unbuilt one must read (and fail on) sources
        with pytest.raises(SourceError, match=r"source 'soc' at .*/missing/soc_"):
            build_cube(built.region, broken, built.cube_url, built.so, tiles=pending[:1])
        with pytest.raises(SourceError, match=rf"tile {pending[0].id} was not built"):
            read_tile(open_cube(built.cube_url, built.so), pending[0])


def test_corrupted_chunk_names_the_key(built: Built) -> None:
    fs, path = fsspec.core.url_to_fs(built.cube_url, **built.so)
    key = f"{path}/cover/c/0/0/0"
    original = fs.cat_file(key)
    fs.pipe_file(key, original[: len(original) // 2])
    try:
        with pytest.raises(SourceError, match=r"variable 'cover' of tile t60_.*'cover/c/0/0/0'"):
            read_tile(open_cube(built.cube_url, built.so), built.built[0])
        fs.rm_file(key)  # a missing chunk reads as fill values: caught by the consistency check
        with pytest.raises(SourceError, match=r"'cover' of tile t60_.*'cover/c/0/0/0' missing"):
            read_tile(open_cube(built.cube_url, built.so), built.built[0])
    finally:
        fs.pipe_file(key, original)
    assert read_tile(open_cube(built.cube_url, built.so), built.built[0])["tmp"].shape[2] == 480


def test_existing_cube_for_another_grid_is_refused(built: Built) -> None:
    other = resolve_region("demo", built.sources, tile_size=120)
    with pytest.raises(GridMismatchError, match=r"exists for another grid"):
        build_cube(other, built.sources, built.cube_url, built.so)


def test_open_rejects_missing_and_foreign_stores(built: Built) -> None:
    with pytest.raises(SourceError, match=r"nothing-here.zarr"):
        open_cube(f"{built.root}/nothing-here.zarr", built.so)
    foreign = f"{built.root}/foreign.zarr"
    xr.Dataset({"soc": (("y", "x"), np.zeros((2, 2)))}).to_zarr(
        foreign.removeprefix("file://"),
        mode="w",
        zarr_format=3,
        consolidated=False,
        storage_options=built.so or None,
    )
    with pytest.raises(
        GridMismatchError, match=r"foreign.zarr does not match the schema.*tile_size"
    ):
        open_cube(foreign, built.so)


def test_all_nodata_tile_is_masked_and_empty_region_is_an_error(demo_world, tmp_path) -> None:
    sources = load_sources(demo_world("file", tiles_y=1, tiles_x=2, tile_size=TILE).sources_url)
    region = resolve_region("-62.7,-34.45,-62.6,-34.1", sources, tile_size=TILE)  # east of the data
    url = f"file://{tmp_path}/empty.zarr"
    with pytest.raises(InputValidationError, match=r"region BBOX .* has no modelled pixels"):
        build_cube(region, sources, url)
    arrays = read_tile(open_cube(url), region.tiles[0])
    inside = arrays["reason"] != Reason.OUTSIDE_REGION
    assert inside.sum() > 0
    assert (arrays["reason"][inside] == Reason.MISSING_INPUT).all()


def test_unlabelled_soc_in_kg_m2_is_detected(demo_world, tmp_path) -> None:
    import rasterio

    sources = load_sources(demo_world("file", tiles_y=1, tiles_x=2, tile_size=TILE).sources_url)
    region = resolve_region("demo", sources, tile_size=TILE)
    tile = region.tiles[0]
    with rasterio.open(sources["soc"].url.removeprefix("file://")) as src:
        profile, data = src.profile, src.read(1)
    data = np.where(data > 0, data / 10.0, data).astype("float32")
    out = tmp_path / "soc_kgm2.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data, 1)  # no units tag: only the values betray kg/m2
    kgm2 = apply_overrides(sources, {"soc": {"url": f"file://{out}", "units": ""}})
    with pytest.raises(InputValidationError, match=r"soc_kgm2.tif, tile t60_.*looks like kg/m2"):
        build_cube(region, kgm2, f"file://{tmp_path}/kgm2.zarr", tiles=[tile])
    fixed = apply_overrides(kgm2, {"soc": {"units": "kg/m2"}})
    url = build_cube(region, fixed, f"file://{tmp_path}/fixed.zarr", tiles=[tile])
    got = read_tile(open_cube(url), tile)
    want = ClimateStore(url).add_climate(tile_arrays(region, sources, tile), tile)
    np.testing.assert_allclose(got["soc"], want["soc"], rtol=1e-5)
    np.testing.assert_array_equal(got["reason"], want["reason"])
