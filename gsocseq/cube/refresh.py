"""Incremental rebuild of a built cube: find tiles and climate files whose sources changed, redo only those.

Owns the comparison of a run's source fingerprints (:mod:`gsocseq.cube.fingerprint`) with what
the cube recorded when it was built: :func:`stale_tiles` (client, no source read),
:func:`refresh_cube_tile` (one tile: re-read only the changed sources' windows, rebuild only when
one differs, rewrite only when the extracted tile differs) and :func:`refresh_climate` (climate
files whose key changed are re-read into the climate store; the store's record digest feeds the
product tiles' input keys).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from gsocseq.cube.build import build_cube_tile, tile_arrays
from gsocseq.cube.climate import (
    _exists,
    _open_group,
    climate_files,
    climate_url,
    not_stored,
    status_array,
)
from gsocseq.cube.fingerprint import (
    content_hash,
    data_window_hash,
    source_key,
    source_variables,
    window_hash,
)
from gsocseq.cube.grid import TileKey
from gsocseq.cube.region import Region
from gsocseq.cube.store import DTYPES, cube_dims, reset_tile_status, write_tile_record
from gsocseq.sources.adapters import read_source
from gsocseq.sources.spec import SourcesConfig, SourceSpec
from gsocseq.storage import read_json, write_json

log = logging.getLogger(__name__)

Refreshed = Literal["kept", "rebuilt"]


def changed_sources(record: Mapping[str, Any] | None, digests: Mapping[str, str]) -> list[str]:
    """Return the sources whose digest differs from the tile's record (every one without a record)."""
    if record is None:
        return sorted(digests)
    had = record.get("sources", {})
    return sorted(n for n, d in digests.items() if had.get(n, {}).get("digest") != d)


def stale_tiles(
    tiles: Sequence[TileKey], records: Mapping[str, Mapping[str, Any]], status: Mapping[str, int],
    digests: Mapping[str, str],
) -> list[TileKey]:
    """Return the built tiles (``status`` ≥ 0) whose record is missing or names another source digest."""
    return [t for t in tiles if status.get(t.id, -1) >= 0
            and changed_sources(records.get(t.id), digests)]


def refresh_cube_tile(
    region: Region, sources: SourcesConfig, url: str, tile: TileKey,
    digests: Mapping[str, str], record: Mapping[str, Any] | None,
    storage_options: Mapping[str, Any] | None = None,
) -> Refreshed:
    """Bring one built tile up to date with ``digests``; return ``kept`` or ``rebuilt``.

    Only the changed sources' windows are read first; when each hashes as recorded, the tile is
    kept (its record gets the new digests, no data written). Otherwise the tile is extracted again;
    when its content equals the recorded content it is still kept, else its marker is reset and the
    tile rewritten (data, marker, record), so product tiles that read it are recomputed.
    """
    changed = changed_sources(record, digests)
    windows = dict((record or {}).get("sources", {}))
    same = record is not None
    so = sources.storage_options
    for name in changed if record is not None else ():
        now = _window(region, sources, name, tile, so)
        same = same and now == windows.get(name, {}).get("window")
        windows[name] = {"digest": digests[name], "window": now}
    if same and record is not None:
        write_tile_record(url, {**record, "sources": windows}, storage_options)
        log.info("cube %s: tile %s kept (sources %s changed, its windows did not)", url, tile.id,
                 ", ".join(changed))
        return "kept"
    new_windows: dict[str, str] = {}
    arrays = tile_arrays(region, sources, tile, new_windows)
    stored = {name: arrays[name].astype(DTYPES[name], copy=False) for name in cube_dims(arrays)}
    if record is not None and content_hash(stored) == record.get("content"):
        write_tile_record(url, {**record, "sources": {
            k: {"digest": digests[k], "window": v} for k, v in new_windows.items()}},
            storage_options)
        log.info("cube %s: tile %s kept (extracted again, same content)", url, tile.id)
        return "kept"
    reset_tile_status(url, tile, storage_options)
    build_cube_tile(region, sources, url, tile, storage_options, digests, arrays=arrays,
                    windows=new_windows)
    log.info("cube %s: tile %s rebuilt (sources changed: %s)", url, tile.id, ", ".join(changed))
    return "rebuilt"


def _window(
    region: Region, sources: SourcesConfig, name: str, tile: TileKey, so: Mapping[str, Any]
) -> str:
    """Return the window hash of one source for ``tile`` (as :func:`tile_arrays` records it)."""
    if name == "boundaries":
        return window_hash(region.mask(tile))
    return data_window_hash(read_source(sources[name], tile.bounds, so)[source_variables(sources)[name]])


def climate_record_url(cube_url: str) -> str:
    """Return the climate store's record beside it: ``….climate.zarr`` → ``….climate.json``."""
    return climate_url(cube_url)[: -len(".zarr")] + ".json"


def refresh_climate(
    spec: SourceSpec, cube_url: str, so: Mapping[str, Any] | None = None,
    source_so: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Mark the climate files whose key changed as not stored; return (current key, changed URLs).

    Call before :func:`~gsocseq.cube.climate.build_climate` (which then re-reads those files only)
    and write the returned key with :func:`write_climate_record` after it. A store without a
    record is kept as built (its record is written from the current keys).
    """
    key = source_key(spec, source_so)
    url = climate_url(cube_url)
    record = read_json(climate_record_url(cube_url), so)
    if record is None or not _exists(url, so):
        return key, []
    if record.get("declaration") != key["declaration"]:
        changed = [f.url for f in climate_files(spec)]
    else:
        old = record.get("files", {})
        changed = [u for u, k in key["files"].items() if old.get(u) != k]
    if changed:
        group = _open_group(url, so, "r+")
        files = [f["url"] if isinstance(f, dict) else f for f in _stored_files(group)]
        status = status_array(group)  # a reset status's chunk is deleted (fill value 0)
        for i, f in enumerate(files):
            if f in changed:
                status[i] = np.int8(0)
        log.info("climate store %s: %d file(s) changed, read again: %s", url, len(changed),
                 ", ".join(changed))
    return key, changed


def _stored_files(group: Any) -> list[Any]:
    import json

    return list(json.loads(group.attrs["files"]))


def write_climate_record(cube_url: str, key: Mapping[str, Any],
                         so: Mapping[str, Any] | None = None) -> None:
    """Record the climate source key the store now holds (after :func:`build_climate`).

    Nothing is recorded while a file of the store is not stored (a climate read failed) or a block
    of its tile windows is not written.
    """
    url = climate_url(cube_url)
    if not _exists(url, so):
        return
    group = _open_group(url, so, "r")
    if not_stored(group).any() or not_stored(group, "block_status").any():
        return
    if read_json(climate_record_url(cube_url), so) != dict(key):
        write_json(climate_record_url(cube_url), dict(key), so)


def climate_digest(cube_url: str, so: Mapping[str, Any] | None = None) -> str:
    """Return the digest of the climate the store holds ('' before it is recorded)."""
    record = read_json(climate_record_url(cube_url), so)
    return str(record.get("digest", "")) if record else ""
