"""Bounded-memory product layers for COG tasks: windows of a product cube, masked tile by tile.

Owns how a publishing task reads a layer: a window of whole tiles cut from a (larger) product cube,
masked lazily to a region (dask blocks = tiles, one rasterised mask per tile), streamed in strips
whose height keeps one task under :data:`STRIP_BYTES`, and the area totals of such a layer.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import rasterio
import xarray as xr

from gsocseq.cube.grid import TileKey, cell_area_ha
from gsocseq.vocabulary import layer_nodata

STRIP_BYTES: int = 64 * 2**20
"""Bytes of one layer a publishing task computes at a time (float32 strips of whole tile rows)."""
GDAL_CACHE_BYTES: int = 64 * 2**20
"""GDAL block cache of a publishing task (GDAL's default is 5 % of the machine's memory)."""


def task_env() -> rasterio.Env:
    """Return the GDAL environment of a publishing task (block cache ≤ :data:`GDAL_CACHE_BYTES`).

    So a task's memory grows neither with the layer nor with the machine's memory.
    """
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


def strip_rows_for(n_cols: int, tile_size: int, budget: int = STRIP_BYTES) -> int:
    """Return the strip height (rows, a multiple of ``tile_size``) holding ≤ ``budget`` bytes.

    At least one row of tiles: a world layer (43 200 columns, tiles of 240) gets 240-row strips of
    41 MB; a country layer of a few tiles is written in one strip.
    """
    rows = budget // max(1, 4 * n_cols)
    return max(tile_size, (rows // tile_size) * tile_size)


def cut_window(
    ds: xr.Dataset, *, origin_row: int, origin_col: int, n_rows: int, n_cols: int
) -> xr.Dataset:
    """Return the window of global cells ``[origin_row, +n_rows) × [origin_col, +n_cols)`` of ``ds``.

    ``ds`` is a product cube opened lazily (attributes ``origin_row`` / ``origin_col``); the window
    must lie inside it (a country's tiles inside the world's).
    """
    r0 = origin_row - int(ds.attrs["origin_row"])
    c0 = origin_col - int(ds.attrs["origin_col"])
    if r0 < 0 or c0 < 0 or r0 + n_rows > ds.sizes["latitude"] or c0 + n_cols > ds.sizes["longitude"]:
        raise ValueError(
            f"window rows {origin_row}+{n_rows}, cols {origin_col}+{n_cols} lies outside the product "
            f"cube (origin {ds.attrs['origin_row']}, {ds.attrs['origin_col']}, shape "
            f"{ds.sizes['latitude']}×{ds.sizes['longitude']})"
        )
    return ds.isel(latitude=slice(r0, r0 + n_rows), longitude=slice(c0, c0 + n_cols))


def mask_to_region(ds: xr.Dataset, region: Any) -> xr.Dataset:
    """Return ``ds`` (a window on ``region``'s tile rectangle) with nodata outside ``region``.

    The mask is a dask array with one block per tile: :meth:`Region.mask` for the region's tiles,
    all False for the others, computed once per tile and shared by every layer.
    """
    if (ds.sizes["latitude"], ds.sizes["longitude"]) != (region.n_rows, region.n_cols):
        raise ValueError(f"window {dict(ds.sizes)} is not region {region.name}'s {region.shape}")
    size = region.tile_size
    inside = set(region.tiles)
    masks: dict[tuple[int, int], np.ndarray] = {}

    def block(block_id: tuple[int, int] | None = None) -> np.ndarray:
        assert block_id is not None
        tile = TileKey(region.origin_row // size + block_id[0], region.origin_col // size
                       + block_id[1], size)
        if tile not in inside:
            return np.zeros((size, size), dtype=bool)
        if block_id not in masks:
            masks[block_id] = region.mask(tile)
        return masks[block_id]

    chunks = ((size,) * (region.n_rows // size), (size,) * (region.n_cols // size))
    mask = xr.DataArray(da.map_blocks(block, dtype=bool, chunks=chunks, meta=np.array((), bool)),
                        dims=("latitude", "longitude"))
    out = ds.copy()
    for name in ds.data_vars:  # NaN outside (float layers), the quality layers' nodata (uint8)
        fill = np.nan if np.issubdtype(ds[name].dtype, np.floating) else layer_nodata(str(name))
        out[name] = ds[name].where(mask, other=fill).astype(ds[name].dtype)
        out[name].attrs = dict(ds[name].attrs)
    return out


def area_total(data: xr.DataArray) -> float:
    """Return Σ value × cell area of a t C/ha (or t C/ha/yr) layer: t C (t C/yr); NaN cells count 0."""
    area = xr.DataArray(cell_area_ha(np.asarray(data["latitude"].values)), dims=("latitude",))
    with dask.config.set(scheduler="synchronous"):
        return float((data.astype(np.float64) * area).sum(skipna=True).compute())
