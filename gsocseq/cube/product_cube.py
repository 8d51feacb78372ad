"""The product cube: a zarr v3 group of the 29 float32 layers, the quality layers and ``reason``.

Created once from a template (coordinates, metadata, empty arrays whose chunks are the tiles; built
in memory, committed with the group's ``zarr.json`` last and exclusively, so a reader never opens a
half-created cube and concurrent creators end with one), then filled tile by tile: each tile writes
exactly its own chunks, so tiles can be written concurrently from any process and a tile rewritten
later produces the same bytes. Unwritten chunks read as the fill values (NaN, ``OUTSIDE_REGION``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from gsocseq.cube.grid import TileKey, cell_latitudes, cell_longitudes
from gsocseq.cube.root_cache import RootCache
from gsocseq.cube.tile_writer import write_tile_chunks, zarr_store
from gsocseq.errors import GridMismatchError
from gsocseq.lease import commit_store
from gsocseq.vocabulary import (
    LAYER_NAMES,
    LAYERS,
    MONTECARLO_LAYERS,
    QUALITY_LAYERS,
    QUALITY_NODATA,
    Reason,
)

DIMS: tuple[str, str] = ("latitude", "longitude")
REASON_VAR: str = "reason"
#: zstd level 1: a demo tile's 31 chunks encode in 0.018 CPU-s against 0.041 at level 3, for
#: 4.58 MB against 4.57 MB (the layers are float32 model output; every tile task pays this).
_COMPRESSOR = ZstdCodec(level=1)


def create_product_cube(
    url: str,
    *,
    origin_row: int,
    origin_col: int,
    n_rows: int,
    n_cols: int,
    tile_size: int,
    attrs: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
    montecarlo: bool = False,
) -> bool:
    """Create the empty product cube at ``url`` unless it exists; return whether it was created.

    The cube covers global cells ``[origin_row, origin_row + n_rows)`` × ``[origin_col, …)`` with
    chunks of ``tile_size`` cells; with ``montecarlo`` it also holds the float32 Monte Carlo
    layers (``vocabulary.MONTECARLO_LAYERS``). An existing cube must have the same grid, else
    :class:`GridMismatchError` (the caller chose a fresh URL per configuration).
    """
    existing = _open_existing(url, storage_options)
    if existing is not None:
        _check_grid(existing, origin_row, origin_col, n_rows, n_cols, tile_size, url)
        return False
    items: dict[str, Any] = {}  # built in memory, then committed: the group's zarr.json last
    group = zarr.open_group(zarr.storage.MemoryStore(items), mode="w", zarr_format=3)
    group.attrs.update({
        **attrs, "origin_row": origin_row, "origin_col": origin_col, "tile_size": tile_size,
        "crs": "EPSG:4326",
    })
    lat = cell_latitudes(origin_row, origin_row + n_rows)
    lon = cell_longitudes(origin_col, origin_col + n_cols)
    for name, values in (("latitude", lat), ("longitude", lon)):
        arr = group.create_array(
            name, shape=values.shape, dtype="float64", chunks=values.shape,
            dimension_names=(name,), compressors=_COMPRESSOR,
            attributes={"units": f"degrees_{'north' if name == 'latitude' else 'east'}",
                        "standard_name": name},
        )
        arr[:] = values
    for name in LAYER_NAMES:
        group.create_array(
            name, shape=(n_rows, n_cols), dtype="float32", chunks=(tile_size, tile_size),
            fill_value=np.float32("nan"), dimension_names=DIMS, compressors=_COMPRESSOR,
            attributes={"units": LAYERS[name]},
        )
    for name, layer in (MONTECARLO_LAYERS if montecarlo else {}).items():
        group.create_array(
            name, shape=(n_rows, n_cols), dtype="float32", chunks=(tile_size, tile_size),
            fill_value=np.float32("nan"), dimension_names=DIMS, compressors=_COMPRESSOR,
            attributes={"units": layer.units, "description": layer.description},
        )
    for name, layer in QUALITY_LAYERS.items():  # written by the schemes that have them
        group.create_array(
            name, shape=(n_rows, n_cols), dtype=layer.dtype, chunks=(tile_size, tile_size),
            fill_value=QUALITY_NODATA, dimension_names=DIMS, compressors=_COMPRESSOR,
            attributes={"units": layer.units, "description": layer.description},
        )
    group.create_array(
        REASON_VAR, shape=(n_rows, n_cols), dtype="uint8", chunks=(tile_size, tile_size),
        fill_value=int(Reason.OUTSIDE_REGION), dimension_names=DIMS, compressors=_COMPRESSOR,
        attributes={"units": "1", "description": "gsocseq.vocabulary.Reason, 0 = modelled"},
    )
    if commit_store({k: v.to_bytes() for k, v in items.items()}, url, storage_options):
        return True
    existing = _open_existing(url, storage_options)  # another process created it meanwhile
    if existing is None:
        raise GridMismatchError(f"product cube {url}: created by another process but not readable")
    _check_grid(existing, origin_row, origin_col, n_rows, n_cols, tile_size, url)
    return False


def _open_existing(url: str, storage_options: dict[str, Any] | None) -> zarr.Group | None:
    """Return the product cube group at ``url`` read-only, ``None`` if there is none."""
    try:
        return zarr.open_group(zarr_store(url, storage_options, read_only=True), mode="r",
                               zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


def _check_grid(
    group: zarr.Group, origin_row: int, origin_col: int, n_rows: int, n_cols: int, tile_size: int,
    url: str,
) -> None:
    """Raise :class:`GridMismatchError` unless ``group`` has this grid."""
    got = (group.attrs.get("origin_row"), group.attrs.get("origin_col"),
           group.attrs.get("tile_size"), tuple(group[REASON_VAR].shape))
    want = (origin_row, origin_col, tile_size, (n_rows, n_cols))
    if got != want:
        raise GridMismatchError(
            f"product cube {url} has (origin_row, origin_col, tile_size, shape) = {got}, "
            f"expected {want}; remove it or choose another output URL"
        )


def write_product_tile(
    url: str,
    tile: TileKey,
    layers: dict[str, np.ndarray],
    reason: np.ndarray,
    storage_options: dict[str, Any] | None = None,
) -> None:
    """Write one tile's layers (float32 ``(size, size)``, t C/ha, t C/ha/yr, %) and reason codes.

    The cube is opened once per process; the tile's chunks of every layer are encoded and stored
    in one pass (:func:`gsocseq.cube.tile_writer.write_tile_chunks`).
    """
    data = {name: np.asarray(layers[name], dtype=np.float32) for name in LAYER_NAMES}
    data.update({name: np.asarray(layers[name], dtype=np.uint8) for name in QUALITY_LAYERS
                 if name in layers})
    data.update({name: np.asarray(layers[name], dtype=np.float32) for name in MONTECARLO_LAYERS
                 if name in layers})
    data[REASON_VAR] = np.asarray(reason, dtype=np.uint8)
    write_tile_chunks(url, tile, data, storage_options, what="product cube")


def read_product_tile(
    url: str, tile: TileKey, storage_options: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Return one tile's layers and ``reason`` as numpy arrays ``(size, size)``."""
    group = zarr.open_group(zarr_store(url, storage_options, read_only=True), mode="r",
                            zarr_format=3)
    rows, cols = tile.to_slices(int(group.attrs["origin_row"]), int(group.attrs["origin_col"]))
    names = (*LAYER_NAMES, *(q for q in (*QUALITY_LAYERS, *MONTECARLO_LAYERS) if q in group),
             REASON_VAR)
    return {name: group[name][rows, cols] for name in names}


def open_product_cube(url: str, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """Open the product cube lazily (dask, chunks = tiles) with coordinates and units."""
    return xr.open_zarr(
        zarr_store(url, storage_options, read_only=True), zarr_format=3, consolidated=False,
        mask_and_scale=False,
    )


def _open_for_reading(url: str, storage_options: Any, _root: bytes) -> xr.Dataset:
    return open_product_cube(url, storage_options)


READ_CACHE_SIZE: int = 4
"""Product cubes kept open for reading per process (0: opened on every call)."""
_READERS: RootCache[xr.Dataset] = RootCache(_open_for_reading, READ_CACHE_SIZE, "product cube")


def cached_product_cube(url: str, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """Return :func:`open_product_cube` of ``url``, opened once per process while unchanged.

    Each call reads the root ``zarr.json`` (one small read) and reopens the cube when its bytes
    changed (:class:`~gsocseq.cube.root_cache.RootCache`); values are read lazily from storage
    on every compute, never kept, so tiles written since are seen. Returns a shallow copy: a
    caller's changes to attributes stay its own.
    """
    return _READERS.get(url, storage_options).copy()
