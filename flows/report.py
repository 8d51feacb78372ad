"""The run report: per-region tile counts, carbon totals and product links, as markdown.

The flows build one :class:`RegionReport` per region from the pipeline's ``RunSummary`` (tile
outcomes aggregated by :func:`gsocseq.pipeline.summarise`) and ``PublishResult``, and publish the
markdown as a Prefect artifact (the flow run's ``Artifacts`` tab, and under its key on the UI's
Artifacts page). The quick-look PNGs of T0, final SOC and ASR are embedded as data URIs (the UI
cannot fetch ``s3://`` or ``file://`` URLs); every quick look is linked. Nothing here computes
science.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScenarioRow:
    """Regional totals of one scenario (Mt C = 10⁶ t C)."""

    scenario: str
    final_stock_mt: float
    """SOC stock 0–30 cm at the end of the forward period, Mt C."""
    change_mt: float
    """Change over the forward period, Mt C."""
    rate_mt_per_yr: float
    """Absolute sequestration rate, Mt C/yr."""


@dataclass(frozen=True)
class RegionReport:
    """What a run produced for one region."""

    region: str
    """Canonical region (``KEN``, ``demo``, ``w,s,e,n``)."""
    tiles_done: int
    tiles_skipped: int
    tiles_failed: dict[str, str]
    """Failed tile id → error message."""
    modelled_pixels: int
    t0_stock_mt: float
    """SOC stock 0–30 cm at T0, Mt C."""
    scenarios: tuple[ScenarioRow, ...]
    cogs: dict[str, str] = field(default_factory=dict)
    """Layer name → URL of its COG."""
    stac_catalog: str | None = None
    """URL of the STAC root catalog."""
    stac_items: tuple[str, ...] = ()
    """URLs of the region's STAC items."""
    quicklooks: dict[str, str] = field(default_factory=dict)
    """Layer → URL of its quick-look PNG."""
    pictures: dict[str, str] = field(default_factory=dict)
    """Layer → ``data:image/png;base64,…`` of the quick looks shown in the artifact."""
    countries: dict[str, dict[str, float]] = field(default_factory=dict)
    """World runs: ISO3 → totals (``T0_MtC``, ``{scenario}_rate_MtC_per_yr`` …)."""
    reuse: dict[str, Any] = field(default_factory=dict)
    """What the run reused and redid (``RunSummary.reuse``: inputs, tiles, publication)."""

    @property
    def published(self) -> bool:
        """Return whether the region's COGs and STAC item were published."""
        return self.stac_catalog is not None

    @classmethod
    def from_pipeline(cls, summary: Any, publish: Any | None = None,
                      storage_options: dict[str, Any] | None = None) -> RegionReport:
        """Build from a ``RunSummary`` and, if published, its ``PublishResult``.

        The quick looks of :data:`SHOWN_LAYERS` are read from the store (``storage_options``)
        and embedded.
        """
        quicklooks = dict(getattr(publish, "quicklooks", {}) or {}) if publish is not None else {}
        return cls(
            region=summary.region,
            tiles_done=len(summary.tiles_done),
            tiles_skipped=len(summary.tiles_skipped),
            tiles_failed=dict(summary.tiles_failed),
            modelled_pixels=int(summary.modelled),
            t0_stock_mt=float(summary.t0_stock_mt),
            scenarios=tuple(
                ScenarioRow(s.scenario, float(s.final_stock_mt), float(s.change_mt),
                            float(s.rate_mt_per_yr))
                for s in summary.scenarios
            ),
            cogs=dict(publish.cogs) if publish is not None else {},
            stac_catalog=publish.stac_url if publish is not None else None,
            stac_items=tuple(publish.stac_items) if publish is not None else (),
            quicklooks=quicklooks,
            pictures=_pictures(quicklooks, storage_options),
            countries=dict(getattr(publish, "country_totals", {}) or {}),
            reuse=dict(getattr(summary, "reuse", {}) or {}),
        )

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (part of the flow's return value)."""
        return {
            "region": self.region,
            "tiles": {"done": self.tiles_done, "skipped": self.tiles_skipped,
                      "failed": dict(self.tiles_failed)},
            "modelled_pixels": self.modelled_pixels,
            "t0_stock_MtC": self.t0_stock_mt,
            "scenarios": {s.scenario: {"final_stock_MtC": s.final_stock_mt,
                                       "change_MtC": s.change_mt,
                                       "rate_MtC_per_yr": s.rate_mt_per_yr}
                          for s in self.scenarios},
            "published": self.published,
            "cogs": dict(self.cogs),
            "stac_catalog": self.stac_catalog,
            "stac_items": list(self.stac_items),
            "quicklooks": dict(self.quicklooks),
            **({"countries": {k: dict(v) for k, v in self.countries.items()}}
               if self.countries else {}),
            **({"reuse": dict(self.reuse)} if self.reuse else {}),
        }


def _shown(layer: str) -> bool:
    """Return whether a layer's quick look is embedded in the artifact (T0, finalSOC, ASR)."""
    return layer == "T0" or (layer.startswith(("finalSOC_", "ASR_"))
                             and not layer.endswith("_Uncertainty"))


def _pictures(quicklooks: dict[str, str], storage_options: dict[str, Any] | None
              ) -> dict[str, str]:
    """Read the shown quick looks from the store as data URIs (a missing one is left out)."""
    from gsocseq import storage
    from gsocseq.products.quicklook import data_uri

    out = {}
    for layer, url in quicklooks.items():
        png = storage.read_bytes(url, storage_options) if _shown(layer) else None
        if png is not None:  # a missing one is still linked below
            out[layer] = data_uri(png)
    return out


def _link(label: str, url: str) -> str:
    """Return a markdown link (spaces and parentheses in the URL escaped)."""
    safe = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return f"[{label}]({safe})"


def _reuse_lines(regions: list[RegionReport]) -> list[str]:
    """Return the "what was reused" table of an incremental rerun (none when nothing is known)."""
    known = [r for r in regions if r.reuse]
    if not known:
        return []
    lines = ["", "## Reused from earlier runs", "",
             "| region | inputs changed | cube tiles checked / rebuilt | tiles reused / computed "
             "| layers kept / rewritten | items rewritten |", "|---|---|---:|---:|---:|---|"]
    for r in known:
        inp, tiles, pub = r.reuse["inputs"], r.reuse["tiles"], r.reuse["publication"]
        changed = ", ".join(inp["sources_changed"]) or "none"
        if inp["climate_files_changed"]:
            changed += f" (+{len(inp['climate_files_changed'])} climate file(s))"
        lines.append(
            f"| {r.region} | {changed} | {len(inp['cube_tiles_checked'])} / "
            f"{len(inp['cube_tiles_rebuilt'])} | {len(tiles['reused'])} / {len(tiles['computed'])} "
            f"| {len(pub['layers_kept'])} / {len(pub['layers_rewritten'])} "
            f"| {', '.join(pub['items_rewritten']) or 'none'} |")
    return lines


def render_markdown(title: str, runtime: str, regions: Iterable[RegionReport]) -> str:
    """Render the report: a tile table, a totals table (region × scenario), then the links."""
    regions = list(regions)
    lines = [f"# {title}", "", f"Computed on {runtime}.", "",
             "| region | tiles computed | tiles skipped (done before) | tiles failed "
             "| modelled pixels | published |",
             "|---|---:|---:|---:|---:|---|"]
    for r in regions:
        lines.append(f"| {r.region} | {r.tiles_done} | {r.tiles_skipped} | {len(r.tiles_failed)} "
                     f"| {r.modelled_pixels:,} | {'yes' if r.published else '**no**'} |")
    lines += ["", "## Totals (SOC 0–30 cm)", "",
              "| region | scenario | SOC at T0 (Mt C) | final SOC (Mt C) | change (Mt C) "
              "| rate (Mt C/yr) |",
              "|---|---|---:|---:|---:|---:|"]
    for r in regions:
        for s in r.scenarios:
            lines.append(f"| {r.region} | {s.scenario} | {r.t0_stock_mt:.4f} "
                         f"| {s.final_stock_mt:.4f} | {s.change_mt:+.4f} "
                         f"| {s.rate_mt_per_yr:+.5f} |")
    for r in regions:
        if not r.countries:
            continue
        names = [s.scenario for s in r.scenarios]
        lines += ["", f"## Totals per country: {r.region}", "",
                  "| country | SOC at T0 (Mt C) | " + " | ".join(f"{n} rate (Mt C/yr)" for n in names)
                  + " |", "|---|---:|" + "---:|" * len(names)]
        for iso3, t in sorted(r.countries.items()):
            lines.append(f"| {iso3} | {t['T0_MtC']:.4f} | " + " | ".join(
                f"{t[f'{n}_rate_MtC_per_yr']:+.5f}" for n in names) + " |")
    lines += _reuse_lines(regions)
    for r in regions:
        lines += ["", f"## Products: {r.region}", ""]
        if not r.published:
            failed = ", ".join(sorted(r.tiles_failed)[:20]) or "none"
            lines.append(f"Not published: failed tiles {failed}. Rerun to resume; finished tiles "
                         "are skipped.")
            continue
        for url in r.stac_items:
            lines.append(f"- STAC item: {_link(url.rsplit('/', 1)[-1], url)}")
        if r.stac_catalog:
            lines.append(f"- STAC catalog: {_link('catalog.json', r.stac_catalog)}")
        if r.pictures:
            lines += ["", "### Quick looks", ""]
            lines += [f"![{r.region} {layer}]({uri})" for layer, uri in r.pictures.items()]
        lines += ["", "| layer | COG | quick look |", "|---|---|---|"]
        for layer, url in r.cogs.items():
            look = r.quicklooks.get(layer)
            lines.append(f"| {layer} | {_link(url.rsplit('/', 1)[-1], url)} | "
                         f"{_link('png', look) if look else ''} |")
    return "\n".join(lines) + "\n"
