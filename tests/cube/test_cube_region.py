"""Region resolution: bbox, ISO3 from a boundaries file (memory://), aliases, errors."""

from __future__ import annotations

import io
import uuid

import fsspec
import numpy as np
import pytest
import shapely
from pyogrio.raw import write as ogr_write

from gsocseq.cube.grid import TileKey
from gsocseq.cube.region import resolve_region
from gsocseq.errors import InputValidationError
from gsocseq.sources import load_sources


def test_bbox_region_tiles_origin_and_mask() -> None:
    region = resolve_region("-63.9,-34.45,-63.2,-34.1", tile_size=60)
    assert region.name == "BBOX"
    assert region.tiles == (TileKey(248, 232, 60), TileKey(248, 233, 60))
    assert (region.origin_row, region.origin_col) == (14880, 13920)
    assert region.shape == (60, 120)
    mask = region.mask_array()
    lat = 90 - (np.arange(14880, 14940) + 0.5) / 120
    lon = -180 + (np.arange(13920, 14040) + 0.5) / 120
    want = ((lat >= -34.45) & (lat <= -34.1))[:, None] & ((lon >= -63.9) & (lon <= -63.2))[None, :]
    np.testing.assert_array_equal(mask, want)


@pytest.mark.parametrize("spec", ["-60,-30,-61,-29", "1,2,3", "a,b,c,d", "-200,0,1,1"])
def test_invalid_bbox_is_rejected(spec: str) -> None:
    with pytest.raises(InputValidationError, match="region bbox"):
        resolve_region(spec)


def _world_with_boundaries() -> tuple[str, object]:
    root = f"memory://region-{uuid.uuid4().hex[:8]}"
    # an L-shaped country whose bbox spans 2 × 2 tiles of 60 but touches only 3 of them
    dem = shapely.Polygon(
        [
            (-63.9, -34.1),
            (-63.1, -34.1),
            (-63.1, -34.4),
            (-63.6, -34.4),
            (-63.6, -34.9),
            (-63.9, -34.9),
        ]
    )
    buf = io.BytesIO()
    ogr_write(
        buf,
        np.array([shapely.to_wkb(dem)], dtype=object),
        [np.array(["DEM"], dtype=object)],
        ["ADM0_A3"],
        driver="GeoJSON",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{root}/admin0.geojson", buf.getvalue())
    text = open_default_with(root)
    fs.pipe(f"{root}/sources.toml", text.encode())
    return f"{root}/sources.toml", dem


def open_default_with(root: str) -> str:
    return f"""
[regions]
demo = "DEM"
[sources.boundaries]
kind = "natural_earth"
url = "{root}/admin0.geojson"
[sources.soc]
kind = "gsocmap"
url = "soc.tif"
[sources.clay]
kind = "soilgrids"
url = "clay_{{depth}}.tif"
[sources.land_cover]
kind = "esa_cci"
url = "lc.tif"
[sources.climate]
kind = "terraclimate"
url = "T_{{var}}_{{year}}.nc"
[sources.cover]
kind = "cover_monthly"
url = "c_{{month}}.tif"
"""


def test_iso3_region_keeps_only_tiles_touching_the_country() -> None:
    url, dem = _world_with_boundaries()
    sources = load_sources(url)
    region = resolve_region("dem", sources, tile_size=60)
    assert region.name == "DEM"
    assert region.tiles == (TileKey(248, 232, 60), TileKey(248, 233, 60), TileKey(249, 232, 60))
    assert region.all_tiles()[-1] == TileKey(249, 233, 60)  # in the rectangle, not in the region
    mask = region.mask(TileKey(248, 232, 60))
    lat, lon = TileKey(248, 232, 60).latitudes(), TileKey(248, 232, 60).longitudes()
    inside = shapely.contains_xy(dem, *np.meshgrid(lon, lat))
    assert (mask == inside).mean() > 0.99  # rasterised at cell centres
    assert resolve_region("demo", sources, tile_size=60).tiles == region.tiles


def test_unknown_iso3_names_code_and_boundaries_url() -> None:
    url, _ = _world_with_boundaries()
    sources = load_sources(url)
    with pytest.raises(InputValidationError, match=r"unknown ISO3 'XYZ'.*admin0.geojson"):
        resolve_region("XYZ", sources)


def test_unparseable_region_spec_lists_aliases() -> None:
    url, _ = _world_with_boundaries()
    with pytest.raises(InputValidationError, match=r"'Demoland'.*\['demo'\]"):
        resolve_region("Demoland", load_sources(url))
