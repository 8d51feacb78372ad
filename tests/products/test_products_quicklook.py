"""Quick-look PNGs: colours suited to the layer, NaN transparent, units on the legend, STAC assets."""

import io
import json

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from gsocseq.cube.grid import cell_latitudes, cell_longitudes
from gsocseq.errors import InputValidationError
from gsocseq.products import quicklook as ql
from gsocseq.products.cog import write_region_cogs
from gsocseq.products.stac import Provenance, add_quicklook_assets, build_item, write_catalog
from gsocseq.products.validate import validate_products

PROV = Provenance(code_version="0.1.0", scheme="exact", config_hash="abc123")


def _png_pixels(png: bytes) -> np.ndarray:
    img = imread(io.BytesIO(png), format="png")
    assert img.ndim == 3 and img.shape[2] == 4  # RGBA
    return img


def test_styles_sequential_for_stocks_diverging_for_changes() -> None:
    assert ql.layer_style("T0") == ql.LayerStyle("YlGnBu", False, "t C/ha")
    assert not ql.layer_style("finalSOC_SSM2").diverging
    for layer in ("AbsDiff_BAU", "ASR_SSM1", "RelDiff_SSM3", "RSR_SSM2", "T0_difference"):
        assert ql.layer_style(layer).diverging, layer
    assert ql.layer_style("ASR_SSM1").units == "t C/ha/yr"
    unc = ql.layer_style("T0_Uncertainty")
    assert not unc.diverging and unc.units == "%"
    with pytest.raises(InputValidationError, match="unknown product layer 'SOC'"):
        ql.layer_style("SOC")


def test_colour_limits_symmetric_around_zero_for_changes() -> None:
    values = np.concatenate([np.linspace(-0.1, 0.5, 1000), [np.nan, 99.0]])
    lo, hi = ql.colour_limits(values, ql.layer_style("ASR_BAU"))
    assert lo == -hi and 0.4 < hi < 0.6  # robust to the outlier
    lo, hi = ql.colour_limits(np.full((3, 3), 40.0), ql.layer_style("T0"))
    assert lo < 40.0 < hi  # a flat layer still gets a range


def test_nan_transparent_values_opaque_and_diverging_colours() -> None:
    values = np.full((40, 60), np.nan)
    values[:, :20] = -0.2  # loss
    values[:, 40:] = 0.2  # gain; the middle third is NaN
    fig = ql.render_figure(values, layer="ASR_BAU", bbox=(10, 40, 11.5, 41), max_pixels=600)
    assert fig.axes[1].get_xlabel() == "t C/ha/yr"  # legend with units
    png = ql.render_png(values, layer="ASR_BAU", bbox=(10, 40, 11.5, 41), max_pixels=600)
    assert png == ql.render_png(values, layer="ASR_BAU", bbox=(10, 40, 11.5, 41), max_pixels=600)
    img = _png_pixels(png)
    ax = fig.axes[0]
    x0, y0, x1, y1 = ax.get_position().extents  # map position as figure fractions
    h, w = img.shape[:2]

    def pixel(fx: float, fy: float) -> np.ndarray:  # fractions inside the map, from top-left
        col = int((x0 + fx * (x1 - x0)) * w)
        row = int((1 - (y1 - fy * (y1 - y0))) * h)
        return img[row, col]

    loss, gap, gain = pixel(1 / 6, 0.5), pixel(0.5, 0.5), pixel(5 / 6, 0.5)
    assert gap[3] == 0.0  # NaN fully transparent
    assert loss[3] == 1.0 and gain[3] == 1.0
    assert loss[0] > loss[2] and gain[2] > gain[0]  # BrBG: brown (red > blue) vs green-blue


def test_thumbnail_is_small_and_tall_regions_fit() -> None:
    values = np.random.default_rng(0).uniform(20, 80, (300, 40))
    thumb = _png_pixels(ql.render_png(values, layer="T0", max_pixels=ql.THUMBNAIL_PIXELS))
    assert max(thumb.shape[:2]) <= ql.THUMBNAIL_PIXELS
    big = _png_pixels(ql.render_png(values, layer="T0", bbox=(0, 0, 0.33, 2.5)))
    assert max(big.shape[:2]) <= ql.OVERVIEW_PIXELS + 1
    with pytest.raises(InputValidationError, match="2-D"):
        ql.render_png(np.zeros(5), layer="T0")


def _region(rows: int = 240, cols: int = 360) -> xr.Dataset:
    rng = np.random.default_rng(1)
    coords = {"latitude": cell_latitudes(14400, 14400 + rows),
              "longitude": cell_longitudes(14400, 14400 + cols)}
    t0 = rng.uniform(20, 60, (rows, cols)).astype(np.float32)
    t0[: rows // 4] = np.nan
    asr = rng.uniform(-0.1, 0.3, (rows, cols)).astype(np.float32)
    asr[: rows // 4] = np.nan
    return xr.Dataset({"T0": (("latitude", "longitude"), t0),
                       "ASR_BAU": (("latitude", "longitude"), asr)}, coords=coords)


def test_published_quicklooks_are_stac_assets_and_products_still_validate(tmp_path) -> None:
    ds = _region()
    products = f"file://{tmp_path}/products"
    assets = write_region_cogs(ds, "ARG", products)
    cogs = {a.layer: a.href for a in assets}
    looks = ql.write_quicklooks(cogs, "ARG", products)
    assert looks.overviews == {k: v[:-4] + ".png" for k, v in cogs.items()}
    assert looks.thumbnail == f"{products}/ARG/ARG_GSOCseq_thumbnail.png"
    for url in (*looks.overviews.values(), looks.thumbnail):
        img = _png_pixels((tmp_path / url.removeprefix(f"file://{tmp_path}/")).read_bytes())
        assert (img[..., 3] == 0).any() and (img[..., 3] == 1).any()
    # the picture was read from the COG's overviews: a decimated read, same geography
    values, bbox = ql.read_preview(cogs["T0"], max_cells=100)
    assert max(values.shape) <= 100 and np.isnan(values[0]).all()
    assert bbox == pytest.approx(assets[0].bbox)

    item = build_item("ARG", assets, bbox=None, provenance=PROV)
    add_quicklook_assets(item, looks.overviews, looks.thumbnail)
    root = write_catalog([item], f"file://{tmp_path}/stac", provenance=PROV)
    doc = json.loads((tmp_path / "stac" / "gsocseq-v1.1-exact" / "ARG" / "ARG.json").read_text())
    assert doc["assets"]["thumbnail"]["roles"] == ["thumbnail"]
    assert doc["assets"]["thumbnail"]["type"] == "image/png"
    assert doc["assets"]["T0_overview"]["roles"] == ["overview"]
    assert doc["assets"]["T0_overview"]["href"] == "../../../products/ARG/ARG_GSOCseq_T0_Map030.png"
    assert doc["assets"]["T0"]["roles"] == ["data"]
    report = validate_products(root, expected_layers=["T0", "ASR_BAU"], regions=["ARG"])
    assert report.ok, report.problems
    assert report.n_assets == 2  # the PNGs are not data assets


def test_quality_layer_uint8_nodata_is_transparent(tmp_path) -> None:
    import rasterio
    from affine import Affine

    from gsocseq.cube.grid import RES_DEG

    path = tmp_path / "ARG_GSOCseq_EulerUnstableMonths_Map030.tif"
    data = np.full((64, 64), 255, dtype=np.uint8)  # the quality layers' nodata
    data[:, 32:] = np.arange(32, dtype=np.uint8) % 13
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       nodata=255, crs="EPSG:4326",
                       transform=Affine(RES_DEG, 0, -60, 0, -RES_DEG, -30)) as dst:
        dst.write(data, 1)
    values, _ = ql.read_preview(f"file://{path}")
    assert np.isnan(values[:, :32]).all() and np.nanmax(values) == 12
    style = ql.layer_style("EulerUnstableMonths")
    assert not style.diverging and style.units == "months/yr"
    img = _png_pixels(ql.render_png(values, layer="EulerUnstableMonths", max_pixels=256))
    assert (img[..., 3] == 0).any()
