"""Publish a finished run: one COG per product layer, then the STAC item and catalog, then a marker.

Publication is content-addressed: its digest is a hash of every tile's checksums and the layer list.
``published.json`` (written last) records the digest, so a rerun with the same results writes nothing.
``publishing.json`` records the digest being published, so an interrupted publication resumes
keeping the COGs it already wrote (temporary objects left by a killed writer are removed).
The COGs are written by tasks (:mod:`gsocseq.pipeline.publish_tasks`): on the cluster when a dask
client is given. A ``world`` run also publishes every country's COGs and STAC item, cut from the
world product cube, and per-country totals.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from gsocseq import __version__, storage
from gsocseq.config import RunConfig
from gsocseq.cube.tile_writer import remove_partial_writes
from gsocseq.errors import PipelineError
from gsocseq.pipeline.incremental import tile_digests_of
from gsocseq.pipeline.plan import RunPlan, resolve
from gsocseq.pipeline.summary import SCENARIO_LABELS, region_totals, summarise
from gsocseq.pipeline.tile import outcome_from_marker
from gsocseq.vocabulary import (
    LAYER_NAMES,
    MONTECARLO_BASES,
    MONTECARLO_STATISTICS,
    SCHEME_QUALITY_LAYERS,
    montecarlo_layer,
)

log = logging.getLogger(__name__)

PUBLICATION_FORMAT: int = 2
"""What a publication holds; part of the digest (2: COGs, quick-look PNGs, STAC with their assets)."""


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` wrote (or found up to date)."""

    cogs: dict[str, str]
    """Layer name → URL of its COG, FAO order."""
    stac_url: str
    """URL of the STAC root ``catalog.json``."""
    stac_items: tuple[str, ...]
    """URLs of the STAC items written for the region."""
    totals: dict[str, float]
    """Regional totals (``T0_MtC``, ``bau_rate_MtC_per_yr`` …; units in the names)."""
    digest: str
    """SHA-256 of the published content (tile checksums + layers)."""
    skipped: bool
    """``True`` when everything was already published with this digest."""
    quicklooks: dict[str, str] = field(default_factory=dict)
    """Layer → URL of its quick-look PNG (STAC ``overview`` assets)."""
    thumbnail: str | None = None
    """URL of the region's thumbnail PNG (STAC ``thumbnail`` asset)."""
    country_totals: dict[str, dict[str, float]] = field(default_factory=dict)
    """World runs: ISO3 → the country's totals (same keys as ``totals``)."""
    world_tiles: tuple[str, ...] = ()
    """Country runs: tiles of a published world run that this run replaced (its cells only)."""
    rewritten: tuple[str, ...] | None = None
    """Layers of the region whose COG was uploaded now (``None``: not known, e.g. skipped)."""
    items_rewritten: tuple[str, ...] = ()
    """STAC items (region, countries) written now."""


def product_layers(scenarios: tuple[str, ...], uncertainty: bool, scheme: str = "exact",
                   montecarlo: bool = False) -> tuple[str, ...]:
    """Return the product layers of the requested scenarios and the scheme's quality layers.

    FAO order (T0 always), then ``vocabulary.SCHEME_QUALITY_LAYERS[scheme]``, then with
    ``montecarlo`` the Monte Carlo layers of T0 and the scenarios' final SOC and ASR.
    """
    labels = {SCENARIO_LABELS[s] for s in scenarios}
    wanted = {"T0"}
    for label in labels:
        wanted |= {f"finalSOC_{label}", f"AbsDiff_{label}", f"ASR_{label}"}
        if label != "BAU":
            wanted |= {f"RelDiff_{label}", f"RSR_{label}"}
    if uncertainty:
        unc = {"T0_Uncertainty"} | {f"{n}_Uncertainty" for n in wanted if n.startswith(("ASR",
                                                                                           "RSR"))}
        unc |= {"BAU_Uncertainty"} if "BAU" in labels else set()
        unc |= {"SSM_Uncertainty"} if labels - {"BAU"} else set()
        wanted |= unc
    mc = [montecarlo_layer(b, st) for b in MONTECARLO_BASES for st in MONTECARLO_STATISTICS
          if montecarlo and b in wanted]
    return (*(n for n in LAYER_NAMES if n in wanted), *SCHEME_QUALITY_LAYERS[scheme], *mc)


def uncertainty_provenance(config: RunConfig, sources: Any = None) -> dict[str, Any]:
    """Return the run's uncertainty method as recorded in STAC (``gsocseq:uncertainty``).

    ``sources`` (the run's :class:`~gsocseq.sources.spec.SourcesConfig`): when it declares
    ``soc_uncertainty``, a Monte Carlo run records under ``soc_half_width`` that SOC's half-width
    came per pixel from the SOC map's own layer (``half_widths["soc"]`` is then unused).
    """
    doc: dict[str, Any] = {"method": config.uncertainty_method}
    if config.draws:
        from gsocseq.model.montecarlo import DRAWN_INPUTS, HALF_WIDTHS

        doc.update(draws=config.draws, seed=config.seed, distribution=(
            "normal factor 1 + (h/1.96)·z per input and draw, z clipped to ±4, keyed by seed, "
            "global cell row/column and draw (gsocseq.model.montecarlo)"),
            half_widths={k: HALF_WIDTHS[k] for k in DRAWN_INPUTS})
        if sources is not None and "soc_uncertainty" in sources:
            spec = sources["soc_uncertainty"]
            doc["soc_half_width"] = {
                "from": "soc_uncertainty layer of the SOC map, per pixel (cube variable "
                        "soc_uncertainty, % of SOC, half-width of the 95 % range)",
                "source": sources.versions()["soc_uncertainty"],
                "units": spec.units or "(file's own tag)",
            }
    return doc


def read_markers(config: RunConfig, plan: RunPlan) -> list[dict[str, Any]]:
    """Return every tile's completion marker; raise :class:`PipelineError` naming missing tiles."""
    so = config.storage_options
    markers, missing = [], []
    for tile_id in plan.tile_ids:
        marker = storage.read_json(plan.marker_url(tile_id), so)
        if marker is None or marker.get("config_hash") != plan.config_hash:
            missing.append(tile_id)
        else:
            markers.append(marker)
    if missing:
        raise PipelineError(
            f"cannot publish {plan.region}: {len(missing)} tile(s) not finished: {', '.join(missing)}"
        )
    return markers


def publication_digest(config: RunConfig, plan: RunPlan, markers: list[dict[str, Any]]) -> str:
    """Return the SHA-256 of what would be published: tile checksums, layers and locations."""
    h = hashlib.sha256()
    for marker in markers:
        h.update(json.dumps([marker["tile"], marker["checksums"]], sort_keys=True).encode())
    layers = product_layers(config.scenarios, config.uncertainty, config.scheme,
                            config.draws > 0)
    h.update(json.dumps([plan.config_hash, plan.products_url, plan.stac_url, layers,
                         PUBLICATION_FORMAT]).encode())
    return h.hexdigest()


def publish(
    config: RunConfig, plan: RunPlan, client: Any = None, *,
    changed_tiles: Collection[str] | None = None,
) -> PublishResult:
    """Write the COGs and the STAC catalog of a finished run (the catalog last); skip if current.

    With a dask ``client`` the COGs are written by tasks on its workers (one per layer, one per
    country of a world run), then the quick looks (one task per region); without, in this
    process.

    ``changed_tiles`` (tile ids whose product-cube values changed since the last publication of
    this run, e.g. after an incremental rebuild or a country rerun merged into a world) makes the
    publication partial when a previous one exists: the region's layers are re-encoded from the
    product cube — a world's global layers only in the parts holding a changed tile, then
    reassembled (:mod:`gsocseq.products.cog_parts`) — but a file is uploaded only when its bytes
    changed; of a world run's national sets
    only those of the countries with a changed tile are re-encoded (the same rule), the others —
    COGs, quick looks, STAC items — are not touched; STAC items and quick looks are rewritten
    only for regions with a rewritten COG. ``None``: everything is written.

    A country run whose configuration (``region`` aside) also made a published world run under
    the same output then writes its tiles into that world's product cube and republishes the world
    with those tiles (:func:`gsocseq.pipeline.publish_world.update_world`).
    """
    from gsocseq.pipeline.publish_world import update_world

    result = _publish(config, plan, client, changed_tiles)
    world_tiles = update_world(config, plan, client, republish=_publish)
    return result if not world_tiles else replace(result, world_tiles=world_tiles)


def _publish(
    config: RunConfig, plan: RunPlan, client: Any, changed_tiles: Collection[str] | None
) -> PublishResult:
    """:func:`publish` of the run's own products (no world update)."""
    from gsocseq.pipeline import publish_tasks as tasks
    from gsocseq.products.quicklook import write_quicklooks
    from gsocseq.products.stac import Provenance, add_quicklook_assets, build_item, write_catalog
    from gsocseq.sources.stac import stac_inputs

    so = config.storage_options
    markers = read_markers(config, plan)
    digest = publication_digest(config, plan, markers)
    totals = region_totals(summarise(
        [outcome_from_marker(m, "done") for m in markers], region=plan.region,
        config_hash=plan.config_hash, scenarios=config.scenarios, wall_seconds=0.0, urls={},
    ))
    for path in remove_partial_writes(plan.product_cube_url):  # under the lease: no writer now
        log.info("removed %s (a chunk write that a killed process left unfinished)", path)
    done = storage.read_json(plan.published_url, so)
    if done is not None and done.get("digest") == digest:
        return PublishResult(dict(done["cogs"]), done["catalog"], tuple(done["items"]), totals,
                             digest, skipped=True, country_totals=dict(done.get("countries", {})),
                             quicklooks=dict(done.get("quicklooks", {})),
                             thumbnail=done.get("thumbnail"))
    partial = changed_tiles is not None and done is not None
    resuming = (storage.read_json(f"{plan.run_url}/publishing.json", so) or {}).get("digest")
    storage.write_json_if_changed(f"{plan.run_url}/publishing.json", {"digest": digest}, so)
    _, region = resolve(config)
    countries = tuple(region.countries) if tasks.is_world(plan) else ()
    if partial:
        changed = set(changed_tiles or ())
        countries = tuple(c for c in countries
                          if changed & {t.id for t in tasks.country_region(config, c).tiles})
    for folder in (plan.done_url, *(f"{plan.products_url}/{n}" for n in (plan.region_name,
                                                                          *countries))):
        storage.remove_temporaries(folder, so)  # left by killed writers; publication is the only one
    layers = product_layers(config.scenarios, config.uncertainty, config.scheme,
                            config.draws > 0)
    kw = {"skip_existing": resuming == digest, "only_if_changed": partial}
    assets = tasks.write_layer_cogs(
        config, plan, layers, client, **kw, digest=digest,
        changed_tiles=set(changed_tiles or ()) if partial else None,
        previous=done["digest"] if partial and done is not None else None)
    national = tasks.write_country_cogs(config, plan, countries, layers, client, **kw)
    sources, _ = resolve(config)
    inputs = {"cube": plan.cube_url, "sources": plan.sources_url or "gsocseq:sources.toml"}
    inputs.update(stac_inputs(sources, region.bbox, sources.storage_options))
    provenance = Provenance(
        code_version=__version__, scheme=config.scheme, config_hash=plan.config_hash,
        inputs=inputs, map_version=config.map_version,
        ssm_increase={k: list(v) for k, v in config.ssm_increase.items()},
        uncertainty=uncertainty_provenance(config, sources),
    )
    parts = [(plan.region_name, assets, tuple(region.bbox))] + [
        (iso3, national[iso3][0], tuple(tasks.country_region(config, iso3).bbox))
        for iso3 in countries
    ]
    if partial:  # regions whose every COG kept its bytes keep their item and pictures
        parts = [p for p in parts if any(a.written for a in p[1])]
    stac_items = [build_item(name, item_assets, bbox=bbox, provenance=provenance)
                  for name, item_assets, bbox in parts]
    calls = [(({a.layer: a.href for a in item_assets}, it.id, plan.products_url, so), {})
             for it, (_, item_assets, _) in zip(stac_items, parts, strict=True)]
    looks = dict(zip([it.id for it in stac_items],  # one task per region, beside the COG tasks
                     tasks.map_tasks(client, write_quicklooks, calls, "quicklook"), strict=True))
    for it in stac_items:
        add_quicklook_assets(it, looks[it.id].overviews, looks[it.id].thumbnail)
    catalog = (write_catalog(stac_items, plan.stac_url, so, provenance=provenance) if stac_items
               else done["catalog"])
    cogs = {a.layer: a.href for a in assets}
    written = tuple(it.get_self_href() or "" for it in stac_items)
    items = tuple(dict.fromkeys((*(done["items"] if partial else ()), *written)))
    country_totals = {**(done.get("countries", {}) if partial else {}),
                      **{iso3: national[iso3][1] for iso3 in countries}}
    if plan.region_name in looks:
        overviews, thumbnail = looks[plan.region_name].overviews, looks[plan.region_name].thumbnail
    else:  # a partial publication that left the region's COGs as they were
        overviews, thumbnail = dict(done.get("quicklooks", {})), done.get("thumbnail")
    storage.write_json(plan.published_url, {"digest": digest, "cogs": cogs, "catalog": catalog,
                                            "items": list(items), "totals": totals,
                                            "countries": dict(sorted(country_totals.items())),
                                            "quicklooks": overviews,
                                            "thumbnail": thumbnail,
                                            "tile_digests": tile_digests_of(markers)}, so)
    return PublishResult(cogs, catalog, items, totals, digest, skipped=False,
                         country_totals=country_totals, quicklooks=overviews,
                         thumbnail=thumbnail,
                         rewritten=tuple(a.layer for a in assets if a.written),
                         items_rewritten=tuple(it.id for it in stac_items))
