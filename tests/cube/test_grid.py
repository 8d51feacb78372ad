"""The global grid and its tile keys: offsets, bounds, ids and cell areas."""

import numpy as np
import pytest

from gsocseq.cube.grid import (
    N_COLS,
    N_ROWS,
    RES_DEG,
    TileKey,
    cell_area_ha,
    cell_latitudes,
    cell_longitudes,
    tiles_for_bbox,
    tiles_of_rectangle,
)
from gsocseq.vocabulary import LAYER_NAMES, fao_file_name


def test_tile_id_round_trip_and_ordering():
    keys = [TileKey(3, 7), TileKey(0, 179), TileKey(89, 0, 240), TileKey(5, 5, 60)]
    for key in keys:
        assert TileKey.from_id(key.id) == key
    assert sorted([TileKey(1, 0), TileKey(0, 5)]) == [TileKey(0, 5), TileKey(1, 0)]
    with pytest.raises(ValueError, match="not a tile id"):
        TileKey.from_id("r1c2")


def test_tile_key_rejects_outside_grid_and_bad_size():
    with pytest.raises(ValueError, match="outside"):
        TileKey(N_ROWS // 240, 0)
    with pytest.raises(ValueError, match="divide"):
        TileKey(0, 0, 250)


def test_tile_bounds_match_cell_centres():
    key = TileKey(22, 90)
    west, south, east, north = key.bounds
    lat, lon = key.latitudes(), key.longitudes()
    assert lat.shape == lon.shape == (240,)
    assert np.isclose(lat[0], north - RES_DEG / 2) and np.isclose(lat[-1], south + RES_DEG / 2)
    assert np.isclose(lon[0], west + RES_DEG / 2) and np.isclose(lon[-1], east - RES_DEG / 2)
    rows, cols = key.global_slices()
    assert np.allclose(cell_latitudes(rows.start, rows.stop), lat)
    assert np.allclose(cell_longitudes(cols.start, cols.stop), lon)


def test_to_slices_relative_to_region_origin():
    key = TileKey(4, 6, 60)
    rows, cols = key.to_slices(origin_row=3 * 60, origin_col=5 * 60)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (60, 120, 60, 120)
    with pytest.raises(ValueError):
        key.to_slices(origin_row=5 * 60, origin_col=0)


def test_tiles_for_bbox_cover_exactly():
    tiles = tiles_for_bbox(-61.0, -35.0, -57.0, -33.0)
    covered = {(t.row, t.col) for t in tiles}
    # Tile edges lie on even degrees: -61…-57 spans 3 tile columns, -35…-33 spans 2 tile rows.
    assert len(covered) == 6
    assert len({c for _, c in covered}) == 3 and len({r for r, _ in covered}) == 2
    wests = sorted(t.bounds[0] for t in tiles)
    assert wests[0] <= -61.0 and max(t.bounds[2] for t in tiles) >= -57.0
    with pytest.raises(ValueError, match="invalid bbox"):
        tiles_for_bbox(10, 0, 5, 1)


def test_cell_area_sums_to_sphere():
    lat = cell_latitudes(0, N_ROWS)
    total_ha = cell_area_ha(lat).sum() * N_COLS
    sphere_ha = 4 * np.pi * 6371007.2**2 / 1e4
    assert np.isclose(total_ha, sphere_ha, rtol=1e-9)
    # about 0.86 km² at the equator
    assert 85.0 < cell_area_ha(np.array([0.0]))[0] < 86.5


def test_fao_file_names():
    assert len(LAYER_NAMES) == 29
    assert fao_file_name("ARG", "T0") == "ARG_GSOCseq_T0_Map030.tif"
    assert fao_file_name("ARG", "ASR_SSM2_Uncertainty") == "ARG_GSOCseq_ASR_SSM2_UncertaintyMap030.tif"
    with pytest.raises(KeyError):
        fao_file_name("ARG", "nope")


def test_chunk_index_and_rectangle_tiles_agree_with_slices() -> None:
    tiles = tiles_of_rectangle(240, 480, 480, 720, 240)
    assert [t.id for t in tiles[:4]] == ["t240_r001_c002", "t240_r001_c003", "t240_r001_c004",
                                         "t240_r002_c002"]
    assert len(tiles) == 6
    assert [t.chunk_index(240, 480) for t in tiles] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for t in tiles:
        rows, cols = t.to_slices(240, 480)
        assert (rows.start // 240, cols.start // 240) == t.chunk_index(240, 480)
    with pytest.raises(ValueError, match="not aligned"):
        tiles[0].chunk_index(100, 480)
    with pytest.raises(ValueError, match="before the array origin"):
        tiles[0].chunk_index(480, 480)
