"""Fingerprints of the source bytes a cube was built from: per source file, per tile window, per tile.

Owns what an incremental rebuild compares. Three levels, cheapest first:

1. **file** (once per run, on the client): every file a source declares gets a key from fsspec's
   ``info()`` — the object version where the store keeps versions (S3 ``VersionId``, GCS
   ``generation``), else its content tag (S3/Azure/HTTP ``ETag``, GCS ``md5Hash``, HTTP
   ``Content-MD5``/``Digest``), else size + modification time (local files, memory, SFTP …), else
   (a store reporting none of these) a SHA-256 of the whole file's bytes. :func:`file_key` says
   which (``method``). A source's key is the digest of its files' keys (:func:`source_keys`).
2. **window** (per tile, only for sources whose file key changed): a SHA-256 of the values the
   tile's window read from that source (:func:`window_hash`), so one changed file re-extracts only
   the tiles whose window actually changed.
3. **content** (per tile): a SHA-256 of the cube tile's stored arrays (:func:`content_hash`); a
   product tile records it (with the climate digest) as its input, so it is recomputed exactly
   when the cube tile it read changed.

Coarse on purpose: a file key covers a whole file (a change anywhere in a global GSOCmap means
every tile's SOC window is re-read and compared, not re-modelled); templated URLs (``{year}``,
``{month}``, ``{depth}``) are listed with the store's glob; a SoilGrids ``.vrt`` is keyed by the
VRT document only (a sub-tile rewritten under an unchanged VRT is not seen); a ``stac`` source is
keyed by its declaration (collection, period, query), not by its items.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gsocseq.sources.adapters import SOURCE_ATTEMPTS
from gsocseq.sources.spec import SourcesConfig, SourceSpec, options_for
from gsocseq.sources.vrt import parse_vrt
from gsocseq.storage import call_with_retries, filesystem

log = logging.getLogger(__name__)

#: ``info()`` fields naming an object version, in order of preference.
VERSION_FIELDS: tuple[str, ...] = ("VersionId", "version_id", "generation")
#: ``info()`` fields holding a content tag or checksum.
TAG_FIELDS: tuple[str, ...] = ("ETag", "etag", "md5Hash", "Content-MD5", "content_md5",
                               "Digest", "crc32c", "checksum")
#: ``info()`` fields holding a modification time.
TIME_FIELDS: tuple[str, ...] = ("mtime", "LastModified", "last_modified", "updated", "modified",
                                "created")
#: Sources whose files the cube tiles read (the climate has its own store and record).
TILE_SOURCES: tuple[str, ...] = ("boundaries", "soc", "clay", "land_cover", "cover")
#: Optional sources the cube tiles read when declared (:data:`gsocseq.sources.spec.OPTIONAL_DATASETS`).
OPTIONAL_TILE_SOURCES: tuple[str, ...] = ("soc_uncertainty",)

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def file_key(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Return ``{"method": …, "key": …}`` identifying the bytes of the file at ``url`` now.

    ``method`` is ``version``, ``etag``, ``size+mtime`` or ``sha256`` (whole file read: only for
    stores that report none of the others). A missing file gives method ``missing``; a store that
    still fails after the transient-error retries gives ``unavailable`` (logged: such a file's
    changes are seen only once it answers again).
    """
    fs, path = filesystem(url, storage_options)
    try:
        info = call_with_retries(lambda: fs.info(path), what=f"source file {url}",
                                 attempts=SOURCE_ATTEMPTS)  # transient errors retried
    except FileNotFoundError:
        return {"method": "missing", "key": ""}
    except Exception as exc:  # noqa: BLE001 — fsspec stores raise their own types; the read reports it
        log.warning("source file %s: no fingerprint (%s: %s); changes to it are not detected",
                    url, type(exc).__name__, exc)
        return {"method": "unavailable", "key": type(exc).__name__}
    for name in VERSION_FIELDS:
        if info.get(name):
            return {"method": "version", "key": f"{name}={info[name]}"}
    for name in TAG_FIELDS:
        if info.get(name):
            return {"method": "etag", "key": f"{name}={info[name]}"}
    for name in TIME_FIELDS:
        if info.get(name) is not None:
            return {"method": "size+mtime", "key": f"size={info.get('size')} {name}={info[name]}"}
    return {"method": "sha256", "key": hashlib.sha256(fs.cat_file(path)).hexdigest()}


def source_files(spec: SourceSpec, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Return the URLs of the files ``spec`` may read: its URL, or every match of a templated one.

    A template's placeholders (``{year}``, ``{month:02d}``, ``{depth}``, ``{var}``) become ``*``
    and the store is globbed (over-inclusive, never missing a file the adapter opens). A store
    that cannot list (HTTP without a directory index) gives none: such a source is keyed by its
    declaration only.
    """
    if not _PLACEHOLDER.search(spec.url):
        return [spec.url, *vrt_members(spec.url, storage_options)]
    fs, path = filesystem(spec.url, storage_options)
    pattern = _PLACEHOLDER.sub("*", path)
    try:
        found = call_with_retries(lambda: fs.glob(pattern), what=f"source {spec.name!r} listing",
                                  attempts=SOURCE_ATTEMPTS)
    except Exception as exc:  # noqa: BLE001 — a store that cannot list (plain HTTP without index)
        log.warning("source %r: cannot list %s (%s); its files are not fingerprinted", spec.name,
                    spec.url, exc)
        return []
    return sorted(fs.unstrip_protocol(p) for p in found)


def vrt_members(url: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Return the URLs of the files a GDAL VRT at ``url`` reads (none for any other file).

    A SoilGrids layer is one VRT over thousands of GeoTIFF sub-tiles: a provider may rewrite a
    sub-tile under an unchanged VRT, so each sub-tile is keyed too (every member, not only those
    a region touches: over-inclusive, one ``info`` each). Members relative to the VRT are resolved
    against it, absolute URLs (and ``/vsicurl/`` ones) kept; other GDAL ``/vsi…`` paths cannot be
    keyed here and are logged. A VRT
    that cannot be read gives none (its own key says ``unavailable``).
    """
    if not url.lower().endswith(".vrt"):
        return []
    fs, path = filesystem(url, storage_options)
    try:
        text = call_with_retries(lambda: fs.cat_file(path), what=f"source file {url}",
                                 attempts=SOURCE_ATTEMPTS)
        members = parse_vrt(text, url)
    except Exception as exc:  # noqa: BLE001 — reported by the read; its own key is 'unavailable'
        log.warning("VRT %s: members not keyed (%s: %s)", url, type(exc).__name__, exc)
        return []
    for m in members:
        if m.url is None:  # /vsizip/…, absolute local paths: not a URL this store can key
            log.warning("VRT %s: member %s not keyed (not a URL)", url, m.name)
    return sorted({m.url for m in members if m.url is not None})


def source_key(spec: SourceSpec, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return one source's fingerprint: its declaration, each file's key and their digest.

    ``{"digest": sha256 hex, "files": {url: {"method", "key"}}, "declaration": str}``; the digest
    changes when a file changes, appears or goes, or when the declaration (kind, version, URL,
    units, layers, …) changes.
    """
    declaration = json.dumps(_declaration(spec), sort_keys=True, default=str)
    files: dict[str, dict[str, str]] = {}
    if spec.kind != "stac":
        so = options_for(spec, storage_options)
        for url in source_files(spec, so):
            files[url] = file_key(url, so)
    blob = json.dumps([declaration, files], sort_keys=True)
    return {"digest": hashlib.sha256(blob.encode()).hexdigest(), "files": files,
            "declaration": declaration}


def tile_sources(sources: SourcesConfig) -> tuple[str, ...]:
    """Return the sources the cube tiles of ``sources`` read: :data:`TILE_SOURCES` + declared optional."""
    return TILE_SOURCES + tuple(n for n in OPTIONAL_TILE_SOURCES if n in sources)


def source_keys(
    sources: SourcesConfig, names: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Return :func:`source_key` of each named source (default :func:`tile_sources`), once per run."""
    so = sources.storage_options
    return {name: source_key(sources[name], so)
            for name in (tile_sources(sources) if names is None else names)}


def digests(keys: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Return ``{source: digest}`` of :func:`source_keys` (what a tile record keeps)."""
    return {name: str(k["digest"]) for name, k in keys.items()}


def window_hash(*arrays: Any) -> str:
    """Return the SHA-256 of arrays (values, dtype, shape) read for one tile window."""
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a))
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def content_hash(arrays: Mapping[str, Any]) -> str:
    """Return the SHA-256 of a cube tile's variables (sorted by name) as stored."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(window_hash(arrays[name]).encode())
    return h.hexdigest()


def _declaration(spec: SourceSpec) -> dict[str, Any]:
    from dataclasses import asdict

    doc = asdict(spec)
    doc.pop("storage_options", None)  # credentials and endpoints are not part of the data
    return doc


#: Source → the variable its adapter returns for a tile (what :func:`data_window_hash` hashes).
SOURCE_VARIABLES: dict[str, str] = {"soc": "soc", "clay": "clay", "land_cover": "land_use",
                                    "cover": "cover"}
#: The same for the optional sources, read only when declared (:func:`source_variables`).
OPTIONAL_SOURCE_VARIABLES: dict[str, str] = {"soc_uncertainty": "soc_uncertainty"}


def source_variables(sources: SourcesConfig) -> dict[str, str]:
    """Return :data:`SOURCE_VARIABLES` plus the declared optional sources' variables."""
    return {**SOURCE_VARIABLES,
            **{k: v for k, v in OPTIONAL_SOURCE_VARIABLES.items() if k in sources}}


def data_window_hash(da: Any) -> str:
    """Return :func:`window_hash` of an adapter's window (values and coordinates, as read)."""
    return window_hash(da.values, da["latitude"].values, da["longitude"].values)
