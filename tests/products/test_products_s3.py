"""Products on a real local S3 (moto server process): COGs, catalog, validation, odc-stac read-back.

The root conftest's session fixture ``s3_server`` runs the server and puts its credentials in the
environment; GDAL reaches it through ``/vsis3/`` with the options of :func:`gdal_env` (credentials
come from that environment: rasterio refuses them as ``Env`` options).
"""

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import numpy as np
import odc.stac
import pytest
import rasterio
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from rio_cogeo.cogeo import cog_validate

from gsocseq.cube.grid import RES_DEG, cell_latitudes, cell_longitudes
from gsocseq.products.cog import write_cog, write_region_cogs
from gsocseq.products.stac import Provenance, build_item, read_catalog, write_catalog
from gsocseq.products.validate import validate_products
from gsocseq.vocabulary import fao_file_name

pytestmark = pytest.mark.s3

SCHEMAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "stac-schemas"
PROV = Provenance("0.1.0", "exact", "feed42", {"soc": "s3://inputs/soc/v1"})
LAYER_SUBSET = [
    "T0",
    "finalSOC_BAU",
    "ASR_SSM1",
    "RSR_SSM3",
    "T0_Uncertainty",
    "RSR_SSM3_Uncertainty",
]


@pytest.fixture(scope="module")
def s3(s3_server):
    fs = s3_server.fs()
    bucket = f"gsocseq-products-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    yield SimpleNamespace(
        endpoint_url=s3_server.endpoint_url, so=s3_server.storage_options, fs=fs, bucket=bucket
    )
    fs.rm(bucket, recursive=True)


def gdal_env(s3):
    return {
        "AWS_S3_ENDPOINT": urlparse(s3.endpoint_url).netloc,
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }


def layer_values(rows, cols, seed):
    values = np.random.default_rng(seed).uniform(0, 100, (rows, cols)).astype(np.float32)
    values[: rows // 4, : cols // 5] = np.nan
    return values


def region(row0, col0, rows=120, cols=240, layers=LAYER_SUBSET):
    coords = {
        "latitude": cell_latitudes(row0, row0 + rows),
        "longitude": cell_longitudes(col0, col0 + cols),
    }
    return xr.Dataset(
        {n: (("latitude", "longitude"), layer_values(rows, cols, i)) for i, n in enumerate(layers)},
        coords=coords,
    )


@pytest.fixture(scope="module")
def published(s3):
    prefix = f"s3://{s3.bucket}/v1.1"
    ds = {"ETH": region(10000, 26400), "KEN": region(10800, 25200)}
    assets = {r: write_region_cogs(d, r, f"{prefix}/products", s3.so) for r, d in ds.items()}
    items = [build_item(r, assets[r], bbox=None, provenance=PROV) for r in ds]
    url = write_catalog(items, f"{prefix}/stac", s3.so, provenance=PROV, schemas_dir=SCHEMAS)
    return SimpleNamespace(prefix=prefix, ds=ds, assets=assets, url=url)


def test_cogs_on_s3_are_strict_cogs_read_through_gdal(s3, published):
    keys = s3.fs.find(f"{s3.bucket}/v1.1/products")
    assert len(keys) == 2 * len(LAYER_SUBSET) and not [k for k in keys if ".tmp-" in k]
    with rasterio.Env(**gdal_env(s3)):
        for a in published.assets["KEN"]:
            vsi = a.href.replace("s3://", "/vsis3/")
            assert cog_validate(vsi, strict=True, quiet=True) == (True, [], [])
        t0 = f"/vsis3/{s3.bucket}/v1.1/products/KEN/KEN_GSOCseq_T0_Map030.tif"
        with rasterio.open(t0) as src:
            assert np.isnan(src.nodata) and src.crs.to_epsg() == 4326
            assert src.transform == Affine(RES_DEG, 0, -180 + 25200 * RES_DEG, 0, -RES_DEG, 0.0)
            np.testing.assert_array_equal(src.read(1), published.ds["KEN"]["T0"].values)


def test_large_cog_on_s3_has_overviews(s3):
    rows, cols = 700, 1300
    data = xr.DataArray(
        layer_values(rows, cols, 3),
        dims=("latitude", "longitude"),
        coords={"latitude": cell_latitudes(0, rows), "longitude": cell_longitudes(0, cols)},
        name="finalSOC_SSM3",
    )
    url = f"s3://{s3.bucket}/big/{fao_file_name('WLD', 'finalSOC_SSM3')}"
    write_cog(data, url, s3.so)
    with rasterio.Env(**gdal_env(s3)), rasterio.open(url.replace("s3://", "/vsis3/")) as src:
        assert src.overviews(1) == [2, 4]
        assert src.transform.c == -180.0 and src.transform.f == 90.0


def test_rerun_rewrites_nothing_on_s3(s3, published):
    def etags():
        s3.fs.invalidate_cache()
        return {
            k: (v["ETag"], v["LastModified"])
            for k, v in s3.fs.find(f"{s3.bucket}/v1.1/products/ETH", detail=True).items()
        }

    before = etags()
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    again = write_region_cogs(published.ds["ETH"], "ETH", f"{published.prefix}/products", s3.so)
    assert etags() == before
    assert [a.checksum for a in again] == [a.checksum for a in published.assets["ETH"]]


def test_catalog_on_s3_validates_and_reports_a_wrong_checksum(s3, published):
    report = validate_products(
        f"{published.prefix}/stac",
        s3.so,
        expected_layers=LAYER_SUBSET,
        regions=["ETH", "KEN"],
        schemas_dir=SCHEMAS,
    )
    assert report.ok, report.summary()
    assert (report.n_items, report.n_assets) == (2, 2 * len(LAYER_SUBSET))
    key = f"{s3.bucket}/v1.1/stac/gsocseq-v1.1-exact/ETH/ETH.json"
    original = s3.fs.cat_file(key)
    doc = json.loads(original)
    assert doc["assets"]["T0"]["href"] == "../../../products/ETH/ETH_GSOCseq_T0_Map030.tif"
    doc["assets"]["T0"]["file:checksum"] = "1220" + "f" * 64
    s3.fs.pipe_file(key, json.dumps(doc).encode())
    try:
        bad = validate_products(
            f"{published.prefix}/stac", s3.so, expected_layers=LAYER_SUBSET, schemas_dir=SCHEMAS
        )
        assert len(bad.problems) == 1 and "asset T0" in bad.problems[0]
        assert "checksum" in bad.problems[0]
    finally:
        s3.fs.pipe_file(key, original)


def test_odc_stac_reads_values_back_from_s3(s3, published):
    odc.stac.configure_rio(
        cloud_defaults=True,
        AWS_S3_ENDPOINT=urlparse(s3.endpoint_url).netloc,
        AWS_HTTPS="NO",
        AWS_VIRTUAL_HOSTING="FALSE",
    )
    items = {i.id: i for i in read_catalog(published.url, s3.so).get_items(recursive=True)}
    for region_id in ("ETH", "KEN"):
        a = published.assets[region_id][0]
        geobox = GeoBox(a.shape, Affine(*a.transform), "EPSG:4326")
        bands = LAYER_SUBSET
        got = odc.stac.load([items[region_id]], bands=bands, geobox=geobox)
        for band in bands:
            np.testing.assert_array_equal(
                got[band].isel(time=0).values, published.ds[region_id][band].values
            )
