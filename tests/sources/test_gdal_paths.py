"""Rasters read by GDAL's own virtual file systems: URL → GDAL path, S3 options, retries, HTTP cache.

Real servers: moto S3 (a separate process) behind the fault proxy (injected 500s and dropped
connections), and the Range HTTP server. A VRT on S3 resolves its members on /vsis3/ itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from faultproxy import FaultProxy
from rangeserver import RangeServer
from rasterio.transform import from_origin

from gsocseq.errors import InputValidationError, SourceError
from gsocseq.gdal_paths import (
    GDAL_READ_OPTIONS,
    clear_http_cache,
    gdal_env,
    gdal_source,
    open_raster,
    raster,
    s3_session_options,
)
from gsocseq.sources.readers import RASTERS, read_raster_window
from gsocseq.sources.vrt import failing_members

N = 120  # cells per member, 0.01°
BOX = (0.2, -1.0, 2.2, -0.2)  # across both members


def write_vrt(folder: Path) -> np.ndarray:
    """m.vrt over two GeoTIFF members (values 1.., 1000..); return the mosaic's values."""
    whole = []
    sources = []
    for k in range(2):
        data = (np.arange(N * N, dtype=np.int16).reshape(N, N) % 500 + 1 + 1000 * k).astype(np.int16)
        whole.append(data)
        with rasterio.open(folder / f"m{k}.tif", "w", driver="GTiff", width=N, height=N, count=1,
                           dtype="int16", crs="EPSG:4326", tiled=True, blockxsize=64,
                           blockysize=64, transform=from_origin(k * N * 0.01, 0, 0.01, 0.01)) as dst:
            dst.write(data, 1)
        sources.append(
            f'<SimpleSource><SourceFilename relativeToVRT="1">m{k}.tif</SourceFilename>'
            f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{N}" ySize="{N}"/>'
            f'<DstRect xOff="{k * N}" yOff="0" xSize="{N}" ySize="{N}"/></SimpleSource>'
        )
    (folder / "m.vrt").write_text(
        f'<VRTDataset rasterXSize="{2 * N}" rasterYSize="{N}"><SRS>EPSG:4326</SRS>'
        "<GeoTransform>0, 0.01, 0, 0, 0, -0.01</GeoTransform>"
        '<VRTRasterBand dataType="Int16" band="1">' + "".join(sources)
        + "</VRTRasterBand></VRTDataset>"
    )
    return np.hstack(whole)


def test_urls_map_to_gdal_paths_and_s3_options_to_gdal_options() -> None:
    assert gdal_source("/data/a.tif").path == "/data/a.tif"
    assert gdal_source("file:///data/a.tif").path == "/data/a.tif"
    assert gdal_source("https://h.org/x/a.vrt").path == "/vsicurl/https://h.org/x/a.vrt"
    local = gdal_source("s3://b/k/a.tif", {"key": "K", "secret": "S", "token": "T",
                                           "client_kwargs": {"endpoint_url": "http://127.0.0.1:9/",
                                                             "region_name": "eu-west-1"}})
    assert local.path == "/vsis3/b/k/a.tif" and local.opener is None
    assert local.options == {
        "AWS_S3_ENDPOINT": "127.0.0.1:9", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T",
        "AWS_REGION": "eu-west-1",
    }
    tls = gdal_source("s3://b/a.tif", {"endpoint_url": "https://s3.example.org", "anon": True})
    assert tls.options == {"AWS_S3_ENDPOINT": "s3.example.org", "AWS_HTTPS": "YES",
                           "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_NO_SIGN_REQUEST": "YES"}
    assert gdal_source("s3://b/a.tif").options == {}  # GDAL's own AWS configuration
    assert gdal_source("https://h.org/a.tif", {"key": "K"}).options == {}  # S3 keys stay on S3
    other = gdal_source("memory://x/a.tif")
    assert other.path == "memory://x/a.tif" and type(other.opener).__name__ == "MemoryFileSystem"
    with pytest.raises(InputValidationError, match=r"endpoint_url '127\.0\.0\.1:9'"):
        gdal_source("s3://b/a.tif", {"endpoint_url": "127.0.0.1:9"})
    assert GDAL_READ_OPTIONS["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert int(GDAL_READ_OPTIONS["GDAL_HTTP_MAX_RETRY"]) >= 2


def test_vrt_on_s3_is_read_through_faults_and_a_persistent_one_names_source_and_member(
    s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    want = write_vrt(tmp_path)
    fs = s3_server.fs()
    for f in tmp_path.iterdir():
        fs.put_file(str(f), f"{s3_bucket.removeprefix('s3://')}/v/{f.name}")
    url = f"{s3_bucket}/v/m.vrt"
    direct = read_raster_window(url, BOX, s3_server.storage_options, source="soc")
    cells = direct.sel(latitude=slice(-0.2, -1.0), longitude=slice(0.2, 2.2))
    rows = np.round(-cells.latitude.values / 0.01 - 0.5).astype(int)
    cols = np.round(cells.longitude.values / 0.01 - 0.5).astype(int)
    np.testing.assert_array_equal(cells.values, want[np.ix_(rows, cols)])
    assert (cells.values < 1000).any() and (cells.values > 1000).any()  # both members read

    proxy = FaultProxy(s3_server.endpoint_url, error_rate=0.2, drop_rate=0.15, seed=3).start()
    try:
        so = proxy.storage_options(s3_server.storage_options)
        RASTERS.clear()
        flaky = read_raster_window(url, BOX, so, source="soc")
        assert proxy.counts["error"] >= 1 and proxy.counts["drop"] >= 1, proxy.counts
        np.testing.assert_array_equal(flaky.values, direct.values)

        RASTERS.clear()
        proxy.error_rate = proxy.drop_rate = 0.0
        proxy.fail_paths = ("v/m1.tif",)
        with pytest.raises(SourceError) as err:
            read_raster_window(url, BOX, so, source="soc")
        # the VRT is named, with GDAL's reason (the S3 error message of the member's answer), and
        # the member that cannot be read (only it: the other member under the window reads)
        assert re.search(rf"source 'soc' at {re.escape(url)}: cannot .*injected fault", str(err.value))
        named = str(err.value).split("member(s) that cannot be read: ", 1)[1]
        assert named.startswith(f"{s3_bucket}/v/m1.tif: ") and "m0.tif" not in named, named
        # only members placed under the window are tried (m0 holds VRT columns 0..N-1)
        assert failing_members(url, (0, 0, N // 2, N), so) == []
        assert [b.split(": ")[0] for b in failing_members(url, None, so)] == [f"{s3_bucket}/v/m1.tif"]
        assert proxy.counts["fail"] > 1  # GDAL asked again before giving up

        proxy.fail_paths = ()  # back: the failed answer is not remembered
        again = read_raster_window(url, BOX, so, source="soc")
        np.testing.assert_array_equal(again.values, direct.values)
    finally:
        proxy.stop()
        RASTERS.clear()


def test_http_cache_is_dropped_for_rasterios_gdal(tmp_path: Path) -> None:
    """GDAL keeps answers for the process; a one-off read and a clear ask the server again."""
    import pyogrio  # noqa: F401 - loads a second GDAL: the clear must reach rasterio's

    write_vrt(tmp_path)
    with RangeServer(tmp_path) as http:
        source = gdal_source(f"{http.url}/m0.tif")
        with gdal_env(source), open_raster(source) as src:
            src.read(1)
        cached = http.requests["/m0.tif"]
        with gdal_env(source), open_raster(source) as src:
            src.read(1)
        assert http.requests["/m0.tif"] == cached > 0  # GDAL's cache answered
        clear_http_cache()
        with gdal_env(source), open_raster(source) as src:
            src.read(1)
        assert http.requests["/m0.tif"] > cached
        seen = http.requests["/m0.tif"]
        with raster(f"{http.url}/m0.tif") as src:  # a one-off read drops the file's cache first
            src.read(1)
        assert http.requests["/m0.tif"] > seen


def test_s3_session_options_split_credentials_from_the_other_gdal_options() -> None:
    so = {"key": "AK", "secret": "SK", "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}
    session, options = s3_session_options(so)
    assert session == {"aws_access_key_id": "AK", "aws_secret_access_key": "SK",
                       "endpoint_url": "127.0.0.1:9000"}
    assert not any(k in options for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    assert options["AWS_S3_ENDPOINT"] == "127.0.0.1:9000" and options["AWS_HTTPS"] == "NO"
    assert GDAL_READ_OPTIONS.items() <= options.items()
    with rasterio.Env(session=rasterio.session.AWSSession(**session), **options):
        pass  # rasterio takes them as given (it refuses AWS keys among plain options)
    unsigned, opts = s3_session_options({"anon": True})
    assert unsigned is None and opts["AWS_NO_SIGN_REQUEST"] == "YES"
