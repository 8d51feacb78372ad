"""The harmonised input cube: grid and tiles, regions, regridding, reason codes, zarr v3 store.

Public API (imported lazily so ``gsocseq.cube.grid`` stays light)::

    resolve_region(spec, sources, tile_size=240) -> Region
    build_cube(region, sources, url, storage_options=None, tiles=None) -> str
    build_cube_tile(region, sources, url, tile, storage_options=None) -> int
    open_cube(url, storage_options=None) -> xr.Dataset
    read_tile(ds, tile) -> dict[str, np.ndarray]
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Region": "gsocseq.cube.region",
    "resolve_region": "gsocseq.cube.region",
    "build_cube": "gsocseq.cube.build",
    "build_cube_tile": "gsocseq.cube.build",
    "ensure_cube": "gsocseq.cube.build",
    "open_cube": "gsocseq.cube.store",
    "read_tile": "gsocseq.cube.store",
    "tile_status": "gsocseq.cube.store",
    "cube_summary": "gsocseq.cube.store",
    "check_schema": "gsocseq.cube.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import public names on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gsocseq.cube' has no attribute {name!r}")
