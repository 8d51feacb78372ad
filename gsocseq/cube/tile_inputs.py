"""One tile's model inputs in the model's layout: static values per cell, climate per batch of cells.

Owns :class:`TileInputs`, what a tile task reads: the stored variables of the tile, flat, and its
monthly climate regridded only at the cells that need it and straight into the (months × pixels)
arrays ``run_phases`` takes (:meth:`TileInputs.climate`), with their final reason codes. Built from
the cube (:func:`read_tile_inputs`) or from :func:`gsocseq.cube.store.read_tile`'s arrays
(:meth:`TileInputs.from_arrays`); both give the same numbers and codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from gsocseq.cube.climate import CLIMATE_DECIDES, CLIMATE_FIELDS, complete_reasons
from gsocseq.cube.grid import TileKey
from gsocseq.cube.store import climate_store, read_static
from gsocseq.vocabulary import Reason

#: Stored variables passed on per cell (those the cube has): t C/ha, %, class, % of SOC.
FLAT_VARS: tuple[str, ...] = ("soc", "clay", "land_use", "soc_uncertainty")

ClimateAt = Callable[[np.ndarray], tuple[dict[str, np.ndarray], np.ndarray]]


@dataclass
class TileInputs:
    """A tile's inputs: per-cell static values, and climate on demand for chosen cells."""

    shape: tuple[int, int]
    """(ny, nx) cells of the tile."""
    flat: dict[str, np.ndarray]
    """``soc``, ``clay`` float32 (t C/ha, %), ``land_use`` uint8 and, where the cube has it,
    ``soc_uncertainty`` (% of SOC), each (ny·nx,)."""
    cover: np.ndarray
    """(ny·nx, 12) float32 vegetated share per calendar month."""
    reason: np.ndarray
    """(ny·nx,) uint8 reason codes: final for cells not in :attr:`candidates` (read only)."""
    candidates: np.ndarray
    """Sorted flat indices of the cells whose code the climate decides (the others' climate is
    never computed)."""
    climate_at: ClimateAt
    """``cells`` (sorted subset of :attr:`candidates`) → (``tmp``/``prec``/``pet`` (months, k)
    float32, degC and mm/month; final uint8 reason codes (k,))."""

    def climate(self, cells: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Return the climate of ``cells`` (months × pixels, C-contiguous) and their codes."""
        return self.climate_at(np.asarray(cells, np.intp))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TileInputs:
        """Wrap :func:`gsocseq.cube.store.read_tile`'s arrays (codes already final)."""
        shape = arrays["soc"].shape
        n = int(np.prod(shape))
        reason = np.asarray(arrays["reason"], dtype=np.uint8).reshape(n)  # compute_tile copies
        series = {k: np.asarray(arrays[k]).reshape(n, -1) for k in CLIMATE_FIELDS}

        def climate_at(cells: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
            return {k: months_by_pixels(v, cells) for k, v in series.items()}, reason[cells]

        return cls(
            shape=(int(shape[0]), int(shape[1])),
            flat={k: np.asarray(arrays[k]).reshape(n) for k in FLAT_VARS if k in arrays},
            cover=np.asarray(arrays["cover"]).reshape(n, -1), reason=reason,
            candidates=np.flatnonzero(reason == Reason.OK), climate_at=climate_at,
        )


def read_tile_inputs(ds: xr.Dataset, tile: TileKey) -> TileInputs:
    """Read one built tile of the cube ``ds`` as :class:`TileInputs` (checked as ``read_tile``).

    The stored variables are read now; the climate store's window is decoded now and regridded
    per batch of cells later, only at cells stored as modelled or out of range
    (:data:`gsocseq.cube.climate.CLIMATE_DECIDES`), so the (ny, nx, 480) arrays of ``read_tile``
    are never formed. Values and codes equal ``read_tile``'s, byte for byte.
    """
    static = read_static(ds, tile)
    shape = static["soc"].shape
    n = int(np.prod(shape))
    stored = static["reason"].reshape(n)
    candidates = np.flatnonzero(np.isin(stored, np.array(CLIMATE_DECIDES, dtype=stored.dtype)))
    flat = {k: static[k].reshape(n) for k in FLAT_VARS if k in static}
    cover = static["cover"].reshape(n, -1)
    climate = climate_store(ds).cells(tile)

    def climate_at(cells: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        series, extremes = climate.at(cells)
        # the cells as one image row, (1, k[, 12]), for the per-cell mask rules
        picked = {k: v[cells][None] for k, v in (*flat.items(), ("cover", cover))}
        codes = complete_reasons(stored[cells][None], np.ones((1, cells.size), bool), picked,
                                 {k: e[None] for k, e in extremes.items()})
        return series, codes[0]

    return TileInputs(shape=(int(shape[0]), int(shape[1])), flat=flat, cover=cover,
                      reason=stored, candidates=candidates, climate_at=climate_at)


def months_by_pixels(series: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Return ``series[idx].T`` (steps, pixels) C-contiguous, gathered in the cheaper layout.

    ``read_tile``'s climate is stored step-major ((ny, nx, steps) views of (steps, ny, nx) arrays,
    :func:`gsocseq.cube.regrid.bilinear`): ``np.take`` of columns of the transposed view then
    gathers within contiguous rows (5× faster than transposing pixel by pixel). The values are the
    same either way.
    """
    t = series.T
    if t.flags.c_contiguous:
        return np.take(t, idx, axis=1)
    return np.ascontiguousarray(series[idx].T)
