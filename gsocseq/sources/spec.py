"""Inputs declared as data: a frozen :class:`SourceSpec` per dataset and :class:`SourcesConfig`.

A spec says where a dataset lives (URL or URL template), which variable/band to read, its *native*
units, nodata value, period and how to resample it onto the 30″ grid. Adapters
(:mod:`gsocseq.sources.adapters`) read the spec and normalise; nothing here does I/O except
:func:`load_sources`, which parses a ``sources.toml``.

URL templates use ``str.format`` fields: ``{var}`` (climate variable), ``{year}``, ``{depth}``
(soil layer), ``{month}`` (1…12), ``{month:02d}``, ``{first}``/``{last}`` (CRU decade files).
Relative URLs in a TOML file are resolved against the directory of that file, so a
``sources.toml`` travels with its data (``file://``, ``memory://`` or ``s3://``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from typing import Any

import fsspec

from gsocseq.errors import InputValidationError, SourceError

#: The datasets the cube needs, in build order.
DATASETS: tuple[str, ...] = ("boundaries", "soc", "clay", "land_cover", "climate", "cover")
#: Datasets a sources config may declare; the cube holds their variable only when declared.
#: ``soc_uncertainty``: the SOC map's own uncertainty raster (national GSOCmap submissions ship
#: one), read by kind ``gsocmap_uncertainty`` (see :class:`~gsocseq.sources.adapters.
#: SocUncertaintyAdapter` for its units convention); without it Monte Carlo draws SOC ±20 %.
OPTIONAL_DATASETS: tuple[str, ...] = ("soc_uncertainty",)

#: Adapter kinds (keys of :data:`gsocseq.sources.adapters.ADAPTERS`).
KINDS: tuple[str, ...] = (
    "gsocmap",
    "gsocmap_uncertainty",
    "soilgrids",
    "esa_cci",
    "terraclimate",
    "cru_ts",
    "cover_monthly",
    "natural_earth",
    "stac",
)
RESAMPLING: tuple[str, ...] = ("bilinear", "nearest", "mode")


@dataclass(frozen=True)
class SourceSpec:
    """One input dataset, declared as data."""

    name: str
    """Dataset role: one of :data:`DATASETS`."""
    kind: str
    """Adapter that reads it: one of :data:`KINDS`."""
    url: str
    """fsspec URL, or URL template (see module docstring)."""
    variable: str = ""
    """Variable / attribute to read (netCDF variable, vector attribute); empty for rasters."""
    units: str = ""
    """Native units of the file (converted by the adapter), e.g. ``t C/ha``, ``kg/m2``, ``g/kg``."""
    nodata: float | None = None
    """Nodata value when the file does not declare one."""
    period: tuple[int, int] | None = None
    """First and last year covered (climate); the year of the map for land cover."""
    resampling: str = "bilinear"
    """Onto the 30″ grid: ``bilinear`` (continuous), ``nearest`` (classes, as FAO) or ``mode``."""
    layers: tuple[str, ...] = ()
    """Sub-datasets: soil depth labels, climate variable names, …"""
    crs: str = "EPSG:4326"
    """Declared CRS; a file in another CRS is rejected."""
    version: str = ""
    """Dataset version (recorded in the cube attributes)."""
    first_band_year: int | None = None
    """Band-per-year rasters (ESA CCI v2.0.7 1992–2015 in one file): band = year − this + 1."""
    bands: int | None = None
    """Band count the file must have (checked on read); default 1 for yearly maps."""
    storage_options: Mapping[str, Any] | None = field(default=None, compare=False, hash=False,
                                                      repr=False)
    """fsspec options for this source only (else the run's rule: :func:`source_options`)."""
    collection: str = ""
    """``stac`` kind: collection id; ``url`` is the STAC API root or a static ``catalog.json``."""
    asset: str = ""
    """``stac`` kind: asset key to load (``lccs_class``, ``500m_16_days_NDVI``)."""
    query: str = ""
    """``stac`` kind: STAC query-extension filter; a TOML table, kept as canonical JSON."""
    sign: str = ""
    """``stac`` kind: asset signer, ``""``/``none`` or ``planetary-computer``."""
    threshold: float = 0.4
    """``stac`` cover: NDVI above which a composite counts as vegetated (FAO v2 script 0.4)."""
    qa_asset: str = ""
    """``stac`` cover: optional pixel-reliability asset; when set only reliability 0-1 counts."""

    def __post_init__(self) -> None:
        if isinstance(self.query, Mapping):
            object.__setattr__(self, "query", json.dumps(self.query, sort_keys=True))
        if self.kind == "stac" and not (self.collection and self.asset):
            raise InputValidationError(
                f"source {self.name!r}: kind 'stac' needs a collection and an asset"
            )
        if self.kind not in KINDS:
            raise InputValidationError(
                f"source {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}"
            )
        if self.resampling not in RESAMPLING:
            raise InputValidationError(
                f"source {self.name!r}: unknown resampling {self.resampling!r}; "
                f"expected one of {RESAMPLING}"
            )
        if not self.url:
            raise InputValidationError(f"source {self.name!r}: empty url")

    def format_url(self, **fields_: Any) -> str:
        """Fill the URL template, e.g. ``spec.format_url(var="ppt", year=1990)``."""
        try:
            return self.url.format(**fields_)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputValidationError(
                f"source {self.name!r}: cannot fill url template {self.url!r} with {fields_}: {exc}"
            ) from exc


@dataclass(frozen=True)
class SourcesConfig:
    """All input datasets of a run, plus named region aliases (e.g. ``demo`` → ``DEM``)."""

    specs: tuple[SourceSpec, ...]
    """One spec per dataset of :data:`DATASETS`, plus any of :data:`OPTIONAL_DATASETS`."""
    regions: tuple[tuple[str, str], ...] = ()
    """Region aliases: (name, region spec string)."""
    origin: str = ""
    """URL of the TOML file the config came from (empty for built-in)."""
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """fsspec storage options used to read every source (credentials, endpoint)."""

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        missing = [d for d in DATASETS if d not in names]
        if missing:
            raise InputValidationError(
                f"sources config {self.origin or '<built-in>'}: missing dataset(s) {missing}"
            )
        for spec in self.specs:
            if spec.name == "soc_uncertainty" and spec.kind != "gsocmap_uncertainty":
                raise InputValidationError(
                    f"sources config {self.origin or '<built-in>'}: dataset 'soc_uncertainty' has "
                    f"kind {spec.kind!r}; expected kind = 'gsocmap_uncertainty'"
                )

    def __contains__(self, name: object) -> bool:
        """Whether dataset ``name`` is declared (``"soc_uncertainty" in sources``)."""
        return any(spec.name == name for spec in self.specs)

    def optional(self) -> tuple[str, ...]:
        """Return the :data:`OPTIONAL_DATASETS` this config declares, in that order."""
        return tuple(name for name in OPTIONAL_DATASETS if name in self)

    def __getitem__(self, name: str) -> SourceSpec:
        """Return the spec of dataset ``name``."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise KeyError(f"no source named {name!r}; have {[s.name for s in self.specs]}")

    def region_alias(self, name: str) -> str | None:
        """Return the region spec string an alias stands for, or None."""
        return dict(self.regions).get(name)

    def versions(self) -> dict[str, str]:
        """Return ``{dataset: "kind version url"}`` for provenance attributes."""
        return {s.name: _version(s) for s in self.specs}


def _version(s: SourceSpec) -> str:
    if s.kind != "stac":
        return f"{s.kind} {s.version} {s.url}".strip()
    extra = f" query={s.query}" if s.query else ""
    return f"stac {s.version} {s.url} collection={s.collection} asset={s.asset} period={s.period}{extra}"


_SPEC_FIELDS = {f.name for f in fields(SourceSpec)}


def _resolve(url: str, base: str) -> str:
    if not base or "://" in url or url.startswith("/"):
        return url
    return base.rstrip("/") + "/" + url


def _spec_from_table(name: str, table: Mapping[str, Any], base: str, origin: str) -> SourceSpec:
    unknown = set(table) - _SPEC_FIELDS
    if unknown:
        raise InputValidationError(
            f"sources config {origin}: dataset {name!r} has unknown key(s) {sorted(unknown)}"
        )
    kw = dict(table)
    kw["name"] = name
    if "url" in kw:
        kw["url"] = _resolve(str(kw["url"]), base)
    for key in ("period", "layers"):
        if key in kw and kw[key] is not None:
            kw[key] = tuple(kw[key])
    try:
        return SourceSpec(**kw)
    except TypeError as exc:
        raise InputValidationError(f"sources config {origin}: dataset {name!r}: {exc}") from exc


def parse_sources(
    text: str, origin: str = "", base: str = "", storage_options: Mapping[str, Any] | None = None
) -> SourcesConfig:
    """Parse ``sources.toml`` text into a :class:`SourcesConfig` (relative URLs from ``base``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputValidationError(f"sources config {origin}: invalid TOML: {exc}") from exc
    regions = tuple((str(k), str(v)) for k, v in doc.pop("regions", {}).items())
    specs = tuple(
        _spec_from_table(name, table, base, origin)
        for name, table in doc.get("sources", {}).items()
    )
    return SourcesConfig(specs, regions, origin, dict(storage_options or {}))


#: fsspec options for anonymous public reads, per protocol (sources on another store than --out).
ANONYMOUS: dict[str, dict[str, Any]] = {
    "s3": {"anon": True}, "s3a": {"anon": True}, "gs": {"token": "anon"},
    "gcs": {"token": "anon"},
}


def _protocol(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def source_options(
    url: str, out: str | None = None, out_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the default fsspec options for reading a source at ``url``.

    A source on the same protocol as the output store (``--out``) is read with the output's
    options (the same endpoint and credentials: a mirror bucket, the demo world under ``--out``);
    any other source with anonymous public access (``s3``: ``anon``; ``gs``: anonymous token;
    ``https``/``file``: nothing). The output's options never reach a source on another protocol
    (e.g. S3 retry ``config_kwargs`` on an HTTPS source). A source entry's own
    ``storage_options`` replace these.
    """
    proto = _protocol(url)
    if out is not None and _protocol(out) == proto:
        return dict(out_options or {})
    return dict(ANONYMOUS.get(proto, {}))


OBJECT_STORES: frozenset[str] = frozenset({"s3", "gs", "gcs", "az", "abfs"})


def _stac_options(
    spec: SourceSpec, out: str, out_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Options of a ``stac`` source: its assets' URLs come from the items, not from ``spec.url``.

    An API or catalog on the output's protocol gets the output's options; otherwise, when the output
    is on an object store, its options (endpoint, credentials) go to the asset reads — assets are
    commonly mirrored to the output's store — and only GDAL's object-store settings are taken from
    them (:func:`gsocseq.gdal_paths.s3_options`); the catalog itself is then read with no options
    unless it is on an object store too (:class:`gsocseq.sources.stac.FsspecStacIO`).
    """
    if _protocol(out) in OBJECT_STORES:
        return dict(out_options or {})
    return source_options(spec.url, out, out_options)


def options_for(spec: SourceSpec, fallback: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the fsspec options to read ``spec``: its own when set, else ``fallback``."""
    return dict(spec.storage_options if spec.storage_options is not None else fallback or {})


def load_sources(
    url_or_path: str | None = None,
    overrides: Mapping[str, str | Mapping[str, Any]] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    out: str | None = None,
) -> SourcesConfig:
    """Read a ``sources.toml`` (default: the shipped one with the real public datasets).

    ``overrides`` maps a dataset name to a URL (``{"soc": "s3://b/soc.tif"}``) or to a table of
    spec fields (``{"soc": {"url": …, "units": "kg/m2"}}``). The TOML may be at any fsspec URL
    (``https://`` included); relative entries are resolved against it. Without ``out``,
    ``storage_options`` read the TOML and every source (kept as ``config.storage_options``). With
    ``out`` (the output store's URL, whose options ``storage_options`` are), options are per store
    (:func:`source_options`): each source without its own ``storage_options`` gets the output's
    options only when it is on the output's protocol, else anonymous public access.
    """
    if out is not None:
        toml_so = source_options(url_or_path or "", out, storage_options)
        config = load_sources(url_or_path, overrides, toml_so)
        specs = tuple(
            s if s.storage_options is not None
            else replace(s, storage_options=_stac_options(s, out, storage_options)
                         if s.kind == "stac" else source_options(s.url, out, storage_options))
            for s in config.specs
        )
        return replace(config, specs=specs)
    so = dict(storage_options or {})
    if url_or_path is None:
        text = resources.files("gsocseq.sources").joinpath("sources.toml").read_text()
        origin, base = "gsocseq/sources/sources.toml", ""
    else:
        origin = str(url_or_path)
        try:
            with fsspec.open(origin, "rt", **so) as f:
                text = f.read()
        except (FileNotFoundError, OSError) as exc:
            raise SourceError(f"sources config not found or unreadable: {origin}: {exc}") from exc
        base = origin.rsplit("/", 1)[0] if "/" in origin else ""
    config = parse_sources(text, origin, base, so)
    return apply_overrides(config, overrides) if overrides else config


def apply_overrides(
    config: SourcesConfig, overrides: Mapping[str, str | Mapping[str, Any]]
) -> SourcesConfig:
    """Return a copy of ``config`` with some datasets replaced by URL or by spec fields.

    An optional dataset (:data:`OPTIONAL_DATASETS`) not declared yet is added from a table of
    spec fields (``{"soc_uncertainty": {"url": …, "kind": "gsocmap_uncertainty", "units": "%"}}``).
    """
    specs = {s.name: s for s in config.specs}
    for name, value in overrides.items():
        table = {"url": value} if isinstance(value, str) else dict(value)
        if name not in specs and name in OPTIONAL_DATASETS and not isinstance(value, str):
            specs[name] = _spec_from_table(name, table, "", "sources override")
            continue
        if name not in specs:
            raise InputValidationError(
                f"sources override: unknown dataset {name!r}; expected one of {list(specs)} "
                f"(or a table of spec fields for optional {list(OPTIONAL_DATASETS)})"
            )
        unknown = set(table) - _SPEC_FIELDS
        if unknown:
            raise InputValidationError(
                f"sources override for {name!r}: unknown key(s) {sorted(unknown)}"
            )
        for key in ("period", "layers"):
            if table.get(key) is not None:
                table[key] = tuple(table[key])
        specs[name] = replace(specs[name], **table)
    return replace(config, specs=tuple(specs.values()))
