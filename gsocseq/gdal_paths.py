"""Rasters read through GDAL's own virtual file systems: the one place a URL becomes a GDAL path.

Owns URL → GDAL path (local paths and ``file://`` as plain paths, ``http(s)://`` via ``/vsicurl/``,
``s3://`` via ``/vsis3/``; other protocols keep an fsspec opener), the run's storage options → GDAL
configuration (endpoint, credentials, retries of transient HTTP faults) and GDAL's HTTP cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rasterio
from rasterio.session import Session

from gsocseq.errors import InputValidationError
from gsocseq.storage import filesystem

__all__ = [
    "GDAL_READ_OPTIONS", "HTTP_MAX_RETRY", "HTTP_RETRY_CODES", "HTTP_RETRY_DELAY_S", "GdalSource",
    "clear_http_cache", "gdal_env", "gdal_source", "open_raster", "raster", "s3_options",
    "s3_session_options",
]

HTTP_MAX_RETRY: int = 3
"""Retries of one HTTP request by GDAL after a transient answer or a dropped connection."""
HTTP_RETRY_DELAY_S: float = 0.3
"""GDAL's wait before its first retry, s (GDAL doubles it, with jitter, for each further one)."""
HTTP_RETRY_CODES: str = "429,500,502,503,504"
"""HTTP statuses GDAL retries (``GDAL_HTTP_RETRY_CODES``; 404 or 403 fail at once)."""

GDAL_READ_OPTIONS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no folder listing per opened file
    "GDAL_HTTP_MAX_RETRY": str(HTTP_MAX_RETRY),
    "GDAL_HTTP_RETRY_DELAY": str(HTTP_RETRY_DELAY_S),
    "GDAL_HTTP_RETRY_CODES": HTTP_RETRY_CODES,
}
"""GDAL configuration of every raster read (any protocol)."""

_S3 = ("s3", "s3a")
_HTTP = ("http", "https")


@dataclass(frozen=True)
class GdalSource:
    """Where GDAL reads a URL: ``path`` (a plain path or ``/vsi…/``), its options, or an opener."""

    url: str
    """The URL as given (for error messages)."""
    path: str
    """The path handed to GDAL."""
    options: dict[str, str] = field(default_factory=dict)
    """GDAL configuration options the path needs (S3 endpoint, credentials)."""
    opener: Any = None
    """An fsspec file system for the protocols GDAL does not read itself, else ``None``."""


def gdal_source(url: str, storage_options: Mapping[str, Any] | None = None) -> GdalSource:
    """Return how GDAL reads ``url`` with the run's fsspec ``storage_options``.

    ``s3://`` options map to GDAL's: ``endpoint_url`` (also in ``client_kwargs``) → ``AWS_S3_ENDPOINT``
    (+ ``AWS_HTTPS=NO`` for ``http://``, path-style requests), ``key``/``secret``/``token``,
    ``anon`` → ``AWS_NO_SIGN_REQUEST``, ``region_name`` (``client_kwargs``), ``profile``,
    ``requester_pays``; other options (botocore retries, …) have no GDAL counterpart.
    """
    url = str(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "":
        return GdalSource(url, url)
    if scheme == "file":
        return GdalSource(url, url.split("://", 1)[1])
    if scheme in _HTTP:
        return GdalSource(url, f"/vsicurl/{url}")
    if scheme in _S3:
        return GdalSource(url, f"/vsis3/{url.split('://', 1)[1]}", s3_options(storage_options))
    fs, _ = filesystem(url, storage_options)
    return GdalSource(url, url, opener=fs)


def s3_options(storage_options: Mapping[str, Any] | None) -> dict[str, str]:
    """GDAL configuration for ``/vsis3/`` from fsspec S3 ``storage_options`` (see :func:`gdal_source`).

    Credentials included (``AWS_ACCESS_KEY_ID`` …): hand them to GDAL through a session, as
    :func:`gdal_env` does (``rasterio.Env`` refuses them as plain options).
    """
    so = dict(storage_options or {})
    client = dict(so.get("client_kwargs") or {})
    opts: dict[str, str] = {}
    endpoint = so.get("endpoint_url") or client.get("endpoint_url")
    if endpoint:
        parts = urlsplit(str(endpoint))
        if not parts.netloc:
            raise InputValidationError(
                f"storage option endpoint_url {endpoint!r} has no host: expected http(s)://HOST[:PORT]"
            )
        opts["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
        opts["AWS_HTTPS"] = "NO" if parts.scheme == "http" else "YES"
    if so.get("anon"):
        opts["AWS_NO_SIGN_REQUEST"] = "YES"
    for option, key in (("AWS_ACCESS_KEY_ID", "key"), ("AWS_SECRET_ACCESS_KEY", "secret"),
                        ("AWS_SESSION_TOKEN", "token"), ("AWS_PROFILE", "profile")):
        if so.get(key):
            opts[option] = str(so[key])
    region = client.get("region_name") or so.get("region_name")
    if region:
        opts["AWS_REGION"] = str(region)
    if so.get("requester_pays"):
        opts["AWS_REQUEST_PAYER"] = "requester"
    return opts


_CREDENTIALS: dict[str, str] = {"AWS_ACCESS_KEY_ID": "aws_access_key_id",
                                "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
                                "AWS_SESSION_TOKEN": "aws_session_token"}
"""GDAL's credential options (refused by ``rasterio.Env``) → ``AWSSession`` arguments."""


def s3_session_options(
    storage_options: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Split :func:`s3_options` for libraries that build their own rasterio session (odc-stac).

    Returns ``(rasterio.session.AWSSession keyword arguments, or None without credentials; the
    other GDAL options, :data:`GDAL_READ_OPTIONS` included)``.
    """
    opts = {**GDAL_READ_OPTIONS, **s3_options(storage_options)}
    session = {argument: opts.pop(option) for option, argument in _CREDENTIALS.items()
               if option in opts}
    if not session:
        return None, opts
    if "AWS_S3_ENDPOINT" in opts:
        session["endpoint_url"] = opts["AWS_S3_ENDPOINT"]
    return session, opts


class _OptionsSession(Session):
    """A rasterio session that hands GDAL fixed options (rasterio's ``Env`` refuses AWS keys)."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self.credentials = dict(options)

    @classmethod
    def hascreds(cls, config: Mapping[str, Any]) -> bool:
        return True

    def get_credential_options(self) -> dict[str, str]:
        return dict(self.credentials)


@contextmanager
def gdal_env(source: GdalSource, **extra: Any) -> Iterator[None]:
    """GDAL configured for ``source`` (:data:`GDAL_READ_OPTIONS`, its options, ``extra``).

    Open, read and close its datasets inside: a VRT opens its members while it reads.
    """
    with rasterio.Env(session=_OptionsSession(source.options), **{**GDAL_READ_OPTIONS, **extra}):
        yield


def open_raster(source: GdalSource) -> Any:
    """Open ``source`` for reading (call inside :func:`gdal_env`); return the rasterio dataset."""
    if source.opener is not None:
        return rasterio.open(source.url, opener=source.opener)
    return rasterio.open(source.path)


@contextmanager
def raster(url: str, storage_options: Mapping[str, Any] | None = None, **extra: Any) -> Iterator[Any]:
    """Yield ``url`` open for reading inside its GDAL configuration; closed on exit.

    A one-off read: GDAL's HTTP cache of the file is dropped first, so a file rewritten since an
    earlier read in this process is read as it is now.
    """
    source = gdal_source(url, storage_options)
    clear_http_cache(source.path)
    with gdal_env(source, **extra), open_raster(source) as src:
        yield src


@functools.cache
def _libgdal() -> Any:
    """Return rasterio's GDAL library (its wheel bundles one; pyogrio's may be loaded too), or None."""
    bundled = Path(rasterio.__file__).parent.parent / "rasterio.libs"
    paths = sorted(str(p) for p in bundled.glob("libgdal*"))
    path = paths[0] if paths else ctypes.util.find_library("gdal")  # rasterio built on a system GDAL
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def clear_http_cache(prefix: str = "") -> None:
    """Drop GDAL's process-wide ``/vsicurl/``/``/vsis3/`` cache (file sizes, answers, bytes).

    GDAL remembers a failed ``HEAD`` and the bytes it read for the life of the process: clear it
    when the sources may have changed (a new run) or an open failed (a retry must ask again).
    With ``prefix`` (a GDAL path), only what is cached under it; plain paths have no such cache.
    """
    lib = _libgdal()
    if lib is None or (prefix and not prefix.startswith("/vsi")):
        return
    if prefix:
        lib.VSICurlPartialClearCache(prefix.encode())
    else:
        lib.VSICurlClearCache()
