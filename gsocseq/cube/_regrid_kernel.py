"""The compiled loop of bilinear regridding (:func:`gsocseq.cube.regrid.bilinear`) for long stacks.

Owns :func:`bilinear_2tap`: the 2-tap separable interpolation of a (steps, lat, lon) block onto
target cells, with the running min/max of the output. Imported only when a stack is long (the
480 months of climate, per tile task), so processes that regrid a few layers never load numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, error_model="numpy")
def bilinear_2tap(
    v: np.ndarray, y0: np.ndarray, y1: np.ndarray, wy0: np.ndarray, wy1: np.ndarray,
    in_y: np.ndarray, x0: np.ndarray, x1: np.ndarray, wx0: np.ndarray, wx1: np.ndarray,
    in_x: np.ndarray, want: np.ndarray, out: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    track: bool, first: bool,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (steps, ny, nx) from ``v`` (steps, lat, lon) float64 (see ``regrid.bilinear``).

    With ``track``, ``lo``/``hi`` (ny, nx) carry the running min/max of the stored values (NaN
    sticks), started afresh when ``first``.

    A loop on purpose, not NumPy gathers: the longitude pass gathers once per source row (not
    per target row), forms numerator and weight sum together, and the latitude pass then runs
    over contiguous rows; nothing of size steps × ny × nx is allocated (6× the dense BLAS
    products' speed on a 240² tile, 2.3× a per-target 2 × 2 gather).
    """
    steps, ny, nx = out.shape
    nr = v.shape[1]
    num = np.empty((nr, nx))
    den = np.empty((nr, nx))
    for t in range(steps):
        for r in range(nr):
            for j in range(nx):
                va, vb = v[t, r, x0[j]], v[t, r, x1[j]]
                oka, okb = np.isfinite(va), np.isfinite(vb)
                num[r, j] = (va if oka else 0.0) * wx0[j] + (vb if okb else 0.0) * wx1[j]
                den[r, j] = (1.0 if oka else 0.0) * wx0[j] + (1.0 if okb else 0.0) * wx1[j]
        for i in range(ny):
            if not (in_y[i] and want[i].any()):
                out[t, i, :] = np.nan
                if track:
                    _update_extremes(out[t, i], lo[i], hi[i], first and t == 0)
                continue
            p, q = wy0[i], wy1[i]
            na, nb, da, db = num[y0[i]], num[y1[i]], den[y0[i]], den[y1[i]]
            row = out[t, i]
            for j in range(nx):
                w = p * da[j] + q * db[j]
                value = (p * na[j] + q * nb[j]) / w
                # no weight left, beyond the source's extent or not wanted: NaN
                row[j] = value if (in_x[j] & want[i, j] & (w > 1e-12)) else np.nan
            if track:
                _update_extremes(out[t, i], lo[i], hi[i], first and t == 0)


@njit(nogil=True, cache=True, inline="always")
def _update_extremes(
    row: np.ndarray, lo: np.ndarray, hi: np.ndarray, start: bool
) -> None:  # pragma: no cover - compiled
    """Fold one output row into the running min/max (NaN, once seen, stays)."""
    for j in range(row.size):
        x = row[j]
        if start:
            lo[j] = x
            hi[j] = x
        else:
            if x < lo[j] or x != x:
                lo[j] = x
            if x > hi[j] or x != x:
                hi[j] = x


@njit(nogil=True, cache=True, error_model="numpy")
def bilinear_cells(
    v: np.ndarray, y0: np.ndarray, y1: np.ndarray, wy0: np.ndarray, wy1: np.ndarray,
    in_y: np.ndarray, x0: np.ndarray, x1: np.ndarray, wx0: np.ndarray, wx1: np.ndarray,
    in_x: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray, lo: np.ndarray,
    hi: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (steps, k) with the values of target cells (``rows[p]``, ``cols[p]``).

    The arithmetic of :func:`bilinear_2tap` operation for operation (the same longitude pass per
    source row, the same latitude combination), so each value has the same bytes as that cell of
    the whole-tile output; ``lo``/``hi`` (k,) receive each cell's min/max over the steps of the
    stored values (NaN sticks). Only the source rows and target columns the cells use are
    interpolated; the output is in the model's (months × pixels) layout, so no gather follows.

    Two exact shortcuts: a source row without nodata in the window has every weight sum
    ``1·wx0 + 1·wx1`` as computed once (checked to be exactly 1.0, then ``w = wy0·1 + wy1·1`` is
    checked to be 1.0 per target row), and ``x / 1.0`` is ``x``: those cells skip the weight sums
    and the division. Offsets are unsigned so that no negative-index test stays in the loops.
    """
    steps = v.shape[0]
    k = rows.shape[0]
    if k == 0:
        return
    r_lo, r_hi = v.shape[1], -1
    c_lo, c_hi = x0.shape[0], -1
    for p in range(k):
        i, j = rows[p], cols[p]
        r_lo = min(r_lo, y0[i], y1[i])
        r_hi = max(r_hi, y0[i], y1[i])
        c_lo = min(c_lo, j)
        c_hi = max(c_hi, j)
    nr, nc = r_hi - r_lo + 1, c_hi - c_lo + 1
    s_lo, s_hi = v.shape[2], -1  # source columns the target columns read
    for c in range(nc):
        s_lo = min(s_lo, x0[c_lo + c], x1[c_lo + c])
        s_hi = max(s_hi, x0[c_lo + c], x1[c_lo + c])
    unit_x = True  # the weight sum of two valid taps is exactly 1.0 for every column
    for c in range(nc):
        unit_x &= 1.0 * wx0[c_lo + c] + 1.0 * wx1[c_lo + c] == 1.0
    # runs of consecutive cells in one target row (the cells are sorted row-major): where each
    # starts in the output and in the flat (source row, target column) arrays, its length
    starts = np.empty(k + 1, np.intp)
    n_runs = 0
    for p in range(k):
        if p == 0 or rows[p] != rows[p - 1] or cols[p] != cols[p - 1] + 1:
            starts[n_runs] = p
            n_runs += 1
    starts[n_runs] = k
    run_out = np.empty(n_runs, np.uint64)
    run_a = np.empty(n_runs, np.uint64)
    run_b = np.empty(n_runs, np.uint64)
    run_x = np.empty(n_runs, np.uint64)
    run_n = np.empty(n_runs, np.uint64)
    run_row = np.empty(n_runs, np.intp)
    for g in range(n_runs):
        p0 = starts[g]
        i = rows[p0]
        run_out[g] = p0
        run_a[g] = (y0[i] - r_lo) * nc + cols[p0] - c_lo
        run_b[g] = (y1[i] - r_lo) * nc + cols[p0] - c_lo
        run_x[g] = cols[p0]
        run_n[g] = starts[g + 1] - p0
        run_row[g] = i
    unit_y = np.empty(y0.shape[0], np.bool_)
    for i in range(y0.shape[0]):
        unit_y[i] = wy0[i] * 1.0 + wy1[i] * 1.0 == 1.0
    num = np.empty(nr * nc)
    den = np.empty(nr * nc)
    whole = np.empty(nr, np.bool_)  # per source row: every weight sum is exactly 1.0
    for t in range(steps):
        for r in range(nr):
            src = v[t, r_lo + r]
            finite = True
            for s in range(s_lo, s_hi + 1):
                finite &= np.isfinite(src[s])
            base = r * nc
            if finite and unit_x:
                for c in range(nc):
                    j = c_lo + c
                    num[base + c] = src[x0[j]] * wx0[j] + src[x1[j]] * wx1[j]
                whole[r] = True
                continue
            ones = 0
            for c in range(nc):
                j = c_lo + c
                va, vb = src[x0[j]], src[x1[j]]
                oka, okb = np.isfinite(va), np.isfinite(vb)
                num[base + c] = (va if oka else 0.0) * wx0[j] + (vb if okb else 0.0) * wx1[j]
                den[base + c] = (1.0 if oka else 0.0) * wx0[j] + (1.0 if okb else 0.0) * wx1[j]
                ones += den[base + c] == 1.0
            whole[r] = ones == nc
            if whole[r]:  # the fast path reads no weight sums: none is stored for this row
                continue
        row = out[t]
        for g in range(n_runs):
            i = run_row[g]
            o, a, b, x, n = run_out[g], run_a[g], run_b[g], run_x[g], run_n[g]
            if not in_y[i]:
                for q in range(n):
                    row[o + q] = np.nan
                continue
            pw, qw = wy0[i], wy1[i]
            if whole[a // nc] and whole[b // nc] and unit_y[i]:
                for q in range(n):
                    value = pw * num[a + q] + qw * num[b + q]
                    row[o + q] = value if in_x[x + q] else np.nan
                continue
            _fill_weighted(row, num, den, whole, nc, o, a, b, x, n, pw, qw, in_x)
        if t == 0:
            lo[:] = row
            hi[:] = row
            continue
        for p in range(k):
            x = row[p]
            lo[p] = x if (x < lo[p]) | (x != x) else lo[p]
            hi[p] = x if (x > hi[p]) | (x != x) else hi[p]


@njit(nogil=True, cache=True, inline="always")
def _fill_weighted(row, num, den, whole, nc, o, a, b, x, n, pw, qw, in_x):  # pragma: no cover
    """One run of cells with nodata among its taps: ``Σ w·v / Σ w`` as in :func:`bilinear_2tap`.

    A source row without nodata has no stored weight sums: each of its sums is exactly 1.0.
    """
    whole_a, whole_b = whole[a // nc], whole[b // nc]
    for q in range(n):
        da = 1.0 if whole_a else den[a + q]
        db = 1.0 if whole_b else den[b + q]
        w = pw * da + qw * db
        value = (pw * num[a + q] + qw * num[b + q]) / w
        # no weight left or beyond the source's extent: NaN
        row[o + q] = value if (in_x[x + q] & (w > 1e-12)) else np.nan
