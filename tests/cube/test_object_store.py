"""zarr cubes on S3 through obstore: which fsspec options carry over, the errors, the retries.

Real components: the moto server process (root conftest ``s3_server``) and
:class:`faultproxy.FaultProxy`, a real HTTP proxy that answers chosen statuses, between the client
and moto. The options translation is checked as data (no request needed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import zarr
from faultproxy import FaultProxy

from gsocseq.cube.tile_writer import zarr_store
from gsocseq.object_store import FSSPEC_ONLY, obstore_s3, s3_config
from gsocseq.storage import error_text, is_transient

pytestmark = [pytest.mark.s3]

_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                   "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@pytest.fixture
def bare_env(monkeypatch) -> None:
    """No AWS credentials, region or endpoint in the environment."""
    for name in _CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)


def test_options_carry_over(bare_env) -> None:
    so = {"key": "k", "secret": "s", "token": "t", "max_concurrency": 4,
          "client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"},
          "config_kwargs": {"retries": {"max_attempts": 3}}}
    assert s3_config(so) == {"access_key_id": "k", "secret_access_key": "s", "session_token": "t",
                             "endpoint": "http://minio:9000", "region": "eu-west-1"}
    assert so["client_kwargs"] == {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}
    assert s3_config({"anon": True, "client_kwargs": {"region_name": "us-west-2"}}) == {
        "skip_signature": True, "region": "us-west-2"}
    assert s3_config({"key": "k", "secret": "s", "endpoint_url": "https://x",
                      "requester_pays": True})["request_payer"] is True


@pytest.mark.parametrize("so", [
    {"profile": "work"},  # a profile file: botocore's credential chain
    {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": "http://m", "verify": False}},
    {"key": "k", "secret": "s", "config_kwargs": {"s3": {"addressing_style": "virtual"}},
     "client_kwargs": {"endpoint_url": "http://m"}},
    {"key": "k", "secret": "s"},  # no region nor endpoint: s3fs looks the bucket's region up
    {"client_kwargs": {"endpoint_url": "http://m"}},  # credentials only botocore finds
])
def test_options_that_do_not_carry_over_keep_s3fs(bare_env, so: dict[str, Any]) -> None:
    assert s3_config(so) is None
    assert obstore_s3("s3://b/c.zarr", so, attempts=2, backoff_s=0.1) is None
    assert type(zarr_store("s3://b/c.zarr", so)).__name__ == "FsspecStore"


def test_environment_credentials_and_region(bare_env, monkeypatch) -> None:
    assert s3_config({}) is None
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token")  # Kubernetes IRSA
    assert s3_config({}) is None  # no region: s3fs would look it up
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert s3_config({}) == {"region": "ap-south-1"}


def test_zarr_store_per_url_and_switch(s3_server, monkeypatch) -> None:
    so = s3_server.storage_options
    assert type(zarr_store("s3://b/c.zarr", so)).__name__ == "ObjectStore"
    assert type(zarr_store("file:///tmp/c.zarr", so)).__name__ == "LocalStore"
    assert type(zarr_store("memory://c.zarr")).__name__ == "FsspecStore"
    monkeypatch.setenv(FSSPEC_ONLY, "1")
    assert type(zarr_store("s3://b/c.zarr", so)).__name__ == "FsspecStore"


def test_both_clients_read_the_same_bytes(s3_server, s3_bucket, monkeypatch) -> None:
    so = s3_server.storage_options
    url = f"{s3_bucket}/sub/cube.zarr"
    data = np.random.default_rng(1).normal(size=(6, 8)).astype("float32")
    group = zarr.open_group(zarr_store(url, so), mode="w", zarr_format=3)
    group.create_array("v", shape=data.shape, chunks=(3, 4), dtype="float32")[:] = data
    keys = sorted(k.removeprefix(url.removeprefix("s3://")) for k in s3_server.fs().find(url))
    assert "/v/c/1/1" in keys and "/zarr.json" in keys  # under the URL's prefix, zarr's keys
    monkeypatch.setenv(FSSPEC_ONLY, "1")
    via_s3fs = zarr.open_group(zarr_store(url, so, read_only=True), mode="r", zarr_format=3)
    assert type(via_s3fs.store).__name__ == "FsspecStore"
    np.testing.assert_array_equal(via_s3fs["v"][:], data)


@pytest.fixture
def proxy(s3_server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint_url, seed=3).start()
    yield p
    p.stop()


def _array_via(proxy: FaultProxy, so: dict[str, Any], url: str, **extra: Any) -> zarr.Array:
    group = zarr.open_group(zarr_store(url, so), mode="w", zarr_format=3)
    group.create_array("v", shape=(4,), chunks=(4,), dtype="float32")[:] = 1.0
    via = proxy.storage_options(so, **extra)
    return zarr.open_group(zarr_store(url, via), mode="r+", zarr_format=3)["v"]


@pytest.mark.parametrize(("status", "transient"), [
    ((503, "SlowDown"), True), ((500, "InternalError"), True), ((429, "SlowDown"), True),
    ((403, "AccessDenied"), False), ((400, "InvalidRequest"), False),
])
def test_errors_are_classified_and_retried_as_configured(
    s3_server, s3_bucket, proxy, status: tuple[int, str], transient: bool, monkeypatch
) -> None:
    monkeypatch.setenv("GSOCSEQ_RETRY_BACKOFF_S", "0.01")
    arr = _array_via(proxy, s3_server.storage_options, f"{s3_bucket}/e.zarr",
                     config_kwargs={"retries": {"max_attempts": 3}})
    proxy.error_status, proxy.error_rate = status, 1.0
    with pytest.raises(Exception) as err:
        arr[:] = 2.0
    assert is_transient(err.value) is transient, err.value
    text = error_text(err.value)
    assert "e.zarr/v/c/0" in text and "Debug source" not in text, text
    # 5xx and 429 are retried by the client (3 attempts in all), a 4xx answer is final
    assert proxy.counts["error"] == (3 if status[0] in (500, 503, 429) else 1), proxy.counts
    proxy.error_rate = 0.0
    arr[:] = 3.0  # the endpoint is back: the same array writes again
    np.testing.assert_array_equal(arr[:], 3.0)


def test_an_endpoint_that_went_away_is_transient(s3_server, s3_bucket, proxy, monkeypatch) -> None:
    monkeypatch.setenv("GSOCSEQ_RETRY_BACKOFF_S", "0.01")
    arr = _array_via(proxy, s3_server.storage_options, f"{s3_bucket}/g.zarr",
                     config_kwargs={"retries": {"max_attempts": 2}})
    proxy.stop()
    with pytest.raises(Exception) as err:
        arr[:]
    assert is_transient(err.value), err.value


def test_small_objects_through_obstore_as_through_s3fs(s3_server, s3_bucket, monkeypatch) -> None:
    from gsocseq.storage import put_bytes, read_bytes, read_json, s3_client, write_json

    so = s3_server.storage_options
    url = f"{s3_bucket}/run/_done/t1.json"
    assert s3_client(url, so) is not None
    write_json(url, {"tile": "t1"}, so)
    assert json.loads(s3_server.fs().cat_file(url.removeprefix("s3://"))) == {"tile": "t1"}
    assert read_json(url, so) == {"tile": "t1"}
    assert read_bytes(f"{url}.missing", so) is None
    put_bytes(f"{s3_bucket}/a b/ü.bin", b"\x00\x01", so)  # keys that need quoting
    monkeypatch.setenv(FSSPEC_ONLY, "1")
    assert s3_client(url, so) is None
    assert read_json(url, so) == {"tile": "t1"}
    assert read_bytes(f"{s3_bucket}/a b/ü.bin", so) == b"\x00\x01"
