"""Incremental rebuild at run level: refresh the input cube, key the product tiles, say what was reused.

Owns :func:`refresh_inputs` (source fingerprints once per run on the client, then only the built
cube tiles whose sources changed are checked — on the cluster when there is one), the product
tiles' input key (:func:`input_keys`: the cube tile's content hash and the climate store's digest;
a product tile is recomputed when it differs from the key in its completion marker) and the
``refresh.json`` report of a run (what the input stage checked, kept and rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from gsocseq import storage
from gsocseq.cube.build import check_optional
from gsocseq.cube.fingerprint import digests, source_keys
from gsocseq.cube.refresh import climate_digest, refresh_climate, refresh_cube_tile, stale_tiles
from gsocseq.cube.store import cube_exists, open_cube, read_tile_records, tile_status
from gsocseq.pipeline.plan import RunPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputsRefresh:
    """What the input stage of a run found changed and redid (``{run}/refresh.json``)."""

    sources_changed: tuple[str, ...] = ()
    """Tile sources (``soc``, ``clay`` …) whose file digest differs from some built tile's record."""
    climate_files_changed: tuple[str, ...] = ()
    """Climate files whose key changed: read again into the climate store."""
    tiles_checked: tuple[str, ...] = ()
    """Built cube tiles whose sources changed (their changed windows re-read)."""
    tiles_rebuilt: tuple[str, ...] = ()
    """Cube tiles extracted again and rewritten (their content changed)."""
    methods: dict[str, list[str]] = field(default_factory=dict)
    """Source → how its files were fingerprinted (``version``, ``etag``, ``size+mtime``, ``sha256``)."""

    @property
    def tiles_kept(self) -> tuple[str, ...]:
        """Return the checked tiles whose data stayed (same windows or same content)."""
        return tuple(t for t in self.tiles_checked if t not in self.tiles_rebuilt)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {**asdict(self), "tiles_kept": list(self.tiles_kept)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> InputsRefresh:
        """Rebuild from :meth:`to_dict` output."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()
                      if k in names})


def refresh_url(plan: RunPlan) -> str:
    """Return where a run records its input stage's refresh report."""
    return f"{plan.run_url}/refresh.json"


_RUN_TOKEN: list[str] = [""]


def _refresh_task(shared: tuple[Any, ...], tile: Any, record: Any) -> str:
    """Dask task: :func:`~gsocseq.cube.refresh.refresh_cube_tile` of one tile.

    The worker's open rasters are dropped when the task belongs to another run than the last
    (the source files may have changed since they were opened).
    """
    from gsocseq.sources.readers import RASTERS

    region, sources, url, so, keys, token = shared
    if _RUN_TOKEN[0] != token:
        _RUN_TOKEN[0] = token
        RASTERS.clear()
    return refresh_cube_tile(region, sources, url, tile, keys, record, so)


def _bundle(*parts: Any) -> tuple[Any, ...]:
    return parts


def refresh_inputs(
    region: Any, sources: Any, plan: RunPlan, so: dict[str, Any], client: Any = None,
    token: str = "", errors: dict[str, BaseException] | None = None,
) -> tuple[InputsRefresh, dict[str, str], dict[str, Any]]:
    """Bring the built part of the cube up to date with the sources; return (report, digests, climate key).

    Source files are fingerprinted once here (client); the climate files whose key changed are
    marked to be read again (write the returned climate key with
    :func:`~gsocseq.cube.refresh.write_climate_record` once the climate store is built); built tiles
    whose record names another source digest are refreshed (one task per tile with a ``client``).
    A tile whose refresh fails (a source down) fails alone: with ``errors`` its exception is
    recorded there by tile id (its old inputs must not be run as if current), without it the first
    such exception is raised once the other tiles are refreshed.
    """
    keys = source_keys(sources)
    tile_digests = digests(keys)
    climate_key, climate_changed = refresh_climate(sources["climate"], plan.cube_url, so,
                                                   sources.storage_options)
    methods = {name: sorted({f["method"] for f in k["files"].values()})
               for name, k in {**keys, "climate": climate_key}.items()}
    if not cube_exists(plan.cube_url, so):
        return InputsRefresh(methods=methods), tile_digests, climate_key
    ds = open_cube(plan.cube_url, so)
    check_optional(ds, sources, plan.cube_url)  # a source declared since: a clear error, not a tile's
    status = {t.id: tile_status(ds, t) for t in plan.tiles}
    records = read_tile_records(plan.cube_url, plan.tile_ids, so)
    stale = stale_tiles(plan.tiles, records, status, tile_digests)
    changed = sorted({name for t in stale for name, d in tile_digests.items()
                      if records.get(t.id, {}).get("sources", {}).get(name, {}).get("digest") != d})
    results: list[str] = []
    failed: dict[str, BaseException] = {}
    if stale and client is not None:
        token = token or uuid.uuid4().hex[:8]
        shared = client.submit(_bundle, region, sources, plan.cube_url, so, tile_digests, token,
                               key=f"gsocseq-refresh-inputs-{token}", pure=False)
        futures = client.map(_refresh_task, [shared] * len(stale), stale,
                             [records.get(t.id) for t in stale],
                             key=[f"gsocseq-refresh-{t.id}-{token}" for t in stale], pure=False,
                             retries=1)
        from distributed import wait

        wait(futures)
        for tile, future in zip(stale, futures, strict=True):
            if future.status == "error":
                failed[tile.id] = future.exception()
                results.append("failed")
            else:
                results.append(future.result())
        del futures, shared
    else:
        for tile in stale:
            try:
                results.append(refresh_cube_tile(region, sources, plan.cube_url, tile,
                                                 tile_digests, records.get(tile.id), so))
            except Exception as exc:  # this tile fails alone; the others are refreshed
                failed[tile.id] = exc
                results.append("failed")
    for tile_id, exc in failed.items():
        log.error("input cube %s: tile %s not refreshed: %s", plan.cube_url, tile_id, exc)
    if failed and errors is None:
        raise next(iter(failed.values()))
    if errors is not None:
        errors.update(failed)
    report = InputsRefresh(
        sources_changed=tuple(changed), climate_files_changed=tuple(climate_changed),
        tiles_checked=tuple(t.id for t in stale),
        tiles_rebuilt=tuple(t.id for t, r in zip(stale, results, strict=True) if r == "rebuilt"),
        methods=methods,
    )
    if stale or climate_changed:
        log.info("input cube %s: sources changed %s, climate files changed %d; %d tile(s) "
                 "checked, %d rebuilt", plan.cube_url, list(changed), len(climate_changed),
                 len(stale), len(report.tiles_rebuilt))
    return report, tile_digests, climate_key


def input_keys(cube_url: str, tile_ids: Any, so: dict[str, Any] | None) -> dict[str, str]:
    """Return each built tile's input key: SHA-256 of its cube content hash and the climate digest.

    A product tile records the key it was computed from; a different key means its inputs changed.
    Tiles without a cube record get no key.
    """
    records = read_tile_records(cube_url, list(tile_ids), so)
    climate = climate_digest(cube_url, so)
    return {t: _key(r.get("content", ""), climate) for t, r in records.items()}


def input_key(cube_url: str, tile_id: str, so: dict[str, Any] | None) -> str:
    """Return :func:`input_keys` of one tile ('' when the tile has no record)."""
    from gsocseq.cube.store import records_url

    record = storage.read_json(f"{records_url(cube_url)}/{tile_id}.json", so)
    if record is None:
        return ""
    return _key(record.get("content", ""), climate_digest(cube_url, so))


def _key(content: str, climate: str) -> str:
    return hashlib.sha256(f"{content} {climate}".encode()).hexdigest()


def read_refresh(plan: RunPlan, so: dict[str, Any] | None) -> InputsRefresh | None:
    """Return the refresh report of the run's last input stage (``None`` before any)."""
    doc = storage.read_json(refresh_url(plan), so)
    return InputsRefresh.from_dict(doc) if doc is not None else None


def inputs_changed(sources: Any, plan: RunPlan, so: dict[str, Any] | None) -> bool:
    """Return whether any source file changed since the built cube tiles / climate were recorded.

    Cheap (file fingerprints only, no source read): lets a rerun that found every product tile
    finished still start a cluster when its inputs must be refreshed.
    """
    from gsocseq.cube.fingerprint import source_key
    from gsocseq.cube.refresh import climate_record_url

    if not cube_exists(plan.cube_url, so):
        return True
    tile_digests = digests(source_keys(sources))
    records = read_tile_records(plan.cube_url, plan.tile_ids, so)
    if len(records) < len(plan.tiles) or any(
        r.get("sources", {}).get(n, {}).get("digest") != d
        for r in records.values() for n, d in tile_digests.items()
    ):
        return True
    climate = storage.read_json(climate_record_url(plan.cube_url), so) or {}
    return climate.get("digest") != source_key(sources["climate"],
                                               sources.storage_options)["digest"]


def layer_digests(markers: list[dict[str, Any]], layers: Any) -> dict[str, str]:
    """Return per layer the SHA-256 of every tile's checksum of it (tile order as given)."""
    out = {}
    for layer in layers:
        h = hashlib.sha256()
        for m in markers:
            h.update(f"{m['tile']} {m['checksums'].get(layer, '')}\n".encode())
        out[layer] = h.hexdigest()
    return out


def tile_digests_of(markers: list[dict[str, Any]]) -> dict[str, str]:
    """Return per tile the SHA-256 of its layer checksums (what a publication records)."""
    return {m["tile"]: hashlib.sha256(repr(sorted(m["checksums"].items())).encode()).hexdigest()
            for m in markers}


@dataclass(frozen=True)
class Republish:
    """What a publication must rewrite, against the one recorded in ``published.json``."""

    layers: frozenset[str]
    """Layers whose values changed (all when there is no earlier publication)."""
    tiles: frozenset[str] | None
    """Tiles whose results changed (``None``: unknown, i.e. everything)."""

    def touches(self, rows: tuple[int, int], cols: tuple[int, int]) -> bool:
        """Return whether a window (global rows, cols: start, stop) holds a changed tile."""
        if self.tiles is None:
            return True
        from gsocseq.cube.grid import TileKey

        for t in self.tiles:
            key = TileKey.from_id(t)
            r, c = key.to_slices(0, 0)
            if r.start < rows[1] and rows[0] < r.stop and c.start < cols[1] and cols[0] < c.stop:
                return True
        return False


def republish(previous: dict[str, Any] | None, markers: list[dict[str, Any]],
              layers: Any) -> Republish:
    """Compare a run's markers with the previous publication: the layers and tiles to rewrite."""
    now_layers = layer_digests(markers, layers)
    now_tiles = tile_digests_of(markers)
    if not previous or "layer_digests" not in previous:
        return Republish(frozenset(now_layers), None)
    old_layers, old_tiles = previous["layer_digests"], previous.get("tile_digests", {})
    return Republish(
        frozenset(n for n, d in now_layers.items() if old_layers.get(n) != d),
        frozenset(t for t, d in now_tiles.items() if old_tiles.get(t) != d),
    )


def changed_since_publication(plan: RunPlan, so: dict[str, Any] | None) -> list[str] | None:
    """Return the tiles whose results changed since the run's last publication (``None``: unknown).

    Compares every tile's checksums (its completion marker) with the per-tile digests the last
    ``published.json`` recorded; ``None`` when there is no earlier publication or it predates them
    (publish everything). Handed to :func:`gsocseq.pipeline.publish.publish` as ``changed_tiles``.
    """
    previous = storage.read_json(plan.published_url, so)
    if not previous or "tile_digests" not in previous:
        return None
    fs, path = storage.filesystem(plan.done_url, so)
    blobs = fs.cat([f"{path}/{t}.json" for t in plan.tile_ids], on_error="omit")
    markers = [json.loads(b) for b in blobs.values()]
    now = tile_digests_of(markers)
    old = previous["tile_digests"]
    return sorted(t for t in plan.tile_ids if now.get(t) != old.get(t))
