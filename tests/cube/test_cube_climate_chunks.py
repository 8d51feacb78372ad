"""The climate store's layout: one chunk per tile window, months per chunk, writers, refreshes.

A store built from the demo world (file store), read back against the source files tile window by
tile window; a refresh of one file rewrites that file's months only, keeping the other months of
its chunk as stored; a store of an older layout is refused by the reader and rebuilt by the build.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsocseq.cube import resolve_region
from gsocseq.cube.climate import (
    CLIMATE_SCHEMA_VERSION,
    N_MONTHS,
    WRITE_BYTES,
    ClimateFile,
    ClimateStore,
    _open_group,
    build_climate,
    climate_files,
    climate_url,
    ensure_climate,
    not_stored,
    time_chunk,
    writer_groups,
)
from gsocseq.cube.grid import RES_DEG, TileKey
from gsocseq.cube.schema import FIRST_YEAR, LAST_YEAR
from gsocseq.errors import SourceError
from gsocseq.sources import load_sources
from gsocseq.sources.readers import MARGIN_CELLS, netcdf_grid, open_netcdf


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


def _windows_of(group, key: str, tiles) -> np.ndarray:
    """Each tile's window cut from ``{key}_grid`` as the windows array lays them out."""
    grid = np.asarray(group[f"{key}_grid"][...])
    arr = group[key]
    out = np.full(arr.shape, arr.fill_value, dtype=arr.dtype)
    for i in range(tiles.n_rows):
        for j in range(tiles.n_cols):
            rows, cols = tiles.window(i, j)
            out[i, j, :, : rows.stop - rows.start, : cols.stop - cols.start] = grid[:, rows, cols]
    return out


def test_demo_store_holds_the_files_values_and_each_tile_window_in_one_chunk(store) -> None:
    sources, region, cube = store
    group = _open_group(climate_url(cube), None, "r")
    files = climate_files(sources["climate"])
    lat, lon = group["latitude"][...], group["longitude"][...]
    tiles = ClimateStore(cube).tiles
    for key in json.loads(group.attrs["packing"]):
        assert group[f"{key}_grid"].chunks[0] == N_MONTHS  # one writer per variable
        # one chunk per tile and variable, all months: the tile's window and nothing else
        assert group[key].chunks == (1, 1, N_MONTHS, *tiles.shape)
        assert group[key].shape[:2] == (region.n_rows // region.tile_size,
                                        region.n_cols // region.tile_size)
        assert np.array_equal(group[key][...], _windows_of(group, key, tiles)), key
    assert group.attrs["climate_schema_version"] == CLIMATE_SCHEMA_VERSION == "3"
    # one writer per variable: every file of a variable in one group
    groups = writer_groups(cube, range(len(files)))
    assert sorted(len(g) for g in groups) == [40] * len(groups)
    assert {files[g[0]].key for g in groups} == {f.key for f in files}
    for f in (files[0], files[-1]):
        t0 = (f.years[0] - FIRST_YEAR) * 12
        months = _source_months(f, lat, lon)
        assert np.array_equal(group[f"{f.key}_grid"][t0 : t0 + 12], months)
        arr = group[f.key]
        for tile in region.tiles:
            i, j = tiles.index(tile, "test")
            rows, cols = tiles.window(i, j)
            ny, nx = rows.stop - rows.start, cols.stop - cols.start
            chunk = arr[i, j, t0 : t0 + 12]
            assert np.array_equal(chunk[:, :ny, :nx], months[:, rows, cols]), (f.url, tile.id)
            assert (chunk[:, ny:] == arr.fill_value).all()
            assert (chunk[:, :, nx:] == arr.fill_value).all()


def test_refresh_of_one_file_rewrites_its_months_and_keeps_the_chunk_s_others(store) -> None:
    sources, region, cube = store
    files = climate_files(sources["climate"])
    group = _open_group(climate_url(cube), None, "r+")
    changed, other = files[3], files[5]  # same variable, same chunk
    assert changed.key == other.key
    arr = group[f"{changed.key}_grid"]
    before = np.asarray(arr[...])
    t_changed = (changed.years[0] - FIRST_YEAR) * 12
    t_other = (other.years[0] - FIRST_YEAR) * 12
    marker = np.full((12, *arr.shape[1:]), 7, dtype=arr.dtype)
    arr[t_changed : t_changed + 12] = marker  # stale months of the changed file …
    arr[t_other : t_other + 12] = marker  # … and of a file that is not read again
    group["file_status"][files.index(changed)] = 0  # what refresh_climate does for a changed key
    build_climate(region, sources["climate"], cube)
    group = _open_group(climate_url(cube), None, "r")
    after = np.asarray(group[f"{changed.key}_grid"][...])
    assert np.array_equal(after[t_changed : t_changed + 12], before[t_changed : t_changed + 12])
    assert np.array_equal(after[t_other : t_other + 12], marker)  # only the changed file re-read
    rest = np.ones(N_MONTHS, bool)
    rest[t_other : t_other + 12] = False
    assert np.array_equal(after[rest], before[rest])
    assert (np.asarray(group["file_status"][...]) == 1).all()
    assert (np.asarray(group["block_status"][...]) == 1).all()
    # the variable's tile windows were written again from its grid (the marker included)
    windows = np.asarray(group[changed.key][...])
    assert np.array_equal(windows, _windows_of(group, changed.key, ClimateStore(cube).tiles))
    assert (windows[:, :, t_other : t_other + 12] == 7).any()


def test_a_tile_window_is_the_tile_and_its_margin_whatever_the_file_s_inexact_step(store) -> None:
    # the demo files' 1/24 is not exact (0.0416666666666643): a window is still the tile's share
    # of source cells (12 at tile 60) and MARGIN_CELLS on each side, and its coordinates cover the
    # tile, so the whole-tile regridding reads nothing outside the one chunk
    _, region, cube = store
    climate = ClimateStore(cube)
    per_tile = round(region.tile_size * RES_DEG * 24)
    side = per_tile + 2 * MARGIN_CELLS
    assert climate.tiles.shape == (side, side)
    for tile in region.tiles:
        rows, cols = climate.window(tile)
        lat, lon = climate.latitude[rows], climate.longitude[cols]
        assert (rows.stop - rows.start, cols.stop - cols.start) == (side, side), tile.id
        w, s, e, n = tile.bounds
        assert lat[MARGIN_CELLS] < n and lat[-MARGIN_CELLS - 1] > s, tile.id
        assert lat[MARGIN_CELLS - 1] > n and lat[-MARGIN_CELLS] < s, tile.id
        assert lon[MARGIN_CELLS] > w and lon[MARGIN_CELLS - 1] < w, tile.id


def test_tile_outside_the_store_is_named(store) -> None:
    _, region, cube = store
    climate = ClimateStore(cube)
    last = region.all_tiles()[-1]
    outside = TileKey(last.row + 1, last.col, last.size)
    with pytest.raises(SourceError, match=rf"climate store at .*: tile {outside.id} is not one of"):
        climate.native(outside)


def test_store_of_an_older_layout_is_refused_by_the_reader_and_rebuilt(demo_world, tmp_path) -> None:
    world = demo_world("file")
    sources = load_sources(world.sources_url)
    region = resolve_region("demo", sources, tile_size=world.tile_size)
    cube = (tmp_path / "c.zarr").as_uri()
    build_climate(region, sources["climate"], cube)
    want = ClimateStore(cube).native(region.tiles[0])[0]
    group = _open_group(climate_url(cube), None, "r+")
    group.attrs["climate_schema_version"] = "2"  # as written before the per-tile windows
    with pytest.raises(SourceError, match=r"climate store at .*: schema version '2', this gsocseq "
                                          r"reads '3' \(building the inputs again rebuilds it\)"):
        ClimateStore(cube)
    build_climate(region, sources["climate"], cube)
    got = ClimateStore(cube).native(region.tiles[0])[0]
    assert set(got) == set(want) and all(np.array_equal(got[k], want[k], equal_nan=True)
                                         for k in want)


def _values(cube: str) -> dict[str, np.ndarray]:
    """The tile windows of every variable of a store."""
    group = _open_group(climate_url(cube), None, "r")
    return {k: np.asarray(group[k][...]) for k in json.loads(group.attrs["packing"])}


@pytest.fixture
def one_tile_blocks(monkeypatch, store, tmp_path) -> tuple[int, str]:
    """(tiles, a store built first with the default bound); then ``WRITE_BYTES`` is 480 months of
    one tile window, so that a store built next has one block per tile and shorter grid chunks."""
    sources, region, _ = store
    reference = (tmp_path / "reference.zarr").as_uri()  # the module's store is altered by a test
    build_climate(region, sources["climate"], reference)
    group = _open_group(climate_url(reference), None, "r")
    tiles = region.n_rows // region.tile_size * (region.n_cols // region.tile_size)
    assert group.attrs["block_tiles"] == [region.n_rows // region.tile_size,
                                          region.n_cols // region.tile_size]  # one block
    arr = group[next(iter(json.loads(group.attrs["packing"])))]
    monkeypatch.setattr("gsocseq.cube.climate.WRITE_BYTES",
                        N_MONTHS * arr.shape[3] * arr.shape[4] * arr.dtype.itemsize)
    return tiles, reference


def test_blocks_of_tiles_bound_a_writer_and_store_the_same_windows(
        store, one_tile_blocks, tmp_path) -> None:
    from distributed import Client

    sources, region, _ = store
    n_tiles, reference = one_tile_blocks
    want = _values(reference)
    for name, client in (("dask", True), ("serial", False)):
        cube = (tmp_path / f"{name}.zarr").as_uri()
        if client:
            with Client(processes=False, n_workers=1, threads_per_worker=2,
                        dashboard_address=None) as c:
                build_climate(region, sources["climate"], cube, client=c)
        else:
            build_climate(region, sources["climate"], cube)
        group = _open_group(climate_url(cube), None, "r")
        assert group.attrs["block_tiles"] == [1, 1]
        assert group["block_status"].shape == (len(want) * n_tiles,)
        for key in want:
            assert group[f"{key}_grid"].chunks[0] < N_MONTHS  # several writers per variable
            assert group[key].chunks[2] == N_MONTHS  # a tile still reads one chunk
        got = _values(cube)
        assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want), name
        assert not not_stored(group).any() and not not_stored(group, "block_status").any()


def test_a_failed_file_leaves_its_variable_pending_and_the_others_written(
        one_tile_blocks, tmp_path) -> None:
    from distributed import Client

    from gsocseq.demo import write_demo_world

    _, reference = one_tile_blocks
    world = tmp_path / "world"
    sources = load_sources(write_demo_world(world.as_uri(), tiles_y=2, tiles_x=3, tile_size=60))
    region = resolve_region("demo", sources, tile_size=60)
    files = climate_files(sources["climate"])
    gone = next(f for f in files if f.key == files[0].key and f.years == (1990,))
    path = world / "climate" / gone.url.rsplit("/", 1)[1]
    path.rename(path.with_suffix(".away"))
    cube = (tmp_path / "c.zarr").as_uri()
    with Client(processes=False, n_workers=1, threads_per_worker=2,
                dashboard_address=None) as client:
        with pytest.raises(Exception, match="TerraClimate_.*_1990"):
            build_climate(region, sources["climate"], cube, client=client)
        group = _open_group(climate_url(cube), None, "r")
        (its_group,) = [g for g in writer_groups(cube, range(len(files)))
                        if files.index(gone) in g]  # its writer's files (its time chunk)
        assert 1 < len(its_group) < 40
        assert [f for f, p in zip(files, not_stored(group), strict=True) if p] == [
            files[i] for i in its_group]  # the other groups, of every variable, stored
        blocks = not_stored(group, "block_status").reshape(len(_values(cube)), -1)
        keys = list(json.loads(group.attrs["packing"]))
        assert [k for k, b in zip(keys, blocks, strict=True) if b.any()] == [gone.key]
        assert blocks[keys.index(gone.key)].all()  # none of its windows written
        with pytest.raises(SourceError, match=rf"{len(its_group)} source file\(s\) not stored"):
            ClimateStore(cube)
        path.with_suffix(".away").rename(path)
        assert ensure_climate(region, sources["climate"], cube) == [files[i] for i in its_group]
        build_climate(region, sources["climate"], cube, client=client)
    group = _open_group(climate_url(cube), None, "r")
    assert not not_stored(group).any() and not not_stored(group, "block_status").any()
    want, got = _values(reference), _values(cube)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    # a block whose windows were not written (a writer killed after the files were stored):
    # refused by the reader, written by the next build without reading any file again
    status = _open_group(climate_url(cube), None, "r+")["block_status"]
    status[3] = np.int8(0)
    with pytest.raises(SourceError, match=r"1 block\(s\) of tile windows not written"):
        ClimateStore(cube)
    path.rename(path.with_suffix(".away"))  # no file is read: the missing one does not matter
    build_climate(region, sources["climate"], cube)
    ClimateStore(cube)
    assert all(np.array_equal(_values(cube)[k], want[k]) for k in want)
