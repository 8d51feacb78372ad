"""A tile's inputs in the model's layout equal ``read_tile``'s, and so do the products computed from them.

The demo world (real formats, ``file://``) with its climate store altered as a real source can be:
TerraClimate's packed fill value in a block of native cells for one month (targets with no valid
neighbour: missing input) and a negative precipitation (out of range) in another block. The
per-batch climate (:meth:`TileInputs.climate`) must give the same bytes and reason codes as the
whole-tile read, and :func:`compute_tile` the same layers from either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import zarr

from gsocseq.cube import build_cube, open_cube, read_tile, resolve_region
from gsocseq.cube.climate import CLIMATE_DECIDES, ClimateStore, complete_reasons
from gsocseq.cube.regrid import bilinear, bilinear_cells
from gsocseq.cube.tile_inputs import TileInputs, read_tile_inputs
from gsocseq.model.phases import PhaseConfig
from gsocseq.pipeline.tile import compute_tile
from gsocseq.sources import load_sources
from gsocseq.vocabulary import Reason

TILE = 60


@pytest.fixture(scope="module")
def altered(demo_world: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """A one-tile cube whose climate store has a nodata block and an out-of-range block."""
    world = demo_world("file", tiles_y=1, tiles_x=2, tile_size=TILE)
    sources = load_sources(world.sources_url)
    region = resolve_region("demo", sources, tile_size=TILE)
    tile = region.tiles[0]
    url = f"file://{tmp_path_factory.mktemp('tile-inputs')}/cube.zarr"
    build_cube(region, sources, url, tiles=[tile])
    store = ClimateStore(url)
    i, j = store.tiles.index(tile, url)  # the tile's window, from its 5th source cell on
    r0 = c0 = 4
    group = zarr.open_group(store.url.removeprefix("file://"), mode="r+")
    fill = int(store.packing["tmax"].fills[0])
    for name in ("tmax", "tmin"):  # one month of temperature missing in a 3 × 3 block
        group[name][i, j, 100, r0 : r0 + 3, c0 : c0 + 3] = fill
    group["prec"][i, j, 7, r0 + 6 : r0 + 9, c0 : c0 + 3] = -500  # −50 mm/month (scale 0.1)
    return open_cube(url), tile


def test_tile_inputs_equal_read_tile_and_the_climate_masks_cells(altered: tuple[Any, Any]) -> None:
    ds, tile = altered
    want = read_tile(ds, tile)
    got = read_tile_inputs(ds, tile)
    n = TILE * TILE
    assert np.isin(got.reason[got.candidates], CLIMATE_DECIDES).all()
    others = np.setdiff1d(np.arange(n), got.candidates)
    np.testing.assert_array_equal(got.reason[others], want["reason"].reshape(n)[others])
    for batch in (got.candidates.size, 301):  # one call, and batches cutting rows
        for start in range(0, got.candidates.size, batch):
            cells = got.candidates[start : start + batch]
            series, codes = got.climate(cells)
            np.testing.assert_array_equal(codes, want["reason"].reshape(n)[cells])
            for name, values in series.items():
                assert values.shape == (480, cells.size) and values.flags.c_contiguous
                expect = want[name].reshape(n, 480)[cells].T
                assert np.array_equal(values.view(np.uint32), expect.view(np.uint32)), name
    codes = want["reason"].reshape(n)[got.candidates]
    # the altered climate decided codes that the stored (static) ones did not have
    assert (codes == Reason.MISSING_INPUT).sum() >= 1
    assert (codes == Reason.INPUT_OUT_OF_RANGE).sum() >= 1
    assert (codes == Reason.OK).sum() > 0.3 * n


def test_compute_tile_gives_the_same_products_from_either_layout(altered: tuple[Any, Any]) -> None:
    ds, tile = altered
    config = PhaseConfig(uncertainty=True)
    whole, whole_reason = compute_tile(read_tile(ds, tile), config, batch=97,
                                       montecarlo=(3, 11), origin=(tile.row0, tile.col0))
    cells, cells_reason = compute_tile(read_tile_inputs(ds, tile), config, batch=97,
                                       montecarlo=(3, 11), origin=(tile.row0, tile.col0))
    np.testing.assert_array_equal(cells_reason, whole_reason)
    assert set(cells) == set(whole)
    for name in whole:
        assert np.array_equal(cells[name].view(np.uint8), whole[name].view(np.uint8)), name
    masked = (whole_reason == Reason.MISSING_INPUT) | (whole_reason == Reason.INPUT_OUT_OF_RANGE)
    assert masked.any() and np.isnan(cells["T0"][masked]).all()


def test_from_arrays_models_only_reason_zero() -> None:
    rng = np.random.default_rng(3)
    arrays = {"soc": rng.uniform(20, 80, (4, 5)).astype(np.float32),
              "clay": rng.uniform(5, 50, (4, 5)).astype(np.float32),
              "land_use": np.full((4, 5), 2, np.uint8),
              "reason": np.zeros((4, 5), np.uint8),
              "cover": np.ones((4, 5, 12), np.float32)}
    arrays["reason"][1, 2] = Reason.NOT_AGRICULTURAL
    for name in ("tmp", "prec", "pet"):
        arrays[name] = rng.uniform(1, 30, (4, 5, 480)).astype(np.float32)
    inputs = TileInputs.from_arrays(arrays)
    assert inputs.candidates.size == 19 and 7 not in inputs.candidates
    series, codes = inputs.climate(np.array([0, 8, 19]))
    np.testing.assert_array_equal(series["prec"][:, 1], arrays["prec"][1, 3])
    assert (codes == 0).all()


def test_soc_uncertainty_masks_stay_masked_with_the_climate() -> None:
    # a cell stored as missing only because of its SOC uncertainty keeps that code
    stored = np.array([[Reason.MISSING_INPUT, Reason.OK]], np.uint8)
    static = {"soc": np.array([[40.0, 40.0]]), "clay": np.array([[20.0, 20.0]]),
              "land_use": np.array([[2, 2]], np.uint8), "cover": np.full((1, 2, 12), 0.5),
              "soc_uncertainty": np.array([[np.nan, 30.0]])}
    extremes = {k: np.array([[[10.0, 20.0], [10.0, 20.0]]]) for k in ("tmp", "prec", "pet")}
    codes = complete_reasons(stored, np.ones((1, 2), bool), static, extremes)
    assert codes.tolist() == [[Reason.MISSING_INPUT, Reason.OK]]


@pytest.mark.parametrize("descending", [False, True])
def test_bilinear_cells_has_the_bytes_of_the_whole_tile(descending: bool) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(12.0, 6.0, (480, 9, 11))
    # nodata taps in some source rows of some steps; the other rows take the kernel's shortcut
    # for rows without nodata (no weight sums, no division), which must give the same bytes
    nodata = rng.random(values.shape) < 0.08
    nodata[:, 5:, :] = False
    nodata[::3] = False
    values[nodata] = np.nan
    values[100:200, 2:5, 3:6] = np.nan  # a block with no valid neighbour
    src_lat = np.arange(9) * 0.25 * (-1 if descending else 1) + 5.0
    src_lon = np.arange(11) * 0.25
    dst_lat = np.linspace(5.6, 3.1, 31) if descending else np.linspace(4.9, 7.4, 31)
    dst_lon = np.linspace(-0.2, 2.7, 37)  # beyond the extent at both ends
    extremes = np.empty((31, 37, 2), np.float32)
    whole = bilinear(values, src_lat, src_lon, dst_lat, dst_lon, extremes=extremes)
    flat = whole.reshape(31 * 37, 480)
    for cells in (np.arange(31 * 37), np.sort(rng.choice(31 * 37, 400, replace=False)),
                  np.arange(40, 70)):
        got_ext = np.empty((cells.size, 2), np.float32)
        got = bilinear_cells(values, (src_lat, src_lon), (dst_lat, dst_lon), cells,
                             extremes=got_ext)
        assert np.array_equal(got.view(np.uint32),
                              np.ascontiguousarray(flat[cells].T).view(np.uint32))
        assert np.array_equal(got_ext.view(np.uint32),
                              extremes.reshape(-1, 2)[cells].view(np.uint32))
    assert np.isnan(flat).all(axis=1).any() and np.isfinite(flat).all(axis=1).any()



def test_cell_climate_of_a_nearest_source_is_the_whole_tile_gathered() -> None:
    # a climate source resampled by nearest neighbour: regridded whole once, then gathered
    from gsocseq.cube.climate import CellClimate
    from gsocseq.cube.grid import TileKey
    from gsocseq.cube.regrid import regrid_to_cells

    tile = TileKey(row=60, col=50, size=24)
    lat, lon = tile.latitudes(), tile.longitudes()
    src_lat = np.linspace(lat[0] + 0.05, lat[-1] - 0.05, 5)
    src_lon = np.linspace(lon[0] - 0.05, lon[-1] + 0.05, 6)
    rng = np.random.default_rng(5)
    fields = {k: rng.uniform(1, 30, (480, 5, 6)) for k in ("tmp", "prec", "pet")}
    fields["prec"][3, 2, 2] = np.nan
    climate = CellClimate(tile, "nearest", fields, src_lat, src_lon)
    cells = np.sort(rng.choice(24 * 24, 100, replace=False))
    series, extremes = climate.at(cells)
    for name in ("tmp", "prec", "pet"):
        ext = np.empty((24, 24, 2), np.float32)
        whole = regrid_to_cells("nearest", fields[name], src_lat, src_lon, tile, extremes=ext)
        np.testing.assert_array_equal(series[name], whole.reshape(576, 480)[cells].T)
        np.testing.assert_array_equal(extremes[name], ext.reshape(576, 2)[cells])
    assert np.isnan(extremes["prec"]).any() and not np.isnan(extremes["tmp"]).any()
