"""zarr's S3 client: fsspec storage options translated for obstore (Rust's ``object_store``).

Owns :func:`obstore_s3`: the client that :func:`gsocseq.cube.tile_writer.zarr_store` gives zarr's
``ObjectStore`` for ``s3://`` cubes (and :mod:`gsocseq.storage` uses for small objects), built
from the same fsspec storage options as every other read and with the run's retry policy, or
``None`` where the options cannot be carried over exactly (the caller then keeps s3fs). Why: a
chunk request costs s3fs/aiobotocore ≈ 2–5 ms of CPU (request signing and event hooks in Python),
obstore ≈ 1 ms, and a tile task makes ≈ 60 of them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

__all__ = ["FSSPEC_ONLY", "obstore_s3", "s3_config"]

#: s3fs options that tune fsspec's own caching or transfers: nothing for obstore to carry over.
_FSSPEC_TUNING = frozenset({
    "max_concurrency", "default_block_size", "default_fill_cache", "default_cache_type",
    "use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache",
    "asynchronous", "loop", "cache_regions", "version_aware", "fixed_upload_size",
})
#: Environment variables by which object_store finds credentials without a profile file.
_ENV_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
FSSPEC_ONLY: str = "GSOCSEQ_ZARR_FSSPEC"
"""Environment variable: set to ``1`` to read and write zarr cubes on S3 with s3fs, as before."""


def s3_config(storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return obstore's S3 configuration for fsspec ``storage_options``, or ``None`` if not exact.

    Carried over: ``key``/``secret``/``token`` (credentials), ``anon`` (unsigned requests),
    ``endpoint_url`` (top level or in ``client_kwargs``; ``http://`` allowed), ``region_name``,
    ``requester_pays``. ``None`` (keep s3fs) for anything else that changes requests (a profile,
    other client or botocore settings but ``retries``), and where botocore would find what
    object_store cannot: credentials from a profile file (no key in the options or the
    environment, no web identity or container credentials), or a bucket's region looked up at
    run time (no region and no endpoint given).
    """
    so = dict(storage_options or {})
    client = dict(so.pop("client_kwargs", None) or {})
    botocore = dict(so.pop("config_kwargs", None) or {})
    botocore.pop("retries", None)  # obstore's own retries (:func:`obstore_s3`)
    cfg: dict[str, Any] = {}
    endpoint = client.pop("endpoint_url", None) or so.pop("endpoint_url", None)
    region = client.pop("region_name", None)
    for fs_key, os_key in (("key", "access_key_id"), ("secret", "secret_access_key"),
                           ("token", "session_token")):
        value = so.pop(fs_key, None)
        if value is not None:
            cfg[os_key] = value
    if so.pop("anon", False):
        cfg["skip_signature"] = True
    if so.pop("requester_pays", False):
        cfg["request_payer"] = True
    if client or botocore or set(so) - _FSSPEC_TUNING:
        return None
    if not cfg.get("skip_signature") and "access_key_id" not in cfg and not any(
        os.environ.get(v) for v in _ENV_CREDENTIALS
    ):
        return None
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        cfg["endpoint"] = str(endpoint)
    elif not region:
        return None
    cfg["region"] = region or "us-east-1"
    return cfg


def obstore_s3(url: str, storage_options: Mapping[str, Any] | None = None, *, attempts: int,
               backoff_s: float) -> Any | None:
    """Return an ``obstore`` ``S3Store`` rooted at the ``s3://bucket/prefix`` URL, or ``None``.

    ``None`` where :func:`s3_config` cannot carry the options over or :data:`FSSPEC_ONLY` is set.
    Retries: 5xx and 429 answers, dropped connections and timeouts, ``attempts`` in all (or
    ``config_kwargs["retries"]["max_attempts"]`` when the options give it), exponential back-off
    from ``backoff_s`` (s; ×2 per retry, at most 16×). One client per process and arguments: its
    connections are reused.
    """
    if os.environ.get(FSSPEC_ONLY, "") not in ("", "0"):
        return None
    key = json.dumps(dict(storage_options or {}), sort_keys=True, default=str)
    bucket, _, prefix = url.split("://", 1)[1].partition("/")
    return _client(bucket, prefix.strip("/"), key, attempts, backoff_s, _environment())


def _environment() -> tuple[str | None, ...]:
    """Return the environment variables :func:`s3_config` reads (part of the client cache's key)."""
    return tuple(os.environ.get(v) for v in (*_ENV_CREDENTIALS, "AWS_ENDPOINT_URL_S3",
                                              "AWS_ENDPOINT_URL", "AWS_REGION",
                                              "AWS_DEFAULT_REGION"))


@functools.lru_cache(maxsize=32)
def _client(bucket: str, prefix: str, options: str, attempts: int, backoff_s: float,
            _env: tuple[str | None, ...]) -> Any | None:
    storage_options = json.loads(options)
    cfg = s3_config(storage_options)
    if cfg is None:
        return None
    from obstore.store import S3Store

    retries = (storage_options.get("config_kwargs") or {}).get("retries") or {}
    attempts = int(retries.get("max_attempts", attempts))
    backoff = max(backoff_s, 1e-3)
    retry = {"max_retries": max(attempts - 1, 0), "retry_timeout": timedelta(minutes=3),
             "backoff": {"init_backoff": timedelta(seconds=backoff),
                         "max_backoff": timedelta(seconds=16 * backoff), "base": 2}}
    client = {"allow_http": str(cfg.get("endpoint", "")).startswith("http://")}
    return S3Store(bucket, prefix=prefix or None, config=cfg, client_options=client,
                   retry_config=retry)
