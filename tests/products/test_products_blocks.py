"""Bounded-memory publishing pieces: strip heights, windows, per-tile region masks, global names."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import xarray as xr

from gsocseq.cube.grid import cell_area_ha, cell_latitudes, cell_longitudes
from gsocseq.cube.region import _from_geometry
from gsocseq.products.blocks import area_total, cut_window, mask_to_region, strip_rows_for
from gsocseq.products.cog import cog_url
from gsocseq.vocabulary import QUALITY_NODATA

SIZE = 60


def _cube(origin_row: int, origin_col: int, rows: int, cols: int) -> xr.Dataset:
    values = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    da = xr.DataArray(values, dims=("latitude", "longitude"), name="T0",
                      coords={"latitude": cell_latitudes(origin_row, origin_row + rows),
                              "longitude": cell_longitudes(origin_col, origin_col + cols)},
                      attrs={"units": "t C/ha"}).chunk({"latitude": SIZE, "longitude": SIZE})
    return xr.Dataset({"T0": da}, attrs={"origin_row": origin_row, "origin_col": origin_col})


def test_strip_rows_are_whole_tile_rows_within_the_budget() -> None:
    assert strip_rows_for(43_200, 240) == 240  # world layer: one row of tiles, 41 MB
    assert strip_rows_for(43_200, 240, budget=10) == 240  # never below one row of tiles
    rows = strip_rows_for(1_200, 60)
    assert rows % 60 == 0 and rows * 1_200 * 4 <= 64 * 2**20 < (rows + 60) * 1_200 * 4


def test_global_layers_have_fao_names_without_country_prefix() -> None:
    assert cog_url("s3://b/p", "world", "T0").endswith("/world/GSOCseq_T0_Map030.tif")
    assert cog_url("s3://b/p", "world", "T0_Uncertainty").endswith(
        "/world/GSOCseq_T0_UncertaintyMap030.tif")
    assert cog_url("s3://b/p", "ARG", "T0").endswith("/ARG/ARG_GSOCseq_T0_Map030.tif")


def test_window_and_mask_match_the_region_cell_by_cell() -> None:
    row0, col0 = 124 * 120, 116 * 120  # 34°S 64°W, tile-aligned for 60
    ds = _cube(row0, col0, 3 * SIZE, 4 * SIZE)
    west, north = -64.0 + SIZE / 120, -34.0
    tri = shapely.Polygon([(west, north), (west + 1.0, north), (west, north - 1.0)])
    region = _from_geometry("TRI", "TRI", tri, tri.bounds, SIZE)
    window = cut_window(ds, origin_row=region.origin_row, origin_col=region.origin_col,
                        n_rows=region.n_rows, n_cols=region.n_cols)
    masked = mask_to_region(window, region)
    got = masked["T0"].values
    want = np.where(region.mask_array(), window["T0"].values, np.nan)
    np.testing.assert_array_equal(got, want)
    assert masked["T0"].dtype == np.float32 and masked["T0"].attrs["units"] == "t C/ha"
    area = cell_area_ha(window["latitude"].values)[:, None]
    assert area_total(masked["T0"]) == pytest.approx(float(np.nansum(want * area)), rel=1e-12)
    with pytest.raises(ValueError, match="outside the product cube"):
        cut_window(ds, origin_row=row0 - SIZE, origin_col=col0, n_rows=SIZE, n_cols=SIZE)


def test_mask_keeps_the_quality_layers_uint8_nodata() -> None:
    row0, col0 = 124 * 120, 116 * 120
    ds = _cube(row0, col0, SIZE, 2 * SIZE)
    q = xr.DataArray(np.full((SIZE, 2 * SIZE), 3, np.uint8), dims=("latitude", "longitude"),
                     coords=ds["T0"].coords).chunk({"latitude": SIZE, "longitude": SIZE})
    ds["EulerUnstableMonths"] = q
    west, north = -64.0, -34.0
    box = shapely.box(west + 0.1, north - 0.3, west + 0.4, north - 0.1)  # inside the first tile
    region = _from_geometry("BOX", "BOX", box, box.bounds, SIZE)
    masked = mask_to_region(cut_window(ds, origin_row=region.origin_row,
                                       origin_col=region.origin_col, n_rows=region.n_rows,
                                       n_cols=region.n_cols), region)
    got = masked["EulerUnstableMonths"].values
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.where(region.mask_array(), 3, QUALITY_NODATA))
