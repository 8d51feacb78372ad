"""Aggregate tile outcomes into the run summary: pixels, reasons, regional totals, timings, URLs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gsocseq.pipeline.tile import TileOutcome
from gsocseq.vocabulary import REASON_DESCRIPTIONS, SCENARIOS, SSM_LABELS, Reason

#: How the exact scheme differs on pixels the fao scheme masks as Euler-unstable (reason 7).
EULER_NOTE = (
    "the fao scheme's explicit Euler step (h = 1/12 yr) leaves [-1, 1] for DPM when the combined rate "
    "factor exceeds 2.4 (warm, moist, little cover); pixels whose yearly cycle amplifies are masked "
    "(PhaseConfig(fao_euler_criterion='month') masks every such month), never written as numbers; "
    "the exact scheme decays each pool exactly (exp(-a*b*c*k/12)) and models them (--scheme exact)"
)

#: Scenario name → FAO layer label.
SCENARIO_LABELS: dict[str, str] = dict(zip(SCENARIOS, ("BAU", *SSM_LABELS), strict=True))


@dataclass(frozen=True)
class ScenarioTotals:
    """Regional totals of one scenario (Σ value × cell area)."""

    scenario: str
    """Scenario name (``bau``, ``ssm_low``, ``ssm_med``, ``ssm_high``)."""
    final_stock_mt: float
    """SOC stock 0–30 cm in 2040, Mt C."""
    change_mt: float
    """Change 2020 → 2040 (AbsDiff), Mt C."""
    rate_mt_per_yr: float
    """Absolute sequestration rate (ASR), Mt C/yr."""


@dataclass(frozen=True)
class RunSummary:
    """What a run did and produced."""

    region: str
    """Canonical region string."""
    config_hash: str
    """SHA-256 of the science-relevant configuration."""
    tiles_total: int
    """Tiles in the plan."""
    tiles_done: tuple[str, ...]
    """Tiles computed by this run."""
    tiles_skipped: tuple[str, ...]
    """Tiles found finished (completion marker) and skipped."""
    tiles_failed: dict[str, str]
    """Failed tile id → error message."""
    pixels: int
    """Cells in the finished tiles."""
    modelled: int
    """Cells with modelled values."""
    masked: dict[int, int]
    """Cells without a value per :class:`Reason` code (> 0)."""
    t0_stock_mt: float
    """SOC stock 0–30 cm in 2020 (T0), Mt C."""
    scenarios: tuple[ScenarioTotals, ...]
    """Totals per requested scenario."""
    wall_seconds: float
    """Wall time of the run, s."""
    urls: dict[str, str] = field(default_factory=dict)
    """Where the outputs are: cube, product_cube, products, stac, run."""
    published: bool = False
    """Whether COGs and STAC were written (or found up to date)."""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage (plan, inputs, tiles, publish), s."""
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU-seconds per stage of this process and the cluster's processes, s (not load-dependent)."""
    country_totals: dict[str, dict[str, float]] = field(default_factory=dict)
    """World runs: ISO3 → that country's totals (keys of :func:`region_totals`, Mt C, Mt C/yr)."""
    reuse: dict[str, Any] = field(default_factory=dict)
    """What the run reused and redid (:func:`reuse_report`): inputs, tiles, publication."""

    @property
    def ok(self) -> bool:
        """Return whether every tile finished."""
        return not self.tiles_failed

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "region": self.region, "config_hash": self.config_hash,
            "tiles": {"total": self.tiles_total, "done": len(self.tiles_done),
                      "skipped": len(self.tiles_skipped), "failed": dict(self.tiles_failed)},
            "pixels": {"total": self.pixels, "modelled": self.modelled,
                       "masked": {Reason(k).name.lower(): v for k, v in self.masked.items()}},
            "totals": {
                "T0_MtC": self.t0_stock_mt,
                **{s.scenario: {"final_stock_MtC": s.final_stock_mt, "change_MtC": s.change_mt,
                                "rate_MtC_per_yr": s.rate_mt_per_yr} for s in self.scenarios},
            },
            "wall_seconds": self.wall_seconds, "stage_seconds": dict(self.stage_seconds),
            "stage_cpu_seconds": dict(self.stage_cpu_seconds),
            "urls": dict(self.urls), "published": self.published,
            **({"reuse": dict(self.reuse)} if self.reuse else {}),
            **({"countries": {k: dict(v) for k, v in self.country_totals.items()}}
               if self.country_totals else {}),
        }


def summarise(
    outcomes: Iterable[TileOutcome],
    *,
    region: str,
    config_hash: str,
    scenarios: tuple[str, ...],
    wall_seconds: float,
    urls: dict[str, str],
    published: bool = False,
    stage_seconds: dict[str, float] | None = None,
    stage_cpu_seconds: dict[str, float] | None = None,
    country_totals: dict[str, dict[str, float]] | None = None,
    reuse: dict[str, Any] | None = None,
) -> RunSummary:
    """Combine tile outcomes (any order) into a :class:`RunSummary`; sums run in tile-id order."""
    ordered = sorted(outcomes, key=lambda o: o.tile_id)
    finished = [o for o in ordered if o.status != "failed"]
    reasons: Counter[int] = Counter()
    totals: Counter[str] = Counter()
    for o in finished:
        reasons.update(o.reasons)
        for name, value in o.totals.items():
            totals[name] += value
    scen = tuple(
        ScenarioTotals(
            s, totals[f"finalSOC_{SCENARIO_LABELS[s]}"] / 1e6,
            totals[f"AbsDiff_{SCENARIO_LABELS[s]}"] / 1e6, totals[f"ASR_{SCENARIO_LABELS[s]}"] / 1e6,
        )
        for s in scenarios
    )
    return RunSummary(
        region=region, config_hash=config_hash, tiles_total=len(ordered),
        tiles_done=tuple(o.tile_id for o in ordered if o.status == "done"),
        tiles_skipped=tuple(o.tile_id for o in ordered if o.status == "skipped"),
        tiles_failed={o.tile_id: o.error or "unknown error" for o in ordered
                      if o.status == "failed"},
        pixels=sum(o.pixels for o in finished), modelled=reasons.get(Reason.OK, 0),
        masked={k: v for k, v in sorted(reasons.items()) if k != Reason.OK and v},
        t0_stock_mt=totals["T0"] / 1e6, scenarios=scen, wall_seconds=wall_seconds,
        urls=dict(urls), published=published, stage_seconds=dict(stage_seconds or {}),
        stage_cpu_seconds=dict(stage_cpu_seconds or {}),
        country_totals=dict(country_totals or {}), reuse=dict(reuse or {}),
    )


def reuse_report(
    inputs: dict[str, Any] | None, outcomes: Iterable[TileOutcome], *,
    published: bool, rewritten: Sequence[str] | None, layers: Sequence[str],
    changed_tiles: Sequence[str] | None, items_rewritten: Sequence[str], publish_skipped: bool,
) -> dict[str, Any]:
    """Return what a run reused and redid, as ``RunSummary.reuse`` (JSON-ready).

    ``inputs`` is the input stage's refresh report (``InputsRefresh.to_dict()``); ``rewritten``
    the layers whose COG was written (``None``: all); ``publish_skipped`` when the publication on
    record was already current.
    """
    ordered = sorted(outcomes, key=lambda o: o.tile_id)
    inp = dict(inputs or {})
    if not published:
        pub: dict[str, Any] = {"layers_rewritten": [], "layers_kept": [], "items_rewritten": []}
    elif publish_skipped:
        pub = {"layers_rewritten": [], "layers_kept": list(layers), "items_rewritten": []}
    else:
        again = list(layers) if rewritten is None else list(rewritten)
        pub = {"layers_rewritten": again, "layers_kept": [n for n in layers if n not in again],
               "items_rewritten": list(items_rewritten)}
    return {
        "inputs": {
            "sources_changed": list(inp.get("sources_changed", [])),
            "climate_files_changed": list(inp.get("climate_files_changed", [])),
            "cube_tiles_checked": list(inp.get("tiles_checked", [])),
            "cube_tiles_rebuilt": list(inp.get("tiles_rebuilt", [])),
            "fingerprints": dict(inp.get("methods", {})),
        },
        "tiles": {"computed": [o.tile_id for o in ordered if o.status == "done"],
                  "reused": [o.tile_id for o in ordered if o.status == "skipped"]},
        "publication": {**pub, "changed_tiles": None if changed_tiles is None
                        else list(changed_tiles)},
    }


def format_reuse(reuse: dict[str, Any]) -> list[str]:
    """Return the summary lines saying what was reused (none when nothing is known)."""
    if not reuse:
        return []
    inp, tiles, pub = reuse["inputs"], reuse["tiles"], reuse["publication"]
    lines = [
        f"reused: {len(tiles['reused'])} tile(s) as computed, "
        f"{len(pub['layers_kept'])} layer(s) as published; "
        f"redone: {len(tiles['computed'])} tile(s), {len(pub['layers_rewritten'])} layer(s)"
    ]
    if inp["sources_changed"] or inp["climate_files_changed"]:
        lines.append(
            f"  inputs changed: {', '.join(inp['sources_changed']) or '-'}"
            f" ({len(inp['climate_files_changed'])} climate file(s)); cube tiles checked "
            f"{len(inp['cube_tiles_checked'])}, rebuilt {len(inp['cube_tiles_rebuilt'])}"
            + (f": {', '.join(inp['cube_tiles_rebuilt'])}" if inp["cube_tiles_rebuilt"] else "")
        )
    return lines


def region_totals(summary: RunSummary) -> dict[str, float]:
    """Return the regional totals as flat ``name → value`` (units in the names: MtC, MtC_per_yr)."""
    out = {"T0_MtC": summary.t0_stock_mt}
    for s in summary.scenarios:
        out[f"{s.scenario}_final_stock_MtC"] = s.final_stock_mt
        out[f"{s.scenario}_change_MtC"] = s.change_mt
        out[f"{s.scenario}_rate_MtC_per_yr"] = s.rate_mt_per_yr
    return out


def format_summary(summary: RunSummary) -> str:
    """Return a human-readable multi-line report of a run."""
    lines = [
        f"region {summary.region}  config {summary.config_hash[:12]}",
        f"tiles: {summary.tiles_total} total, {len(summary.tiles_done)} computed, "
        f"{len(summary.tiles_skipped)} skipped (already done), {len(summary.tiles_failed)} failed",
        f"pixels: {summary.pixels} in finished tiles, {summary.modelled} modelled",
    ]
    for code, count in summary.masked.items():
        lines.append(f"  masked {count:>10d}  reason {code}: {REASON_DESCRIPTIONS[code]}")
    if summary.masked.get(Reason.FAO_EULER_UNSTABLE):
        lines.append(f"  note: {EULER_NOTE}")
    lines.append(f"T0 (2020) stock: {summary.t0_stock_mt:.4f} Mt C")
    for s in summary.scenarios:
        lines.append(
            f"  {s.scenario:<9s} 2040 stock {s.final_stock_mt:.4f} Mt C, change "
            f"{s.change_mt:+.4f} Mt C, rate {s.rate_mt_per_yr:+.5f} Mt C/yr"
        )
    lines += format_country_totals(summary.country_totals, summary.scenarios)
    lines += format_reuse(summary.reuse)
    cpu = summary.stage_cpu_seconds
    stages = ", ".join(f"{k} {v:.1f} s" + (f" / {cpu[k]:.1f} CPU-s" if k in cpu else "")
                       for k, v in summary.stage_seconds.items())
    lines.append(f"wall time: {summary.wall_seconds:.1f} s" + (f" ({stages})" if stages else ""))
    for name, url in summary.urls.items():
        lines.append(f"  {name:<13s} {url}")
    for tile_id, error in summary.tiles_failed.items():
        lines.append(f"FAILED tile {tile_id}: {error}")
    return "\n".join(lines)


def format_country_totals(
    countries: dict[str, dict[str, float]], scenarios: tuple[ScenarioTotals, ...]
) -> list[str]:
    """Return the per-country totals table of a world run (one line per country; none if empty)."""
    if not countries:
        return []
    names = [s.scenario for s in scenarios]
    head = f"{'country':<8s} {'T0 Mt C':>12s}" + "".join(f" {n + ' Mt C/yr':>18s}" for n in names)
    lines = ["per country (SOC 0-30 cm; rates are ASR):", head]
    for iso3, t in sorted(countries.items()):
        lines.append(f"{iso3:<8s} {t['T0_MtC']:>12.4f}"
                     + "".join(f" {t[f'{n}_rate_MtC_per_yr']:>+18.5f}" for n in names))
    return lines
