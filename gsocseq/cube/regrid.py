"""Regridding of a source window onto 30″ cell centres: bilinear (continuous) or nearest (classes).

Like the FAO scripts (``raster::resample`` bilinear for climate, clay, SOC, cover; ``ngb`` for land
use). Sources are regular lat/lon grids (1-D coordinates, either order). Bilinear weights of nodata
neighbours are dropped and the rest renormalised (as GDAL does); targets outside the source extent
(beyond half a source cell) are NaN / class 0. The leading axes of ``values`` (time, month) are
carried along and moved last: output ``(ny, nx, ...)``.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

if TYPE_CHECKING:
    from gsocseq.cube.grid import TileKey


def _axis(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional positions of ``dst`` on the regular axis ``src``: (i0, frac, inside)."""
    n = src.size
    if n == 1:
        return np.zeros(dst.size, np.intp), np.zeros(dst.size), np.ones(dst.size, bool)
    step = (src[-1] - src[0]) / (n - 1)
    pos = (dst - src[0]) / step
    inside = (pos >= -0.5 - 1e-9) & (pos <= n - 0.5 + 1e-9)
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(pos).astype(np.intp), n - 2)
    return i0, pos - i0, inside


#: Leading-axis steps interpolated at once (bounds float64 temporaries: 24 × 240² × 8 B ≈ 11 MB).
BLOCK: int = 24


@cache
def _blas() -> ThreadpoolController:
    """Return the process's BLAS thread pools (found once: the library scan costs ~10 ms)."""
    return ThreadpoolController()


def _weights(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense 1-D linear-interpolation matrix (n_dst, n_src) and the inside-extent flags."""
    i0, frac, inside = _axis(np.asarray(src, float), np.asarray(dst, float))
    w = np.zeros((dst.size, src.size))
    rows = np.arange(dst.size)
    np.add.at(w, (rows, i0), 1.0 - frac)
    if src.size > 1:
        np.add.at(w, (rows, i0 + 1), frac)
    return w, inside


def bilinear(
    values: np.ndarray,
    src_lat: np.ndarray,
    src_lon: np.ndarray,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
    dtype: type = np.float32,
) -> np.ndarray:
    """Interpolate ``values[..., lat, lon]`` bilinearly to (dst_lat × dst_lon) → ``(ny, nx, ...)``.

    Separable form ``Wy · V · Wxᵀ`` (two BLAS products per step) with nodata renormalisation
    ``Wy · (V·ok) · Wxᵀ / Wy · ok · Wxᵀ``; a 3-D input is processed :data:`BLOCK` steps at a time.
    The products run on one BLAS thread: they are small (a tile × its source window), and a
    threaded BLAS on a busy machine spends 10–50× their time synchronising its threads (dask
    workers already run one BLAS thread; this makes threads and synchronous runs do the same).
    """
    lead = values.shape[:-2]
    ny, nx = dst_lat.size, dst_lon.size
    if values.shape[-2] == 0 or values.shape[-1] == 0:
        return np.full((ny, nx, *lead), np.nan, dtype)
    wy, in_y = _weights(np.asarray(src_lat), np.asarray(dst_lat))
    wx, in_x = _weights(np.asarray(src_lon), np.asarray(dst_lon))
    outside = ~(in_y[:, None] & in_x[None, :])
    stack = np.asarray(values).reshape(-1, *values.shape[-2:])
    # filled step-major (each block's result is contiguous), returned as an (ny, nx, steps) view:
    # callers that want one pixel's series per row, or months × pixels, read it without a copy
    out = np.empty((stack.shape[0], ny, nx), dtype)
    with _blas().limit(limits=1, user_api="blas"):
        _bilinear_blocks(stack, wy, wx, outside, out)
    return np.moveaxis(out, 0, -1).reshape(ny, nx, *lead)


def _bilinear_blocks(
    stack: np.ndarray, wy: np.ndarray, wx: np.ndarray, outside: np.ndarray, out: np.ndarray
) -> None:
    """Fill ``out`` (steps, ny, nx) from ``stack`` (steps, lat, lon), :data:`BLOCK` steps at a time."""
    prev_ok: np.ndarray | None = None
    den = bad = np.empty(0)
    for t0 in range(0, stack.shape[0], BLOCK):
        v = stack[t0 : t0 + BLOCK].astype(np.float64)
        ok = np.isfinite(v)
        num = wy @ np.where(ok, v, 0.0) @ wx.T
        if prev_ok is None or not np.array_equal(ok, prev_ok):
            # the same nodata pattern gives the same weights: computed once, bit for bit the same
            den = wy @ ok.astype(np.float64) @ wx.T
            bad = (den <= 1e-12) | outside  # no weight left, or beyond the source's extent
            den[bad] = 1.0
            prev_ok = ok
        num /= den
        num[bad] = np.nan
        out[t0 : t0 + BLOCK] = num


def nearest(
    values: np.ndarray,
    src_lat: np.ndarray,
    src_lon: np.ndarray,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
    fill: float = np.nan,
) -> np.ndarray:
    """Nearest-neighbour sampling of ``values[..., lat, lon]`` → ``(ny, nx, ...)`` (dtype kept)."""
    lead = values.shape[:-2]
    ny, nx = dst_lat.size, dst_lon.size
    if values.shape[-2] == 0 or values.shape[-1] == 0:
        return np.full((ny, nx, *lead), fill, dtype=values.dtype)
    iy, fy, in_y = _axis(np.asarray(src_lat, float), np.asarray(dst_lat, float))
    ix, fx, in_x = _axis(np.asarray(src_lon, float), np.asarray(dst_lon, float))
    ry = np.minimum(iy + (fy >= 0.5), values.shape[-2] - 1)
    rx = np.minimum(ix + (fx >= 0.5), values.shape[-1] - 1)
    v = np.moveaxis(np.asarray(values), (-2, -1), (0, 1))
    out = v[ry][:, rx].copy()
    out[~(in_y[:, None] & in_x[None, :])] = fill
    return out


def mode(
    values: np.ndarray,
    src_lat: np.ndarray,
    src_lon: np.ndarray,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
    fill: int = 0,
) -> np.ndarray:
    """Majority class of the source cells whose centres fall in each target cell (uint8 classes).

    For class maps finer than the target (ESA CCI 300 m → 30″). Class ``fill`` (no data) does not
    vote; ties go to the smaller class; targets without a source centre fall back to
    :func:`nearest`.
    """
    codes = np.asarray(values)
    near = nearest(codes, src_lat, src_lon, dst_lat, dst_lon, fill=fill)
    if codes.size == 0:
        return near
    res_y = abs(float(dst_lat[1] - dst_lat[0])) if dst_lat.size > 1 else 1.0
    res_x = abs(float(dst_lon[1] - dst_lon[0])) if dst_lon.size > 1 else 1.0
    north, west = float(dst_lat.max()) + res_y / 2, float(dst_lon.min()) - res_x / 2
    iy = np.floor((north - np.asarray(src_lat, float)) / res_y).astype(np.intp)
    ix = np.floor((np.asarray(src_lon, float) - west) / res_x).astype(np.intp)
    ok_y = (iy >= 0) & (iy < dst_lat.size)
    ok_x = (ix >= 0) & (ix < dst_lon.size)
    sub = codes[np.ix_(ok_y, ok_x)].astype(np.intp)
    target = (iy[ok_y][:, None] * dst_lon.size + ix[ok_x][None, :]).ravel()
    cls = sub.ravel()
    vote = cls != fill
    counts = np.zeros((dst_lat.size * dst_lon.size, int(codes.max()) + 1), np.int32)
    np.add.at(counts, (target[vote], cls[vote]), 1)
    has = counts.sum(axis=1) > 0
    out = near.reshape(-1).copy()
    out[has] = counts[has].argmax(axis=1).astype(out.dtype)
    return out.reshape(near.shape)


def regrid_to_cells(
    resampling: str,
    values: np.ndarray,
    src_lat: np.ndarray,
    src_lon: np.ndarray,
    tile: TileKey,
    dtype: str = "float32",
) -> np.ndarray:
    """Regrid ``values[..., lat, lon]`` onto the tile's 30″ cells → ``(ny, nx, ...)`` of ``dtype``.

    ``resampling`` is the source's (``bilinear``, ``nearest``, ``mode``); integer values (classes)
    are never interpolated: ``mode`` or ``nearest``, no data 0.
    """
    lat, lon = tile.latitudes(), tile.longitudes()
    integer = np.issubdtype(values.dtype, np.integer)
    if resampling == "mode" and integer:
        return mode(values, src_lat, src_lon, lat, lon, fill=0).astype(dtype)
    if resampling == "nearest" or integer:
        fill = 0 if integer else np.nan
        return nearest(values, src_lat, src_lon, lat, lon, fill=fill).astype(dtype)
    return bilinear(values, src_lat, src_lon, lat, lon, dtype=np.dtype(dtype).type)
