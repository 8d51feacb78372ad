"""Country boundaries (Natural Earth admin-0 or any OGR vector file) read with pyogrio via fsspec.

The file is read whole (admin-0 at 1:10m is ≈ 5 MB zipped; a zipped shapefile, GeoPackage or
GeoJSON) and a country is looked up in ``spec.variable`` (if set), then ``ISO_A3``, ``ISO_A3_EH``
and ``ADM0_A3``; :func:`lookup_country` says which attribute matched.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import shapely
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources.spec import SourceSpec, options_for
from gsocseq.storage import filesystem

#: Attributes searched for a country code, in order. Natural Earth's ``ISO_A3`` is −99 for a few
#: countries (France, Norway, Kosovo…), ``ISO_A3_EH`` fills most of them, and ``ADM0_A3`` is
#: Natural Earth's own code, not always ISO 3166 (South Sudan is ``SDS`` there, ``SSD`` in ISO).
ISO_FIELDS: tuple[str, ...] = ("ISO_A3", "ISO_A3_EH", "ADM0_A3")

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _read_all(url: str, so_json: str, field: str
              ) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """Return ``{attribute: {code: geometry}}`` per ISO-like attribute present, and the codes.

    The codes are each feature's own code: that of the first attribute, in search order, that has
    one (sorted, unique).
    """
    where = f"source 'boundaries' at {url}"
    try:
        fs, path = filesystem(url, json.loads(so_json))
        with fs.open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, OSError) as exc:
        raise SourceError(f"{where}: cannot open vector file: {exc}") from exc
    try:  # GeoPackage, GeoJSON, or a zipped shapefile (Natural Earth's distribution)
        meta, _, geoms, columns = ogr_read(io.BytesIO(data))
    except Exception as exc:  # pyogrio raises its own DataSourceError family
        raise SourceError(f"{where}: not a readable vector file: {exc}") from exc
    crs = meta.get("crs")
    if crs and CRS.from_user_input(crs) != CRS.from_epsg(4326):
        raise GridMismatchError(f"{where}: boundaries CRS is {crs}; expected EPSG:4326")
    fields = list(meta["fields"])
    candidates = [field] if field else []
    candidates += [f for f in ISO_FIELDS if f not in candidates]
    present = [f for f in candidates if f in fields]
    if not present:
        raise SourceError(f"{where}: no ISO3 attribute {candidates} among fields {fields}")
    shapes = [_valid(shapely.from_wkb(w), url, i) if w is not None else None
              for i, w in enumerate(geoms)]
    out: dict[str, dict[str, Any]] = {}
    own: list[str | None] = [None] * len(shapes)
    for name in present:
        table: dict[str, Any] = {}
        for i, (code, geom) in enumerate(zip(columns[fields.index(name)], shapes, strict=True)):
            key = str(code).upper() if code is not None else ""
            if geom is None or not key or key == "-99":
                continue
            table[key] = shapely.union(table[key], geom) if key in table else geom
            own[i] = own[i] or key
        out[name] = table
    return out, tuple(sorted({c for c in own if c}))


def _valid(geom: Any, url: str, index: int) -> Any:
    """Return ``geom``, repaired by ``shapely.make_valid`` (polygons kept) when it is invalid.

    Natural Earth 1:10m has self-touching rings (Brazil, China, Indonesia …) that make GEOS refuse
    the union of a country's features; a valid geometry is returned unchanged (same masks).
    """
    if geom is None or shapely.is_valid(geom):
        return geom
    log.info("boundaries %s: feature %d is not a valid geometry (%s); repaired", url, index,
             shapely.is_valid_reason(geom))
    fixed = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else fixed


def country_codes(spec: SourceSpec, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Return the sorted codes of the file's countries, one per feature.

    A feature's code is its first valid one in search order (``spec.variable``, then
    :data:`ISO_FIELDS`), so a country whose codes differ between attributes (South Sudan: ``SSD``
    in ``ISO_A3``, ``SDS`` in ``ADM0_A3``) is listed once — and published once by a world run.
    """
    return list(_read_all(spec.url, _key(options_for(spec, storage_options)), spec.variable)[1])


def _key(storage_options: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(storage_options or {}), sort_keys=True, default=str)


def lookup_country(
    spec: SourceSpec, iso3: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[Any, str]:
    """Return ``(geometry, attribute)``: country ``iso3`` and the attribute whose value matched.

    Attributes are searched in order: ``spec.variable`` (if set), then :data:`ISO_FIELDS`.
    """
    tables, _ = _read_all(spec.url, _key(options_for(spec, storage_options)), spec.variable)
    key = iso3.upper()
    for name, table in tables.items():
        if key in table:
            return table[key], name
    some = sorted({c for t in tables.values() for c in t})
    raise InputValidationError(
        f"unknown ISO3 {iso3!r}: not in {list(tables)} of source 'boundaries' at {spec.url} "
        f"({len(some)} codes, e.g. {some[:5]})"
    )


def read_country(
    spec: SourceSpec, iso3: str, storage_options: Mapping[str, Any] | None = None
) -> Any:
    """Return the (multi)polygon of country ``iso3`` (EPSG:4326 shapely geometry)."""
    geom, name = lookup_country(spec, iso3, storage_options)
    log.info("boundaries %s: %s matched attribute %s", spec.url, iso3.upper(), name)
    return geom
