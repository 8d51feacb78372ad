"""The fao scheme's quality layer (EulerUnstableMonths, uint8): from the model through the tile
computation to a validated uint8 COG with its STAC asset; the exact scheme publishes none."""

from __future__ import annotations

import numpy as np
import pystac
import rasterio
import xarray as xr

from gsocseq.cube.grid import cell_latitudes, cell_longitudes
from gsocseq.model.phases import PhaseConfig
from gsocseq.pipeline.publish import product_layers
from gsocseq.pipeline.tile import compute_tile
from gsocseq.products.cog import check_cog, write_region_cogs
from gsocseq.products.stac import Provenance, build_item
from gsocseq.products.validate import _band_problems
from gsocseq.vocabulary import QUALITY_NODATA, Reason, fao_file_name

ROW0, COL0 = 12000, 14400
Q = "EulerUnstableMonths"


def _tile_arrays(n_side: int = 3) -> dict[str, np.ndarray]:
    """A 3×3 tile of cropland pixels as ``read_tile`` returns it; pixel (0, 0) warm and bare in
    January (one unstable month a year), pixel (2, 2) masked by the cube."""
    shape = (n_side, n_side)
    tmp = np.full((*shape, 480), 12.0)
    tmp[0, 0, 0::12] = 25.0
    cover = np.full((*shape, 12), 0.75)
    cover[0, 0, 0] = 0.0
    reason = np.zeros(shape, np.uint8)
    reason[2, 2] = Reason.MISSING_INPUT
    return {"soc": np.full(shape, 50.0), "clay": np.full(shape, 25.0),
            "land_use": np.full(shape, 2, np.uint8), "tmp": tmp, "prec": np.full((*shape, 480), 150.0),
            "pet": np.full((*shape, 480), 60.0), "cover": cover, "reason": reason}


def test_tile_of_the_fao_scheme_carries_the_quality_layer() -> None:
    layers, reason = compute_tile(_tile_arrays(), PhaseConfig(scheme="fao"))
    q = layers[Q]
    assert q.dtype == np.uint8 and q.shape == (3, 3)
    assert q[0, 0] == 1 and q[1, 1] == 0 and q[2, 2] == QUALITY_NODATA
    assert reason[2, 2] == Reason.MISSING_INPUT
    exact, _ = compute_tile(_tile_arrays(), PhaseConfig(scheme="exact"))
    assert Q not in exact
    assert product_layers(("bau",), False, "fao")[-1] == Q
    assert Q not in product_layers(("bau",), False, "exact")


def test_quality_layer_becomes_a_valid_uint8_cog_and_stac_asset(tmp_path) -> None:
    rows, cols = 120, 240
    values = np.random.default_rng(0).integers(0, 13, (rows, cols)).astype(np.uint8)
    values[:5, :9] = QUALITY_NODATA
    da = xr.DataArray(values, dims=("latitude", "longitude"), name=Q, coords={
        "latitude": cell_latitudes(ROW0, ROW0 + rows),
        "longitude": cell_longitudes(COL0, COL0 + cols)})
    t0 = da.astype(np.float32).rename("T0")
    assets = write_region_cogs(xr.Dataset({"T0": t0, Q: da}), "DEM", f"file://{tmp_path}")
    assert [a.layer for a in assets] == ["T0", Q]
    path = tmp_path / "DEM" / fao_file_name("DEM", Q)
    assert path.name == "DEM_GSOCseq_EulerUnstableMonths_Map030.tif"
    assert check_cog(path, dtype="uint8") == []
    assert check_cog(path) != []  # not a float32 product layer
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == QUALITY_NODATA
        np.testing.assert_array_equal(src.read(1), values)
    item = build_item("DEM", assets, bbox=assets[0].bbox,
                      provenance=Provenance("1", "fao", "abc"))
    band = item.assets[Q].to_dict()["raster:bands"][0]
    assert band["data_type"] == "uint8" and band["nodata"] == QUALITY_NODATA
    assert _band_problems("x", item.assets[Q].to_dict(), Q) == []
    assert _band_problems("x", item.assets[Q].to_dict(), "T0") != []
    assert isinstance(item, pystac.Item)
    # a rerun keeps the valid existing file
    again = write_region_cogs(xr.Dataset({Q: da}), "DEM", f"file://{tmp_path}")
    assert again[0].checksum == assets[1].checksum
