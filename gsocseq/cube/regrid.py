"""Regridding of a source window onto 30″ cell centres: bilinear (continuous) or nearest (classes).

Like the FAO scripts (``raster::resample`` bilinear for climate, clay, SOC, cover; ``ngb`` for land
use). Sources are regular lat/lon grids (1-D coordinates, either order). Bilinear weights of nodata
neighbours are dropped and the rest renormalised (as GDAL does); targets outside the source extent
(beyond half a source cell) are NaN / class 0. The leading axes of ``values`` (time, month) are
carried along and moved last: output ``(ny, nx, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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


#: Leading-axis steps interpolated at once (bounds the float64 temporaries to 24 × a window).
BLOCK: int = 24
#: Stacks of at least this many steps (monthly climate) use the compiled loop, fewer NumPy.
COMPILED_MIN_STEPS: int = 24


def _taps(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return the two source indices and weights of each target on one axis, and its inside flags.

    ``(i0, i1, w0, w1, inside)`` with ``w0 = 1 − frac``, ``w1 = frac``; a one-cell axis has
    ``i1 = i0`` and ``w1 = 0`` (the second tap adds an exact zero).
    """
    i0, frac, inside = _axis(np.asarray(src, float), np.asarray(dst, float))
    i1 = np.minimum(i0 + 1, max(src.size - 1, 0))
    w1 = frac if src.size > 1 else np.zeros(dst.size)
    return i0, i1, 1.0 - frac, np.ascontiguousarray(w1, dtype=float), inside


def bilinear(
    values: np.ndarray,
    src_lat: np.ndarray,
    src_lon: np.ndarray,
    dst_lat: np.ndarray,
    dst_lon: np.ndarray,
    dtype: type = np.float32,
    extremes: np.ndarray | None = None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Interpolate ``values[..., lat, lon]`` bilinearly to (dst_lat × dst_lon) → ``(ny, nx, ...)``.

    Units are those of ``values``. Each target is ``Σ w·v / Σ w`` over its finite 2 × 2 source
    neighbours, ``w = wy·wx`` (nodata weights dropped, the rest renormalised; NaN where no weight
    is left or beyond the source's extent), summed separably in float64: along longitude for each
    source row of the window, then along latitude. Two taps per axis, no BLAS: the bytes do not
    depend on :data:`BLOCK`, threads or the machine's BLAS kernel (the dense ``Wy · V · Wxᵀ`` it
    replaced agrees to ~1e-15 of the values' magnitude).

    ``extremes``, an optional ``(ny, nx, 2)`` array of ``dtype``, receives each target's min and
    max over the steps (NaN where any step is NaN: ``out.min(-1)``, ``out.max(-1)``), found in
    the same pass instead of two more over the output. ``where`` (``(ny, nx)`` bool), if given,
    names the targets wanted: the others are NaN.
    """
    lead = values.shape[:-2]
    ny, nx = dst_lat.size, dst_lon.size
    if values.shape[-2] == 0 or values.shape[-1] == 0:
        return np.full((ny, nx, *lead), np.nan, dtype)
    y0, y1, wy0, wy1, in_y = _taps(np.asarray(src_lat), np.asarray(dst_lat))
    x0, x1, wx0, wx1, in_x = _taps(np.asarray(src_lon), np.asarray(dst_lon))
    stack = np.asarray(values).reshape(-1, *values.shape[-2:])
    # filled step-major (each step's result is contiguous), returned as an (ny, nx, steps) view:
    # callers that want one pixel's series per row, or months × pixels, read it without a copy
    out = np.empty((stack.shape[0], ny, nx), dtype)
    want = np.ones((ny, nx), bool) if where is None else np.asarray(where, bool)
    taps = (y0, y1, wy0, wy1, in_y, x0, x1, wx0, wx1, in_x, want)
    if stack.shape[0] < COMPILED_MIN_STEPS:
        for t0 in range(0, stack.shape[0], BLOCK):
            block = np.asarray(stack[t0 : t0 + BLOCK], dtype=np.float64)
            _bilinear_numpy(block, *taps, out[t0 : t0 + BLOCK])
        if extremes is not None:
            extremes[..., 0], extremes[..., 1] = out.min(axis=0), out.max(axis=0)
    else:
        from gsocseq.cube._regrid_kernel import bilinear_2tap

        track = extremes is not None
        lo = np.empty((ny, nx) if track else (0, 0), dtype)
        hi = np.empty_like(lo)
        for t0 in range(0, stack.shape[0], BLOCK):
            block = np.ascontiguousarray(stack[t0 : t0 + BLOCK], dtype=np.float64)
            bilinear_2tap(block, *taps, out[t0 : t0 + BLOCK], lo, hi, track, t0 == 0)
        if extremes is not None:
            extremes[..., 0], extremes[..., 1] = lo, hi
    return np.moveaxis(out, 0, -1).reshape(ny, nx, *lead)


def bilinear_cells(
    values: np.ndarray, src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray],
    cells: np.ndarray, extremes: np.ndarray | None = None, dtype: type = np.float32,
) -> np.ndarray:
    """Interpolate ``values[steps, lat, lon]`` at some target cells → ``(steps, k)`` of ``dtype``.

    ``src`` and ``dst`` are the (latitude, longitude) axes of the source and the targets;
    ``cells`` (k,) are flat indices ``row · nx + col`` into (dst_lat × dst_lon), sorted. Each value
    has the bytes of that cell in :func:`bilinear`'s output (same taps, same operations), laid out
    months × pixels as the model reads them. ``extremes`` ((k, 2) of ``dtype``), if given,
    receives each cell's min and max over the steps (NaN if any step is NaN).
    """
    (src_lat, src_lon), (dst_lat, dst_lon) = src, dst
    cells = np.asarray(cells, np.intp)
    nx = dst_lon.size
    stack = np.asarray(values).reshape(-1, *values.shape[-2:])
    out = np.empty((stack.shape[0], cells.size), dtype)
    lo = np.empty(cells.size, dtype)
    hi = np.empty(cells.size, dtype)
    if stack.shape[0] < COMPILED_MIN_STEPS or 0 in values.shape[-2:]:
        whole = bilinear(values, src_lat, src_lon, dst_lat, dst_lon, dtype=dtype)
        picked = whole.reshape(-1, stack.shape[0])[cells]  # (k, steps)
        out[...] = picked.T
        lo[...], hi[...] = picked.min(axis=-1), picked.max(axis=-1)
    else:
        from gsocseq.cube._regrid_kernel import bilinear_cells as kernel

        y0, y1, wy0, wy1, in_y = _taps(np.asarray(src_lat), np.asarray(dst_lat))
        x0, x1, wx0, wx1, in_x = _taps(np.asarray(src_lon), np.asarray(dst_lon))
        kernel(np.ascontiguousarray(stack, dtype=np.float64), y0, y1, wy0, wy1, in_y, x0, x1,
               wx0, wx1, in_x, cells // nx, cells % nx, out, lo, hi)
    if extremes is not None:
        extremes[:, 0], extremes[:, 1] = lo, hi
    return out


def _bilinear_numpy(
    v: np.ndarray, y0: np.ndarray, y1: np.ndarray, wy0: np.ndarray, wy1: np.ndarray,
    in_y: np.ndarray, x0: np.ndarray, x1: np.ndarray, wx0: np.ndarray, wx1: np.ndarray,
    in_x: np.ndarray, want: np.ndarray, out: np.ndarray,
) -> None:
    """Fill ``out`` (steps, ny, nx) from ``v`` (steps, lat, lon) float64 with NumPy.

    The same operations in the same order as the compiled loop
    (:func:`gsocseq.cube._regrid_kernel.bilinear_2tap`), so the same bytes; used for stacks of
    fewer than :data:`COMPILED_MIN_STEPS` steps (the cube build's static layers and 12-month
    cover), where it avoids loading numba in the process (≈ 0.5 CPU-s per worker).
    """
    va, vb = v[:, :, x0], v[:, :, x1]
    oka, okb = np.isfinite(va), np.isfinite(vb)
    num = np.where(oka, va, 0.0) * wx0 + np.where(okb, vb, 0.0) * wx1
    den = oka * wx0 + okb * wx1
    p, q = wy0[:, None], wy1[:, None]
    w = p * den[:, y0] + q * den[:, y1]
    value = p * num[:, y0] + q * num[:, y1]
    with np.errstate(invalid="ignore", divide="ignore"):
        value /= w
    # no weight left, beyond the source's extent or not wanted: NaN
    value[~(in_y[:, None] & in_x[None, :] & want) | (w <= 1e-12)] = np.nan
    out[...] = value


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
    extremes: np.ndarray | None = None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Regrid ``values[..., lat, lon]`` onto the tile's 30″ cells → ``(ny, nx, ...)`` of ``dtype``.

    ``resampling`` is the source's (``bilinear``, ``nearest``, ``mode``); integer values (classes)
    are never interpolated: ``mode`` or ``nearest``, no data 0. ``extremes`` (``(ny, nx, 2)``),
    if given, receives each cell's min and max over the leading steps (NaN if any is NaN);
    ``where`` (``(ny, nx)`` bool), if given, names the cells wanted: the others are NaN.
    """
    lat, lon = tile.latitudes(), tile.longitudes()
    integer = np.issubdtype(values.dtype, np.integer)
    if resampling == "mode" and integer:
        return mode(values, src_lat, src_lon, lat, lon, fill=0).astype(dtype)
    if resampling == "nearest" or integer:
        fill = 0 if integer else np.nan
        out = nearest(values, src_lat, src_lon, lat, lon, fill=fill).astype(dtype)
        if where is not None:
            out[~np.asarray(where, bool)] = fill
        if extremes is not None:
            extremes[..., 0], extremes[..., 1] = out.min(axis=-1), out.max(axis=-1)
        return out
    return bilinear(values, src_lat, src_lon, lat, lon, dtype=np.dtype(dtype).type,
                    extremes=extremes, where=where)
