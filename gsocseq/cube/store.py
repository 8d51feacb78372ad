"""The cube on storage: template creation, schema-checked opening and tile reads (zarr v3).

Layout (see :mod:`gsocseq.cube.schema`): one chunk per tile and variable, all months of a tile in
one chunk, dims ``(latitude, longitude[, time|month])`` so time is last in memory. Chunks are zstd
with checksums, so a corrupted chunk fails loudly. ``tile_status`` (tile_row, tile_col; one chunk
per tile) is the per-tile completion marker: −1 = not built, otherwise the tile's number of modelled
pixels; it is written after the tile's data, so a rebuild skips finished tiles. Each built tile also
has a record ``{cube}.tiles/{tile_id}.json`` beside the cube (written last: the sources' digests and
window hashes it was built from and its content hash, :mod:`gsocseq.cube.fingerprint`), so a rebuild
after a source changed rebuilds only the tiles whose inputs changed. A cube is created
in one step (metadata first, the group's ``zarr.json`` last and exclusively), so concurrent runs
end with one cube; they may build the same tile twice, writing the same bytes (atomic writes).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

import gsocseq
from gsocseq.cube.grid import CRS, N_COLS, N_ROWS, TileKey, cell_latitudes, cell_longitudes
from gsocseq.cube.region import Region
from gsocseq.cube.root_cache import RootCache
from gsocseq.cube.schema import (
    CLIMATOLOGY_VARS,
    FIRST_YEAR,
    LAST_YEAR,
    MONTHLY_VARS,
    OPTIONAL_VARS,
    STATIC_VARS,
)
from gsocseq.cube.tile_writer import zarr_store
from gsocseq.errors import GridMismatchError, SourceError
from gsocseq.lease import commit_store
from gsocseq.storage import error_text, filesystem, list_names, write_json
from gsocseq.vocabulary import Reason

SCHEMA_VERSION: str = "1"
N_MONTHS: int = (LAST_YEAR - FIRST_YEAR + 1) * 12

DTYPES: dict[str, str] = {
    "soc": "float32",
    "clay": "float32",
    "land_use": "uint8",
    "reason": "uint8",
    "tmp": "float32",
    "prec": "float32",
    "pet": "float32",
    "cover": "float32",
    "soc_uncertainty": "float32",
}
#: Variables stored at 30″. The monthly climate (``MONTHLY_VARS``) is stored at the source's own
#: resolution beside the cube (:mod:`gsocseq.cube.climate`) and regridded when a tile is read.
DIMS: dict[str, tuple[str, ...]] = {
    **{v: ("latitude", "longitude") for v in STATIC_VARS},
    **{v: ("latitude", "longitude", "month") for v in CLIMATOLOGY_VARS},
}
#: Optional variables (:data:`gsocseq.cube.schema.OPTIONAL_VARS`): in a cube only when created so.
OPTIONAL_DIMS: dict[str, tuple[str, ...]] = {v: ("latitude", "longitude") for v in OPTIONAL_VARS}
UNITS: dict[str, str] = {**STATIC_VARS, **MONTHLY_VARS, **CLIMATOLOGY_VARS, **OPTIONAL_VARS}
CF_ATTRS: dict[str, dict[str, str]] = {
    "soc": {
        "long_name": "soil organic carbon stock 0-30 cm",
        "standard_name": "soil_mass_content_of_carbon",
    },
    "clay": {"long_name": "clay content 0-30 cm", "standard_name": "mass_fraction_of_clay_in_soil"},
    "land_use": {
        "long_name": "FAO land-use class (GSOCseq reference 3.5)",
        "flag_values": "0 1 2 3 4 5 6 7 8 9 10 11 12 13",
    },
    "reason": {
        "long_name": "reason a pixel is not modelled (0 = modelled)",
        "flag_values": " ".join(str(int(r)) for r in Reason),
        "flag_meanings": " ".join(r.name.lower() for r in Reason),
    },
    "tmp": {"long_name": "monthly mean air temperature", "standard_name": "air_temperature"},
    "prec": {"long_name": "monthly precipitation", "standard_name": "precipitation_amount"},
    "pet": {
        "long_name": "monthly potential evapotranspiration",
        "standard_name": "water_potential_evaporation_amount",
    },
    "cover": {"long_name": "monthly vegetated share of the cell (climatology)"},
    "soc_uncertainty": {
        "long_name": "SOC map uncertainty: half-width of the 95 % range, percent of SOC",
    },
}
FILL: dict[str, Any] = {"land_use": 0, "reason": int(Reason.OUTSIDE_REGION)}
CRS_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'
)


def _compressors() -> list[Any]:
    return [zarr.codecs.ZstdCodec(level=3, checksum=True)]


def months() -> np.ndarray:
    """Monthly time coordinate, first day of each month, January 1981 … December 2020."""
    return pd.date_range(f"{FIRST_YEAR}-01-01", periods=N_MONTHS, freq="MS").values


def cube_dims(names: Iterable[Hashable] = ()) -> dict[str, tuple[str, ...]]:
    """Return the 30″ variables' dims of a cube: :data:`DIMS` plus the optional ones in ``names``.

    ``names`` may hold any variable names (``ds.data_vars``, a tile's arrays): only those of
    :data:`OPTIONAL_DIMS` are added, so ``cube_dims(ds.data_vars)`` describes an opened cube.
    """
    have = set(names)
    return {**DIMS, **{n: d for n, d in OPTIONAL_DIMS.items() if n in have}}


def template(
    region: Region, attrs: Mapping[str, Any] | None = None, optional: Iterable[str] = ()
) -> xr.Dataset:
    """Return the lazy (dask) template of the cube for ``region`` — nothing is computed.

    ``optional``: names of :data:`OPTIONAL_DIMS` variables the cube holds (their sources declared).
    """
    import dask.array as dsa  # here, not at the top: ≈ 0.9 s of imports a tile worker never needs

    ts = region.tile_size
    ny, nx = region.shape
    lat = cell_latitudes(region.origin_row, region.origin_row + ny)
    lon = cell_longitudes(region.origin_col, region.origin_col + nx)
    lead = {"time": N_MONTHS, "month": 12}
    data_vars: dict[str, Any] = {}
    for name, dims in cube_dims(optional).items():
        shape = (ny, nx, *[lead[d] for d in dims[2:]])
        chunks = (ts, ts, *shape[2:])
        arr = dsa.zeros(shape, chunks=chunks, dtype=DTYPES[name])
        data_vars[name] = xr.DataArray(
            arr,
            dims=dims,
            attrs={"units": UNITS[name], "grid_mapping": "crs", **CF_ATTRS[name]},
        )
    t_rows, t_cols = ny // ts, nx // ts
    data_vars["tile_status"] = xr.DataArray(
        dsa.zeros((t_rows, t_cols), chunks=1, dtype="int32"),
        dims=("tile_row", "tile_col"),
        attrs={
            "long_name": "per-tile completion marker: -1 not built, else modelled pixels",
            "units": "1",
        },
    )
    data_vars["crs"] = xr.DataArray(
        np.int32(0),
        attrs={
            "grid_mapping_name": "latitude_longitude",
            "crs_wkt": CRS_WKT,
            "spatial_ref": CRS_WKT,
            "epsg_code": CRS,
        },
    )
    coords = {
        "latitude": (
            "latitude",
            lat,
            {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"},
        ),
        "longitude": (
            "longitude",
            lon,
            {"units": "degrees_east", "standard_name": "longitude", "axis": "X"},
        ),
        "time": ("time", months(), {"standard_name": "time", "axis": "T"}),
        "month": ("month", np.arange(1, 13, dtype="int16"), {"long_name": "calendar month"}),
        "tile_row": ("tile_row", np.arange(t_rows) + region.origin_row // ts),
        "tile_col": ("tile_col", np.arange(t_cols) + region.origin_col // ts),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = {
        "Conventions": "CF-1.10",
        "title": f"gsocseq harmonised input cube, region {region.name}",
        "gsocseq_version": gsocseq.__version__,
        "cube_schema_version": SCHEMA_VERSION,
        "region": region.name,
        "region_spec": region.spec,
        "region_bbox": list(region.bbox),
        "tile_size": ts,
        "origin_row": region.origin_row,
        "origin_col": region.origin_col,
        "first_year": FIRST_YEAR,
        "last_year": LAST_YEAR,
        "crs": CRS,
        **dict(attrs or {}),
    }
    return ds


def encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Zarr encoding of the template: chunk = tile, zstd with checksum, fill values."""
    ts = int(ds.attrs["tile_size"])
    enc: dict[str, dict[str, Any]] = {}
    for name, dims in cube_dims(ds.data_vars).items():
        chunks = (ts, ts, *[ds.sizes[d] for d in dims[2:]])
        e: dict[str, Any] = {"chunks": chunks, "compressors": _compressors()}
        if name in FILL:
            e["fill_value"] = FILL[name]
        else:
            e["_FillValue"] = np.float32(np.nan)
        enc[name] = e
    enc["tile_status"] = {"chunks": (1, 1), "fill_value": -1, "compressors": _compressors()}
    enc["time"] = {
        "units": f"days since {FIRST_YEAR}-01-01",
        "calendar": "proleptic_gregorian",
        "dtype": "int32",
    }
    return enc


def zarr_target(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[zarr.abc.store.Store, None]:
    """Return ``(store, None)`` for xarray: the cube's zarr store, storage options inside it.

    :func:`~gsocseq.cube.tile_writer.zarr_store`: local files, obstore on S3, else fsspec with
    one GET per chunk (no HEAD before it).
    """
    return zarr_store(url, storage_options), None


def cube_exists(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether a zarr v3 group exists at ``url``."""
    fs, path = filesystem(url, storage_options)
    return bool(fs.exists(path.rstrip("/") + "/zarr.json"))


def create_cube(
    region: Region,
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    optional: Iterable[str] = (),
) -> bool:
    """Create the cube's metadata and coordinates at ``url`` unless it exists; True if created here.

    ``optional`` names the optional variables (:data:`OPTIONAL_DIMS`) the cube holds.

    The template is written to memory (``to_zarr(compute=False)``: no data chunks) and committed
    with :func:`gsocseq.lease.commit_store`: the group's ``zarr.json`` last, exclusively, so a
    reader never opens a half-created cube and concurrent creators end with one cube. An existing
    cube is never overwritten (its built tiles stay).
    """
    ds = template(region, attrs, optional)
    items: dict[str, Any] = {}
    ds.to_zarr(
        zarr.storage.MemoryStore(items),
        mode="w",
        compute=False,
        zarr_format=3,
        consolidated=False,
        encoding=encoding(ds),
    )
    return commit_store({k: v.to_bytes() for k, v in items.items()}, url, storage_options)


def open_cube(
    url: str, storage_options: Mapping[str, Any] | None = None, *, cache: bool = True
) -> xr.Dataset:
    """Open a cube lazily (no dask; reads happen on indexing) and check it against the schema.

    With ``cache=False`` nothing read is kept in the dataset (every read goes to storage), so the
    dataset can be reused while the cube is being written (see :func:`cached_cube`).
    Raises :class:`SourceError` if nothing readable is at ``url`` and :class:`GridMismatchError`
    if the store does not match the cube schema.
    """
    store, so = zarr_target(url, storage_options)
    try:
        ds = xr.open_dataset(store, engine="zarr", storage_options=so, consolidated=False,
                             zarr_format=3, chunks=None, cache=cache)
    except (FileNotFoundError, KeyError, OSError, ValueError) as exc:
        raise SourceError(f"cube at {url}: cannot open as zarr v3: {exc}") from exc
    check_schema(ds, url)
    ds.attrs["cube_url"] = url
    ds.encoding["storage_options"] = dict(storage_options or {})
    return ds


CUBE_CACHE_SIZE: int = 4
"""Opened cubes kept per process by :func:`cached_cube` (0 disables the cache)."""


def _open_uncached(url: str, storage_options: Mapping[str, Any] | None, _root: bytes) -> xr.Dataset:
    return open_cube(url, storage_options, cache=False)


_CUBES: RootCache[xr.Dataset] = RootCache(_open_uncached, CUBE_CACHE_SIZE, "cube at", SourceError)


def cached_cube(url: str, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Return :func:`open_cube` of ``url``, opened once per process and reused while unchanged.

    Keyed by URL and storage options (:class:`~gsocseq.cube.root_cache.RootCache`). Each call
    reads the cube's root ``zarr.json`` (one small read) and reopens when its bytes changed: the
    root metadata (region, tile size, sources, version) determines every array's metadata, so a
    rebuilt or different cube is never served from a stale open. The dataset is opened with
    ``cache=False``: chunks and ``tile_status`` are read from storage on every access, never kept.
    """
    _CUBES.size = CUBE_CACHE_SIZE  # the module's setting at each call (benchmarks set it per worker)
    return _CUBES.get(url, storage_options)


def clear_cube_cache() -> None:
    """Forget every cube opened by :func:`cached_cube` in this process."""
    _CUBES.clear()


def check_schema(ds: xr.Dataset, url: str = "") -> None:
    """Raise :class:`GridMismatchError` listing every way ``ds`` differs from the cube schema."""
    problems: list[str] = []
    for key in ("tile_size", "origin_row", "origin_col"):
        if key not in ds.attrs:
            problems.append(f"missing attribute {key!r}")
    for name, dims in {**cube_dims(ds.data_vars), "tile_status": ("tile_row", "tile_col")}.items():
        if name not in ds.variables:
            problems.append(f"missing variable {name!r}")
            continue
        v = ds[name]
        if v.dims != dims:
            problems.append(f"{name}: dims {v.dims}, expected {dims}")
        if name in DTYPES and str(v.dtype) != DTYPES[name]:
            problems.append(f"{name}: dtype {v.dtype}, expected {DTYPES[name]}")
        if name in UNITS and v.attrs.get("units") != UNITS[name]:
            problems.append(f"{name}: units {v.attrs.get('units')!r}, expected {UNITS[name]!r}")
    if not problems:
        ts, r0, c0 = (int(ds.attrs[k]) for k in ("tile_size", "origin_row", "origin_col"))
        ny, nx = ds.sizes["latitude"], ds.sizes["longitude"]
        if r0 % ts or c0 % ts or ny % ts or nx % ts:
            problems.append(
                f"origin ({r0}, {c0}) / shape ({ny}, {nx}) not aligned to tiles of {ts}"
            )
        if r0 < 0 or c0 < 0 or r0 + ny > N_ROWS or c0 + nx > N_COLS:
            problems.append(f"extent rows {r0}+{ny}, cols {c0}+{nx} outside the global grid")
        else:
            if not np.allclose(ds["latitude"].values, cell_latitudes(r0, r0 + ny), atol=1e-9):
                problems.append("latitude is not the 30 arc-second grid at origin_row")
            if not np.allclose(ds["longitude"].values, cell_longitudes(c0, c0 + nx), atol=1e-9):
                problems.append("longitude is not the 30 arc-second grid at origin_col")
        if ds.sizes.get("time") != N_MONTHS:
            problems.append(f"time has {ds.sizes.get('time')} months, expected {N_MONTHS}")
        elif not np.array_equal(
            ds["time"].values.astype("datetime64[M]"), months().astype("datetime64[M]")
        ):
            problems.append(f"time is not monthly {FIRST_YEAR}-01 … {LAST_YEAR}-12")
        for name, dims in cube_dims(ds.data_vars).items():
            chunks = ds[name].encoding.get("chunks")
            want = (ts, ts, *[ds.sizes[d] for d in dims[2:]])
            if chunks is not None and tuple(chunks) != want:
                problems.append(f"{name}: chunks {tuple(chunks)}, expected one tile {want}")
    if problems:
        raise GridMismatchError(
            f"cube at {url or '<dataset>'} does not match the schema: " + "; ".join(problems)
        )


def _tile_index(ds: xr.Dataset, tile: TileKey) -> tuple[int, int]:
    ts = int(ds.attrs["tile_size"])
    r0, c0 = int(ds.attrs["origin_row"]), int(ds.attrs["origin_col"])
    if tile.size != ts:
        raise GridMismatchError(f"tile {tile.id}: size {tile.size}, cube tiles are {ts}")
    try:
        i, j = tile.chunk_index(r0, c0)
    except ValueError:  # before the origin
        i = j = -1
    if not (0 <= i < ds.sizes["latitude"] // ts and 0 <= j < ds.sizes["longitude"] // ts):
        raise GridMismatchError(
            f"tile {tile.id} is outside cube {ds.attrs.get('cube_url', '')} "
            f"(origin ({r0}, {c0}), shape {ds.sizes['latitude']}×{ds.sizes['longitude']})"
        )
    return i, j


def tile_status(ds: xr.Dataset, tile: TileKey) -> int:
    """Return the tile's completion marker: −1 = not built, else its modelled pixel count."""
    i, j = _tile_index(ds, tile)
    return int(ds["tile_status"].values[i, j])


def read_tile(ds: xr.Dataset, tile: TileKey) -> dict[str, np.ndarray]:
    """Read one built tile as numpy arrays (only that tile's chunks are fetched).

    Returns ``soc``, ``clay`` (ny, nx) float32 (t C/ha, %), ``land_use`` and ``reason`` (ny, nx)
    uint8, ``tmp``/``prec``/``pet`` (ny, nx, 480) float32 (degC, mm/month), ``cover``
    (ny, nx, 12) float32 (share), and the optional variables the cube holds
    (``soc_uncertainty`` (ny, nx) float32, % of SOC). A tile without completion marker, with an
    unreadable chunk or with a missing chunk (modelled pixels that read as nodata, or a reason
    count that disagrees with the marker) raises :class:`SourceError` naming the cube URL,
    variable and chunk key.
    """
    return climate_store(ds).add_climate(read_static(ds, tile), tile)


def read_static(ds: xr.Dataset, tile: TileKey) -> dict[str, np.ndarray]:
    """Read one built tile's stored variables (no climate), checked as :func:`read_tile` says.

    ``reason`` is the stored (static) code; :mod:`gsocseq.cube.climate` completes it with the
    climate.
    """
    url = ds.attrs.get("cube_url", "<dataset>")
    i, j = _tile_index(ds, tile)
    status = int(ds["tile_status"].variable[i, j].values)  # this tile's marker chunk only
    if status < 0:
        raise SourceError(f"cube at {url}: tile {tile.id} was not built (no completion marker)")
    rows, cols = tile.to_slices(int(ds.attrs["origin_row"]), int(ds.attrs["origin_col"]))
    out: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    for name, dims in cube_dims(ds.data_vars).items():
        key = f"{name}/c/{i}/{j}" + ("/0" if len(dims) == 3 else "")
        keys[name] = key
        try:
            out[name] = np.ascontiguousarray(ds[name].variable[rows, cols].values)
        except Exception as exc:  # zarr/codec errors have no common base class
            raise SourceError(
                f"cube at {url}: cannot read variable {name!r} of tile {tile.id} "
                f"(chunk key {key!r}): {error_text(exc)}"
            ) from exc
    _check_consistent(out, status, keys, url, tile)
    return out


def climate_store(ds: xr.Dataset) -> Any:
    """Return the cube's climate store (:mod:`gsocseq.cube.climate`), opened once per opened cube."""
    from gsocseq.cube.climate import ClimateStore

    if "climate" not in ds.encoding:
        url = ds.attrs.get("cube_url", "")
        ds.encoding["climate"] = ClimateStore(url, ds.encoding.get("storage_options"))
    return ds.encoding["climate"]


def _check_consistent(
    out: dict[str, np.ndarray], status: int, keys: dict[str, str], url: str, tile: TileKey
) -> None:
    """Catch missing or stale chunks: a missing chunk reads as fill values without error."""
    ok = out["reason"] == Reason.OK
    if int(ok.sum()) != status:
        raise SourceError(
            f"cube at {url}: tile {tile.id} has {int(ok.sum())} modelled pixels but its "
            f"completion marker says {status} (chunk key {keys['reason']!r} missing or stale)"
        )
    for name, values in out.items():
        if values.dtype.kind == "f" and ok.any() and not np.isfinite(values[ok]).all():
            raise SourceError(
                f"cube at {url}: variable {name!r} of tile {tile.id} has nodata on modelled "
                f"pixels (chunk key {keys[name]!r} missing or stale)"
            )


def records_url(cube_url: str) -> str:
    """Return the folder of the per-tile records beside the cube: ``….zarr`` → ``….tiles``."""
    base = cube_url.rstrip("/")
    return (base[: -len(".zarr")] if base.endswith(".zarr") else base) + ".tiles"


def write_tile_record(
    cube_url: str, record: Mapping[str, Any], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Write one tile's record (``record["tile"]`` names it) atomically beside the cube.

    A record holds ``tile``, ``sources`` (``{source: {"digest", "window"}}``: the source's file
    digest and the SHA-256 of the tile's window of it), ``content`` (SHA-256 of the stored tile)
    and ``modelled`` (its completion marker). Written after the tile's data and marker.
    """
    write_json(f"{records_url(cube_url)}/{record['tile']}.json", dict(record), storage_options)


def read_tile_records(
    cube_url: str, tile_ids: Any, storage_options: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Return the records of ``tile_ids`` that exist (one listing, then the records fetched together)."""
    url = records_url(cube_url)
    wanted = {f"{t}.json" for t in tile_ids}
    names = [n for n in list_names(url, storage_options) if n in wanted]
    if not names:
        return {}
    fs, path = filesystem(url, storage_options)
    blobs = fs.cat([f"{path}/{n}" for n in names], on_error="omit")
    out = {}
    for blob in blobs.values():
        doc = json.loads(blob)
        out[str(doc["tile"])] = doc
    return out


def reset_tile_status(
    cube_url: str, tile: TileKey, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Mark a built tile as not built (−1) before its data is rewritten (readers then fail loudly)."""
    ds = open_cube(cube_url, storage_options, cache=False)
    i, j = _tile_index(ds, tile)
    store, so = zarr_target(cube_url, storage_options)
    marker = xr.Dataset({"tile_status": (("tile_row", "tile_col"), np.array([[-1]], "int32"))})
    marker.to_zarr(store, region={"tile_row": slice(i, i + 1), "tile_col": slice(j, j + 1)},
                   zarr_format=3, consolidated=False, storage_options=so)


def cube_summary(ds: xr.Dataset) -> dict[str, Any]:
    """Return tiles built / pending and modelled pixel count from the completion markers."""
    status = ds["tile_status"].values
    return {
        "tiles_built": int((status >= 0).sum()),
        "tiles_total": int(status.size),
        "modelled_pixels": int(status[status >= 0].sum()),
        "sources": json.loads(ds.attrs.get("sources", "{}")),
    }
