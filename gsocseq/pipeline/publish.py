"""Publish a finished run: one COG per product layer, then the STAC item and catalog, then a marker.

Publication is content-addressed: its digest is a hash of every tile's checksums and the layer list.
``published.json`` (written last) records the digest, so a rerun with the same results writes nothing.
``publishing.json`` records the digest being published, so an interrupted publication resumes
keeping the COGs it already wrote (temporary objects left by a killed writer are removed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gsocseq import __version__, storage
from gsocseq.config import RunConfig
from gsocseq.cube.product_cube import open_product_cube
from gsocseq.errors import PipelineError
from gsocseq.pipeline.plan import RunPlan, resolve
from gsocseq.pipeline.summary import SCENARIO_LABELS, region_totals, summarise
from gsocseq.pipeline.tile import outcome_from_marker
from gsocseq.vocabulary import LAYER_NAMES, SCHEME_QUALITY_LAYERS


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


def product_layers(scenarios: tuple[str, ...], uncertainty: bool, scheme: str = "exact"
                   ) -> tuple[str, ...]:
    """Return the product layers of the requested scenarios and the scheme's quality layers.

    FAO order (T0 always), then ``vocabulary.SCHEME_QUALITY_LAYERS[scheme]``.
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
    return (*(n for n in LAYER_NAMES if n in wanted), *SCHEME_QUALITY_LAYERS[scheme])


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
    layers = product_layers(config.scenarios, config.uncertainty, config.scheme)
    h.update(json.dumps([plan.config_hash, plan.products_url, plan.stac_url, layers]).encode())
    return h.hexdigest()


def publish(config: RunConfig, plan: RunPlan) -> PublishResult:
    """Write the COGs and the STAC catalog of a finished run (the catalog last); skip if current."""
    from gsocseq.products.cog import write_region_cogs
    from gsocseq.products.stac import Provenance, build_item, write_catalog

    so = config.storage_options
    markers = read_markers(config, plan)
    digest = publication_digest(config, plan, markers)
    totals = region_totals(summarise(
        [outcome_from_marker(m, "done") for m in markers], region=plan.region,
        config_hash=plan.config_hash, scenarios=config.scenarios, wall_seconds=0.0, urls={},
    ))
    done = storage.read_json(plan.published_url, so)
    if done is not None and done.get("digest") == digest:
        return PublishResult(dict(done["cogs"]), done["catalog"], tuple(done["items"]), totals,
                             digest, skipped=True)
    resuming = (storage.read_json(f"{plan.run_url}/publishing.json", so) or {}).get("digest")
    storage.write_json_if_changed(f"{plan.run_url}/publishing.json", {"digest": digest}, so)
    for folder in (plan.done_url, f"{plan.products_url}/{plan.region_name}"):
        storage.remove_temporaries(folder, so)  # left by killed writers; publication is the only one
    layers = product_layers(config.scenarios, config.uncertainty, config.scheme)
    ds = open_product_cube(plan.product_cube_url, so)[list(layers)]
    assets = write_region_cogs(ds, plan.region_name, plan.products_url, so,
                               skip_existing=resuming == digest)
    provenance = Provenance(
        code_version=__version__, scheme=config.scheme, config_hash=plan.config_hash,
        inputs={"cube": plan.cube_url, "sources": plan.sources_url or "gsocseq:sources.toml"},
        map_version=config.map_version,
        ssm_increase={k: list(v) for k, v in config.ssm_increase.items()},
    )
    _, region = resolve(config)
    item = build_item(plan.region_name, assets, bbox=tuple(region.bbox), provenance=provenance)
    catalog = write_catalog([item], plan.stac_url, so, provenance=provenance)
    cogs = {a.layer: a.href for a in assets}
    items = (item.get_self_href() or "",)
    storage.write_json(plan.published_url, {"digest": digest, "cogs": cogs, "catalog": catalog,
                                          "items": list(items), "totals": totals}, so)
    return PublishResult(cogs, catalog, items, totals, digest, skipped=False)
