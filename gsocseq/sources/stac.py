"""STAC sources: find items in a STAC API or a static catalog, sign them, load a tile window.

A ``kind = "stac"`` source names an API (searched with pystac-client) or a static catalog
(``….json``, walked with pystac and filtered the same way), a collection, an asset key, an optional
``query`` (STAC query extension: ``{"platform": {"eq": "terra"}}``) and the years of ``period``.
Items are loaded with odc-stac onto exactly the tile's part of the 30″ grid (dask, one chunk per
item group, read lazily); asset signing is pluggable (:data:`SIGNERS`). Signed URLs never leave
this module: errors and provenance name item ids and unsigned hrefs only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pystac
import rasterio
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from pystac.stac_io import StacIO

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.gdal_paths import raster, s3_session_options
from gsocseq.sources.spec import SourceSpec
from gsocseq.vocabulary import RES_DEG, cell_latitudes, cell_longitudes

Bounds = tuple[float, float, float, float]

#: Threads reading COG headers and composites of one tile at once (I/O latency; memory stays
#: bounded by a few composite windows of the tile).
IO_THREADS: int = 4


def _identity(item: pystac.Item) -> pystac.Item:
    return item


def _planetary_computer(item: pystac.Item) -> pystac.Item:
    import planetary_computer

    return planetary_computer.sign(item)


#: Asset signers by ``sign`` value: each returns a copy of the item with signed hrefs.
SIGNERS: dict[str, Callable[[pystac.Item], pystac.Item]] = {
    "": _identity,
    "none": _identity,
    "planetary-computer": _planetary_computer,
}


def _where(spec: SourceSpec) -> str:
    return f"source {spec.name!r} (stac {spec.collection!r} at {spec.url})"


def query_of(spec: SourceSpec) -> dict[str, Any]:
    """Return the spec's STAC query (query extension form), ``{}`` when none."""
    return json.loads(spec.query) if spec.query else {}


def datetime_range(spec: SourceSpec) -> str | None:
    """Return the search datetime interval of ``period`` (``"2015-01-01/2020-12-31"``), or None."""
    if spec.period is None:
        return None
    return f"{spec.period[0]}-01-01T00:00:00Z/{spec.period[1]}-12-31T23:59:59Z"


def start_of(item: pystac.Item) -> dt.datetime:
    """Return the item's start time (``start_datetime``, else ``datetime``), UTC."""
    start = item.common_metadata.start_datetime or item.datetime
    if start is None:
        raise SourceError(f"STAC item {item.id!r} has neither datetime nor start_datetime")
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "in": lambda a, b: a in b,
}


def matches(item: pystac.Item, query: Mapping[str, Mapping[str, Any]]) -> bool:
    """Return whether ``item.properties`` satisfy a STAC query (eq neq lt lte gt gte in)."""
    for prop, conditions in query.items():
        value = item.properties.get(prop)
        for op, target in conditions.items():
            if op not in _OPS:
                raise InputValidationError(f"STAC query: unsupported operator {op!r} on {prop!r}")
            if not _OPS[op](value, target):
                return False
    return True


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _in_period(spec: SourceSpec, item: pystac.Item) -> bool:
    if spec.period is None:
        return True
    return spec.period[0] <= start_of(item).year <= spec.period[1]


class FsspecStacIO(StacIO):
    """pystac I/O through fsspec, so static catalogs can live on any fsspec store."""

    def __init__(self, storage_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.storage_options = dict(storage_options or {})

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        """Read a STAC document (object-store options are not given to ``http(s)``/``file`` URLs)."""
        url = str(source)
        proto = url.split("://", 1)[0].lower() if "://" in url else "file"
        so = self.storage_options if proto not in ("http", "https", "file") else {}
        with fsspec.open(url, "rt", **so) as f:
            return f.read()

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        """Write a STAC document (creating local folders)."""
        fs, path = fsspec.core.url_to_fs(str(dest), **self.storage_options)
        if "file" in fs.protocol or "local" in fs.protocol:
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wt") as f:
            f.write(txt)


def is_static(url: str) -> bool:
    """Return whether ``url`` is a static catalog (``….json``) rather than a STAC API root."""
    return urlsplit(url).path.endswith(".json")


def _walk_static(spec: SourceSpec, so: Mapping[str, Any] | None) -> list[pystac.Item]:
    try:
        root = pystac.read_file(spec.url, stac_io=FsspecStacIO(so))
    except (OSError, FileNotFoundError, json.JSONDecodeError, pystac.STACError) as exc:
        raise SourceError(f"{_where(spec)}: cannot read the static catalog: {exc}") from exc
    if not isinstance(root, pystac.Catalog):
        raise SourceError(f"{_where(spec)}: {spec.url} is not a STAC catalog or collection")
    coll = root if root.id == spec.collection else root.get_child(spec.collection, recursive=True)
    if coll is None:
        raise SourceError(f"{_where(spec)}: no collection {spec.collection!r} in the catalog")
    return list(coll.get_items(recursive=True))


def _search_api(
    spec: SourceSpec, bbox: Bounds, query: Mapping[str, Any]
) -> tuple[list[pystac.Item], bool]:
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(spec.url)
        server_query = bool(query) and client.conforms_to(ConformanceClasses.QUERY)
        search = client.search(
            collections=[spec.collection],
            bbox=list(bbox),
            datetime=datetime_range(spec),
            query=dict(query) if server_query else None,
        )
        return list(search.items()), server_query
    except (APIError, OSError, ValueError) as exc:
        raise SourceError(f"{_where(spec)}: STAC API search failed: {exc}") from exc
    except Exception as exc:  # requests' connection errors are not OSError subclasses everywhere
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise SourceError(f"{_where(spec)}: STAC API unreachable: {exc}") from exc
        raise


def search_items(
    spec: SourceSpec, bbox: Bounds, storage_options: Mapping[str, Any] | None = None
) -> list[pystac.Item]:
    """Return the unsigned items of a source over ``bbox`` (degrees), sorted by (start, id).

    Items of ``spec.collection`` intersecting ``bbox``, starting in ``period``, matching
    ``query`` and carrying ``spec.asset``.

    An API that does not implement the query extension is searched without it and the query is
    applied here, as for a static catalog. No item → :class:`SourceError`.
    """
    query = query_of(spec)
    if is_static(spec.url):
        items = [
            i for i in _walk_static(spec, storage_options) if i.bbox and _intersects(i.bbox, bbox)
        ]
        filtered = False
    else:
        items, filtered = _search_api(spec, bbox, query)
    items = [i for i in items if _in_period(spec, i) and (filtered or matches(i, query))]
    if not items:
        raise SourceError(
            f"{_where(spec)}: search found no items (bbox {tuple(round(v, 6) for v in bbox)}, "
            f"datetime {datetime_range(spec)}, query {query or None})"
        )
    missing = [i.id for i in items if spec.asset not in i.assets]
    if missing:
        raise SourceError(
            f"{_where(spec)}: item {missing[0]!r} has no asset {spec.asset!r} "
            f"({len(missing)} of {len(items)} items lack it)"
        )
    return sorted(items, key=lambda i: (start_of(i), i.id))


def search_parameters(spec: SourceSpec) -> dict[str, Any]:
    """Return the search as recorded in provenance: endpoint, collection, asset, datetime, query."""
    return {
        ("catalog" if is_static(spec.url) else "api"): spec.url,
        "collection": spec.collection,
        "asset": spec.asset,
        "datetime": datetime_range(spec),
        "query": query_of(spec) or None,
        "sign": spec.sign or "none",
    }


def provenance(
    spec: SourceSpec, bbox: Bounds, storage_options: Mapping[str, Any] | None = None
) -> str:
    """JSON of :func:`search_parameters` plus the number of items over ``bbox`` (no URLs signed)."""
    n = len(search_items(spec, bbox, storage_options))
    return json.dumps({**search_parameters(spec), "items": n}, sort_keys=True)


def stac_inputs(
    sources: Any, bbox: Sequence[float], storage_options: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Return ``{"stac:<dataset>": provenance JSON}`` for the ``stac`` sources of a run."""
    return {
        f"stac:{spec.name}": provenance(spec, tuple(bbox), storage_options)
        for spec in sources.specs
        if spec.kind == "stac"
    }


def tile_geobox(bounds: Bounds) -> GeoBox:
    """Return the 30″ EPSG:4326 grid of a tile (``bounds`` on cell edges)."""
    west, south, east, north = bounds
    nx, ny = round((east - west) / RES_DEG), round((north - south) / RES_DEG)
    return GeoBox((ny, nx), Affine(RES_DEG, 0.0, west, 0.0, -RES_DEG, north), "EPSG:4326")


def check_assets(
    spec: SourceSpec,
    items: Sequence[pystac.Item],
    dtypes: tuple[str, ...],
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Open each asset's header: its CRS must be ``spec.crs`` and its dtype one of ``dtypes``."""
    declared = rasterio.crs.CRS.from_user_input(spec.crs)

    def check(item: pystac.Item) -> None:
        href = item.assets[spec.asset].href
        signed = SIGNERS[spec.sign](item).assets[spec.asset].href
        where = f"{_where(spec)}: item {item.id!r} asset {spec.asset!r} ({href})"
        try:
            with raster(signed, storage_options) as src:
                crs, dtype = src.crs, src.dtypes[0]
        except rasterio.errors.RasterioIOError as exc:
            message = redact(str(exc).replace(signed, href))
            raise SourceError(f"{where}: cannot open: {message}") from None
        if crs is None or crs != declared:
            raise GridMismatchError(
                f"{where}: CRS is {crs.to_string() if crs else None}, expected {spec.crs}"
            )
        if dtype not in dtypes:
            raise InputValidationError(f"{where}: dtype {dtype}, expected {' or '.join(dtypes)}")

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(IO_THREADS) as pool:  # header reads are latency-bound
        list(pool.map(check, items))


def _group_key(item: pystac.Item, *_: Any) -> str:
    return start_of(item).strftime("%Y-%m-%dT%H:%M:%S")


def load_window(
    spec: SourceSpec,
    items: Sequence[pystac.Item],
    bounds: Bounds,
    *,
    dtype: str,
    nodata: float | int,
    storage_options: Mapping[str, Any] | None = None,
    resampling: str | None = None,
) -> xr.DataArray:
    """Lazy (dask) ``(time, latitude, longitude)`` of ``spec.asset`` on the tile's 30″ cells.

    Items starting at the same time (tiles of one composite) are mosaicked into one time step;
    raw values (no scale applied), ``nodata`` where no item covers a cell. One dask chunk per time
    step, so computing a reduction streams the items.
    """
    import odc.stac

    aws, options = s3_session_options(storage_options)
    odc.stac.configure_rio(cloud_defaults=True, aws=aws, **options)
    signer = SIGNERS[spec.sign]
    signed = [signer(i) for i in items]
    ds = odc.stac.load(
        signed,
        bands=[spec.asset],
        geobox=tile_geobox(bounds),
        resampling=resampling or spec.resampling,
        dtype=dtype,
        nodata=nodata,
        chunks={"time": 1},
        groupby=_group_key,
        fail_on_error=True,
        use_overviews=False,  # FAO resamples the full-resolution map, never its overviews
    )
    da = ds[spec.asset]
    starts = sorted({_group_key(i) for i in items})
    if da.sizes["time"] != len(starts):
        raise SourceError(f"{_where(spec)}: {len(starts)} item groups but {da.sizes['time']} loaded")
    return da.assign_coords(time=np.array(starts, dtype="datetime64[ns]"))


def sign_names() -> tuple[str, ...]:
    """Return the accepted ``sign`` values."""
    return tuple(k for k in SIGNERS if k)


_INTEGER = ("uint8", "int8", "uint16", "int16", "uint32", "int32")


def _scale_of(spec: SourceSpec, item: pystac.Item, default: float) -> float:
    bands = item.assets[spec.asset].extra_fields.get("raster:bands") or [{}]
    return float(bands[0].get("scale", default))


def _on_tile(da: xr.DataArray, bounds: Bounds) -> xr.DataArray:
    row0 = round((90.0 - bounds[3]) / RES_DEG)
    col0 = round((bounds[0] + 180.0) / RES_DEG)
    ny, nx = da.sizes["latitude"], da.sizes["longitude"]
    return da.assign_coords(
        latitude=cell_latitudes(row0, row0 + ny), longitude=cell_longitudes(col0, col0 + nx)
    )


def redact(message: str) -> str:
    """Drop query strings (``?key=value…``: signatures) from the URLs in an error message."""
    import re

    return re.sub(r"\?(?=[^\s'\"]*=)[^\s'\"]*", "?<signature removed>", message)


class StacAdapter:
    """``kind = "stac"``: ESA CCI classes → ``land_use``; MODIS NDVI composites → ``cover``.

    Returns the variable on the tile's own 30″ cells (``bounds`` must be a tile's cell edges), so
    the cube's regridding is the identity.
    """

    def read(
        self, spec: SourceSpec, bounds: Bounds, storage_options: Mapping[str, Any] | None = None
    ) -> xr.Dataset:
        """Search, check headers, load and reduce the items of one tile."""
        if spec.sign not in SIGNERS:
            raise InputValidationError(
                f"{_where(spec)}: unknown sign {spec.sign!r}; expected one of {sign_names()}"
            )
        items = search_items(spec, bounds, storage_options)
        try:
            if spec.name == "land_cover":
                return self._land_cover(spec, items, bounds, storage_options)
            if spec.name == "cover":
                return self._cover(spec, items, bounds, storage_options)
        except (rasterio.errors.RasterioIOError, RuntimeError) as exc:
            raise SourceError(f"{_where(spec)}: loading failed: {redact(str(exc))}") from None
        raise InputValidationError(
            f"{_where(spec)}: kind 'stac' serves land_cover and cover, not {spec.name!r}"
        )

    def _land_cover(
        self, spec: SourceSpec, items: list[pystac.Item], bounds: Bounds, so: Any
    ) -> xr.Dataset:
        from gsocseq.sources.landcover import esa_to_fao

        check_assets(spec, items, _INTEGER, so)
        nodata = int(spec.nodata) if spec.nodata is not None else 0
        year = start_of(items[0]).year
        first = [i for i in items if start_of(i).year == year]
        da = load_window(spec, first, bounds, dtype="uint8", nodata=nodata, storage_options=so)
        codes = da.isel(time=0).compute(scheduler="synchronous")
        out = _on_tile(codes.copy(data=esa_to_fao(codes.values)), bounds)
        out.attrs = {"units": "1", "source": spec.name, "source_version": spec.version,
                     "year": year, "stac_items": len(first)}
        return xr.Dataset({"land_use": out})

    def _cover(
        self, spec: SourceSpec, items: list[pystac.Item], bounds: Bounds, so: Any
    ) -> xr.Dataset:
        from gsocseq.sources.cover import MOD13_FILL, MOD13_SCALE, cover_from_ndvi

        check_assets(spec, items, ("int16",), so)
        fill = int(spec.nodata) if spec.nodata is not None else MOD13_FILL
        raw = load_window(spec, items, bounds, dtype="int16", nodata=fill, storage_options=so)
        reliability = None
        if spec.qa_asset:
            from dataclasses import replace

            qa_spec = replace(spec, asset=spec.qa_asset)
            reliability = load_window(qa_spec, items, bounds, dtype="int8", nodata=-1,
                                      storage_options=so, resampling="nearest")
        cover = cover_from_ndvi(raw, threshold=spec.threshold,
                                scale=_scale_of(spec, items[0], MOD13_SCALE), fill=fill,
                                reliability=reliability)
        cover = _on_tile(cover, bounds)
        cover.attrs.update(source=spec.name, source_version=spec.version, stac_items=len(items))
        return xr.Dataset({"cover": cover})
