"""STAC sources against a real STAC API (``rustac serve`` on 127.0.0.1) with COGs on the local S3.

The STAC demo world (``write_demo_stac``: ESA CCI COG tiles, MODIS 13A1-like sinusoidal NDVI
composites, a static catalog) lives on the moto S3 server; its items are served by a real
stac-server process. The cube built through the API has the file flavour's land cover and
modelled pixels, and a cover equal to an independent NumPy computation of FAO's rule on the raw
NDVI COGs (point sampling in the sinusoidal projection, no GDAL warping).
"""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest
import rasterio

from gsocseq.cube.build import tile_arrays
from gsocseq.cube.region import resolve_region
from gsocseq.demo import sources_toml
from gsocseq.demo_stac import MODIS_R, modis_tiles, write_demo_stac
from gsocseq.errors import SourceError
from gsocseq.gdal_paths import gdal_env, gdal_source
from gsocseq.sources import load_sources
from gsocseq.sources.spec import parse_sources
from gsocseq.sources.stac import SIGNERS, check_assets, provenance, search_items
from gsocseq.vocabulary import Reason
from tests.conftest import S3Server, free_port
from tests.stac_server import StacApi, start_stac_api

BUCKET = "gsocseq-demo-stac"


@pytest.fixture(scope="module")
def stac_world(s3_server: S3Server) -> dict:
    """The STAC demo world on S3 and a STAC API serving its items."""
    fs = s3_server.fs()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    so = dict(s3_server.storage_options)
    url = f"s3://{BUCKET}/world"
    static_toml = write_demo_stac(url, so, tiles_y=2, tiles_x=3, tile_size=60, seed=0)
    api: StacApi = start_stac_api(f"{url}/stac/catalog.json", so, free_port())
    text = fs.cat(f"{BUCKET}/world/sources.toml").decode()
    api_text = text.replace('url = "stac/catalog.json"', f'url = "{api.url}"\nsign = "planetary-computer"')
    fs.pipe(f"{BUCKET}/world/sources-api.toml", api_text.encode())
    file_flavour = parse_sources(sources_toml(60, 2, 3, 0), "file flavour", url, so)
    try:
        yield {"url": url, "so": so, "static": static_toml, "api": api,
               "api_toml": f"{url}/sources-api.toml", "file": file_flavour}
    finally:
        api.stop()


def _reference_cover(items: list[pystac.Item], lat: np.ndarray, lon: np.ndarray,
                     threshold_raw: float, s3: S3Server) -> np.ndarray:
    """FAO's rule in NumPy: nearest MODIS cell of each 30″ centre, counts per start month."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    x = MODIS_R * np.deg2rad(lo) * np.cos(np.deg2rad(la))
    y = MODIS_R * np.deg2rad(la)
    n_veg = np.zeros((12, *la.shape))
    n_valid = np.zeros((12, *la.shape))
    by_start: dict = {}
    for item in items:
        by_start.setdefault(item.common_metadata.start_datetime, []).append(item)
    with gdal_env(gdal_source("s3://any", s3.storage_options)):
        for start, group in by_start.items():
            raw = np.full(la.shape, -3000, dtype=np.int32)
            for item in group:
                with rasterio.open(item.assets["500m_16_days_NDVI"].href) as src:
                    data = src.read(1)
                    t = src.transform
                col = np.floor((x - t.c) / t.a).astype(int)
                row = np.floor((y - t.f) / t.e).astype(int)
                inside = (row >= 0) & (row < data.shape[0]) & (col >= 0) & (col < data.shape[1])
                raw[inside] = data[row[inside], col[inside]]
            valid = (raw != -3000) & (raw >= -2000) & (raw <= 10000)
            n_valid[start.month - 1] += valid
            n_veg[start.month - 1] += valid & (raw > threshold_raw)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_valid > 0, n_veg / n_valid, np.nan).transpose(1, 2, 0)


def test_api_and_static_catalog_find_the_same_terra_items(stac_world: dict) -> None:
    api = load_sources(stac_world["api_toml"], storage_options=stac_world["so"])
    static = load_sources(stac_world["static"], storage_options=stac_world["so"])
    region = resolve_region("demo", api, tile_size=60)
    bounds = region.tiles[0].bounds
    from_api = search_items(api["cover"], bounds, stac_world["so"])
    from_static = search_items(static["cover"], bounds, stac_world["so"])
    assert [i.id for i in from_api] == [i.id for i in from_static]
    assert len(from_api) == 23  # one MODIS tile × 23 Terra composites of 2020; Aqua left out
    assert all(i.properties["platform"] == "terra" for i in from_api)
    record = json.loads(provenance(api["cover"], region.bbox, stac_world["so"]))
    assert record["collection"] == "modis-13A1-061" and record["query"] == {
        "platform": {"eq": "terra"}}
    assert record["items"] == 23 * len(modis_tiles(region.bbox))
    assert record["api"] == stac_world["api"].url
    assert record["sign"] == "planetary-computer"


def test_cube_tiles_through_the_api_match_file_flavour_and_numpy_rule(
    stac_world: dict, s3_server: S3Server
) -> None:
    api = load_sources(stac_world["api_toml"], storage_options=stac_world["so"])
    region = resolve_region("demo", api, tile_size=60)
    files = stac_world["file"]
    for tile in region.tiles[::2]:
        got = tile_arrays(region, api, tile)
        ref = tile_arrays(region, files, tile)
        np.testing.assert_array_equal(got["land_use"], ref["land_use"])
        np.testing.assert_array_equal(got["reason"] == Reason.OK, ref["reason"] == Reason.OK)
        items = search_items(api["cover"], tile.bounds, stac_world["so"])
        want = _reference_cover(items, tile.latitudes(), tile.longitudes(), 4000, s3_server)
        inside = region.mask(tile)
        np.testing.assert_array_equal(got["cover"][inside], want[inside].astype(np.float32))
        assert np.isfinite(got["cover"][got["reason"] == Reason.OK]).all()


def test_unreachable_api_names_source_and_url(stac_world: dict) -> None:
    api = load_sources(stac_world["api_toml"], storage_options=stac_world["so"])
    dead = f"http://127.0.0.1:{free_port()}"
    spec = load_sources(stac_world["api_toml"], overrides={"cover": {"url": dead}},
                        storage_options=stac_world["so"])["cover"]
    region = resolve_region("demo", api, tile_size=60)
    with pytest.raises(SourceError, match=r"source 'cover'.*127\.0\.0\.1"):
        search_items(spec, region.tiles[0].bounds, stac_world["so"])


def test_signed_urls_never_appear_in_errors_or_provenance(
    stac_world: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def sign(item: pystac.Item) -> pystac.Item:
        item = item.clone()
        for asset in item.assets.values():
            asset.href += "?se=2030&sig=TOPSECRETSIGNATURE"
        return item

    monkeypatch.setitem(SIGNERS, "test-sas", sign)
    spec = load_sources(stac_world["api_toml"], overrides={"cover": {"sign": "test-sas"}},
                        storage_options=stac_world["so"])["cover"]
    region = resolve_region("demo", load_sources(stac_world["api_toml"],
                                                 storage_options=stac_world["so"]), tile_size=60)
    items = search_items(spec, region.tiles[0].bounds, stac_world["so"])
    with pytest.raises(SourceError) as err:
        check_assets(spec, items[:1], ("int16",), stac_world["so"])
    assert "TOPSECRET" not in str(err.value) and items[0].id in str(err.value)
    assert "TOPSECRET" not in provenance(spec, region.bbox, stac_world["so"])
    assert all("sig=" not in i.assets[spec.asset].href for i in items)


@pytest.mark.slow
def test_demo_run_with_stac_sources_models_the_file_flavours_pixels(stac_world: dict) -> None:
    import fsspec

    from gsocseq.config import RunConfig
    from gsocseq.cube.product_cube import open_product_cube
    from gsocseq.pipeline import run
    from gsocseq.pipeline.plan import plan_run
    from gsocseq.storage import read_json

    so = stac_world["so"]
    config = RunConfig(region="demo", out=f"s3://{BUCKET}/runs", sources=stac_world["api_toml"],
                       tile_size=60, cluster="synchronous", uncertainty=False, storage_options=so)
    summary = run(config, progress=False)
    assert summary.ok and summary.published, summary.tiles_failed
    plan = plan_run(config)
    reason = open_product_cube(plan.product_cube_url, so)["reason"].values
    region = resolve_region("demo", load_sources(stac_world["api_toml"], storage_options=so),
                            tile_size=60)
    for tile in region.tiles[1::2]:  # the file flavour's reasons (tiles[::2]: test above)
        rows, cols = tile.to_slices(region.origin_row, region.origin_col)
        want = tile_arrays(region, stac_world["file"], tile)["reason"] == Reason.OK
        np.testing.assert_array_equal(reason[rows, cols] == Reason.OK, want)
    assert summary.modelled == int((reason == Reason.OK).sum()) > 0
    item_url = read_json(plan.published_url, so)["items"][0]
    with fsspec.open(item_url, "rt", **so) as f:
        text = f.read()
    record = json.loads(json.loads(text)["properties"]["gsocseq:inputs"]["stac:cover"])
    assert record["collection"] == "modis-13A1-061" and record["items"] >= 23
    assert "sig=" not in text and "signature" not in text
