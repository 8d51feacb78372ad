"""Storage: every read and write of the run's objects on any fsspec store (S3, GCS, local, memory).

Owns URL → filesystem, atomic puts (a temporary ``<key>.tmp-<random>`` then a move, so a reader never
sees half an object), JSON documents, temporaries left by killed writers, and bounded retries of
transient faults (S3 request retries and a whole-unit retry). Imported by every layer above the model.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from fsspec.core import url_to_fs

from gsocseq.errors import StorageError
from gsocseq.object_store import obstore_s3

__all__ = [
    "RETRY_BACKOFF_ENV", "S3_MAX_ATTEMPTS", "TILE_ATTEMPTS", "TILE_BACKOFF_S", "StorageError",
    "call_with_retries", "retry_backoff_s",
    "dumps", "ensure_parent", "error_text", "exists", "filesystem", "is_transient", "list_names",
    "put_bytes", "put_file", "read_bytes", "read_json", "remove_temporaries", "s3_client",
    "small_object_options",
    "with_s3_retries", "write_json", "write_json_if_changed",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

TMP_MARK: str = ".tmp-"
"""Infix of a temporary key (``<key>.tmp-<hex>``): an interrupted write leaves one behind."""
S3_MAX_ATTEMPTS: int = 6
"""Attempts per S3 request (1 + 5 retries; botocore backoff ≈ 1, 2, 4, 8, 16 s at most)."""
TILE_ATTEMPTS: int = 2
"""Attempts per tile for transient errors (on top of the per-request retries)."""
TILE_BACKOFF_S: float = 1.0
"""Default wait before the first retry, s (doubled for each further attempt); see :func:`retry_backoff_s`."""
RETRY_BACKOFF_ENV: str = "GSOCSEQ_RETRY_BACKOFF_S"
"""Environment variable: the back-off of every retry, s (the first wait; :func:`retry_backoff_s`)."""

_FLAT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
#: An HTTP 4xx answer but 408 (timeout) and 429 (slow down) in obstore's error text.
_CLIENT_STATUS = re.compile(r"status code: 4(?!08|29)\d\d")
#: Where obstore's error text turns into its multi-line debug dump.
_OBSTORE_DEBUG = "\n\nDebug source:"
_PERMANENT: tuple[type[BaseException], ...] = (
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
)

# ------------------------------------------------------------------------------- filesystems


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Return ``(fs, path)`` for a URL and fsspec storage options."""
    return url_to_fs(str(url), **dict(storage_options or {}))


def small_object_options(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the storage options for reading small whole objects at ``url`` (JSON, zarr objects).

    On ``s3://`` they set s3fs's ``max_concurrency`` to 1: s3fs then GETs a whole object at once,
    where with more it first HEADs the object to decide whether to split the download into
    concurrent ranged GETs (only worth it above its block size, ≈ 50 MiB; zarr chunks and JSON
    documents are far smaller). A missing object then costs one GET (404) instead of HEAD + LIST.
    Only for these stores: large uploads (COGs) keep the caller's concurrency. Other stores: the
    options unchanged. The input is not modified.
    """
    out = dict(storage_options or {})
    if str(url).startswith(("s3://", "s3a://")):
        out["max_concurrency"] = 1
    return out


def s3_client(url: str, storage_options: Mapping[str, Any] | None = None) -> Any | None:
    """Return the obstore client rooted at an ``s3://bucket/prefix`` URL, ``None`` elsewhere.

    :func:`gsocseq.object_store.obstore_s3` with this module's retry policy (≈ a third of s3fs's
    CPU per request); ``None`` for other stores and where the options do not carry over (s3fs
    then). Used for the zarr cubes and the small objects here.
    """
    if not str(url).startswith(("s3://", "s3a://")):
        return None
    return obstore_s3(str(url), storage_options, attempts=S3_MAX_ATTEMPTS,
                      backoff_s=retry_backoff_s())


def _bucket_client(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any | None, str]:
    """Return ``(s3_client of the URL's bucket, key in it)``; ``(None, key)`` off obstore."""
    scheme, _, rest = str(url).partition("://")
    bucket, _, key = rest.partition("/")
    return s3_client(f"{scheme}://{bucket}", storage_options), key


def _is_object_store(fs: Any) -> bool:
    """Whether ``fs`` is an object store (no folders; a PUT replaces an object atomically)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return bool(protocols & _FLAT_STORES)


def ensure_parent(fs: Any, path: str) -> None:
    """Create the parent folder of ``path`` on stores that have folders (not on object stores)."""
    parent = fs._parent(path)
    if parent and not _is_object_store(fs):
        fs.makedirs(parent, exist_ok=True)


# ---------------------------------------------------------------------------- atomic writes


def _move_into_place(fs: Any, tmp: str, path: str) -> None:
    try:
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def put_bytes(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write ``data`` to ``url`` so that readers never see half of it.

    On object stores one PUT (atomic there: a reader gets the old object or the new one, a killed
    writer leaves nothing); elsewhere via a temporary key and a move. On S3 that is 1 request
    instead of 6 (PUT, HEAD, LIST ×2, COPY, DELETE) for every completion marker.
    """
    client, key = _bucket_client(url, storage_options)
    if client is not None:
        import obstore

        obstore.put(client, key, data)
        return
    fs, path = filesystem(url, storage_options)
    if _is_object_store(fs):
        fs.pipe_file(path, data)
        return
    ensure_parent(fs, path)
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex}"
    fs.pipe_file(tmp, data)
    _move_into_place(fs, tmp, path)


def put_file(local: str | Path, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Upload the local file ``local`` to ``url`` via a temporary key and a move."""
    fs, path = filesystem(url, storage_options)
    ensure_parent(fs, path)
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex}"
    fs.put_file(str(local), tmp)
    _move_into_place(fs, tmp, path)


def remove_temporaries(url: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Delete the temporary objects (``*.tmp-*``) directly under ``url``; return their names.

    A writer killed between its upload and its move leaves one behind. Call this only where no
    other writer is active (e.g. at publication, when every tile is finished).
    """
    fs, path = filesystem(url, storage_options)
    names = [n for n in list_names(url, storage_options) if TMP_MARK in n]
    for name in names:
        fs.rm_file(f"{path}/{name}")
    return names


# ------------------------------------------------------------------------------------ reads


def read_bytes(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes | None:
    """Return the bytes at ``url``, or ``None`` if there is no such object.

    One GET on S3 (obstore, or s3fs with :func:`small_object_options`), a 404 for a missing object.
    """
    client, key = _bucket_client(url, storage_options)
    if client is not None:
        import obstore

        try:
            return bytes(obstore.get(client, key).bytes())
        except FileNotFoundError:
            return None
    fs, path = filesystem(url, small_object_options(url, storage_options))
    fs.invalidate_cache(path)  # other processes write markers: never trust a cached listing
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def exists(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Return whether an object or directory exists at ``url`` (now, not per a cached listing)."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache(path)
    return bool(fs.exists(path))


def list_names(url: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Return the sorted base names of the objects directly under ``url`` (empty if none)."""
    fs, path = filesystem(url, storage_options)
    try:
        entries = fs.ls(path, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)


# ------------------------------------------------------------------------------------- JSON


def dumps(doc: dict[str, Any]) -> bytes:
    """Serialise a JSON document deterministically (sorted keys, two-space indent, UTF-8)."""
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def write_json(url: str, doc: dict[str, Any], storage_options: Mapping[str, Any] | None = None) -> None:
    """Write ``doc`` to ``url`` atomically (:func:`put_bytes`)."""
    put_bytes(url, dumps(doc), storage_options)


def write_json_if_changed(
    url: str, doc: dict[str, Any], storage_options: Mapping[str, Any] | None = None
) -> bool:
    """Write ``doc`` unless ``url`` already holds the same bytes; return whether it wrote."""
    if read_bytes(url, storage_options) == dumps(doc):
        return False
    write_json(url, doc, storage_options)
    return True


def read_json(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Return the JSON document at ``url``, or ``None`` if it does not exist."""
    data = read_bytes(url, storage_options)
    return None if data is None else json.loads(data)


# ---------------------------------------------------------------------------------- retries


def with_s3_retries(storage_options: dict[str, Any], *urls: str | None) -> dict[str, Any]:
    """Return ``storage_options`` with the S3 retry configuration added when a URL is ``s3://``.

    Every S3 request is then retried by botocore with exponential backoff and client-side rate
    limiting. An explicit ``config_kwargs["retries"]`` is kept as given. The input is not modified.
    """
    if not any(u is not None and u.startswith(("s3://", "s3a://")) for u in urls):
        return storage_options
    _scale_botocore_backoff()
    if "retries" in (storage_options.get("config_kwargs") or {}):
        return storage_options
    out = copy.deepcopy(storage_options)
    out.setdefault("config_kwargs", {})["retries"] = {"max_attempts": S3_MAX_ATTEMPTS,
                                                      "mode": "adaptive"}
    return out


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` (or an exception it was raised from) is a transient I/O error.

    Transient: an ``OSError`` such as a 5xx answer after the client's retries, a dropped connection
    or a timeout, an HTTP 408/429/5xx answer of an ``http(s)://`` source, obstore's ``GenericError``
    (its retries given up on a 5xx answer, a dropped connection or a timeout; not a 4xx answer but
    408/429), anywhere in the exception chain; not missing objects, denied access or bad data.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _PERMANENT):
            return False
        if isinstance(current, OSError | TimeoutError | ConnectionError):
            return True
        if type(current).__name__ in ("ClientError", "EndpointConnectionError",
                                      "ConnectionClosedError", "ReadTimeoutError"):
            return True
        if type(current).__module__.startswith("obstore"):  # its other errors: 403, 404, bad path …
            return type(current).__name__ == "GenericError" and not _CLIENT_STATUS.search(
                str(current))
        status = getattr(current, "status", None)  # HTTP sources: aiohttp's ClientResponseError
        if isinstance(status, int) and (status in (408, 429) or 500 <= status < 600):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_text(exc: BaseException) -> str:
    """Return ``"<type>: <message>"`` for an error message, without obstore's debug dump."""
    return f"{type(exc).__name__}: {str(exc).split(_OBSTORE_DEBUG)[0].strip()}"


def retry_backoff_s() -> float:
    """Return the retry back-off, s: ``GSOCSEQ_RETRY_BACKOFF_S`` if set, else :data:`TILE_BACKOFF_S`.

    It is the first wait of a unit retry (:func:`call_with_retries`: tiles, source reads, climate
    files; doubled for each further attempt) and the scale of botocore's jittered per-request
    back-off (``rand(0, 1) × 2^(attempt-1)`` s, multiplied by ``value ÷ 1 s``; installed by
    :func:`with_s3_retries` and at import in every process where the variable is set, dask
    workers included). Read at each retry: set it in the environment of every process of a run.
    Raises ``ValueError`` for a value that is not a finite number ≥ 0.
    """
    raw = os.environ.get(RETRY_BACKOFF_ENV, "").strip()
    if not raw:
        return TILE_BACKOFF_S
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise ValueError(f"{RETRY_BACKOFF_ENV}={raw!r}: a number of seconds >= 0 is needed")
    return value


_BOTOCORE_SCALED: list[bool] = [False]


def _scale_botocore_backoff(*, always: bool = True) -> None:
    """Make botocore's request back-off follow :func:`retry_backoff_s` (once per process).

    botocore has no setting for it: its ``ExponentialBackoff.delay_amount`` is wrapped to multiply
    the delay by ``retry_backoff_s() / 1 s`` (its first wait is at most 1 s; unset, the factor is
    1: botocore's own delays). ``always=False`` (at import) only when ``GSOCSEQ_RETRY_BACKOFF_S``
    is set, so that a process without S3 and without the setting never imports botocore.
    """
    if _BOTOCORE_SCALED[0] or not (always or os.environ.get(RETRY_BACKOFF_ENV, "").strip()):
        return
    from botocore.retries.standard import ExponentialBackoff

    original = ExponentialBackoff.delay_amount

    def delay_amount(self: Any, context: Any) -> float:
        return float(original(self, context)) * retry_backoff_s() / TILE_BACKOFF_S

    ExponentialBackoff.delay_amount = delay_amount  # type: ignore[method-assign]
    _BOTOCORE_SCALED[0] = True


def call_with_retries(
    fn: Callable[[], T], *, what: str, attempts: int = TILE_ATTEMPTS,
    backoff_s: float | None = None,
) -> T:
    """Call ``fn`` up to ``attempts`` times while it raises transient errors (see :func:`is_transient`).

    Waits ``backoff_s`` (default :func:`retry_backoff_s`), then twice as long, … (s) between
    attempts; re-raises the last error, and any non-transient error at once.
    """
    backoff_s = retry_backoff_s() if backoff_s is None else backoff_s
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: transient error (attempt %d/%d), retrying in %.1f s: %s",
                        what, attempt, attempts, wait, exc)
            time.sleep(wait)
    raise AssertionError("unreachable")


_scale_botocore_backoff(always=False)  # every process importing storage (dask workers), if set
