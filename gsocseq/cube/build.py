"""Build the harmonised cube tile by tile from the sources.

:func:`build_cube_tile` reads only the source windows one tile needs (tile bounds + a margin of
native cells), regrids them onto the tile's 30″ cells, computes the reason codes, writes the tile's
chunks (zarr region write) and then its completion marker. Memory is bounded by the tile size,
not by the region. :func:`build_cube` creates the store from the template and loops over tiles,
skipping those already finished; a tile whose sources cannot be read fails alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from gsocseq.cube.climate import build_climate
from gsocseq.cube.fingerprint import (
    content_hash,
    data_window_hash,
    digests,
    source_keys,
    source_variables,
    window_hash,
)
from gsocseq.cube.grid import TileKey
from gsocseq.cube.mask import reason_codes
from gsocseq.cube.region import Region
from gsocseq.cube.regrid import regrid_to_cells
from gsocseq.cube.store import (
    DTYPES,
    check_schema,
    create_cube,
    cube_dims,
    cube_exists,
    open_cube,
    tile_status,
    write_tile_record,
)
from gsocseq.cube.tile_writer import write_tile_chunks
from gsocseq.cube.uncertainty import report_masked, to_percent
from gsocseq.errors import GridMismatchError, InputValidationError, StorageError
from gsocseq.sources.adapters import read_source
from gsocseq.sources.cover import mark_no_valid_ndvi
from gsocseq.sources.spec import SourcesConfig, SourceSpec
from gsocseq.storage import error_text
from gsocseq.vocabulary import MODELLED_LAND_USE, Reason

log = logging.getLogger(__name__)

#: SOC in t C/ha whose 95th percentile over ≥ :data:`SOC_CHECK_MIN_PIXELS` agricultural cells is
#: below this is taken for kg/m² mislabelled as t C/ha (agricultural topsoils hold ≥ 20 t C/ha).
SOC_KGM2_SUSPECT_P95: float = 12.0
SOC_CHECK_MIN_PIXELS: int = 200


def _regrid(
    spec: SourceSpec, da: xr.DataArray, tile: TileKey, dtype: str = "float32"
) -> np.ndarray:
    return regrid_to_cells(
        spec.resampling, da.values, da["latitude"].values, da["longitude"].values, tile, dtype
    )


def _check_soc_units(spec: SourceSpec, soc: np.ndarray, agri: np.ndarray, tile: TileKey) -> None:
    values = soc[agri & np.isfinite(soc)]
    if values.size >= SOC_CHECK_MIN_PIXELS:
        p95 = float(np.percentile(values, 95))
        if p95 < SOC_KGM2_SUSPECT_P95:
            raise InputValidationError(
                f"source 'soc' at {spec.url}, tile {tile.id}: 95th percentile of SOC on "
                f"agricultural land is {p95:.3g} t C/ha — the file looks like kg/m2; "
                "declare units = 'kg/m2' (converted ×10) or fix the file"
            )


def tile_arrays(
    region: Region, sources: SourcesConfig, tile: TileKey, windows: dict[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Read, regrid and mask one tile's static inputs; returns the cube variables as numpy arrays.

    Monthly climate is not read here: it stays at the source's resolution in the region's
    climate store, and the tile read (:func:`gsocseq.cube.climate.add_climate`) regrids it and
    completes the reason codes with it. The ``reason`` stored here covers the static inputs.
    ``windows`` (if given) receives the hash of each source's window as read
    (:func:`gsocseq.cube.fingerprint.window_hash`, what a rebuild compares).
    """
    if not region.contains_tile(tile):
        raise GridMismatchError(f"tile {tile.id} is not in region {region.name}'s cube rectangle")
    bounds = tile.bounds
    so = sources.storage_options
    out: dict[str, np.ndarray] = {}
    read: dict[str, xr.DataArray] = {}
    for name, var in source_variables(sources).items():
        read[name] = read_source(sources[name], bounds, so)[var]
        if windows is not None:
            windows[name] = data_window_hash(read[name])
    for name in ("soc", "clay"):
        out[name] = _regrid(sources[name], read[name], tile)
    if "soc_uncertainty" in read:  # optional source: % of SOC (cube.uncertainty)
        unc = read["soc_uncertainty"]
        out["soc_uncertainty"] = to_percent(_regrid(sources["soc_uncertainty"], unc, tile),
                                            unc.attrs["units"], out["soc"])
    out["land_use"] = _regrid(sources["land_cover"], read["land_cover"], tile, "uint8")
    cover = read["cover"]
    out["cover"] = _regrid(sources["cover"], cover, tile)
    inside = region.mask(tile)
    if windows is not None:
        windows["boundaries"] = window_hash(inside)
    agri = inside & np.isin(out["land_use"], np.fromiter(MODELLED_LAND_USE, dtype=np.int64))
    _check_soc_units(sources["soc"], out["soc"], agri, tile)
    fields = {k: out[k] for k in ("soc", "clay", "cover", "soc_uncertainty") if k in out}
    out["reason"] = reason_codes(inside, out["land_use"], fields)
    if "soc_uncertainty" in out:
        report_masked(f"source 'soc_uncertainty' at {sources['soc_uncertainty'].url}", tile.id,
                      out["soc_uncertainty"], out["soc"],
                      agri & np.isfinite(out["clay"]) & np.isfinite(out["cover"]).all(axis=-1))
    if cover.attrs.get("nan_reason") == Reason.NO_VALID_NDVI:
        mark_no_valid_ndvi(out["reason"], out["cover"])
    out["land_use"][~inside] = 0
    for name in fields:
        out[name][~inside] = np.nan
    return out


def build_cube_tile(
    region: Region,
    sources: SourcesConfig,
    url: str,
    tile: TileKey,
    storage_options: Mapping[str, Any] | None = None,
    source_digests: Mapping[str, str] | None = None,
    *,
    arrays: dict[str, np.ndarray] | None = None,
    windows: Mapping[str, str] | None = None,
) -> int:
    """Build one tile of an existing cube (data chunks, the completion marker, then its record).

    Returns the number of pixels whose static inputs allow modelling (stored reason ``OK``); the
    climate may still mask some when the tile is read. ``source_digests`` are the sources' file
    digests of this run (:func:`gsocseq.cube.fingerprint.source_keys`, computed here when not
    given); ``arrays`` and ``windows``, when given, are the tile's already extracted arrays
    (:func:`tile_arrays`) and window hashes.
    """
    if arrays is None or windows is None:
        windows = {}
        arrays = tile_arrays(region, sources, tile, windows)
    if source_digests is None:
        source_digests = digests(source_keys(sources))
    stored = {name: arrays[name].astype(DTYPES[name], copy=False) for name in cube_dims(arrays)}
    writer = write_tile_chunks(url, tile, stored, storage_options, what="input cube")
    n_ok = int((arrays["reason"] == Reason.OK).sum())
    ti, tj = tile.chunk_index(*writer.origin)
    try:  # the completion marker, after the tile's data
        writer.arrays["tile_status"][ti, tj] = n_ok
    except Exception as exc:  # zarr/codec errors have no common base class
        raise StorageError(f"input cube {url}: cannot write tile_status/c/{ti}/{tj} of tile "
                           f"{tile.id}: {error_text(exc)}") from exc
    write_tile_record(url, {
        "tile": tile.id, "modelled": n_ok, "content": content_hash(stored),
        "sources": {k: {"digest": source_digests[k], "window": windows[k]} for k in windows},
    }, storage_options)
    log.info("cube %s: tile %s built, %d modelled pixels", url, tile.id, n_ok)
    return n_ok


def ensure_cube(
    region: Region,
    sources: SourcesConfig,
    url: str,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Create the cube from the template unless one for the same grid already exists at ``url``.

    The cube holds the optional variables of the sources declared (``soc_uncertainty``); an
    existing cube holding others raises :class:`GridMismatchError` (:func:`check_optional`).
    """
    if cube_exists(url, storage_options):
        ds = open_cube(url, storage_options)
        check_optional(ds, sources, url)
        same = (
            int(ds.attrs["tile_size"]) == region.tile_size
            and int(ds.attrs["origin_row"]) == region.origin_row
            and int(ds.attrs["origin_col"]) == region.origin_col
            and (ds.sizes["latitude"], ds.sizes["longitude"]) == region.shape
        )
        if not same:
            raise GridMismatchError(
                f"cube at {url} exists for another grid (origin {ds.attrs['origin_row']}, "
                f"{ds.attrs['origin_col']}, shape {ds.sizes['latitude']}×{ds.sizes['longitude']}, "
                f"tile {ds.attrs['tile_size']}); region {region.name} needs origin "
                f"{region.origin_row}, {region.origin_col}, shape {region.shape}"
            )
        return
    create_cube(region, url, storage_options, {"sources": json.dumps(sources.versions())},
                sources.optional())


def check_optional(ds: xr.Dataset, sources: SourcesConfig, url: str) -> None:
    """Raise :class:`GridMismatchError` when cube ``ds`` lacks or has optional variables vs ``sources``."""
    have = set(cube_dims(ds.data_vars)) - set(cube_dims())
    want = set(sources.optional())
    if have != want:
        raise GridMismatchError(
            f"cube at {url} holds optional variable(s) {sorted(have)} but the sources declare "
            f"{sorted(want)}: build into a new cube (another sources file or --out)"
        )


def build_cube(
    region: Region,
    sources: SourcesConfig,
    url: str,
    storage_options: dict | None = None,
    tiles: Sequence[TileKey] | None = None,
    source_digests: Mapping[str, str] | None = None,
    *,
    failures: dict[str, str] | None = None,
) -> str:
    """Build (or finish) the cube of ``region`` at ``url``; returns ``url``.

    The climate store is filled first (each climate file read once for the region), then tiles.
    Tiles whose completion marker exists are skipped. A tile whose inputs cannot be read (a source
    that stays down after its retries, bad data) fails alone: the other tiles are built and kept.
    With ``failures`` each failed tile's error (naming source and URL) is recorded there by tile
    id; without it the first error is raised once the other tiles are built. A climate source
    that cannot be read fails every tile still to build.

    A changed source is handled by :mod:`gsocseq.cube.refresh`; ``source_digests`` (computed here
    when needed and not given) go into each built tile's record.

    When every region tile is built and none has a modelled pixel, :class:`InputValidationError`
    is raised (nothing to run).
    """
    ensure_cube(region, sources, url, storage_options)
    todo = list(region.tiles if tiles is None else tiles)
    ds = open_cube(url, storage_options)
    todo = [t for t in todo if tile_status(ds, t) < 0]
    errors: dict[str, Exception] = {}
    try:
        build_climate(region, sources["climate"], url, storage_options, sources.storage_options)
    except Exception as exc:
        if failures is None or not todo:
            raise
        log.error("cube %s: climate not built, %d tile(s) fail: %s", url, len(todo), exc)
        errors = {t.id: exc for t in todo}
        todo = []
    keys = dict(source_digests) if source_digests is not None else None
    for tile in todo:
        try:
            keys = keys if keys is not None else digests(source_keys(sources))  # once per call
            build_cube_tile(region, sources, url, tile, storage_options, keys)
        except Exception as exc:  # this tile fails alone; the others are built
            log.error("cube %s: tile %s not built: %s", url, tile.id, exc)
            errors[tile.id] = exc
    if errors:
        if failures is None:
            raise next(iter(errors.values()))
        failures.update({k: describe_failure(e) for k, e in errors.items()})
    ds = open_cube(url, storage_options)
    check_schema(ds, url)
    status = [tile_status(ds, t) for t in region.tiles]
    if all(s >= 0 for s in status) and sum(status) == 0:
        raise InputValidationError(
            f"region {region.name} ({region.spec}) has no modelled pixels in cube {url}: every "
            "cell is outside the region, not agricultural, missing input or out of range"
        )
    return url


def describe_failure(exc: BaseException) -> str:
    """Return the failed-tile message of an input error: ``inputs: <type>: <message>``."""
    return f"inputs: {error_text(exc)}"
