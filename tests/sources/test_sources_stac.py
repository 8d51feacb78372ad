"""The ``stac`` source kind on a small static catalog of MODIS 13A1-like COGs (local files).

Each COG has the real layout (sinusoidal 500 m grid, int16, fill −3000, scale 1e-4, band
``500m_16_days_NDVI``) with constant values chosen so the FAO counts are known by hand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr

from gsocseq.cube.grid import TileKey
from gsocseq.demo_stac import MODIS_CRS, NDVI_ASSET, _cog, _modis_item, _modis_window
from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources.adapters import read_source
from gsocseq.sources.cover import mark_no_valid_ndvi, monthly_counts, p_veg
from gsocseq.sources.spec import SourceSpec, parse_sources
from gsocseq.sources.stac import matches, redact, search_items
from gsocseq.vocabulary import Reason

QA = "500m_16_days_pixel_reliability"
TILE = TileKey(496, 464, 30)  # 0.25° at 64°W 33.3°S, MODIS tile h12v12


def _catalog(tmp_path: Path, composites: list[tuple[str, int, int, str]],
             *, crs: str = MODIS_CRS, dtype: str = "int16", drop_asset: bool = False,
             reliability: dict[tuple[int, int], int] | None = None) -> str:
    """Write composites ``(platform, month, day, value-or-'fill')`` as COGs + a static catalog."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    w, s, e, n = TILE.bounds
    transform, ny, nx, lat, lon = _modis_window(12, 12, (w - 0.05, s - 0.05, e + 0.05, n + 0.05))
    items = []
    for platform, month, day, value in composites:
        start = dt.datetime(2020, month, day, tzinfo=dt.UTC)
        raw = np.full((ny, nx), -3000 if value == "fill" else int(value), dtype=dtype)
        href = str(tmp_path / f"{platform}-{month:02d}{day:02d}.tif")
        Path(href).write_bytes(_cog(raw, transform, crs, -3000, {}))
        product = "MOD13A1" if platform == "terra" else "MYD13A1"
        bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        item = _modis_item(product, platform, start, 12, 12, transform, (ny, nx), href, bbox)
        if drop_asset:
            item.assets.pop(NDVI_ASSET)
        if reliability is not None:
            qa = np.full((ny, nx), reliability[(month, day)], dtype="int8")
            qa_href = href.replace(".tif", "-qa.tif")
            Path(qa_href).write_bytes(_cog(qa, transform, crs, -1, {}))
            item.add_asset(QA, pystac.Asset(qa_href, roles=["quality"]))
        items.append(item)
    cat = pystac.Catalog("c", "test")
    coll = pystac.Collection("modis-13A1-061", "t", pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])))
    coll.add_items(items)
    cat.add_child(coll)
    cat.normalize_hrefs(str(tmp_path / "stac"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return str(tmp_path / "stac" / "catalog.json")


def _spec(url: str, **kw: object) -> SourceSpec:
    base = dict(name="cover", kind="stac", url=url, collection="modis-13A1-061", asset=NDVI_ASSET,
                period=(2020, 2020), crs=MODIS_CRS, nodata=-3000, resampling="nearest",
                query={"platform": {"eq": "terra"}})
    return SourceSpec(**{**base, **kw})


def test_fao_rule_by_hand_and_no_valid_month_reason(tmp_path: Path) -> None:
    composites = [
        ("terra", 1, 1, "5000"), ("terra", 1, 17, "3000"),      # Jan: 1 of 2 above 0.4
        ("terra", 2, 2, "4000"), ("terra", 2, 18, "4001"),      # Feb: 4000 is not > 0.4
        ("terra", 3, 5, "fill"), ("terra", 3, 21, "6000"),      # Mar: fill not counted → 1
        ("terra", 4, 6, "fill"),                                 # Apr: no valid composite
        ("terra", 5, 8, "-2500"), ("terra", 5, 24, "2000"),     # May: −2500 out of range → 0
        ("aqua", 6, 1, "9000"),                                  # left out by the query
    ] + [("terra", m, 1, "8000") for m in range(6, 13)]
    url = _catalog(tmp_path, composites)
    ds = read_source(_spec(url), TILE.bounds)
    cover = ds["cover"]
    assert cover.dims == ("month", "latitude", "longitude") and cover.shape == (12, 30, 30)
    np.testing.assert_allclose(cover.latitude, TILE.latitudes())
    want = [0.5, 0.5, 1.0, np.nan, 0.0] + [1.0] * 7
    np.testing.assert_array_equal(cover.values[:, 0, 0], np.array(want, np.float32))
    assert cover.attrs["stac_items"] == 16
    reason = np.full((30, 30), Reason.MISSING_INPUT, np.uint8)
    reason[0, 0] = Reason.NOT_AGRICULTURAL
    mark_no_valid_ndvi(reason, np.moveaxis(cover.values, 0, -1))
    assert reason[0, 0] == Reason.NOT_AGRICULTURAL and (reason.ravel()[1:] == Reason.NO_VALID_NDVI).all()
    higher = read_source(_spec(url, threshold=0.6), TILE.bounds)["cover"].values[:, 0, 0]
    assert higher[0] == 0.0 and higher[2] == 0.0 and higher[5] == 1.0


def test_monthly_counts_on_plain_arrays() -> None:
    time = np.array(["2015-01-01", "2016-01-17", "2015-07-12"], dtype="datetime64[ns]")
    raw = xr.DataArray(np.array([[4500], [-3000], [1000]], np.int16), dims=("time", "x"),
                       coords={"time": time})
    n_veg, n_valid = monthly_counts(raw, threshold=0.4)
    assert n_veg.sel(month=1).item() == 1 and n_valid.sel(month=1).item() == 1
    assert n_valid.sel(month=7).item() == 1 and n_veg.sel(month=7).item() == 0
    share = p_veg(n_veg.values, n_valid.values)
    assert share[0, 0] == 1.0 and share[6, 0] == 0.0 and np.isnan(share[1, 0])


def test_item_in_another_crs_is_rejected_naming_the_item(tmp_path: Path) -> None:
    url = _catalog(tmp_path, [("terra", 1, 1, "5000")], crs="EPSG:3857")
    with pytest.raises(GridMismatchError, match=r"item 'MOD13A1\.A2020001\.h12v12.*EPSG:3857"):
        read_source(_spec(url), TILE.bounds)


def test_item_with_float_ndvi_is_rejected(tmp_path: Path) -> None:
    url = _catalog(tmp_path, [("terra", 1, 1, "5000")], dtype="float32")
    with pytest.raises(InputValidationError, match=r"item 'MOD13A1.*dtype float32, expected int16"):
        read_source(_spec(url), TILE.bounds)


def test_item_without_the_asset_and_empty_search(tmp_path: Path) -> None:
    url = _catalog(tmp_path, [("terra", 1, 1, "5000")], drop_asset=True)
    with pytest.raises(SourceError, match=r"source 'cover'.*item 'MOD13A1.*no asset"):
        search_items(_spec(url), TILE.bounds)
    url = _catalog(tmp_path / "b", [("terra", 1, 1, "5000")])
    with pytest.raises(SourceError, match=r"source 'cover'.*no items.*2010"):
        search_items(_spec(url, period=(2010, 2011)), TILE.bounds)
    with pytest.raises(SourceError, match="no items"):
        search_items(_spec(url), (10.0, 10.0, 10.25, 10.25))
    with pytest.raises(InputValidationError, match="unknown sign"):
        read_source(_spec(url, sign="azure-magic"), TILE.bounds)


def test_spec_fields_and_query() -> None:
    with pytest.raises(InputValidationError, match="needs a collection and an asset"):
        SourceSpec(name="cover", kind="stac", url="https://x/api")
    text = """
[sources.boundaries]
kind = "natural_earth"
url = "b.geojson"
[sources.soc]
kind = "gsocmap"
url = "soc.tif"
[sources.clay]
kind = "soilgrids"
url = "clay_{depth}.tif"
[sources.land_cover]
kind = "stac"
url = "https://planetarycomputer.microsoft.com/api/stac/v1"
collection = "esa-cci-lc"
asset = "lccs_class"
sign = "planetary-computer"
period = [2015, 2015]
[sources.climate]
kind = "terraclimate"
url = "c_{var}_{year}.nc"
[sources.cover]
kind = "stac"
url = "https://planetarycomputer.microsoft.com/api/stac/v1"
collection = "modis-13A1-061"
asset = "500m_16_days_NDVI"
query = {platform = {eq = "terra"}}
period = [2015, 2020]
"""
    cfg = parse_sources(text, "t.toml", "/data")
    assert cfg["cover"].query == '{"platform": {"eq": "terra"}}'
    assert cfg["land_cover"].url.startswith("https://planetarycomputer")
    assert "collection=modis-13A1-061" in cfg.versions()["cover"]
    item = pystac.Item("i", None, None, dt.datetime(2020, 1, 1), {"platform": "terra", "n": 3})
    assert matches(item, {"platform": {"eq": "terra"}, "n": {"gte": 3, "lt": 4}})
    assert not matches(item, {"platform": {"in": ["aqua"]}})
    assert redact("cannot open 'https://a.blob.core.windows.net/x/y.tif?st=1&sig=abc' (403)") == (
        "cannot open 'https://a.blob.core.windows.net/x/y.tif?<signature removed>' (403)")


def test_shipped_sources_default_to_planetary_computer() -> None:
    from gsocseq.sources import load_sources

    cfg = load_sources()
    lc, cover = cfg["land_cover"], cfg["cover"]
    assert (lc.kind, lc.collection, lc.asset, lc.sign) == (
        "stac", "esa-cci-lc", "lccs_class", "planetary-computer")
    assert (cover.kind, cover.collection, cover.asset, cover.period) == (
        "stac", "modis-13A1-061", "500m_16_days_NDVI", (2015, 2020))
    assert cover.query == '{"platform": {"eq": "terra"}}' and cover.nodata == -3000


def test_optional_qa_filter_drops_unreliable_composites(tmp_path: Path) -> None:
    composites = [("terra", 1, 1, "8000"), ("terra", 1, 17, "2000")]
    composites += [("terra", m, 1, "8000") for m in range(2, 13)]
    qa = {(m, d): 0 for _, m, d, _ in composites} | {(1, 1): 3}  # Jan 1 cloudy
    url = _catalog(tmp_path, composites, reliability=qa)
    off = read_source(_spec(url), TILE.bounds)["cover"].values[0, 0, 0]
    on = read_source(_spec(url, qa_asset=QA), TILE.bounds)["cover"].values[0, 0, 0]
    assert off == 0.5 and on == 0.0
