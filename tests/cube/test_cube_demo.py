"""The demo world: real source layouts, realistic ranges, determinism (written to memory://)."""

from __future__ import annotations

import io
import uuid

import fsspec
import h5py
import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_validate

from gsocseq.cube.region import resolve_region
from gsocseq.demo import write_demo_world
from gsocseq.sources import load_sources
from gsocseq.sources.landcover import ESA_CODES


@pytest.fixture(scope="module")
def world() -> tuple[str, dict[str, bytes]]:
    root = f"memory://demo-{uuid.uuid4().hex[:8]}"
    sources_url = write_demo_world(root, tiles_y=2, tiles_x=3, tile_size=60, seed=3)
    fs = fsspec.filesystem("memory")
    files = {
        p.split(root.removeprefix("memory://"), 1)[1].lstrip("/"): fs.cat_file(p)
        for p in fs.find(root)
    }
    return sources_url, files


def _raster(data: bytes) -> tuple[np.ndarray, dict]:
    with MemoryFile(data) as mem, mem.open() as src:
        return src.read(1), {"profile": src.profile, "tags": src.tags(), "bounds": src.bounds}


def test_layout_matches_the_real_sources(world) -> None:
    url, files = world
    assert url.endswith("/sources.toml")
    climate = [k for k in files if k.startswith("climate/")]
    assert len(climate) == 4 * 40
    assert "climate/TerraClimate_tmax_1981.nc" in files
    assert "climate/TerraClimate_pet_2020.nc" in files
    assert {f"cover/cover_M{m:02d}.tif" for m in range(1, 13)} <= set(files)
    assert {"clay/clay_0-5cm_mean.tif", "clay/clay_15-30cm_mean.tif"} <= set(files)
    sources = load_sources(url)
    assert sources.region_alias("demo") == "DEM"
    assert sources["clay"].units == "g/kg"


def test_rasters_are_valid_cogs_with_realistic_values(world) -> None:
    _, files = world
    with MemoryFile(files["soc/GSOCmap_demo.tif"]) as mem:
        assert cog_validate(mem.name, strict=False)[0]
    soc, meta = _raster(files["soc/GSOCmap_demo.tif"])
    valid = soc[soc != meta["profile"]["nodata"]]
    assert meta["tags"]["units"] == "t C/ha" and meta["profile"]["crs"] == "EPSG:4326"
    assert 20 <= valid.min() and valid.max() <= 120 and valid.std() > 5
    assert 0 < (soc == -9999).mean() < 0.15  # water is nodata
    clay, meta = _raster(files["clay/clay_5-15cm_mean.tif"])
    assert clay.dtype == np.int16 and meta["tags"]["units"] == "g/kg"
    assert 50 <= clay[clay > 0].min() and clay.max() <= 600
    lc, _ = _raster(files["land_cover/ESACCI-LC-L4-LCCS-Map-300m-P1Y-2015-v2.0.7.tif"])
    assert set(np.unique(lc)) <= ESA_CODES
    assert np.isin(lc, [10, 11, 30, 130]).mean() > 0.5  # mostly crops and grass


def test_climate_has_seasons_trend_and_interannual_variation(world) -> None:
    _, files = world

    def series(var: str) -> np.ndarray:
        out = []
        for year in range(1981, 2021):
            with h5py.File(io.BytesIO(files[f"climate/TerraClimate_{var}_{year}.nc"])) as h5:
                v = h5[var]
                assert h5["lat"].attrs["units"] == "degrees_north"
                out.append(v[:, 5, 5] * v.attrs["scale_factor"])
        return np.concatenate(out)

    tmp = (series("tmax") + series("tmin")) / 2
    ppt = series("ppt")
    assert -5 <= tmp.min() and tmp.max() <= 30
    assert 0 <= ppt.min() and ppt.max() <= 300
    assert (tmp[0::12] > tmp[6::12] + 8).all()  # January summer, July winter
    assert tmp[-120:].mean() > tmp[:120].mean() + 0.3  # warming trend
    assert ppt.reshape(40, 12).sum(axis=1).std() > 30  # wet and dry years


def test_boundaries_cover_part_of_the_tiles(world) -> None:
    url, _ = world
    sources = load_sources(url)
    dem = resolve_region("demo", sources, tile_size=60)
    dmx = resolve_region("DMX", sources, tile_size=60)
    assert len(dem.tiles) == 6 and dem.origin_row == 14880 and dem.origin_col == 13920
    share = dem.mask_array().mean()
    assert 0.55 < share < 0.85
    shared = set(dem.tiles) & set(dmx.tiles)
    assert shared  # the border runs through some tiles
    for tile in shared:
        both = dem.mask(tile) & dmx.mask(tile)
        assert both.sum() <= 2 * tile.size  # countries do not overlap (border cells at most)


def test_same_seed_same_world_other_seed_other_world() -> None:
    a = f"memory://demo-{uuid.uuid4().hex[:8]}"
    b = f"memory://demo-{uuid.uuid4().hex[:8]}"
    write_demo_world(a, tiles_y=1, tiles_x=1, tile_size=60, seed=3)
    write_demo_world(b, tiles_y=1, tiles_x=1, tile_size=60, seed=4)
    fs = fsspec.filesystem("memory")
    key = "soc/GSOCmap_demo.tif"
    one, _ = _raster(fs.cat_file(f"{a}/{key}"))
    two, _ = _raster(fs.cat_file(f"{b}/{key}"))
    assert not np.array_equal(one, two)
    with rasterio.Env():
        again = f"memory://demo-{uuid.uuid4().hex[:8]}"
        write_demo_world(again, tiles_y=1, tiles_x=1, tile_size=60, seed=3)
        np.testing.assert_array_equal(one, _raster(fs.cat_file(f"{again}/{key}"))[0])
