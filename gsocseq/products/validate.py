"""Validate published products: STAC documents against the schemas, COGs against the catalog.

Validators collect every problem instead of stopping at the first one (the rio-cogeo way): each
function returns a list of human-readable problems, empty when valid, and the caller decides
whether to raise (:meth:`ValidationReport.raise_for_problems`).

- :func:`validate_stac` — a catalog tree, a collection, an item (URL, pystac object or dict):
  every document against the offline JSON schemas (core + each declared extension) and the
  gsocseq conventions (``proj:code`` EPSG:4326, COG assets with ``raster:bands``, ``file:size`` and
  ``file:checksum``).
- :func:`validate_products` — all of the above from ``<out_prefix>/catalog.json``, then every
  asset: the file exists, its size and sha256 multihash match the item, it is a valid COG on the
  global 30″ grid (:func:`gsocseq.products.cog.check_cog`), and every item has every expected layer
  (and every expected region an item); no temporary file of an interrupted write is left beside
  the documents or the COGs.
"""

from __future__ import annotations

import math
import posixpath
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from gsocseq.errors import ProductValidationError
from gsocseq.products.cog import check_cog, file_digest
from gsocseq.products.stac_schemas import OfflineSTACValidator, offline_validator, schema_problems
from gsocseq.storage import TMP_MARK, filesystem, read_json
from gsocseq.vocabulary import LAYERS, PUBLISHED_LAYERS, QUALITY_LAYERS, QUALITY_NODATA

__all__ = [
    "ValidationReport",
    "convention_problems",
    "resolve_href",
    "validate_products",
    "validate_stac",
]

_COG_MEDIA_TYPE = str(pystac.MediaType.COG)


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of :func:`validate_products`."""

    url: str
    """URL of the root catalog checked."""
    problems: tuple[str, ...]
    """Every problem found (empty: the products are valid and complete)."""
    n_documents: int
    """STAC documents checked (catalogs, collections, items)."""
    n_items: int
    """Items checked."""
    n_assets: int
    """Asset files checked."""

    @property
    def ok(self) -> bool:
        """Return whether no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """Return a short multi-line report for a terminal."""
        head = (
            f"{self.url}: {self.n_documents} STAC documents, {self.n_items} items, "
            f"{self.n_assets} COGs checked: "
            + ("valid" if self.ok else f"{len(self.problems)} problem(s)")
        )
        return "\n".join([head, *(f"- {p}" for p in self.problems)])

    def raise_for_problems(self) -> None:
        """Raise :class:`~gsocseq.errors.ProductValidationError` listing the problems, if any."""
        if self.problems:
            raise ProductValidationError(self.summary())


def resolve_href(base_url: str, href: str) -> str:
    """Return ``href`` resolved against the URL (or path) of the document that holds it."""
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, path = base_url.rpartition("://")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), href))
    return f"{scheme}{sep}{joined}"


def _walk(
    url: str, storage_options: dict[str, Any] | None, problems: list[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (url, document) for a STAC document and every child/item it links, depth first."""
    seen: set[str] = set()
    stack = [url]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            doc = read_json(current, storage_options)
            if doc is None:
                raise FileNotFoundError(f"no such object {current}")
        except (OSError, ValueError) as exc:
            problems.append(f"{current}: cannot be read: {exc}")
            continue
        yield current, doc
        links = [ln for ln in doc.get("links", []) if ln.get("rel") in ("child", "item")]
        stack.extend(resolve_href(current, str(ln["href"])) for ln in reversed(links))


def convention_problems(doc: Mapping[str, Any], where: str) -> list[str]:
    """Return departures of an item from the gsocseq product conventions (empty: conforms)."""
    if doc.get("type") != "Feature":
        return []
    problems = []
    props = doc.get("properties", {})
    if props.get("proj:code") != "EPSG:4326":
        problems.append(f"{where}: proj:code is {props.get('proj:code')!r}, expected 'EPSG:4326'")
    for key, asset in doc.get("assets", {}).items():
        if "data" not in asset.get("roles", []):
            continue
        if asset.get("type") != _COG_MEDIA_TYPE:
            problems.append(f"{where}: asset {key}: media type {asset.get('type')!r} is not COG")
        for field in ("file:size", "file:checksum", "raster:bands"):
            if field not in asset:
                problems.append(f"{where}: asset {key}: {field} missing")
    return problems


def validate_stac(
    url_or_obj: str | pystac.STACObject | Mapping[str, Any],
    storage_options: dict[str, Any] | None = None,
    *,
    schemas_dir: str | Path | None = None,
    conventions: bool = True,
) -> list[str]:
    """Return every problem of a STAC document and of all documents it links (empty: valid).

    Parameters
    ----------
    url_or_obj
        URL of a catalog / collection / item JSON (children and items are followed), a pystac
        object (a catalog is walked) or a STAC dict.
    storage_options
        fsspec options of the store.
    schemas_dir
        Folder of extension schemas laid out by URL (default: see
        :func:`gsocseq.products.stac_schemas.locate_schemas_dir`).
    conventions
        Also check the gsocseq item conventions (:func:`convention_problems`).
    """
    validator = offline_validator(schemas_dir)
    problems: list[str] = []
    for where, doc in _documents(url_or_obj, storage_options, problems):
        problems += _document_problems(doc, where, validator, conventions)
    return problems


def _documents(
    url_or_obj: str | pystac.STACObject | Mapping[str, Any],
    storage_options: dict[str, Any] | None,
    problems: list[str],
) -> Iterable[tuple[str, dict[str, Any]]]:
    """Yield (where, dict) for every STAC document reachable from a URL, object or dict."""
    if isinstance(url_or_obj, str):
        return _walk(url_or_obj, storage_options, problems)
    if isinstance(url_or_obj, Mapping):
        return [(str(url_or_obj.get("id", "<dict>")), dict(url_or_obj))]
    objs: list[pystac.STACObject] = [url_or_obj]
    if isinstance(url_or_obj, pystac.Catalog):
        objs += list(url_or_obj.get_all_collections())
        objs += [c for c in url_or_obj.get_children() if not isinstance(c, pystac.Collection)]
        objs += list(url_or_obj.get_items(recursive=True))
    return [(o.get_self_href() or o.id, o.to_dict()) for o in objs]


def _document_problems(
    doc: dict[str, Any], where: str, validator: OfflineSTACValidator, conventions: bool
) -> list[str]:
    """Return the schema (and convention) problems of one document."""
    problems = schema_problems(doc, validator, where)
    if conventions:
        problems += convention_problems(doc, where)
    return problems


def validate_products(
    out_prefix: str,
    storage_options: dict[str, Any] | None = None,
    expected_layers: Iterable[str] = LAYERS,
    regions: Iterable[str] | None = None,
    *,
    schemas_dir: str | Path | None = None,
) -> ValidationReport:
    """Check a published product set from its root catalog down to every COG byte.

    Parameters
    ----------
    out_prefix
        Folder holding ``catalog.json`` (as given to :func:`~gsocseq.products.stac.write_catalog`),
        or the URL of that ``catalog.json``.
    storage_options
        fsspec options of the store.
    expected_layers
        Layers (asset keys) every item must have; default all 29 product layers.
    regions
        Regions that must each have an item (``gsocseq:region``); ``None``: no completeness check.
    schemas_dir
        Folder of offline extension schemas (default: located automatically).

    Returns
    -------
    ValidationReport
        Problems (empty when valid) and what was checked.
    """
    url = out_prefix if out_prefix.endswith(".json") else f"{out_prefix.rstrip('/')}/catalog.json"
    validator = offline_validator(schemas_dir)
    expected = list(expected_layers)
    problems: list[str] = []
    fs, root_path = filesystem(url, storage_options)
    if not fs.exists(root_path):
        return ValidationReport(url, (f"{url}: no catalog",), 0, 0, 0)
    n_docs = n_items = n_assets = 0
    found_regions: set[str] = set()
    folders: set[str] = set()
    for where, doc in _walk(url, storage_options, problems):
        n_docs += 1
        folders.add(posixpath.dirname(where))
        problems += _document_problems(doc, where, validator, conventions=True)
        if doc.get("type") != "Feature":
            continue
        n_items += 1
        found_regions.add(str(doc.get("properties", {}).get("gsocseq:region", doc.get("id"))))
        missing = [layer for layer in expected if layer not in doc.get("assets", {})]
        if missing:
            problems.append(f"{where}: missing layer assets {missing}")
        for key, asset in doc.get("assets", {}).items():
            if "data" in asset.get("roles", []):
                n_assets += 1
                folders.add(posixpath.dirname(resolve_href(where, str(asset.get("href", "")))))
                problems += _asset_problems(where, key, asset, doc, storage_options)
    problems += _leftover_problems(sorted(folders), storage_options)
    if regions is not None:
        absent = sorted(set(regions) - found_regions)
        if absent:
            problems.append(f"{url}: no item for region(s) {absent}")
    return ValidationReport(url, tuple(problems), n_docs, n_items, n_assets)


def _leftover_problems(folders: list[str], storage_options: dict[str, Any] | None) -> list[str]:
    """Return the temporary files (``*.tmp-*``, from interrupted writes) left in ``folders``."""
    problems = []
    for folder in folders:
        fs, path = filesystem(folder, storage_options)
        try:
            names = fs.ls(path, detail=False)
        except (FileNotFoundError, OSError):
            continue
        problems += [
            f"{folder}: leftover temporary file {posixpath.basename(n)} (interrupted write)"
            for n in sorted(names)
            if TMP_MARK in posixpath.basename(n)
        ]
    return problems


def _asset_problems(
    item_url: str,
    key: str,
    asset: Mapping[str, Any],
    item: Mapping[str, Any],
    storage_options: dict[str, Any] | None,
) -> list[str]:
    """Return the problems of one asset file: existence, size, checksum, COG and grid."""
    href = resolve_href(item_url, str(asset.get("href", "")))
    where = f"{item_url}: asset {key} ({href})"
    fs, path = filesystem(href, storage_options)
    if not fs.exists(path):
        return [f"{where}: file does not exist"]
    shape = asset.get("proj:shape", item.get("properties", {}).get("proj:shape"))
    problems = []
    with tempfile.TemporaryDirectory(prefix="gsocseq-validate-") as tmp:
        local = Path(tmp) / "asset.tif"
        fs.get_file(path, str(local))
        size, checksum = file_digest(local)
        if "file:size" in asset and asset["file:size"] != size:
            problems.append(f"{where}: size is {size} bytes, item says {asset['file:size']}")
        if "file:checksum" in asset and asset["file:checksum"] != checksum:
            problems.append(
                f"{where}: checksum is {checksum}, item says {asset['file:checksum']}"
            )
        problems += [
            f"{where}: {p}"
            for p in check_cog(local, expected_shape=tuple(shape) if shape else None,
                               dtype=PUBLISHED_LAYERS[key].dtype if key in PUBLISHED_LAYERS
                               else "float32")
        ]
        problems += _band_problems(where, asset, key)
    return problems


def _band_problems(where: str, asset: Mapping[str, Any], layer: str = "") -> list[str]:
    """Return departures of an asset's raster:bands from float32 / NaN nodata.

    A quality layer (``vocabulary.QUALITY_LAYERS``) must have its own dtype and nodata instead.
    """
    bands = asset.get("raster:bands") or []
    if len(bands) != 1:
        return [f"{where}: raster:bands has {len(bands)} entries, expected 1"]
    band = bands[0]
    problems = []
    if layer in QUALITY_LAYERS:
        if band.get("data_type") != QUALITY_LAYERS[layer].dtype:
            problems.append(f"{where}: raster:bands data_type is {band.get('data_type')!r}")
        if band.get("nodata") != QUALITY_NODATA:
            problems.append(f"{where}: raster:bands nodata is {band.get('nodata')!r}, "
                            f"expected {QUALITY_NODATA}")
        return problems
    if band.get("data_type") != "float32":
        problems.append(f"{where}: raster:bands data_type is {band.get('data_type')!r}")
    nodata = band.get("nodata")
    if not (nodata == "nan" or (isinstance(nodata, float) and math.isnan(nodata))):
        problems.append(f"{where}: raster:bands nodata is {nodata!r}, expected 'nan'")
    return problems
