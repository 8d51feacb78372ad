"""Country boundaries (Natural Earth admin-0 or any OGR vector file) read with pyogrio via fsspec.

The file is read whole (admin-0 at 1:10m is ≈ 5 MB) and features are looked up by an ISO3-like
attribute: ``spec.variable`` (``ADM0_A3`` by default), then ``ISO_A3``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import shapely
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources.spec import SourceSpec
from gsocseq.storage import filesystem

ISO_FIELDS: tuple[str, ...] = ("ADM0_A3", "ISO_A3")


@lru_cache(maxsize=8)
def _read_all(url: str, so_json: str, field: str) -> dict[str, Any]:
    where = f"source 'boundaries' at {url}"
    try:
        fs, path = filesystem(url, json.loads(so_json))
        with fs.open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, OSError) as exc:
        raise SourceError(f"{where}: cannot open vector file: {exc}") from exc
    try:
        meta, _, geoms, columns = ogr_read(io.BytesIO(data))
    except Exception as exc:  # pyogrio raises its own DataSourceError family
        raise SourceError(f"{where}: not a readable vector file: {exc}") from exc
    crs = meta.get("crs")
    if crs and CRS.from_user_input(crs) != CRS.from_epsg(4326):
        raise GridMismatchError(f"{where}: boundaries CRS is {crs}; expected EPSG:4326")
    fields = list(meta["fields"])
    candidates = [field] if field else []
    candidates += [f for f in ISO_FIELDS if f not in candidates]
    name = next((f for f in candidates if f in fields), None)
    if name is None:
        raise SourceError(f"{where}: no ISO3 attribute {candidates} among fields {fields}")
    codes = columns[fields.index(name)]
    out: dict[str, Any] = {}
    for code, wkb in zip(codes, geoms, strict=True):
        if code is None or wkb is None:
            continue
        geom = shapely.from_wkb(wkb)
        key = str(code).upper()
        out[key] = shapely.union(out[key], geom) if key in out else geom
    return out


def country_codes(spec: SourceSpec, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Return the sorted ISO3 codes present in the boundaries file."""
    return sorted(_read_all(spec.url, _key(storage_options), spec.variable))


def _key(storage_options: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(storage_options or {}), sort_keys=True, default=str)


def read_country(
    spec: SourceSpec, iso3: str, storage_options: Mapping[str, Any] | None = None
) -> Any:
    """Return the (multi)polygon of country ``iso3`` (EPSG:4326 shapely geometry)."""
    table = _read_all(spec.url, _key(storage_options), spec.variable)
    key = iso3.upper()
    if key not in table:
        raise InputValidationError(
            f"unknown ISO3 {iso3!r}: not in source 'boundaries' at {spec.url} "
            f"({len(table)} countries, e.g. {sorted(table)[:5]})"
        )
    return table[key]
