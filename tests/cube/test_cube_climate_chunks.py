"""The climate store's layout: months per chunk, one writer per (variable, time chunk), refreshes.

A store built from the demo world (file store), read back against the source files; a refresh of
one file rewrites that file's months only, keeping the other months of its chunk as stored.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsocseq.cube import resolve_region
from gsocseq.cube.climate import (
    N_MONTHS,
    WRITE_BYTES,
    ClimateFile,
    _open_group,
    build_climate,
    climate_files,
    climate_url,
    time_chunk,
    writer_groups,
)
from gsocseq.cube.schema import FIRST_YEAR, LAST_YEAR
from gsocseq.sources import load_sources
from gsocseq.sources.readers import netcdf_grid, open_netcdf


def _files(span: int) -> list[ClimateFile]:
    """One variable in files of ``span`` years from 1981."""
    years = list(range(FIRST_YEAR, LAST_YEAR + 1))
    return [ClimateFile("tmax", "tmax", f"f{i}", tuple(years[i : i + span]))
            for i in range(0, len(years), span)]


def test_time_chunk_is_the_most_months_that_fit_and_keep_each_file_in_one_chunk() -> None:
    yearly = _files(1)
    assert time_chunk(yearly, 1) == N_MONTHS
    assert time_chunk(yearly, WRITE_BYTES // 100) == 96  # 120 months would not fit
    assert time_chunk(yearly, WRITE_BYTES) == 12  # none fits: the fewest
    assert time_chunk(_files(10), WRITE_BYTES // 480) == 480  # decade files: 120, 240 or 480
    assert time_chunk(_files(10), WRITE_BYTES // 200) == 120
    assert time_chunk(_files(10), WRITE_BYTES // 100) == 120  # none fits: the fewest
    assert time_chunk(_files(4), WRITE_BYTES) == 48  # 60 would split 1985-1988 across chunks


@pytest.fixture(scope="module")
def store(demo_world, tmp_path_factory):
    world = demo_world("file")
    sources = load_sources(world.sources_url)
    region = resolve_region("demo", sources, tile_size=world.tile_size)
    cube = (tmp_path_factory.mktemp("climate") / "c.zarr").as_uri()
    build_climate(region, sources["climate"], cube)
    return sources, region, cube


def _source_months(f: ClimateFile, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The stored (packed) values of a file on the store's window, read from the file itself."""
    with open_netcdf(f.url) as ds:
        grid = netcdf_grid(ds, f.variable, f.url)
        rows = np.flatnonzero(np.isin(grid.latitude, lat))
        cols = np.flatnonzero(np.isin(grid.longitude, lon))
        return grid.read(ds, slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def test_demo_store_holds_all_months_per_chunk_and_the_files_values(store) -> None:
    sources, _, cube = store
    group = _open_group(climate_url(cube), None, "r")
    files = climate_files(sources["climate"])
    lat, lon = group["latitude"][...], group["longitude"][...]
    for key in json.loads(group.attrs["packing"]):
        assert group[key].chunks[0] == N_MONTHS  # a tile reads one chunk per spatial chunk
    assert group.attrs["climate_schema_version"] == "2"
    # one writer per variable: every file of a variable in one group
    groups = writer_groups(cube, range(len(files)))
    assert sorted(len(g) for g in groups) == [40] * len(groups)
    assert {files[g[0]].key for g in groups} == {f.key for f in files}
    for f in (files[0], files[-1]):
        t0 = (f.years[0] - FIRST_YEAR) * 12
        assert np.array_equal(group[f.key][t0 : t0 + 12], _source_months(f, lat, lon))


def test_refresh_of_one_file_rewrites_its_months_and_keeps_the_chunk_s_others(store) -> None:
    sources, region, cube = store
    files = climate_files(sources["climate"])
    group = _open_group(climate_url(cube), None, "r+")
    changed, other = files[3], files[5]  # same variable, same chunk
    assert changed.key == other.key
    arr = group[changed.key]
    before = np.asarray(arr[...])
    t_changed = (changed.years[0] - FIRST_YEAR) * 12
    t_other = (other.years[0] - FIRST_YEAR) * 12
    marker = np.full((12, *arr.shape[1:]), 7, dtype=arr.dtype)
    arr[t_changed : t_changed + 12] = marker  # stale months of the changed file …
    arr[t_other : t_other + 12] = marker  # … and of a file that is not read again
    group["file_status"][files.index(changed)] = 0  # what refresh_climate does for a changed key
    build_climate(region, sources["climate"], cube)
    after = np.asarray(_open_group(climate_url(cube), None, "r")[changed.key][...])
    assert np.array_equal(after[t_changed : t_changed + 12], before[t_changed : t_changed + 12])
    assert np.array_equal(after[t_other : t_other + 12], marker)  # only the changed file re-read
    rest = np.ones(N_MONTHS, bool)
    rest[t_other : t_other + 12] = False
    assert np.array_equal(after[rest], before[rest])
    assert (np.asarray(_open_group(climate_url(cube), None, "r")["file_status"][...]) == 1).all()


def test_spatial_chunks_follow_the_tiles_so_a_window_meets_two_by_two(store) -> None:
    # a tile's share of source cells (12 at tile 60 on 1/24°) despite the file's inexact 1/24
    # (0.0416666666666643: the ratio is 12.0000000000001, whose ceiling gave 13 and chunks that
    # drifted across the tiles); a window (tile + margin) then meets 2 × 2 chunks per variable
    from gsocseq.cube.climate import ClimateStore

    _, region, cube = store
    climate = ClimateStore(cube)
    per_tile = round(region.tile_size / 120 * 24)
    for key, arr in climate.arrays.items():
        assert arr.chunks[1:] == (per_tile, per_tile), key
    _, cy, cx = climate.arrays["tmax"].chunks if "tmax" in climate.arrays else next(
        iter(climate.arrays.values())).chunks
    for tile in region.tiles:
        rows, cols = climate.window(tile)
        n = len(range(rows.start // cy, (rows.stop - 1) // cy + 1)) * len(
            range(cols.start // cx, (cols.stop - 1) // cx + 1))
        assert n <= 4, (tile.id, rows, cols)
