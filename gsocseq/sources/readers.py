"""Windowed readers for rasters (GeoTIFF/COG/VRT, through GDAL) and netCDF (3 or 4, gzipped or not).

Every read takes only the window covering ``bounds`` (plus a margin of native cells for
interpolation) and returns an :class:`xarray.DataArray` with dims ``(..., latitude, longitude)``,
cell-centre coordinates, nodata as NaN and the file's own metadata in ``attrs``. Rasters stay open
per worker process (:class:`RasterCache`): a VRT is opened once per run, and GDAL's block cache
keeps each block read once. Rasters are read by GDAL's own virtual file systems
(:mod:`gsocseq.gdal_paths`). Errors name the source, the URL and what was wrong.
"""

from __future__ import annotations

import atexit
import io
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import h5py
import numpy as np
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from gsocseq.errors import GridMismatchError, SourceError
from gsocseq.gdal_paths import clear_http_cache, gdal_env, gdal_source, open_raster
from gsocseq.sources.vrt import failing_members
from gsocseq.storage import filesystem

T = TypeVar("T")

Bounds = tuple[float, float, float, float]
"""(west, south, east, north) in degrees."""

#: Native cells added around the requested bounds so bilinear interpolation has its neighbours.
MARGIN_CELLS: int = 2

#: Bytes of decoded raster blocks GDAL keeps per process (``GDAL_CACHEMAX``), so a block shared by
#: neighbouring tiles is fetched once; environment ``GSOCSEQ_RASTER_CACHE_BYTES`` overrides it.
RASTER_CACHE_BYTES: int = int(os.environ.get("GSOCSEQ_RASTER_CACHE_BYTES", 512 * 2**20))
#: Rasters kept open per process (least recently used closed first); environment
#: ``GSOCSEQ_OPEN_RASTERS`` overrides it, 0 opens and closes the file on every read.
OPEN_RASTERS: int = int(os.environ.get("GSOCSEQ_OPEN_RASTERS", 64))

@dataclass
class _Entry:
    """One open raster of the cache; ``lock`` serialises its use (GDAL handles are not shared)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    dataset: Any = None
    evicted: bool = False

    def close(self) -> None:
        try:
            if self.dataset is not None and not self.dataset.closed:
                with rasterio.Env(CPL_LOG="/dev/null"):  # a host gone by now is no error
                    self.dataset.close()
        except Exception:  # closing a read-only dataset loses nothing
            pass
        self.dataset = None


class RasterCache:
    """Rasters opened once per worker process, keyed by URL and storage options.

    A tile read borrows the open dataset under its lock, so a VRT and its sub-tiles are opened once
    per run instead of once per tile × layer, and GDAL's block cache (:data:`RASTER_CACHE_BYTES`)
    serves blocks neighbouring tiles share. At most ``size`` rasters stay open (least recently used
    closed first); a failed read drops its dataset and GDAL's HTTP cache, so the next read reopens
    it and asks the server again. Closed at process exit (a dask worker's teardown) or by
    :meth:`clear`, which also forgets GDAL's HTTP cache (a new run sees the files as they are now).

    Every use of a cached dataset runs on one thread per process (:meth:`call`), inside the GDAL
    configuration of its URL (a VRT opens its members while it reads): GDAL handles are not shared
    between threads, and rasterio's fsspec opener (protocols GDAL does not read itself) keeps its
    open files in the opening thread's context.
    """

    def __init__(self, size: int = OPEN_RASTERS) -> None:
        self.size = size
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsocseq-rasters")
        self._pid = os.getpid()
        self.opens = 0
        """Rasters opened through the cache since the process started (for tests, benchmarks)."""
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, url: str, storage_options: Mapping[str, Any] | None) -> Iterator[Any]:
        """Yield the open dataset of ``url`` (opening it if needed), used by this thread alone."""
        key = (url, json.dumps(dict(storage_options or {}), sort_keys=True, default=str))
        evict: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry()
                if self.size > 0:
                    self._entries[key] = entry
                    while len(self._entries) > self.size:
                        _, old = self._entries.popitem(last=False)
                        old.evicted = True
                        evict.append(old)
                else:
                    entry.evicted = True
            else:
                self._entries.move_to_end(key)
        for old in evict:
            with old.lock:
                old.close()
        source = gdal_source(url, storage_options)
        with entry.lock, gdal_env(source):
            if entry.dataset is None or entry.dataset.closed:
                entry.dataset = open_raster(source)
                self.opens += 1
            try:
                yield entry.dataset
            except BaseException:
                self._drop(key, entry)
                raise
            finally:
                if entry.evicted:
                    entry.close()

    def _drop(self, key: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        entry.evicted = True
        clear_http_cache()  # GDAL remembers a failed answer: the next open must ask again

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the raster thread of this process; return its result."""
        if threading.current_thread().name.startswith("gsocseq-rasters"):
            return fn(*args, **kwargs)
        if os.getpid() != self._pid:  # a forked child: its parent's thread and handles are not here
            self._pid = os.getpid()
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsocseq-rasters")
            self._lock = threading.Lock()
            self._entries = OrderedDict()
        return self._thread.submit(fn, *args, **kwargs).result()

    def clear(self) -> None:
        """Close every open raster (each once its current reader is done)."""
        try:
            self.call(self._clear)
        except RuntimeError:  # interpreter shutting down: the raster thread is gone
            pass

    def _clear(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.evicted = True
            with entry.lock:
                entry.close()
        clear_http_cache()


#: The worker process's open rasters (see :class:`RasterCache`).
RASTERS = RasterCache()
try:  # closed before the raster thread's executor shuts down (threading's exit hooks run in reverse
    # order, before ``atexit``): a dataset left to interpreter teardown segfaults in GDAL
    threading._register_atexit(RASTERS.clear)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # not CPython 3.9+, or already shutting down
    atexit.register(RASTERS.clear)
_GDAL_CACHE_SET = False


def _empty(lead: tuple[int, ...], name: str, attrs: dict[str, Any]) -> xr.DataArray:
    dims = tuple(f"dim_{i}" for i in range(len(lead))) + ("latitude", "longitude")
    return xr.DataArray(
        np.empty((*lead, 0, 0)),
        dims=dims,
        coords={"latitude": np.empty(0), "longitude": np.empty(0)},
        name=name,
        attrs=attrs,
    )


def read_raster_window(
    url: str,
    bounds: Bounds,
    storage_options: Mapping[str, Any] | None = None,
    *,
    source: str = "",
    crs: str = "EPSG:4326",
    nodata: float | None = None,
    band: int = 1,
    warp_resampling: str = "bilinear",
    as_float: bool = True,
    bands: int | None = None,
) -> xr.DataArray:
    """Read band ``band`` of a raster inside ``bounds`` (degrees) as a 2-D DataArray.

    ``bands`` is the band count the file must have (a different count raises SourceError naming
    expected and found).

    ``crs`` is the declared CRS: a file in another CRS raises :class:`GridMismatchError`; a declared
    CRS other than EPSG:4326 is warped to EPSG:4326 on the fly (GDAL WarpedVRT). With ``as_float``
    nodata becomes NaN and scale/offset tags are applied; otherwise raw integers are returned and
    nodata cells are set to 0.
    """
    return RASTERS.call(_read_raster, url, bounds, storage_options, source, crs, nodata, band,
                        warp_resampling, as_float, bands)


def _read_raster(
    url: str,
    bounds: Bounds,
    storage_options: Mapping[str, Any] | None,
    source: str,
    crs: str,
    nodata: float | None,
    band: int,
    warp_resampling: str,
    as_float: bool,
    bands: int | None,
) -> xr.DataArray:
    """:func:`read_raster_window` on the raster thread."""
    where = f"source {source!r} at {url}"
    _set_gdal_cache()
    try:
        with RASTERS.borrow(url, storage_options) as src:
            if bands is not None and src.count != bands:
                raise SourceError(
                    f"{where}: raster has {src.count} band(s), the source declares {bands}"
                    + (" (one band per year: set first_band_year)" if src.count > 1 else "")
                )
            return _read_open_raster(
                src, bounds, where, crs, nodata, band, warp_resampling, as_float
            )
    except (GridMismatchError, SourceError):
        raise
    except (rasterio.errors.RasterioIOError, FileNotFoundError, OSError) as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        bad = _failing_vrt_members(url, bounds, storage_options)
        named = f"; member(s) that cannot be read: {'; '.join(bad)}" if bad else ""
        raise SourceError(f"{where}: cannot open or read raster: {exc}{cause}{named}") from exc


def _failing_vrt_members(url: str, bounds: Bounds, storage_options: Mapping[str, Any] | None
                         ) -> list[str]:
    """After a failed read of a VRT: its members under ``bounds`` (degrees) that cannot be read.

    GDAL's error names the VRT only; this opens the VRT again for its grid (a VRT that cannot be
    opened: none), and :func:`~gsocseq.sources.vrt.failing_members` tries the members whose
    placement meets the window. Other files: none.
    """
    if not url.lower().endswith(".vrt"):
        return []
    from rasterio.warp import transform_bounds

    source = gdal_source(url, storage_options)
    try:
        with gdal_env(source), open_raster(source) as vrt:
            w, s, e, n = transform_bounds("EPSG:4326", vrt.crs, *bounds) if vrt.crs else bounds
            win = from_bounds(w, s, e, n, vrt.transform)
    except Exception:  # noqa: BLE001 — the VRT itself cannot be opened: GDAL's error says so
        return []
    return failing_members(url, (win.col_off, win.row_off, win.width, win.height),
                           storage_options)


def _set_gdal_cache() -> None:
    """Size GDAL's block cache once per process (:data:`RASTER_CACHE_BYTES`)."""
    global _GDAL_CACHE_SET
    if not _GDAL_CACHE_SET:
        from rasterio.env import set_gdal_config

        set_gdal_config("GDAL_CACHEMAX", RASTER_CACHE_BYTES)
        _GDAL_CACHE_SET = True


def same_crs(found: CRS, declared: CRS) -> bool:
    """Whether two CRSs are the same projection, even when written differently.

    ISRIC publishes SoilGrids 2.0 with its own WKT (``PROJCS["Homolosine", …]``), which is not
    equal to ``ESRI:54052`` as an object but has the same PROJ parameters
    (``+proj=igh +lon_0=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m``): compare those.
    """
    if found == declared:
        return True
    try:
        return bool(found.to_dict()) and found.to_dict() == declared.to_dict()
    except (ValueError, rasterio.errors.CRSError):
        return False


def _read_open_raster(
    src: Any,
    bounds: Bounds,
    where: str,
    crs: str,
    nodata: float | None,
    band: int,
    warp_resampling: str,
    as_float: bool,
) -> xr.DataArray:
    declared = CRS.from_user_input(crs)
    if src.crs is None:
        raise GridMismatchError(f"{where}: raster has no CRS (declared {crs})")
    if not same_crs(src.crs, declared):
        raise GridMismatchError(
            f"{where}: raster CRS is {src.crs.to_string()} but the source declares {crs}; "
            "reproject the file or fix the declared crs"
        )
    if band > src.count:
        raise SourceError(f"{where}: band {band} requested but the raster has {src.count}")
    tags = src.tags()
    band_tags = src.tags(band)
    attrs: dict[str, Any] = {**tags, **band_tags, "source_url": src.name}
    if "units" not in attrs and src.units and src.units[band - 1]:
        attrs["units"] = src.units[band - 1]
    nd = src.nodata if src.nodata is not None else nodata
    scale = src.scales[band - 1] if src.scales else 1.0
    offset = src.offsets[band - 1] if src.offsets else 0.0
    if declared.to_epsg() != 4326:
        rs = Resampling.nearest if warp_resampling == "nearest" else Resampling.bilinear
        with WarpedVRT(src, crs="EPSG:4326", resampling=rs, src_nodata=nd, nodata=nd) as vrt:
            return _window(vrt, bounds, where, band, nd, scale, offset, attrs, as_float)
    return _window(src, bounds, where, band, nd, scale, offset, attrs, as_float)


def _window(
    ds: Any,
    bounds: Bounds,
    where: str,
    band: int,
    nd: float | None,
    scale: float,
    offset: float,
    attrs: dict[str, Any],
    as_float: bool,
) -> xr.DataArray:
    t = ds.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise GridMismatchError(
            f"{where}: raster is rotated or not north-up (transform {tuple(t)})"
        )
    w, s, e, n = bounds
    pad_x, pad_y = MARGIN_CELLS * t.a, MARGIN_CELLS * -t.e
    win = from_bounds(w - pad_x, s - pad_y, e + pad_x, n + pad_y, t)
    col0, row0 = math.floor(win.col_off), math.floor(win.row_off)
    col1 = math.ceil(win.col_off + win.width)
    row1 = math.ceil(win.row_off + win.height)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, ds.width), min(row1, ds.height)
    if col1 <= col0 or row1 <= row0:
        return _empty((), attrs.get("name", ""), attrs)
    win = Window(col0, row0, col1 - col0, row1 - row0)
    data = ds.read(band, window=win)
    lon = t.c + (np.arange(col0, col1) + 0.5) * t.a
    lat = t.f + (np.arange(row0, row1) + 0.5) * t.e
    if as_float:
        out = data.astype(np.float64)
        if nd is not None:
            out[data == nd if not np.isnan(nd) else np.isnan(out)] = np.nan
        if (scale, offset) != (1.0, 0.0):
            out = out * scale + offset
    else:
        out = data.copy()
        if nd is not None and not np.isnan(nd):
            out[data == nd] = 0
    attrs["nodata"] = nd
    return xr.DataArray(
        out, dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon}, attrs=attrs
    )


_LAT_NAMES = ("lat", "latitude", "y")
_LON_NAMES = ("lon", "longitude", "x")
_TIME_UNITS = {"days": "D", "hours": "h", "minutes": "m", "seconds": "s"}


def decode_time(values: np.ndarray, units: str, where: str = "") -> np.ndarray:
    """Decode CF ``"<unit> since <date>"`` times (standard calendar) to ``datetime64[ns]``."""
    try:
        unit, _, origin = units.partition(" since ")
        step = _TIME_UNITS[unit.strip().lower()]
        base = np.datetime64(pd_timestamp(origin.strip()), "ns")
    except (KeyError, ValueError) as exc:
        raise SourceError(f"{where}: cannot decode time units {units!r}") from exc
    return base + np.rint(np.asarray(values, float)).astype("int64").astype(f"timedelta64[{step}]")


def pd_timestamp(text: str) -> str:
    """Normalise a CF origin like ``1900-1-1`` or ``1900-01-01 00:00:00`` to ISO ``1900-01-01``."""
    date = text.split(" ")[0].split("T")[0]
    y, m, d = (int(x) for x in date.split("-"))
    return f"{y:04d}-{m:02d}-{d:02d}"


#: Files up to this size are fetched whole, concurrently, by :func:`prefetch_small` (bytes).
PREFETCH_MAX_FILE: int = 16 * 2**20
#: Cap on the bytes one :func:`prefetch_small` call keeps in memory.
PREFETCH_MAX_TOTAL: int = 256 * 2**20


def prefetch_small(
    urls: list[str], storage_options: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """Fetch the small files among ``urls`` whole, in one concurrent batch (``fs.cat``).

    Sizes come from one listing per directory; stores that cannot list (plain HTTP) or files
    larger than :data:`PREFETCH_MAX_FILE` are left to ranged reads. Per-file round trips dominate
    tile reads on object stores (160 TerraClimate files per tile), so this saves most of them.
    """
    if not urls:
        return {}
    fs, _ = filesystem(urls[0], storage_options)
    paths = {fs._strip_protocol(u): u for u in urls}
    sizes: dict[str, int] = {}
    for directory in {p.rsplit("/", 1)[0] for p in paths}:
        try:
            for info in fs.ls(directory, detail=True):
                sizes[fs._strip_protocol(info["name"])] = int(info.get("size") or 0)
        except (OSError, NotImplementedError, ValueError):
            continue
    chosen, total = [], 0
    for path in paths:
        size = sizes.get(path)
        if (
            size is not None
            and 0 < size <= PREFETCH_MAX_FILE
            and total + size <= PREFETCH_MAX_TOTAL
        ):
            chosen.append(path)
            total += size
    if not chosen:
        return {}
    data = fs.cat(chosen, on_error="omit")
    return {paths[p]: v for p, v in data.items() if p in paths and isinstance(v, bytes)}


@dataclass(frozen=True)
class Packing:
    """How a netCDF variable's stored values decode to numbers (CF conventions)."""

    dtype: str
    """Stored dtype, e.g. ``int16`` (TerraClimate) or ``float32`` (CRU TS)."""
    scale: float
    """``scale_factor`` (1.0 when absent), as the float64 of the stored attribute."""
    offset: float
    """``add_offset`` (0.0 when absent)."""
    fills: tuple[float, ...]
    """``_FillValue`` and ``missing_value`` (either may be absent): stored values meaning nodata."""
    units: str
    """The variable's ``units`` attribute ("" when absent)."""

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Return ``raw`` as float64 with fills → NaN, then ``raw · scale + offset``."""
        values = np.asarray(raw).astype(np.float64)
        for fill in self.fills:
            values[raw == fill] = np.nan
        if (self.scale, self.offset) != (1.0, 0.0):  # in place: the same two operations
            np.multiply(values, self.scale, out=values)
            np.add(values, self.offset, out=values)
        return values


def cells_window(
    latitude: np.ndarray, longitude: np.ndarray, dlat: float, dlon: float, bounds: Bounds,
    margin: int = MARGIN_CELLS,
) -> tuple[slice, slice]:
    """Return the positions in (``latitude``, ``longitude``) of the cells covering ``bounds``.

    Cell centres (degrees) within (west, south, east, north) widened by ``margin`` cells of
    ``dlat``/``dlon`` degrees; empty slices when none is.
    """
    w, s, e, n = bounds
    ilat = np.flatnonzero((latitude >= s - margin * dlat) & (latitude <= n + margin * dlat))
    ilon = np.flatnonzero((longitude >= w - margin * dlon) & (longitude <= e + margin * dlon))
    if ilat.size == 0 or ilon.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(ilat[0], ilat[-1] + 1), slice(ilon[0], ilon[-1] + 1)


@dataclass(frozen=True)
class NcGrid:
    """The (time, lat, lon) grid of one netCDF variable, longitudes normalised to −180…180.

    ``longitude[k]`` is file column ``lon_index[k]``: for 0…360 files (CRU TS, some mirrors) the
    columns are reordered so longitudes ascend in −180…180 and a window may wrap the file's seam.
    Latitude keeps the file's order (TerraClimate descends, CRU TS ascends).
    """

    variable: str
    dims: tuple[str, str, str]
    """The file's dimension names: (time, lat, lon); time may be ``day`` in older files."""
    latitude: np.ndarray
    longitude: np.ndarray
    lon_index: np.ndarray
    dlat: float
    """|lat[1] − lat[0]|, degrees."""
    dlon: float
    time: np.ndarray | None
    """Decoded times (``datetime64[ns]``), or None without a time coordinate."""
    packing: Packing

    def window(self, bounds: Bounds, margin: int = MARGIN_CELLS) -> tuple[slice, slice]:
        """Latitude and (normalised) longitude positions covering ``bounds`` + ``margin`` cells."""
        return cells_window(self.latitude, self.longitude, self.dlat, self.dlon, bounds, margin)

    def read(self, ds: xr.Dataset, rows: slice, cols: slice) -> np.ndarray:
        """Read the stored (undecoded) values of a window as ``(time, rows, cols)``."""
        _, y, x = self.dims
        idx = self.lon_index[cols]
        contiguous = idx.size > 0 and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size))
        sel = slice(int(idx[0]), int(idx[0]) + idx.size) if contiguous else idx
        if idx.size == 0:
            return np.empty((ds[self.variable].shape[0], rows.stop - rows.start, 0),
                            self.packing.dtype)
        return np.asarray(ds[self.variable].isel({y: rows, x: sel}).values)


class _H5Variable:
    """The part of an xarray variable the readers use, over an h5py dataset (no data read)."""

    def __init__(self, var: Any) -> None:
        self._var = var
        self.dtype = var.dtype
        self.shape = var.shape
        self._dims: tuple[str, ...] | None = None
        self._attrs: Mapping[str, Any] | None = None

    @property
    def dims(self) -> tuple[str, ...]:
        """Dimension names, from the HDF5 dimension scales (resolved on first use: ≈ 1 ms each)."""
        if self._dims is None:
            dims = []
            for i, dim in enumerate(self._var.dims):
                labels = [d.name.rsplit("/", 1)[-1] for d in dim.values()] if len(dim) else []
                dims.append(labels[0] if labels else (dim.label or f"phony_dim_{i}"))
            self._dims = tuple(dims)
        return self._dims

    @property
    def attrs(self) -> Mapping[str, Any]:
        if self._attrs is None:
            self._attrs = _H5Attrs(self._var.attrs)
        return self._attrs

    @property
    def values(self) -> np.ndarray:
        return np.asarray(self._var[...])

    def isel(self, index: Mapping[str, Any]) -> _H5Variable:
        key = tuple(index.get(d, slice(None)) for d in self.dims)
        sel = [k for k in key if not isinstance(k, slice)]
        if sel and not np.all(np.diff(sel[0]) > 0):  # h5py wants increasing indices: 0–360 seam
            pos = [i for i, k in enumerate(key) if not isinstance(k, slice)][0]
            order = np.argsort(sel[0])
            part = np.asarray(self._var[tuple(np.sort(sel[0]) if i == pos else k
                                              for i, k in enumerate(key))])
            out = np.take(part, np.argsort(order), axis=pos)
        else:
            out = np.asarray(self._var[key])
        view = object.__new__(_H5Variable)
        view._dims, view.dtype, view.shape = self.dims, self.dtype, out.shape
        view._attrs = self.attrs
        view._var = out
        return view


class _H5Attrs(Mapping[str, Any]):
    """An HDF5 object's attributes, each decoded when first asked for (≈ 0.15 ms each).

    A grid needs 5 of a variable's often 10+ attributes; HDF5 dimension-scale bookkeeping
    (:data:`_H5_INTERNAL`) is hidden, never decoded.
    """

    def __init__(self, attrs: Any) -> None:
        self._h5 = attrs
        self._seen: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._seen:
            if key in _H5_INTERNAL:
                raise KeyError(key)
            self._seen[key] = self._h5[key]  # KeyError when absent
        return self._seen[key]

    def __contains__(self, key: object) -> bool:
        return key in self._seen or (key not in _H5_INTERNAL and key in self._h5)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._h5 if k not in _H5_INTERNAL)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _H5Dataset:
    """A netCDF-4 file opened with h5py, exposing what :func:`netcdf_grid` and reads use.

    Kept on purpose instead of ``xr.open_dataset(engine="h5netcdf")``: that open resolves every
    dimension scale of the file and costs ≈ 0.1 s per TerraClimate-style file (30 000 h5py
    lookups for 160 files, measured with cProfile), ≈ 10× this; a region reads 160 files.
    """

    def __init__(self, h5: Any) -> None:
        members = {k: h5[k] for k in h5}  # one lookup per member (each builds h5py objects)
        self._vars = {k: _H5Variable(v) for k, v in members.items() if hasattr(v, "dtype")}
        self.variables = list(self._vars)
        self.data_vars = self.variables

    def __getitem__(self, name: str) -> _H5Variable:
        return self._vars[name]  # the same object each time: its dims and attrs read once

    def __contains__(self, name: str) -> bool:
        return name in self._vars


_H5_INTERNAL = ("DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid",
                "_Netcdf4Coordinates", "_nc3_strict")


@contextmanager
def open_netcdf(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    source: str = "",
    data: bytes | None = None,
) -> Iterator[xr.Dataset]:
    """Open a netCDF-4 (HDF5) or netCDF-3 file, gzipped or not, as an undecoded xarray Dataset.

    Values stay as stored (``mask_and_scale=False``: packing is decoded by :class:`Packing` in
    float64, as the cube always has). ``*.gz`` files (CRU TS) are decompressed once, in memory.
    netCDF-3 is read with xarray (SciPy), netCDF-4 through h5py (:class:`_H5Dataset`: same
    variables, dims and attributes, without h5netcdf's per-file cost); ``data`` are the bytes
    when fetched.
    """
    where = f"source {source!r} at {url}"
    try:
        if data is None and url.endswith(".gz"):
            fs, path = filesystem(url, storage_options)
            with fs.open(path, "rb", compression="gzip") as f:
                data = f.read()
        if data is not None:
            f = io.BytesIO(data)
        else:
            fs, path = filesystem(url, storage_options)
            f = fs.open(path, "rb", block_size=2**22, cache_type="readahead")
    except (FileNotFoundError, OSError, EOFError) as exc:
        raise SourceError(f"{where}: cannot open netCDF: {exc}") from exc
    with f:
        magic = f.read(4)
        f.seek(0)
        if magic == b"\x89HDF":
            try:
                h5 = h5py.File(f, "r")
            except (OSError, ValueError) as exc:
                raise SourceError(f"{where}: cannot read netCDF-4/HDF5: {exc}") from exc
            with h5:
                yield _H5Dataset(h5)  # type: ignore[misc]
            return
        if magic[:3] == b"CDF":
            engine = "scipy"
        else:
            raise SourceError(f"{where}: not a netCDF-3 or netCDF-4 file (starts {magic!r})")
        try:
            ds = xr.open_dataset(
                f, engine=engine, mask_and_scale=False, decode_times=False,
                decode_coords=False, cache=False,
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SourceError(f"{where}: cannot read {engine} netCDF: {exc}") from exc
        with ds:
            yield ds


def _attr(attrs: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(()).item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def netcdf_grid(ds: xr.Dataset, variable: str, where: str) -> NcGrid:
    """Describe ``variable``'s (time, lat, lon) grid; anything else raises GridMismatchError."""
    if variable not in ds.variables:
        skip = (*_LAT_NAMES, *_LON_NAMES, "time", "day", "crs")
        names = sorted(str(k) for k in ds.data_vars if k not in skip)
        raise SourceError(f"{where}: no variable {variable!r} (has {names})")
    var = ds[variable]
    dims = tuple(str(d) for d in var.dims)
    if len(dims) != 3 or dims[1] not in _LAT_NAMES or dims[2] not in _LON_NAMES:
        raise GridMismatchError(
            f"{where}: variable {variable!r} has dims {dims}; expected (time, lat, lon)"
        )
    for name in dims[1:]:
        units = str(_attr(ds[name].attrs, "units", "degrees")).lower() if name in ds else "degrees"
        if not units.startswith("degree"):
            raise GridMismatchError(
                f"{where}: coordinate {name!r} has units {units!r}; expected degrees "
                "(EPSG:4326 lat/lon)"
            )
    lat = np.asarray(ds[dims[1]].values, float)
    lon = np.asarray(ds[dims[2]].values, float)
    lon_index = np.arange(lon.size)
    if lon.size and lon.max() > 180.0:  # 0…360 longitudes: reorder to −180…180
        lon = np.where(lon > 180.0, lon - 360.0, lon)
        lon_index = np.argsort(lon, kind="stable")
        lon = lon[lon_index]
    time = None
    if dims[0] in ds.variables:
        tvar = ds[dims[0]]
        units = str(_attr(tvar.attrs, "units", "days since 1900-01-01"))
        time = decode_time(np.asarray(tvar.values), units, where)
    attrs = var.attrs
    fills = tuple(
        float(v) for v in (_attr(attrs, "_FillValue"), _attr(attrs, "missing_value"))
        if v is not None
    )
    packing = Packing(
        dtype=str(var.dtype),
        scale=float(_attr(attrs, "scale_factor", 1.0)),
        offset=float(_attr(attrs, "add_offset", 0.0)),
        fills=tuple(dict.fromkeys(fills)),
        units=str(_attr(attrs, "units", "")),
    )
    return NcGrid(
        variable=variable, dims=dims, latitude=lat, longitude=lon, lon_index=lon_index,
        dlat=abs(float(lat[1] - lat[0])) if lat.size > 1 else 1.0,
        dlon=abs(float(lon[1] - lon[0])) if lon.size > 1 else 1.0,
        time=time, packing=packing,
    )


@dataclass(frozen=True)
class NcWindow:
    """A window of a netCDF variable: ``values`` (time, lat, lon) float64, nodata NaN."""

    values: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    time: np.ndarray | None
    attrs: dict[str, Any]

    def to_xarray(self, name: str = "") -> xr.DataArray:
        """Return the window as a DataArray with dims (time, latitude, longitude)."""
        coords: dict[str, Any] = {"latitude": self.latitude, "longitude": self.longitude}
        if self.time is not None:
            coords["time"] = self.time
        return xr.DataArray(
            self.values,
            dims=("time", "latitude", "longitude"),
            coords=coords,
            attrs=self.attrs,
            name=name or None,
        )


def read_netcdf_window(
    url: str,
    variable: str,
    bounds: Bounds,
    storage_options: Mapping[str, Any] | None = None,
    *,
    source: str = "",
    data: bytes | None = None,
) -> xr.DataArray:
    """Read ``variable`` of a netCDF file inside ``bounds`` as a ``(time, lat, lon)`` DataArray.

    See :func:`read_netcdf_raw` (same arguments and errors).
    """
    raw = read_netcdf_raw(url, variable, bounds, storage_options, source=source, data=data)
    return raw.to_xarray(variable)


def read_netcdf_raw(
    url: str,
    variable: str,
    bounds: Bounds,
    storage_options: Mapping[str, Any] | None = None,
    *,
    source: str = "",
    data: bytes | None = None,
) -> NcWindow:
    """Read ``variable`` of a netCDF file inside ``bounds`` (+ margin) as ``(time, lat, lon)``.

    netCDF-4 or netCDF-3 (gzipped or not, :func:`open_netcdf`); CF ``scale_factor``/
    ``add_offset``/``_FillValue``/``missing_value`` are decoded in float64 (nodata → NaN);
    latitude in either order, longitudes 0…360 or −180…180 (returned in −180…180). Coordinates
    must be geographic degrees; anything else raises :class:`GridMismatchError`.
    """
    where = f"source {source!r} at {url}"
    with open_netcdf(url, storage_options, source=source, data=data) as ds:
        try:
            grid = netcdf_grid(ds, variable, where)
            rows, cols = grid.window(bounds)
            raw = grid.read(ds, rows, cols)
        except (GridMismatchError, SourceError):
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"{where}: cannot read netCDF variable {variable!r}: {exc}") from exc
        attrs = {
            k: _attr(ds[variable].attrs, k)
            for k in ("units", "long_name", "standard_name")
            if k in ds[variable].attrs
        }
    attrs["source_url"] = url
    return NcWindow(grid.packing.decode(raw), grid.latitude[rows], grid.longitude[cols],
                    grid.time, attrs)
