"""STAC catalog of the products: a collection per map version, an item per region (or tile).

Layout under ``out_prefix`` (any fsspec store), self-contained with relative links::

    catalog.json                                  root, id "gsocseq", updated last
    gsocseq-v1.1-exact/collection.json            one collection per map version and scheme
    gsocseq-v1.1-exact/ARG/ARG.json               one item per region (``ARG-t240_r…`` per tile)

Items carry one COG asset per product layer (key = layer name, FAO reference §4.4) with the raster
(v1.1.0), file (v2.1.0) and projection (v2.0.0, ``proj:code``) extensions — the versions pystac
1.15 writes — and provenance properties ``gsocseq:*``. Asset hrefs are made relative to the item
when the COG lies on the same store, so a copied catalog keeps working; odc-stac resolves them.

Time: products describe the forward period, so ``datetime`` is null and ``start_datetime`` /
``end_datetime`` are 2021-01-01T00:00:00Z / 2040-12-31T23:59:59Z (T0 is the state at the start of
that period, finalSOC the state at its end). Nothing depends on the clock: ids and times are
functions of the region, tile and provenance only, so a rerun writes identical JSON.

Every file is written to a temporary key and moved; new items first, then the collection, then the
root catalog, so a reader following links from ``catalog.json`` never meets a missing document.
Writers take turns under a lease (the folder ``{out_prefix}.lease/``; :mod:`gsocseq.lease`).
Objects are validated against the offline JSON schemas before anything is written.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.utils import make_relative_href

from gsocseq.cube.grid import RES_DEG, TileKey
from gsocseq.errors import InputValidationError, ProductValidationError
from gsocseq.lease import Lease, held
from gsocseq.products.cog import CogAsset, layer_description
from gsocseq.products.stac_schemas import offline_validator, schema_problems
from gsocseq.storage import exists, filesystem, put_bytes, read_bytes
from gsocseq.vocabulary import (
    LAYERS,
    MONTECARLO_LAYERS,
    PUBLISHED_LAYERS,
    QUALITY_LAYERS,
    QUALITY_NODATA,
)

__all__ = [
    "END_DATETIME",
    "LICENSE",
    "START_DATETIME",
    "FsspecStacIO",
    "Provenance",
    "build_collection",
    "collection_item_assets",
    "add_quicklook_assets",
    "build_item",
    "collection_id",
    "item_id",
    "read_catalog",
    "write_catalog",
]

log = logging.getLogger(__name__)

START_DATETIME = datetime(2021, 1, 1, tzinfo=UTC)
"""Start of the modelled forward period (T0 = state at this instant)."""
END_DATETIME = datetime(2040, 12, 31, 23, 59, 59, tzinfo=UTC)
"""End of the modelled forward period (finalSOC = state at this instant)."""
LICENSE = "CC-BY-4.0"
"""SPDX licence of the products written by gsocseq."""
ROOT_ID = "gsocseq"
CATALOG_LEASE_SUFFIX = ".lease"
"""The lease that serialises catalog updates is the folder ``{prefix}.lease`` beside the catalog."""
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PIXEL_M = 2 * 3.141592653589793 * 6371007.2 * RES_DEG / 360.0
"""30″ at the equator, metres (raster:bands spatial_resolution)."""


@dataclass(frozen=True)
class Provenance:
    """Where a set of products comes from; recorded in every item and in the collection id."""

    code_version: str
    """gsocseq version (or git describe) that made the products."""
    scheme: str
    """Numerical scheme, ``exact`` or ``fao`` (docs/gsocseq.md)."""
    config_hash: str
    """Content hash of the run configuration."""
    inputs: dict[str, str] = field(default_factory=dict, hash=False)
    """Input dataset name → URL with version (e.g. ``"soc": "s3://…/gsocmap/v1.6.1"``)."""
    map_version: str = "v1.1"
    """GSOCseq map version; with the scheme it names the collection."""
    ssm_increase: dict[str, list[float]] | None = field(default=None, hash=False)
    """SSM input increases [low, medium, high] per land-use group of the run (fractions)."""
    uncertainty: dict[str, Any] | None = field(default=None, hash=False)
    """Uncertainty method of the run (``method``; Monte Carlo: ``draws``, ``seed``,
    ``distribution``), recorded as ``gsocseq:uncertainty``."""

    def __post_init__(self) -> None:
        for name in ("code_version", "scheme", "config_hash", "map_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InputValidationError(f"Provenance.{name}={value!r} must be a non-empty str")
        for name in ("scheme", "map_version"):
            if not _ID_RE.fullmatch(getattr(self, name)):
                raise InputValidationError(
                    f"Provenance.{name}={getattr(self, name)!r}: "
                    "letters, digits, '.', '_', '-' only"
                )

    def properties(self) -> dict[str, Any]:
        """Return the ``gsocseq:*`` item properties."""
        return {
            "gsocseq:map_version": self.map_version,
            "gsocseq:code_version": self.code_version,
            "gsocseq:scheme": self.scheme,
            "gsocseq:config_hash": self.config_hash,
            "gsocseq:inputs": dict(sorted(self.inputs.items())),
            **({"gsocseq:ssm_increase": {k: list(v) for k, v in self.ssm_increase.items()}}
               if self.ssm_increase is not None else {}),
            **({"gsocseq:uncertainty": dict(self.uncertainty)}
               if self.uncertainty is not None else {}),
        }


def collection_id(provenance: Provenance) -> str:
    """Return the collection id of a map version and scheme, e.g. ``gsocseq-v1.1-exact``."""
    return f"gsocseq-{provenance.map_version}-{provenance.scheme}"


def item_id(region: str, tile: TileKey | None = None) -> str:
    """Return the item id of a region (``ARG``) or of a region's tile (``GLB-t240_r022_c090``)."""
    if not _ID_RE.fullmatch(region):
        raise InputValidationError(f"region={region!r}: letters, digits, '.', '_', '-' only")
    return region if tile is None else f"{region}-{tile.id}"


def _raster_band(units: str, layer: str | None = None) -> RasterBand:
    """Return the raster:bands entry of a layer in ``units``.

    float32 with NaN nodata, or the dtype and nodata of a quality layer
    (``vocabulary.QUALITY_LAYERS``).
    """
    if layer in QUALITY_LAYERS:
        band = RasterBand.create(data_type=DataType(QUALITY_LAYERS[layer].dtype), unit=units,
                                 spatial_resolution=round(_PIXEL_M, 1), nodata=QUALITY_NODATA)
        return band
    band = RasterBand.create(
        data_type=DataType.FLOAT32, unit=units, spatial_resolution=round(_PIXEL_M, 1)
    )
    band.properties["nodata"] = "nan"  # JSON has no NaN; the raster extension spells it "nan"
    return band


def build_item(
    region: str,
    assets: Sequence[CogAsset],
    *,
    bbox: Sequence[float] | None,
    geometry: dict[str, Any] | None = None,
    provenance: Provenance,
    tile: TileKey | None = None,
) -> pystac.Item:
    """Build the STAC item of one region (or tile) with one COG asset per layer.

    Parameters
    ----------
    region
        ISO3 code or region name.
    assets
        The region's COGs (from :func:`~gsocseq.products.cog.write_region_cogs`), one per layer.
    bbox
        (west, south, east, north) of the region, degrees; ``None``: the rasters' bounds.
    geometry
        GeoJSON geometry of the region; default: the bbox polygon.
    provenance
        Code version, scheme, config hash and inputs recorded as ``gsocseq:*`` properties.
    tile
        The tile of the global grid this item covers, if any.
    """
    if not assets:
        raise InputValidationError(f"build_item({region!r}): no assets")
    layers = [a.layer for a in assets]
    if len(set(layers)) != len(layers):
        raise InputValidationError(f"build_item({region!r}): duplicate layers in {layers}")
    if bbox is None:
        bbox = _union_bbox([a.bbox for a in assets])
    bbox = [float(v) for v in bbox]
    if len(bbox) != 4 or not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise InputValidationError(f"build_item({region!r}): bbox={bbox} is not (W, S, E, N)")
    if geometry is None:
        geometry = _bbox_polygon(bbox)
    props: dict[str, Any] = {
        "title": f"GSOCseq {provenance.map_version} {region}" + (f" {tile.id}" if tile else ""),
        "start_datetime": pystac.utils.datetime_to_str(START_DATETIME),
        "end_datetime": pystac.utils.datetime_to_str(END_DATETIME),
        "gsocseq:region": region,
        **provenance.properties(),
    }
    if tile is not None:
        props["gsocseq:tile"] = tile.id
    item = pystac.Item(
        id=item_id(region, tile),
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties=props,
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    RasterExtension.add_to(item)
    FileExtension.add_to(item)
    grids = {(a.shape, a.transform) for a in assets}
    proj.code = "EPSG:4326"
    if len(grids) == 1:
        _apply_grid(proj, assets[0])
    for a in sorted(assets, key=lambda a: _layer_order(a.layer)):
        asset = pystac.Asset(
            href=a.href,
            title=a.layer,
            description=a.description,
            media_type=pystac.MediaType.COG,
            roles=["data"],
        )
        item.add_asset(a.layer, asset)
        RasterExtension.ext(asset).bands = [_raster_band(a.units, a.layer)]
        file_ext = FileExtension.ext(asset)
        file_ext.size = int(a.size)
        file_ext.checksum = a.checksum
        if len(grids) > 1:
            _apply_grid(ProjectionExtension.ext(asset), a)
    return item


def add_quicklook_assets(
    item: pystac.Item, overviews: dict[str, str], thumbnail: str | None = None
) -> None:
    """Add the quick-look PNGs to an item: ``thumbnail`` and one ``<layer>_overview`` per layer.

    Roles as STAC Browser reads them (STAC best practices): the ``thumbnail`` role is the small
    picture shown in lists and cards, ``overview`` a larger view of one data asset. Media type
    ``image/png``; hrefs become relative to the item when it is written with :func:`write_catalog`.
    """
    if thumbnail is not None:
        item.add_asset("thumbnail", pystac.Asset(
            href=thumbnail, title="Thumbnail (T0)", media_type=pystac.MediaType.PNG,
            roles=["thumbnail"],
        ))
    for layer, href in sorted(overviews.items(), key=lambda kv: _layer_order(kv[0])):
        item.add_asset(f"{layer}_overview", pystac.Asset(
            href=href, title=f"{layer} quick look",
            description=f"Quick look of {layer} (PNG, colour bar in {_units(layer)})",
            media_type=pystac.MediaType.PNG, roles=["overview"],
        ))


def _units(layer: str) -> str:
    """Return the units of a published layer (product or quality layer), '' if unknown."""
    return PUBLISHED_LAYERS[layer].units if layer in PUBLISHED_LAYERS else ""


def _apply_grid(proj: Any, a: CogAsset) -> None:
    """Set proj:shape, proj:transform and proj:bbox of a projection extension from a COG."""
    proj.shape = [int(a.shape[0]), int(a.shape[1])]
    proj.transform = [float(v) for v in a.transform]
    proj.bbox = [float(v) for v in a.bbox]


def _layer_order(layer: str) -> tuple[int, str]:
    """Sort key: FAO order for product layers, then by name."""
    names = list(PUBLISHED_LAYERS)
    return (names.index(layer), layer) if layer in PUBLISHED_LAYERS else (len(names), layer)


def _bbox_polygon(bbox: Sequence[float]) -> dict[str, Any]:
    """Return the GeoJSON polygon of a (W, S, E, N) bbox."""
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _union_bbox(bboxes: Sequence[Sequence[float]]) -> list[float]:
    """Return the smallest bbox holding all ``bboxes``."""
    return [
        min(b[0] for b in bboxes),
        min(b[1] for b in bboxes),
        max(b[2] for b in bboxes),
        max(b[3] for b in bboxes),
    ]


def collection_item_assets(provenance: Provenance) -> dict[str, pystac.ItemAssetDefinition]:
    """Return the collection's ``item_assets``: FAO's 29 layers (and the Monte Carlo ones).

    The 36 layers of ``vocabulary.MONTECARLO_LAYERS`` are added when the run's uncertainty
    method (``provenance.uncertainty["method"]``) is ``montecarlo``.
    """
    layers = dict(LAYERS)
    if (provenance.uncertainty or {}).get("method") == "montecarlo":
        layers |= {layer: spec.units for layer, spec in MONTECARLO_LAYERS.items()}
    return {
        layer: pystac.ItemAssetDefinition.create(
            title=layer,
            description=layer_description(layer),
            media_type=pystac.MediaType.COG,
            roles=["data"],
            extra_fields={"raster:bands": [_raster_band(units, layer).to_dict()]},
        )
        for layer, units in layers.items()
    }


def build_collection(provenance: Provenance, bbox: Sequence[float]) -> pystac.Collection:
    """Build the (empty) collection of a map version and scheme with its item_assets.

    The item_assets are those of :func:`collection_item_assets`.
    """
    coll = pystac.Collection(
        id=collection_id(provenance),
        title=f"GSOCseq {provenance.map_version} ({provenance.scheme} scheme)",
        description=(
            "Soil organic carbon sequestration potential, 0-30 cm, following FAO's GSOCseq "
            f"{provenance.map_version} procedure (RothC-26.3, {provenance.scheme} numerical "
            "scheme): initial stock T0 (2020), 2040 stocks, absolute and relative sequestration "
            "rates under business as usual and three sustainable soil management scenarios, and "
            "their uncertainties. One item per region; one COG asset per layer (FAO file names)."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([[float(v) for v in bbox]]),
            pystac.TemporalExtent([[START_DATETIME, END_DATETIME]]),
        ),
        license=LICENSE,
        keywords=["soil organic carbon", "sequestration", "RothC", "GSOCseq", "FAO"],
        providers=[
            pystac.Provider(
                name="FAO Global Soil Partnership",
                roles=[pystac.ProviderRole.PRODUCER],
                url="https://www.fao.org/global-soil-partnership/",
                description="GSOCseq procedure and product specification",
            ),
            pystac.Provider(
                name="gsocseq",
                roles=[pystac.ProviderRole.PROCESSOR],
                description=f"cloud-native implementation, version {provenance.code_version}",
            ),
        ],
        summaries=pystac.Summaries(
            {
                "proj:code": ["EPSG:4326"],
                "gsocseq:scheme": [provenance.scheme],
                "gsocseq:map_version": [provenance.map_version],
                "gsocseq:region": [],
            }
        ),
    )
    RasterExtension.add_to(coll)
    coll.item_assets = collection_item_assets(provenance)
    return coll


class FsspecStacIO(pystac.StacIO):
    """pystac I/O through fsspec (any store); every write goes to a temporary key then moves."""

    def __init__(self, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.storage_options = dict(storage_options or {})

    def _fs(self, href: str) -> tuple[Any, str]:
        return filesystem(str(href), self.storage_options)

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        """Read a UTF-8 document from ``source`` (URL or path)."""
        fs, path = self._fs(str(source))
        return fs.cat_file(path).decode("utf-8")

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        """Write ``txt`` to ``dest`` via ``<dest>.tmp-<random>`` and a move, unless it holds ``txt``.

        A document whose bytes are unchanged is not rewritten (its timestamp stays: an
        incremental republication touches only the documents that changed).
        """
        data = txt.encode("utf-8")
        if read_bytes(str(dest), self.storage_options) == data:
            return
        put_bytes(str(dest), data, self.storage_options)

    def exists(self, href: str) -> bool:
        """Return whether ``href`` exists on its store (now, not per a cached listing).

        fsspec shares one filesystem instance per storage options in a process, and s3fs caches
        directory listings: another process (or a clean-up) may have removed the key since.
        """
        return exists(href, self.storage_options)


def read_catalog(url: str, storage_options: dict[str, Any] | None = None) -> pystac.Catalog:
    """Read the root catalog at ``url`` (``…/catalog.json``) via fsspec; children load lazily."""
    return pystac.Catalog.from_file(url, stac_io=FsspecStacIO(storage_options))


def write_catalog(
    items: Sequence[pystac.Item],
    out_prefix: str,
    storage_options: dict[str, Any] | None = None,
    *,
    provenance: Provenance,
    validate: bool = True,
    schemas_dir: str | Path | None = None,
) -> str:
    """Add ``items`` to the catalog at ``out_prefix`` and write it; return the catalog.json URL.

    An existing catalog is merged: items of other regions are kept (not rewritten), an item with
    the same id is replaced, the collection's extent and ``gsocseq:region`` summary grow. Only the
    given items, the collection and the root catalog are written, in that order, each atomically.
    The given items join the catalog: their self href is set to where they are written and their
    asset hrefs become relative to it (``asset.get_absolute_href()`` still resolves them).
    With ``validate`` (default) every written document is first checked against the offline STAC
    schemas (:mod:`gsocseq.products.stac_schemas`); a failure raises
    :class:`~gsocseq.errors.ProductValidationError` before anything is written.

    The merge is a read-modify-write of ``collection.json`` and ``catalog.json``, done under a
    lease beside the prefix (:class:`gsocseq.lease.Lease` at ``{prefix}.lease/``): concurrent writers
    of any region wait for each other (seconds), so no update is lost and a catalog created by
    two writers at once ends as one catalog holding both items.
    """
    prefix = out_prefix.rstrip("/")
    lease = Lease(f"{prefix}{CATALOG_LEASE_SUFFIX}", storage_options,
                  purpose=f"STAC update of {', '.join(it.id for it in items)}")
    with held(lease):  # the merge is a read-modify-write of collection.json and catalog.json
        return _write_catalog(items, prefix, storage_options, provenance=provenance,
                              validate=validate, schemas_dir=schemas_dir)


def _write_catalog(
    items: Sequence[pystac.Item],
    prefix: str,
    storage_options: dict[str, Any] | None,
    *,
    provenance: Provenance,
    validate: bool,
    schemas_dir: str | Path | None,
) -> str:
    """Merge and write the catalog (see :func:`write_catalog`); the caller holds the lease."""
    io = FsspecStacIO(storage_options)
    root_url = f"{prefix}/catalog.json"
    cid = collection_id(provenance)
    if io.exists(root_url):
        root = pystac.Catalog.from_file(root_url, stac_io=io)
    else:
        root = pystac.Catalog(
            id=ROOT_ID,
            title="gsocseq products",
            description="GSOCseq soil organic carbon sequestration potential maps made by gsocseq.",
        )
    root.catalog_type = pystac.CatalogType.SELF_CONTAINED
    root.set_self_href(root_url)
    new_bboxes = [list(it.bbox) for it in items if it.bbox is not None]
    coll = root.get_child(cid)
    if coll is None:
        if not new_bboxes:
            raise InputValidationError(f"write_catalog: no items for new collection {cid!r}")
        coll = build_collection(provenance, _union_bbox(new_bboxes))
        root.add_child(coll)
    elif not isinstance(coll, pystac.Collection):
        raise ProductValidationError(f"{root_url}: child {cid!r} is not a collection")
    else:  # a Monte Carlo run joining a collection made by a brackets run adds its layers
        missing = {k: v for k, v in collection_item_assets(provenance).items()
                   if k not in (coll.item_assets or {})}
        if missing:
            coll.item_assets = {**(coll.item_assets or {}), **missing}
    coll.set_self_href(f"{prefix}/{cid}/collection.json")
    _merge_items(coll, items, prefix, cid)
    problems = []
    if validate:
        validator = offline_validator(schemas_dir)
        for obj in (*items, coll, root):
            problems += schema_problems(obj.to_dict(), validator, obj.get_self_href())
    if problems:
        raise ProductValidationError(
            "STAC documents failed validation, nothing written:\n- " + "\n- ".join(problems)
        )
    for it in items:
        it.save_object(include_self_link=False, stac_io=io)
    coll.save_object(include_self_link=False, stac_io=io)
    root.save_object(include_self_link=False, stac_io=io)
    log.info("catalog %s: %d item(s) written to %s", root_url, len(items), cid)
    return root_url


def _merge_items(
    coll: pystac.Collection, items: Sequence[pystac.Item], prefix: str, cid: str
) -> None:
    """Replace or add ``items`` in ``coll`` without loading its other items; grow its metadata."""
    new_ids = {it.id for it in items}
    if len(new_ids) != len(items):
        raise InputValidationError(f"write_catalog: duplicate item ids in {[i.id for i in items]}")
    coll.links = [
        link
        for link in coll.links
        if not (link.rel == pystac.RelType.ITEM and _linked_id(link) in new_ids)
    ]
    bboxes = [list(b) for b in coll.extent.spatial.bboxes]
    regions = set(coll.summaries.get_list("gsocseq:region") or [])
    for it in items:
        coll.add_item(it)
        it.set_self_href(f"{prefix}/{cid}/{it.id}/{it.id}.json")
        _relative_asset_hrefs(it)
        if it.bbox is not None:
            bboxes.append(list(it.bbox))
        regions.add(str(it.properties.get("gsocseq:region", it.id)))
    coll.extent.spatial.bboxes = [_union_bbox(bboxes)]
    coll.summaries.add("gsocseq:region", sorted(regions))


def _linked_id(link: pystac.Link) -> str:
    """Return the item id an item link points to (file name ``<id>.json`` of the layout)."""
    return posixpath.basename(str(link.get_target_str() or "")).removesuffix(".json")


def _relative_asset_hrefs(item: pystac.Item) -> None:
    """Make asset hrefs relative to the item when both lie on the same store."""
    self_href = item.get_self_href()
    if self_href is None:
        return
    for asset in item.assets.values():
        href = asset.get_absolute_href() or asset.href
        if _store_of(href) == _store_of(self_href):
            asset.href = make_relative_href(_local_path(href), _local_path(self_href))


def _local_path(href: str) -> str:
    """Return a ``file://`` URL as a plain path (other hrefs unchanged)."""
    return href.removeprefix("file://")


def _store_of(href: str) -> tuple[str, str]:
    """Return (scheme, bucket/host) of a URL; ("", "") for a local path."""
    if "://" not in href:
        return ("file", "")
    scheme, rest = href.split("://", 1)
    return ("file", "") if scheme == "file" else (scheme, rest.split("/", 1)[0])


