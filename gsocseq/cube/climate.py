"""The per-region climate store: monthly climate kept at the source's own resolution, regridded per tile.

Owns ``{cube}.climate.zarr`` (beside the cube): each (variable, file) of the climate source is read
ONCE per run for the whole region, and its stored values — packed integers as published — are kept
on the source grid, in two steps so that the source is read once while every chunk a tile reads
holds all 480 months:

1. ``{key}_grid`` (months, lat, lon) of the region's window: one writer per (variable, time chunk)
   (:func:`write_climate_files`) reads that chunk's files and writes the chunk once (time chunks
   as long as a bounded write allows: 12 months for the world, all 480 up to a large country);
2. ``{key}`` (tile row, tile col, months, window lat, window lon): each tile's window (its bounds +
   the regridding margin; neighbours share their margins) as ONE chunk of all 480 months, written
   by one writer per (variable, block of tiles) (:func:`write_climate_windows`) from ``{key}_grid``.

A tile reads one chunk per variable (:class:`ClimateStore`), decodes nothing outside its window and
regrids it to the tile's 30″ cells, giving exactly the numbers the cube held when it stored climate
at 30″.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from gsocseq.cube.grid import RES_DEG, TileKey
from gsocseq.cube.mask import reason_codes
from gsocseq.cube.region import Region
from gsocseq.cube.regrid import bilinear_cells, regrid_to_cells
from gsocseq.cube.schema import FIRST_YEAR, LAST_YEAR
from gsocseq.cube.tile_writer import zarr_store
from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.lease import commit_store
from gsocseq.sources.adapters import ADAPTERS, SOURCE_ATTEMPTS, climate_variables
from gsocseq.sources.readers import (
    MARGIN_CELLS,
    NcGrid,
    Packing,
    cells_window,
    netcdf_grid,
    open_netcdf,
)
from gsocseq.sources.spec import SourceSpec, options_for
from gsocseq.storage import call_with_retries, filesystem
from gsocseq.vocabulary import Reason

log = logging.getLogger(__name__)

CLIMATE_SCHEMA_VERSION: str = "3"
"""3: the region's grid (as 2) and one 480-month chunk per tile window read by the tiles; 2: chunks
of the region's source grid only (a tile's window met 2 × 2 of them × its time chunks); 1: yearly
chunks. A store of another version is rebuilt."""
YEARS: range = range(FIRST_YEAR, LAST_YEAR + 1)
N_MONTHS: int = len(YEARS) * 12
WRITE_BYTES: int = 256 * 2**20
"""Bound on one writer's stored values, bytes: months per chunk × region window × item size
(:func:`write_climate_files`), 480 months × a block of tile windows (:func:`write_climate_windows`:
a block is at least one tile)."""


def climate_url(cube_url: str) -> str:
    """Return the climate store beside the cube: ``….zarr`` → ``….climate.zarr``."""
    base = cube_url.rstrip("/")
    return (base[: -len(".zarr")] if base.endswith(".zarr") else base) + ".climate.zarr"


@dataclass(frozen=True)
class ClimateFile:
    """One file of a climate source and what the store takes from it."""

    key: str
    """Cube-side name of the variable (``tmax``, ``prec``, …; see ``climate_variables``)."""
    variable: str
    """Variable name in the file (``tmax``, ``ppt``, ``pre``, …)."""
    url: str
    years: tuple[int, ...]
    """Years of the cube period this file supplies (1 for TerraClimate, ≤ 10 for CRU TS)."""


def climate_files(spec: SourceSpec) -> list[ClimateFile]:
    """List the files of ``spec`` the cube period 1981–2020 needs, one entry per (variable, file)."""
    if spec.period is None or spec.period[0] > FIRST_YEAR or spec.period[1] < LAST_YEAR:
        raise InputValidationError(
            f"source {spec.name!r} at {spec.url}: period {spec.period} does not cover "
            f"{FIRST_YEAR}-{LAST_YEAR}; the cube needs all {N_MONTHS} months"
        )
    out: dict[tuple[str, str], list[int]] = {}
    names: dict[tuple[str, str], str] = {}
    adapter = ADAPTERS[spec.kind]
    url_for = adapter._url_for(spec)  # type: ignore[attr-defined]
    for key, var in climate_variables(spec).items():
        for year in YEARS:
            url = url_for(var, year)[0]
            out.setdefault((key, url), []).append(year)
            names[(key, url)] = var
    return [ClimateFile(k, names[(k, u)], u, tuple(ys)) for (k, u), ys in out.items()]


def _open_group(url: str, so: Mapping[str, Any] | None, mode: str) -> Any:
    """Open the climate store's group (:func:`~gsocseq.cube.tile_writer.zarr_store`: obstore on S3)."""
    return zarr.open_group(zarr_store(url, so, read_only=mode == "r"), mode=mode, zarr_format=3)


def status_array(group: Any, name: str = "file_status") -> zarr.Array:
    """Return a status array of the store (int8 per entry: 1 done, 0 = fill value: not).

    ``file_status`` (per file: its months stored in the grid arrays) or ``block_status`` (per
    variable × block of tiles: its windows written). Configured so that a chunk equal to the fill
    value is never stored (zarr's ``write_empty_chunks=False``, whatever the global zarr
    configuration): setting a status to 0 deletes its chunk, so a listed chunk always holds a value
    written as 1 (:func:`not_stored`).
    """
    return group[name].with_config({"write_empty_chunks": False})


async def _listed(store: Any, prefix: str) -> set[str]:
    return {key async for key in store.list_prefix(prefix)}


def not_stored(group: Any, name: str = "file_status") -> np.ndarray:
    """Return per file of the store (order of ``attrs['files']``) whether it is NOT stored (status ≤ 0).

    One listing of ``file_status``'s chunk keys (one LIST request on S3) instead of one read per
    file: each file has its own chunk, and only stored files have one (:func:`status_array`). When
    every chunk is listed no value is read; otherwise the listed chunks are read (a missing chunk
    holds the fill value 0), so the files reported not stored are exactly those with status ≤ 0.
    ``name="block_status"``: the same per (variable, block of tiles), flat, variables outer.
    """
    arr = status_array(group, name)
    n = int(arr.shape[0])
    keys = sync(_listed(arr.store_path.store, f"{arr.path}/"))
    present = np.array([f"{arr.path}/{arr.metadata.encode_chunk_key((i,))}" in keys
                        for i in range(n)], dtype=bool)
    if present.all():
        return np.zeros(n, dtype=bool)
    values = np.full(n, arr.fill_value, dtype=arr.dtype)
    if present.any():
        idx = np.flatnonzero(present)
        values[idx] = arr.get_coordinate_selection(idx)
    return values <= 0


def _exists(url: str, so: Mapping[str, Any] | None) -> bool:
    fs, path = filesystem(url, so)
    return bool(fs.exists(path.rstrip("/") + "/zarr.json"))


def _schema_version(url: str, so: Mapping[str, Any] | None) -> str:
    return str(_open_group(url, so, "r").attrs.get("climate_schema_version", ""))


class TileWindows:
    """The store's tiles (the region's tile rectangle) and each one's window on its source grid.

    ``latitude``/``longitude``: the store's source cells (the region's window), degrees; a tile's
    window is the cells its regridding reads (:func:`~gsocseq.sources.readers.cells_window` of the
    tile's bounds and ``MARGIN_CELLS``), stored from the start of its chunk; ``shape`` (cells)
    is the largest window, the rest of a smaller window's chunk holds the fill value.
    """

    def __init__(self, latitude: np.ndarray, longitude: np.ndarray, dlat: float, dlon: float,
                 tile_size: int, tile_row0: int, tile_col0: int, n_rows: int, n_cols: int,
                 shape: tuple[int, int] | None = None) -> None:
        self.latitude, self.longitude, self.dlat, self.dlon = latitude, longitude, dlat, dlon
        self.tile_size, self.tile_row0, self.tile_col0 = tile_size, tile_row0, tile_col0
        self.n_rows, self.n_cols = n_rows, n_cols
        self._windows: dict[tuple[int, int], tuple[slice, slice]] = {}
        if shape is None:
            every = [self.window(i, j) for i in range(n_rows) for j in range(n_cols)]
            shape = (max([1] + [r.stop - r.start for r, _ in every]),
                     max([1] + [c.stop - c.start for _, c in every]))
        self.shape = shape

    @classmethod
    def of_region(cls, region: Region, latitude: np.ndarray, longitude: np.ndarray,
                  dlat: float, dlon: float) -> TileWindows:
        """Return the windows of every tile of ``region``'s rectangle."""
        ts = region.tile_size
        return cls(latitude, longitude, dlat, dlon, ts, region.origin_row // ts,
                   region.origin_col // ts, region.n_rows // ts, region.n_cols // ts)

    @classmethod
    def of_store(cls, attrs: Mapping[str, Any], latitude: np.ndarray, longitude: np.ndarray,
                 shape: Sequence[int]) -> TileWindows:
        """Return the windows of an opened store: its attributes, coordinates and arrays' shape."""
        return cls(latitude, longitude, float(attrs["dlat"]), float(attrs["dlon"]),
                   int(attrs["tile_size"]), int(attrs["tile_row0"]), int(attrs["tile_col0"]),
                   int(shape[0]), int(shape[1]), (int(shape[3]), int(shape[4])))

    def window(self, i: int, j: int) -> tuple[slice, slice]:
        """Return the window (positions in ``latitude``, ``longitude``) of the store's tile (i, j)."""
        if (i, j) not in self._windows:
            tile = TileKey(self.tile_row0 + i, self.tile_col0 + j, self.tile_size)
            self._windows[(i, j)] = cells_window(self.latitude, self.longitude, self.dlat,
                                                 self.dlon, tile.bounds, MARGIN_CELLS)
        return self._windows[(i, j)]

    def blocks(self, rows: int, cols: int) -> list[tuple[range, range]]:
        """Return the blocks of ``rows`` × ``cols`` tiles (positions), row-major: one writer each."""
        return [(range(i, min(i + rows, self.n_rows)), range(j, min(j + cols, self.n_cols)))
                for i in range(0, self.n_rows, rows) for j in range(0, self.n_cols, cols)]

    def index(self, tile: TileKey, where: str) -> tuple[int, int]:
        """Return the tile's (row, col) in the store's arrays; ``where`` names the store in errors."""
        i, j = tile.row - self.tile_row0, tile.col - self.tile_col0
        if tile.size != self.tile_size or not (0 <= i < self.n_rows and 0 <= j < self.n_cols):
            raise SourceError(
                f"{where}: tile {tile.id} is not one of its tiles (size {self.tile_size}, rows "
                f"{self.tile_row0}-{self.tile_row0 + self.n_rows - 1}, cols "
                f"{self.tile_col0}-{self.tile_col0 + self.n_cols - 1})"
            )
        return i, j


def _region_window(grid: NcGrid, region: Region) -> tuple[slice, slice]:
    # One native cell more than a tile read uses, so every tile's window lies inside it.
    # (empty when the region lies outside the source: its cells then read as missing climate)
    return grid.window(region.bounds, margin=MARGIN_CELLS + 1)


def ensure_climate(
    region: Region, spec: SourceSpec, cube_url: str, so: Mapping[str, Any] | None = None,
    source_so: Mapping[str, Any] | None = None,
) -> list[ClimateFile]:
    """Create the region's climate store unless it exists; return the files still to be read.

    Creating it reads only the headers of the first file of each variable (grid, packing,
    units); every file is then checked against them when it is read.
    """
    url = climate_url(cube_url)
    if _exists(url, so) and (found := _schema_version(url, so)) != CLIMATE_SCHEMA_VERSION:
        log.warning("climate store %s: schema version %r, this gsocseq writes %r: rebuilt from "
                    "the sources", url, found, CLIMATE_SCHEMA_VERSION)
        fs, path = filesystem(url, so)
        fs.rm(path.rstrip("/"), recursive=True)
        fs.invalidate_cache()
    if _exists(url, so):  # a finished store is not checked against the sources again
        if not not_stored(_open_group(url, so, "r")).any():
            return []
    files = climate_files(spec)
    if not _exists(url, so):
        _create(region, spec, url, so, source_so, files)
    pending = not_stored(_open_group(url, so, "r"))
    return [f for i, f in enumerate(files) if pending[i]]


def _create(
    region: Region, spec: SourceSpec, url: str, so: Mapping[str, Any] | None,
    source_so: Mapping[str, Any] | None, files: Sequence[ClimateFile],
) -> None:
    first: dict[str, ClimateFile] = {}
    for f in files:
        first.setdefault(f.key, f)
    grids: dict[str, NcGrid] = {}
    for key, f in first.items():
        with open_netcdf(f.url, source_so, source=spec.name) as ds:
            grids[key] = netcdf_grid(ds, f.variable, f"source {spec.name!r} at {f.url}")
    ref = next(iter(grids.values()))
    for key, g in grids.items():
        if not (np.array_equal(g.latitude, ref.latitude)
                and np.array_equal(g.longitude, ref.longitude)):
            raise GridMismatchError(
                f"source {spec.name!r} at {first[key].url}: {g.variable!r} is on another grid "
                f"than {ref.variable!r}"
            )
    rows, cols = _region_window(ref, region)
    ny, nx = rows.stop - rows.start, cols.stop - cols.start
    # source cells per tile (48 for a 2° tile of TerraClimate's 1/24°): a file's 1/24 is not
    # exact (0.0416666666666643), so the ratio is 48.0000000000003 and its ceiling was 49 — chunks
    # drifting against the tiles
    per_tile = max(1, math.ceil(region.tile_size * RES_DEG / min(ref.dlat, ref.dlon) - 1e-6))
    tiles = TileWindows.of_region(region, ref.latitude[rows], ref.longitude[cols],
                                  ref.dlat, ref.dlon)
    wy, wx = tiles.shape
    itemsize = max(np.dtype(g.packing.dtype).itemsize for g in grids.values())
    months = time_chunk(files, ny * nx * itemsize)
    per_block = max(1, WRITE_BYTES // (N_MONTHS * wy * wx * itemsize))  # tiles per block
    block = ((max(1, min(tiles.n_rows, per_block // tiles.n_cols)), tiles.n_cols)
             if per_block >= tiles.n_cols else (1, per_block))
    n_blocks = len(tiles.blocks(*block))
    _cached_writer.cache_clear()
    items: dict[str, Any] = {}  # built in memory, then committed root-last and exclusively
    group = zarr.open_group(zarr.storage.MemoryStore(items), mode="w", zarr_format=3)
    group.attrs.update({
        "title": f"gsocseq climate store, region {region.name}, source grid",
        "climate_schema_version": CLIMATE_SCHEMA_VERSION,
        "source": json.dumps({k: v for k, v in asdict(spec).items() if k != "storage_options"},
                             default=list),
        "first_year": FIRST_YEAR, "last_year": LAST_YEAR,
        "dlat": ref.dlat, "dlon": ref.dlon,
        "lon_offset": int(cols.start),
        "tile_size": tiles.tile_size, "tile_row0": tiles.tile_row0, "tile_col0": tiles.tile_col0,
        "block_tiles": list(block),
        "files": json.dumps([asdict(f) for f in files]),
        "packing": json.dumps({k: asdict(g.packing) for k, g in grids.items()}),
        "variables": json.dumps({k: first[k].variable for k in grids}),
    })
    comp = [zarr.codecs.ZstdCodec(level=3, checksum=True)]
    for name, dim, values in (("latitude", "clim_latitude", ref.latitude[rows]),
                              ("longitude", "clim_longitude", ref.longitude[cols]),
                              ("lon_index", "clim_longitude", ref.lon_index[cols])):
        arr = group.create_array(name, shape=values.shape, dtype=values.dtype,
                                 chunks=values.shape, compressors=comp, dimension_names=(dim,))
        arr[...] = values
    for key, g in grids.items():
        fill = g.packing.fills[0] if g.packing.fills else 0
        arr = group.create_array(
            f"{key}_grid", shape=(N_MONTHS, ny, nx), dtype=g.packing.dtype,
            chunks=(months, max(1, min(ny, per_tile)), max(1, min(nx, per_tile))),
            fill_value=np.array(fill).astype(g.packing.dtype), compressors=comp,
            dimension_names=("time", "clim_latitude", "clim_longitude"),
        )
        arr.attrs["long_name"] = f"{first[key].variable} as stored in the source, region window"
        arr = group.create_array(
            key, shape=(tiles.n_rows, tiles.n_cols, N_MONTHS, wy, wx), dtype=g.packing.dtype,
            chunks=(1, 1, N_MONTHS, wy, wx),
            fill_value=np.array(fill).astype(g.packing.dtype), compressors=comp,
            dimension_names=("tile_row", "tile_col", "time", "window_latitude",
                             "window_longitude"),
        )
        arr.attrs["long_name"] = (f"{first[key].variable} as stored in the source, per tile: the "
                                  "tile's window of latitude/longitude (TileWindows) from [0, 0]")
    status = group.create_array("file_status", shape=(len(files),), dtype="int8", chunks=(1,),
                                fill_value=0, dimension_names=("file",))
    status.attrs["long_name"] = "1 once the file's months are stored (order of attrs['files'])"
    status = group.create_array("block_status", shape=(len(grids) * n_blocks,), dtype="int8",
                                chunks=(1,), fill_value=0, dimension_names=("variable_block",))
    status.attrs["long_name"] = ("1 once the block's windows are written from the grid "
                                 "(variables of attrs['packing'] outer, blocks inner)")
    # a concurrent run never sees a half-created store, and never overwrites a finished one
    commit_store({k: v.to_bytes() for k, v in items.items()}, url, so)


class _Writer:
    """An opened climate store for writing: its metadata read once per process (:func:`_writer`)."""

    def __init__(self, url: str, so: Mapping[str, Any] | None) -> None:
        self.group = _open_group(url, so, "r+")
        attrs = self.group.attrs
        self.source = json.loads(attrs["source"])["name"]
        self.files = [ClimateFile(d["key"], d["variable"], d["url"], tuple(d["years"]))
                      for d in json.loads(attrs["files"])]
        self.packing = {k: Packing(v["dtype"], v["scale"], v["offset"], tuple(v["fills"]),
                                   v["units"]) for k, v in json.loads(attrs["packing"]).items()}
        self.lat = np.asarray(self.group["latitude"][...])
        self.lon = np.asarray(self.group["longitude"][...])
        self.lon_offset = int(attrs["lon_offset"])
        self.arrays = {k: self.group[k] for k in self.packing}
        self.grids = {k: self.group[f"{k}_grid"] for k in self.packing}
        self.tiles = TileWindows.of_store(attrs, self.lat, self.lon,
                                          next(iter(self.arrays.values())).shape)
        self.blocks = self.tiles.blocks(*attrs["block_tiles"])
        self.status = status_array(self.group)
        self.block_status = status_array(self.group, "block_status")

    def block_index(self, key: str, block: int) -> int:
        """Return the position of (variable ``key``, ``block``) in ``block_status``."""
        return list(self.packing).index(key) * len(self.blocks) + block

    def unmark_blocks(self, key: str) -> None:
        """Set every block status of variable ``key`` to 0: its windows are to be written again."""
        idx = np.asarray([self.block_index(key, b) for b in range(len(self.blocks))], np.intp)
        self.block_status.set_coordinate_selection(idx, np.zeros(idx.size, dtype="int8"))

    def mark_stored(self, index: Sequence[int]) -> None:
        """Set the status of files ``index`` to stored (their chunks written concurrently)."""
        idx = np.asarray(sorted(index), dtype=np.intp)
        self.status.set_coordinate_selection(idx, np.ones(idx.size, dtype="int8"))


@lru_cache(maxsize=4)
def _cached_writer(url: str, so_json: str) -> _Writer:
    return _Writer(url, json.loads(so_json) or None)


def _writer(cube_url: str, so: Mapping[str, Any] | None) -> _Writer:
    """Return the climate store of the cube at ``cube_url`` opened for writing, once per process."""
    return _cached_writer(climate_url(cube_url), json.dumps(dict(so or {}), sort_keys=True,
                                                           default=str))


def time_chunk(files: Sequence[ClimateFile], month_bytes: int) -> int:
    """Return the months per climate chunk (a whole number of years dividing the 480 months).

    The most months whose chunk of the region window (``month_bytes`` per month) stays within
    :data:`WRITE_BYTES`, among those that hold every file's months in one chunk (so each file has
    one writer); the fewest such months when none fits.
    """
    aligned = [m for m in range(12, N_MONTHS + 1, 12) if N_MONTHS % m == 0
               and all(len({(y - FIRST_YEAR) * 12 // m for y in f.years}) == 1 for f in files)]
    fits = [m for m in aligned if m * month_bytes <= WRITE_BYTES]
    return max(fits) if fits else min(aligned)


def _chunk_of(f: ClimateFile, months: int) -> tuple[str, int]:
    """Return the (variable, time chunk) a file's months lie in: the unit of one writer."""
    return f.key, (f.years[0] - FIRST_YEAR) * 12 // months


def writer_groups(cube_url: str, index: Sequence[int], so: Mapping[str, Any] | None = None
                  ) -> list[list[int]]:
    """Group the file indices ``index`` of the store by (variable, time chunk), in file order."""
    group = _open_group(climate_url(cube_url), so, "r")
    files = [ClimateFile(d["key"], d["variable"], d["url"], tuple(d["years"]))
             for d in json.loads(group.attrs["files"])]
    months = {k: int(group[f"{k}_grid"].chunks[0]) for k in json.loads(group.attrs["packing"])}
    out: dict[tuple[str, int], list[int]] = {}
    for i in index:
        out.setdefault(_chunk_of(files[i], months[files[i].key]), []).append(i)
    return list(out.values())


def _read_file(w: _Writer, f: ClimateFile, source_so: Mapping[str, Any] | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read the region window of one file: (year of each time step, stored values (t, lat, lon)).

    The file's grid and packing must equal the store's (else :class:`GridMismatchError` naming
    the source, URL, expected and found).
    """
    want = w.packing[f.key]
    where = f"source {w.source!r} at {f.url}"
    lat, lon = w.lat, w.lon
    with open_netcdf(f.url, source_so, source=w.source) as ds:
        grid = netcdf_grid(ds, f.variable, where)
        if grid.packing != want:
            raise GridMismatchError(
                f"{where}: variable {f.variable!r} is stored as {grid.packing}, "
                f"but the source's other files are {want}"
            )
        r0 = int(np.flatnonzero(grid.latitude == lat[0])[0]) if lat[0] in grid.latitude else -1
        c0 = w.lon_offset
        rows, cols = slice(r0, r0 + lat.size), slice(c0, c0 + lon.size)
        if r0 < 0 or not (np.array_equal(grid.latitude[rows], lat)
                          and np.array_equal(grid.longitude[cols], lon)):
            raise GridMismatchError(f"{where}: {f.variable!r} is on another grid than the store")
        times = grid.time
        if times is None:
            raise SourceError(f"{where}: variable {f.variable!r} has no time coordinate")
        years_in = times.astype("datetime64[Y]").astype(int) + 1970
        if len(f.years) == 1 and not (years_in == f.years[0]).all():
            raise SourceError(
                f"{where}: file for {f.years[0]} holds dates of {sorted(set(years_in.tolist()))}"
            )
        return years_in, grid.read(ds, rows, cols)


def write_climate_files(
    cube_url: str, index: Sequence[int], so: Mapping[str, Any] | None = None,
    source_so: Mapping[str, Any] | None = None,
) -> int:
    """Read the files ``index`` of one writer group (:func:`writer_groups`) and store their months.

    The group's time chunk of ``{key}_grid`` is assembled in memory (from the store where the
    group's other files are already stored) and written once; then the files are marked stored.
    The variable's tile windows are marked to be written again first (:func:`write_climate_windows`
    writes them from the grid). Returns the number of months stored.
    """
    w = _writer(cube_url, so)
    index = list(index)
    files = [w.files[i] for i in index]
    if w.lat.size == 0 or w.lon.size == 0:  # the region lies outside the source's grid
        w.mark_stored(index)
        return 0
    w.unmark_blocks(files[0].key)  # before the grid changes: its windows are written again
    arr = w.grids[files[0].key]
    months = int(arr.chunks[0])
    unit = _chunk_of(files[0], months)
    if any(_chunk_of(f, months) != unit for f in files):
        raise ValueError(f"climate files {index} are not one writer group ({unit})")
    t0 = unit[1] * months
    members = [i for i, f in enumerate(w.files) if _chunk_of(f, months) == unit]
    if sorted(members) == sorted(index):  # every month of the chunk is written now
        buf = np.full((months, *arr.shape[1:]), arr.fill_value, dtype=arr.dtype)
    else:  # refresh of some files: keep the others' stored months
        buf = np.asarray(arr[t0 : t0 + months])
    for f in files:
        years_in, raw = _read_file(w, f, source_so)
        for year in f.years:
            sel = np.flatnonzero(years_in == year)
            if sel.size != 12:
                raise SourceError(
                    f"source {w.source!r} at {f.url}: variable {f.variable!r} has {sel.size} "
                    f"months for {year}, expected 12"
                )
            m0 = (year - FIRST_YEAR) * 12 - t0
            buf[m0 : m0 + 12] = raw[sel]
    arr[t0 : t0 + months] = buf  # every spatial chunk of the time chunk, written concurrently
    w.mark_stored(index)
    return 12 * sum(len(f.years) for f in files)


def pending_blocks(cube_url: str, so: Mapping[str, Any] | None = None) -> list[tuple[str, int]]:
    """Return the (variable, block) whose tile windows are still to be written, in store order."""
    w = _writer(cube_url, so)
    todo = not_stored(w.group, "block_status")
    return [(k, b) for k in w.packing for b in range(len(w.blocks)) if todo[w.block_index(k, b)]]


def write_climate_windows(cube_url: str, key: str, block: int,
                          so: Mapping[str, Any] | None = None) -> int:
    """Write the tile windows of one block of tiles for variable ``key`` from ``{key}_grid``.

    Reads the block's rows and columns of the grid (all 480 months), cuts each tile's window and
    writes each tile's chunk once; then marks the block written. Returns the number of tiles
    written. Call once every file of ``key`` is stored.
    """
    w = _writer(cube_url, so)
    rows_of, cols_of = w.blocks[block]
    windows = [(i - rows_of.start, j - cols_of.start, *w.tiles.window(i, j))
               for i in rows_of for j in cols_of]
    windows = [(i, j, r, c) for i, j, r, c in windows if r.stop > r.start and c.stop > c.start]
    arr = w.arrays[key]
    if windows:
        part_r = slice(min(r.start for *_, r, _ in windows), max(r.stop for *_, r, _ in windows))
        part_c = slice(min(c.start for *_, c in windows), max(c.stop for *_, c in windows))
        grid = np.asarray(w.grids[key][:, part_r, part_c])
        buf = np.full((len(rows_of), len(cols_of), *arr.shape[2:]), arr.fill_value,
                      dtype=arr.dtype)
        for i, j, r, c in windows:
            ny, nx = r.stop - r.start, c.stop - c.start
            r0, c0 = r.start - part_r.start, c.start - part_c.start
            buf[i, j, :, :ny, :nx] = grid[:, r0 : r0 + ny, c0 : c0 + nx]
        arr[rows_of.start : rows_of.stop, cols_of.start : cols_of.stop] = buf
    w.block_status[w.block_index(key, block)] = np.int8(1)
    return len(windows)


def build_climate(
    region: Region, spec: SourceSpec, cube_url: str, so: Mapping[str, Any] | None = None,
    source_so: Mapping[str, Any] | None = None, client: Any = None,
) -> str:
    """Create and fill the region's climate store (each file read once); return its URL.

    First the files not stored (:func:`write_climate_files`, one writer per group), then the tile
    windows not written (:func:`write_climate_windows`, one writer per variable and block; a block
    of a variable whose files are not all stored is left for the next build). With a dask
    ``client`` every writer is one task on the cluster.
    """
    source_so = options_for(spec, source_so)
    pending = ensure_climate(region, spec, cube_url, so, source_so)
    files = climate_files(spec) if pending else []
    position = {f: i for i, f in enumerate(files)}
    groups = writer_groups(cube_url, [position[f] for f in pending], so) if pending else []

    def one(group: list[int]) -> int:
        return call_with_retries(lambda: write_climate_files(cube_url, group, so, source_so),
                                 what=f"climate files {[files[i].url for i in group]}",
                                 attempts=SOURCE_ATTEMPTS)

    errors: list[BaseException] = []
    if client is not None and groups:
        futures = client.map(write_climate_files, [cube_url] * len(groups), groups,
                             [so] * len(groups), [source_so] * len(groups), pure=False,
                             retries=SOURCE_ATTEMPTS - 1)
        errors = [e for e in (f.exception() for f in futures) if e is not None]
    else:
        for group in groups:
            try:
                one(group)
            except Exception as exc:  # the other groups are stored; raised below
                errors.append(exc)
    _write_windows(cube_url, so, client)
    if errors:
        raise errors[0]
    return climate_url(cube_url)


def _write_windows(cube_url: str, so: Mapping[str, Any] | None, client: Any) -> None:
    """Write the pending blocks of tile windows of every variable whose files are all stored."""
    w = _writer(cube_url, so)
    missing = not_stored(w.group)
    incomplete = {f.key for f, m in zip(w.files, missing, strict=True) if m}
    todo = [(k, b) for k, b in pending_blocks(cube_url, so) if k not in incomplete]
    if client is not None and todo:
        futures = client.map(write_climate_windows, [cube_url] * len(todo),
                             [k for k, _ in todo], [b for _, b in todo], [so] * len(todo),
                             pure=False, retries=SOURCE_ATTEMPTS - 1)
        client.gather(futures)
    else:
        for key, block in todo:
            write_climate_windows(cube_url, key, block, so)


class ClimateStore:
    """An opened climate store: the source grid, packing and the adapter that combines variables."""

    def __init__(self, cube_url: str, so: Mapping[str, Any] | None = None) -> None:
        self.url = climate_url(cube_url)
        try:
            self.group = _open_group(self.url, so, "r")
        except (FileNotFoundError, OSError, KeyError, ValueError) as exc:
            raise SourceError(f"climate store at {self.url}: cannot open: {exc}") from exc
        attrs = self.group.attrs
        found = str(attrs.get("climate_schema_version", ""))
        if found != CLIMATE_SCHEMA_VERSION:
            raise SourceError(
                f"climate store at {self.url}: schema version {found!r}, this gsocseq reads "
                f"{CLIMATE_SCHEMA_VERSION!r} (building the inputs again rebuilds it)"
            )
        self.spec = SourceSpec(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(attrs["source"]).items()
        })
        self.packing = {k: Packing(v["dtype"], v["scale"], v["offset"], tuple(v["fills"]),
                                   v["units"]) for k, v in json.loads(attrs["packing"]).items()}
        self.dlat, self.dlon = float(attrs["dlat"]), float(attrs["dlon"])
        self.latitude = np.asarray(self.group["latitude"][...])
        self.longitude = np.asarray(self.group["longitude"][...])
        self.arrays = {k: self.group[k] for k in self.packing}  # metadata read once
        self.tiles = TileWindows.of_store(attrs, self.latitude, self.longitude,
                                          next(iter(self.arrays.values())).shape)
        missing = not_stored(self.group)  # one listing, no value read when all are stored
        if missing.any():
            raise SourceError(
                f"climate store at {self.url}: {int(missing.sum())} source file(s) not stored"
            )
        blocks = not_stored(self.group, "block_status")
        if blocks.any():
            raise SourceError(
                f"climate store at {self.url}: {int(blocks.sum())} block(s) of tile windows not "
                "written (building the inputs again writes them)"
            )

    def window(self, tile: TileKey) -> tuple[slice, slice]:
        """Return the native cells (of ``latitude``/``longitude``) a tile's regridding reads."""
        return self.tiles.window(*self.tiles.index(tile, f"climate store at {self.url}"))

    def native(self, tile: TileKey) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Return decoded native values (months, lat, lon) float64 per variable, and their coordinates.

        One chunk per variable and time chunk: the tile's own window.
        """
        i, j = self.tiles.index(tile, f"climate store at {self.url}")
        rows, cols = self.tiles.window(i, j)
        ny, nx = rows.stop - rows.start, cols.stop - cols.start
        raw = {k: p.decode(self.arrays[k][i, j, :, :ny, :nx] if ny and nx else
                           np.empty((N_MONTHS, ny, nx), self.arrays[k].dtype))
               for k, p in self.packing.items()}
        return raw, self.latitude[rows], self.longitude[cols]

    def read_tile(self, tile: TileKey) -> dict[str, np.ndarray]:
        """Return ``tmp`` degC, ``prec``/``pet`` mm/month as (ny, nx, 480) float32 on the tile."""
        return self.regrid_tile(tile)[0]

    def regrid_tile(
        self, tile: TileKey, wanted: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Return :meth:`read_tile`'s fields and each cell's (min, max) of them, ``(ny, nx, 2)``.

        The extremes (NaN where any month is NaN; degC, mm/month) come from the regridding pass;
        cells where ``wanted`` ((ny, nx) bool) is False are NaN, not interpolated.
        """
        fields, lat, lon = self.fields(tile)
        out, extremes = {}, {}
        for name in CLIMATE_FIELDS:
            extremes[name] = np.empty((tile.size, tile.size, 2), np.float32)
            out[name] = regrid_to_cells(self.spec.resampling, fields[name], lat, lon, tile,
                                        extremes=extremes[name], where=wanted)
        return out, extremes

    def fields(self, tile: TileKey) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Return the tile window's climate on the source grid, and the window's coordinates.

        ``tmp`` degC, ``prec``/``pet`` mm/month (months, lat, lon) float64: the adapter's
        combination of the stored variables.
        """
        raw, lat, lon = self.native(tile)
        units = {k: p.units for k, p in self.packing.items()}
        adapter = ADAPTERS[self.spec.kind]
        where = f"source {self.spec.name!r} ({self.spec.kind}) at {self.spec.url}"
        fields = adapter.combine(raw, units, where, YEARS)  # type: ignore[attr-defined]
        return fields, lat, lon

    def cells(self, tile: TileKey) -> CellClimate:
        """Return the tile's climate, decoded once, to be regridded at chosen cells.

        See :meth:`CellClimate.at`.
        """
        fields, lat, lon = self.fields(tile)
        return CellClimate(tile, self.spec.resampling, fields, lat, lon)

    def add_climate(self, arrays: dict[str, np.ndarray], tile: TileKey) -> dict[str, np.ndarray]:
        """Add the tile's regridded climate to its static arrays and complete the reason codes.

        ``arrays`` as stored in the cube (static reason). The reasons are recomputed with the
        climate by :func:`gsocseq.cube.mask.reason_codes` from the same inputs the cube used when
        it stored 30″ climate, so they are the same codes; climate outside the region is NaN.
        """
        out = dict(arrays)
        stored = out["reason"]
        inside = stored != Reason.OUTSIDE_REGION
        climate, extremes = self.regrid_tile(tile, wanted=inside)  # NaN outside the region
        out.update(climate)
        out["reason"] = complete_reasons(stored, inside, out, extremes)
        return out


#: Codes :func:`gsocseq.cube.mask.reason_codes` assigns (recomputed here with the climate).
_MASK_CODES: tuple[int, ...] = (Reason.OK, Reason.OUTSIDE_REGION, Reason.NOT_AGRICULTURAL,
                                Reason.MISSING_INPUT, Reason.INPUT_OUT_OF_RANGE)
#: Stored (static) codes the climate can still change: only these cells need their climate.
CLIMATE_DECIDES: tuple[int, ...] = (Reason.OK, Reason.INPUT_OUT_OF_RANGE)
#: The climate fields of a tile read, in cube units (degC, mm/month, mm/month).
CLIMATE_FIELDS: tuple[str, ...] = ("tmp", "prec", "pet")
#: Static cube variables the reason codes are recomputed with (each where the cube has it).
_STATIC_FIELDS: tuple[str, ...] = ("soc", "clay", "cover", "soc_uncertainty")


def complete_reasons(
    stored: np.ndarray, inside: np.ndarray, static: dict[str, np.ndarray],
    extremes: dict[str, np.ndarray],
) -> np.ndarray:
    """Return the reason codes of cells with their climate, from the stored (static) codes.

    ``stored``, ``inside`` (…) per cell; ``static`` the cube variables per cell (``land_use`` and
    :data:`_STATIC_FIELDS`, months last for ``cover``); ``extremes`` each climate field's
    (min, max) per cell, (…, 2): :func:`gsocseq.cube.mask.reason_codes` gives the same codes for
    these two values as for the whole series (a NaN or ±inf makes the cell missing, else the
    extremes decide the range). Codes the cube build refines (e.g. NO_VALID_NDVI for missing
    cover) are kept as stored; cells stored as neither OK nor out of range keep their code
    (:data:`CLIMATE_DECIDES`: the climate cannot change a code of higher precedence).
    """
    fields = {k: static[k] for k in _STATIC_FIELDS if k in static}
    fields.update(extremes)
    full = reason_codes(inside, static["land_use"], fields)
    keep = ~np.isin(stored, np.array(_MASK_CODES, dtype=stored.dtype))
    return np.where(keep, stored, full).astype(stored.dtype)


class CellClimate:
    """One tile's climate on the source grid, regridded at the cells a caller asks for.

    Bilinear sources go through :func:`gsocseq.cube.regrid.bilinear_cells` (the values of
    :meth:`ClimateStore.read_tile`'s cells, byte for byte, in months × pixels layout); other
    resamplings through the whole-tile regridding and a gather.
    """

    def __init__(self, tile: TileKey, resampling: str, fields: dict[str, np.ndarray],
                 lat: np.ndarray, lon: np.ndarray) -> None:
        self.tile, self.resampling = tile, resampling
        self.fields, self.lat, self.lon = fields, lat, lon
        self._whole: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def at(self, cells: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Return the climate at flat tile cells ``cells`` (sorted) and its extremes.

        ``tmp``/``prec``/``pet`` (months, k) float32 (degC, mm/month) and each one's (min, max)
        over the months, (k, 2).
        """
        lat, lon = self.tile.latitudes(), self.tile.longitudes()
        series, extremes = {}, {}
        for name in CLIMATE_FIELDS:
            extremes[name] = np.empty((cells.size, 2), np.float32)
            if self.resampling == "bilinear":
                series[name] = bilinear_cells(self.fields[name], (self.lat, self.lon),
                                              (lat, lon), cells, extremes=extremes[name])
                continue
            if name not in self._whole:
                ext = np.empty((lat.size, lon.size, 2), np.float32)
                whole = regrid_to_cells(self.resampling, self.fields[name], self.lat, self.lon,
                                        self.tile, extremes=ext)
                self._whole[name] = (whole.reshape(lat.size * lon.size, -1), ext.reshape(-1, 2))
            whole, ext = self._whole[name]
            series[name] = np.ascontiguousarray(whole[cells].T)
            extremes[name][...] = ext[cells]
        return series, extremes


def read_climate_tile(
    cube_url: str, tile: TileKey, so: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Open the climate store of the cube at ``cube_url`` and regrid one tile (see ClimateStore)."""
    return ClimateStore(cube_url, so).read_tile(tile)
