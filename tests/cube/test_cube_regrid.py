"""Regridding onto 30″ cell centres: bilinear exact for linear fields, nodata, extent, nearest."""

from __future__ import annotations

import numpy as np
import pytest

from gsocseq.cube import regrid
from gsocseq.cube.grid import TileKey
from gsocseq.cube.regrid import bilinear, nearest

TILE = TileKey(248, 232, 60)


def _src(res: float, pad: int = 3) -> tuple[np.ndarray, np.ndarray]:
    w, s, e, n = TILE.bounds
    lat = np.arange(n + pad * res - res / 2, s - pad * res, -res)
    lon = np.arange(w - pad * res + res / 2, e + pad * res, res)
    return lat, lon


def test_bilinear_is_exact_for_linear_fields() -> None:
    lat, lon = _src(1 / 24)
    field = 3.0 * lat[:, None] - 2.0 * lon[None, :] + 7.0
    out = bilinear(field, lat, lon, TILE.latitudes(), TILE.longitudes(), dtype=np.float64)
    want = 3.0 * TILE.latitudes()[:, None] - 2.0 * TILE.longitudes()[None, :] + 7.0
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-9)


def test_bilinear_on_identical_grid_is_identity() -> None:
    lat, lon = TILE.latitudes(), TILE.longitudes()
    field = np.random.default_rng(0).normal(size=(60, 60))
    np.testing.assert_allclose(bilinear(field, lat, lon, lat, lon, np.float64), field, atol=1e-12)


def test_leading_axis_moves_last_and_blocks_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    lat, lon = _src(1 / 24)
    rng = np.random.default_rng(1)
    stack = rng.normal(size=(50, lat.size, lon.size))
    full = bilinear(stack, lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
    assert full.shape == (60, 60, 50)
    monkeypatch.setattr(regrid, "BLOCK", 7)
    blocked = bilinear(stack, lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
    np.testing.assert_array_equal(full, blocked)
    single = bilinear(stack[13], lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
    np.testing.assert_allclose(full[:, :, 13], single)


def test_nodata_neighbours_are_dropped_and_weights_renormalised() -> None:
    lat, lon = _src(1 / 24)
    field = np.full((lat.size, lon.size), 10.0)
    field[5, 5] = np.nan
    out = bilinear(field, lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
    # only the target sitting exactly on the nodata cell's centre has no weight left
    at_centre = np.isclose(TILE.latitudes()[:, None], lat[5]) & np.isclose(
        TILE.longitudes()[None, :], lon[5]
    )
    assert at_centre.sum() == 1
    np.testing.assert_array_equal(np.isnan(out), at_centre)
    np.testing.assert_allclose(out[~at_centre], 10.0)
    field[:] = np.nan
    assert np.isnan(bilinear(field, lat, lon, TILE.latitudes(), TILE.longitudes())).all()


def test_targets_outside_the_source_are_nan() -> None:
    lat, lon = _src(1 / 24, pad=0)
    lon = lon[lon < TILE.bounds[0] + 0.25]  # source covers only the western half
    field = np.ones((lat.size, lon.size))
    out = bilinear(field, lat, lon, TILE.latitudes(), TILE.longitudes())
    inside = TILE.longitudes() <= lon[-1] + (1 / 48)
    assert np.isfinite(out[:, inside]).all()
    assert np.isnan(out[:, ~inside]).all()


def test_empty_source_window_gives_all_missing() -> None:
    out = bilinear(
        np.empty((12, 0, 0)), np.empty(0), np.empty(0), TILE.latitudes(), TILE.longitudes()
    )
    assert out.shape == (60, 60, 12) and np.isnan(out).all()
    classes = nearest(
        np.empty((0, 0), np.uint8),
        np.empty(0),
        np.empty(0),
        TILE.latitudes(),
        TILE.longitudes(),
        fill=0,
    )
    assert classes.dtype == np.uint8 and (classes == 0).all()


def test_nearest_keeps_classes_and_picks_the_closest_cell() -> None:
    lat, lon = _src(1 / 360, pad=2)  # 300 m source, finer than the target
    codes = (np.arange(lat.size)[:, None] % 7 + np.arange(lon.size)[None, :] % 5).astype(np.uint8)
    out = nearest(codes, lat, lon, TILE.latitudes(), TILE.longitudes(), fill=0)
    assert out.dtype == np.uint8
    iy = np.abs(lat[:, None] - TILE.latitudes()[None, :]).argmin(axis=0)
    ix = np.abs(lon[:, None] - TILE.longitudes()[None, :]).argmin(axis=0)
    np.testing.assert_array_equal(out, codes[np.ix_(iy, ix)])


def test_mode_takes_the_majority_of_finer_cells() -> None:
    from gsocseq.cube.regrid import mode

    res = 1 / 360  # 3 × 3 source cells per target cell
    w, s, e, n = TILE.bounds
    lat = n - (np.arange(180) + 0.5) * res
    lon = w + (np.arange(180) + 0.5) * res
    codes = np.full((180, 180), 10, np.uint8)
    codes[0:3, 0:3] = [[130, 130, 10], [130, 0, 0], [0, 0, 0]]  # no data does not vote
    codes[3:6, 0:3] = [[130, 130, 20], [20, 20, 130], [10, 10, 10]]  # 3-3-3 tie → smallest
    out = mode(codes, lat, lon, TILE.latitudes(), TILE.longitudes())
    assert out.dtype == np.uint8
    assert out[0, 0] == 130 and out[1, 0] == 10 and out[0, 1] == 10
    assert (out[2:, :] == 10).all()


def test_nodata_pattern_changing_between_steps_matches_each_step_alone() -> None:
    lat, lon = _src(1 / 24)
    rng = np.random.default_rng(3)
    stack = rng.normal(size=(30, lat.size, lon.size))
    stack[5:9, 4:9, 6:11] = np.nan  # a hole for a few steps, inside one block and across two
    stack[23:26, 10, :] = np.nan
    out = bilinear(stack, lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
    for t in (0, 5, 8, 9, 23, 25, 29):
        alone = bilinear(stack[t], lat, lon, TILE.latitudes(), TILE.longitudes(), np.float64)
        np.testing.assert_array_equal(out[:, :, t], alone)
    assert np.isnan(out[:, :, 6]).any() and not np.isnan(out[:, :, 4]).any()


def test_series_gather_is_the_same_for_both_layouts() -> None:
    from gsocseq.cube.tile_inputs import months_by_pixels as _months_by_pixels

    rng = np.random.default_rng(4)
    step_major = rng.normal(size=(48, 20, 30)).astype(np.float32)
    view = np.moveaxis(step_major, 0, -1).reshape(600, -1)  # as bilinear returns it, flattened
    idx = np.sort(rng.choice(600, 250, replace=False))
    want = np.ascontiguousarray(np.ascontiguousarray(view)[idx].T)
    for series in (view, np.ascontiguousarray(view)):
        got = _months_by_pixels(series, idx)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def _reference_bilinear(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray,
                        dst_lat: np.ndarray, dst_lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward bilinear with nodata renormalisation, one target at a time (exact sums).

    Returns the values ``Σ w·v / Σ w`` over the finite neighbours (``math.fsum``, ``w = wy·wx``)
    and their scale ``Σ w·|v| / Σ w`` (the size of the terms, for a relative tolerance).
    """
    import math

    def taps(src: np.ndarray, x: float) -> list[tuple[int, float]] | None:
        n = src.size
        if n == 1:
            return [(0, 1.0)]
        pos = (x - src[0]) / ((src[-1] - src[0]) / (n - 1))
        if not -0.5 - 1e-9 <= pos <= n - 0.5 + 1e-9:
            return None  # beyond half a source cell of the extent
        pos = min(max(pos, 0.0), n - 1.0)
        k = min(math.floor(pos), n - 2)
        return [(k, 1.0 - (pos - k)), (k + 1, pos - k)]

    steps = values.reshape(-1, *values.shape[-2:])
    out = np.full((dst_lat.size, dst_lon.size, steps.shape[0]), np.nan)
    scale = np.full_like(out, np.nan)
    for i, y in enumerate(dst_lat):
        for j, x in enumerate(dst_lon):
            ty, tx = taps(src_lat, y), taps(src_lon, x)
            if ty is None or tx is None:
                continue
            for t, v in enumerate(steps):
                terms = [(wy * wx, v[a, b]) for a, wy in ty for b, wx in tx
                         if np.isfinite(v[a, b])]
                den = math.fsum(w for w, _ in terms)
                if den > 1e-12:
                    out[i, j, t] = math.fsum(w * val for w, val in terms) / den
                    scale[i, j, t] = math.fsum(w * abs(val) for w, val in terms) / den
    return out, scale


@pytest.mark.parametrize("case", ["descending", "ascending", "one_row", "one_col", "edge"])
def test_bilinear_matches_a_straightforward_reference(case: str) -> None:
    """Within 1e-14 of the terms' size, NaN where the reference is, on every kind of source."""
    rng = np.random.default_rng(7)
    res = 1 / 24
    w, s, e, n = TILE.bounds
    lat = np.arange(n + 2 * res - res / 2, s - 2 * res, -res)  # descending, 2 cells of margin
    lon = np.arange(w - 2 * res + res / 2, e + 2 * res, res)
    if case == "ascending":
        lat = lat[::-1]
    elif case == "one_row":
        lat = lat[4:5]
    elif case == "one_col":
        lon = lon[7:8]
    elif case == "edge":  # the source stops inside the tile on two sides
        lat, lon = lat[:-4], lon[: lon.size // 2]
    values = rng.normal(10.0, 8.0, size=(3, lat.size, lon.size))  # values near 0 too
    values[0, 1:3, 2:4] = np.nan  # a hole in one step only
    values[:, min(3, lat.size - 1), :: 5] = np.nan
    values[2, 0, 0] = np.inf  # not finite: dropped like NaN
    dst_lat, dst_lon = TILE.latitudes()[::3], TILE.longitudes()[::2]
    got = bilinear(values, lat, lon, dst_lat, dst_lon, dtype=np.float64)
    want, scale = _reference_bilinear(values, lat, lon, dst_lat, dst_lon)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    assert ok.sum() > 0.3 * ok.size
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-14 * scale[ok])
    if case == "edge":
        assert np.isnan(got[:, -1]).all() and np.isnan(got[-1]).all()


def test_bilinear_bytes_do_not_depend_on_threads() -> None:
    """Deterministic: the same bytes when many threads interpolate at once as one after another."""
    from concurrent.futures import ThreadPoolExecutor

    lat, lon = _src(1 / 24)
    stack = np.random.default_rng(5).normal(size=(40, lat.size, lon.size))
    stack[3:7, 2:5, 4:6] = np.nan
    alone = bilinear(stack, lat, lon, TILE.latitudes(), TILE.longitudes())
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: bilinear(stack, lat, lon, TILE.latitudes(),
                                                TILE.longitudes()), range(8)))
    for run in runs:
        assert run.tobytes() == alone.tobytes()


@pytest.mark.parametrize("resampling", ["bilinear", "nearest"])
def test_extremes_are_the_min_and_max_of_the_output(
    resampling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in the regridding pass: equal to the output's min/max, NaN wherever a step is NaN."""
    from gsocseq.cube.regrid import regrid_to_cells

    monkeypatch.setattr(regrid, "BLOCK", 7)  # extremes carried across blocks
    lat, lon = _src(1 / 24)
    stack = np.random.default_rng(6).normal(5.0, 10.0, size=(30, lat.size, lon.size))
    stack[9, 4:6, 5:7] = np.nan  # one step's hole: NaN extremes under it only
    stack[:, :, 0] = -np.inf
    ext = np.empty((60, 60, 2), np.float32)
    out = regrid_to_cells(resampling, stack, lat, lon, TILE, extremes=ext)
    np.testing.assert_array_equal(ext[..., 0], out.min(axis=-1))
    np.testing.assert_array_equal(ext[..., 1], out.max(axis=-1))
    assert np.isnan(ext).any() and np.isfinite(ext).mean() > 0.5


@pytest.mark.parametrize("resampling", ["bilinear", "nearest"])
def test_cells_not_wanted_are_nan_and_the_others_unchanged(resampling: str) -> None:
    from gsocseq.cube.regrid import regrid_to_cells

    lat, lon = _src(1 / 24)
    stack = np.random.default_rng(8).normal(size=(12, lat.size, lon.size))
    where = np.zeros((60, 60), bool)
    where[5:40, 10:50] = True
    where[50, 3] = True  # a row with one wanted cell
    ext = np.empty((60, 60, 2), np.float32)
    full = regrid_to_cells(resampling, stack, lat, lon, TILE)
    part = regrid_to_cells(resampling, stack, lat, lon, TILE, extremes=ext, where=where)
    assert np.isnan(part[~where]).all() and np.isnan(ext[~where]).all()
    np.testing.assert_array_equal(part[where], full[where])
    np.testing.assert_array_equal(ext[where][:, 0], full[where].min(axis=-1))


def test_numpy_and_compiled_paths_give_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short stacks (NumPy) and long ones (numba loop) share one arithmetic: identical bytes."""
    lat, lon = _src(1 / 24, pad=1)
    lat = lat[:-3]  # the extent ends inside the tile
    stack = np.random.default_rng(9).normal(3.0, 9.0, size=(30, lat.size, lon.size))
    stack[4:8, 2:5, 3:6] = np.nan
    where = np.ones((60, 60), bool)
    where[10:20, :7] = False
    runs = []
    for threshold in (1, 10**6):  # everything compiled, then everything NumPy
        monkeypatch.setattr(regrid, "COMPILED_MIN_STEPS", threshold)
        ext = np.empty((60, 60, 2), np.float32)
        out = bilinear(stack, lat, lon, TILE.latitudes(), TILE.longitudes(), extremes=ext,
                       where=where)
        runs.append((out.tobytes(), ext))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert np.isnan(np.frombuffer(runs[0][0], np.float32)).any()
