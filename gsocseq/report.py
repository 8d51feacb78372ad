"""The run report: one self-contained HTML page per run (``gsocseq report URL``).

Reads what a run left (manifest, tile markers, publication record, product cube, input cube's land
use and provenance attributes) tile by tile — memory bounded by the tile size — and writes
``{run}/report.html``: region, inputs and versions, totals per scenario and per land use (Mt C,
Mt C/yr), maps of T0, final SOC and ASR per scenario, histograms, masked shares by reason and,
when the other scheme ran on the same region and tiles, the exact-vs-fao comparison. Pictures are
embedded as data URIs (the page needs nothing else). No value is recomputed: totals are
Σ value × cell area of the stored layers.
"""

from __future__ import annotations

import html
import io
import json
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gsocseq import storage
from gsocseq.cube.grid import RES_DEG, cell_area_ha
from gsocseq.cube.product_cube import REASON_VAR, read_product_tile
from gsocseq.errors import PipelineError
from gsocseq.pipeline.plan import RunPlan
from gsocseq.pipeline.summary import SCENARIO_LABELS
from gsocseq.products.quicklook import colour_limits, data_uri, layer_style, render_png
from gsocseq.vocabulary import LAYER_NAMES, MODELLED_LAND_USE, REASON_DESCRIPTIONS, Reason

__all__ = ["RunReport", "collect_report", "render_html", "write_reports"]

MAP_CELLS: int = 600
"""Longest edge of the report's maps, cells (block means of the 30″ cells)."""
SAMPLE_PIXELS: int = 200_000
"""Most pixels kept per layer for histograms and the scheme comparison (a regular subsample)."""
REPORT_NAME: str = "report.html"


@dataclass
class RunReport:
    """Everything the page shows for one run (filled by :func:`collect_report`)."""

    manifest_url: str
    plan: RunPlan
    config: dict[str, Any]
    cube_attrs: dict[str, Any]
    published: dict[str, Any] | None
    pixels: int = 0
    reasons: Counter[int] = field(default_factory=Counter)
    scenario_totals: pd.DataFrame | None = None
    land_use_totals: pd.DataFrame | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    """Layer → block-mean map (north-up), the layer's units."""
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    """Layer → finite values of a regular subsample of modelled pixels."""
    comparison: Any = None
    """:class:`gsocseq.compare.SchemeComparison` with the other scheme, if it ran."""
    other_scheme: str | None = None
    other_run: str | None = None
    t0_difference: np.ndarray | None = None
    """Block-mean map of T0 (fao − exact), t C/ha, when both schemes ran."""
    seconds: float = 0.0
    """Σ tile compute times from the markers, s."""

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the product cube, degrees."""
        p = self.plan
        west = -180.0 + p.origin_col * RES_DEG
        north = 90.0 - p.origin_row * RES_DEG
        return (west, north - p.n_rows * RES_DEG, west + p.n_cols * RES_DEG, north)


def _shown_layers(scenarios: list[str]) -> list[str]:
    """Return T0, then finalSOC and ASR of each requested scenario."""
    labels = [SCENARIO_LABELS[s] for s in scenarios]
    return ["T0", *[f"finalSOC_{x}" for x in labels], *[f"ASR_{x}" for x in labels]]


def _block_mean(values: np.ndarray, f: int) -> np.ndarray:
    """Return the mean of each f × f block, ignoring NaN (all-NaN blocks stay NaN)."""
    if f == 1:
        return values
    r, c = values.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values.reshape(r // f, f, c // f, f), axis=(1, 3))


def _map_factor(plan: RunPlan) -> int:
    """Return the smallest divisor of the tile size that brings the map under :data:`MAP_CELLS`."""
    longest = max(plan.n_rows, plan.n_cols)
    for f in range(1, plan.tile_size + 1):
        if plan.tile_size % f == 0 and longest / f <= MAP_CELLS:
            return f
    return plan.tile_size


def _other_scheme_run(manifest_url: str, plan: RunPlan, config: dict[str, Any],
                      so: dict[str, Any]) -> tuple[str, RunPlan] | None:
    """Return (manifest URL, plan) of the other scheme's finished run on the same tiles, if any."""
    from gsocseq.pipeline.completeness import find_manifests

    other = "fao" if config["scheme"] == "exact" else "exact"
    out = str(config["out"])
    for url in find_manifests(out, so):
        if url == manifest_url or f"/{config['map_version']}/{other}/runs/" not in url:
            continue
        doc = storage.read_json(url, so) or {}
        cand = RunPlan.from_dict(doc["plan"])
        same = (cand.region == plan.region and cand.tile_size == plan.tile_size
                and cand.tiles == plan.tiles and cand.cube_url == plan.cube_url
                and bool(doc["config"].get("uncertainty")) == bool(config.get("uncertainty")))
        finished = all(storage.exists(cand.marker_url(t), so) for t in cand.tile_ids)
        if same and finished:
            return url, cand
    return None


def collect_report(manifest_url: str, storage_options: dict[str, Any] | None = None) -> RunReport:
    """Read one finished run (tile by tile) into a :class:`RunReport`."""
    from gsocseq.compare import compare_results
    from gsocseq.cube.store import open_cube

    so = dict(storage_options or {})
    doc = storage.read_json(manifest_url, so)
    if doc is None:
        raise PipelineError(f"no run manifest at {manifest_url}")
    plan = RunPlan.from_dict(doc["plan"])
    config = dict(doc["config"])
    markers = []
    for tile_id in plan.tile_ids:
        marker = storage.read_json(plan.marker_url(tile_id), so)
        if marker is None or marker.get("config_hash") != plan.config_hash:
            raise PipelineError(f"cannot report {plan.region} ({plan.run_url}): tile {tile_id} is "
                                "not finished; run it first (finished tiles are skipped)")
        markers.append(marker)
    cube = open_cube(plan.cube_url, so)
    report = RunReport(manifest_url, plan, config, dict(cube.attrs),
                       storage.read_json(plan.published_url, so))
    report.seconds = float(sum(m.get("seconds", 0.0) for m in markers))
    for m in markers:
        report.pixels += int(m["pixels"])
        report.reasons.update({int(k): int(v) for k, v in m["reasons"].items()})
    scenarios = list(config["scenarios"])
    shown = _shown_layers(scenarios)
    other = _other_scheme_run(manifest_url, plan, config, so)
    if other is not None:
        report.other_run, other_plan = other
        report.other_scheme = "fao" if config["scheme"] == "exact" else "exact"
    f = _map_factor(plan)
    maps = {k: np.full((plan.n_rows // f, plan.n_cols // f), np.nan) for k in shown}
    diff_map = np.full((plan.n_rows // f, plan.n_cols // f), np.nan) if other else None
    n_modelled = report.reasons.get(int(Reason.OK), 0)
    step = max(1, math.ceil(n_modelled / SAMPLE_PIXELS))
    samples: dict[str, list[np.ndarray]] = defaultdict(list)
    pairs: dict[str, list[list[np.ndarray]]] = {"exact": [], "fao": []}
    by_lu: dict[int, Counter[str]] = defaultdict(Counter)
    sums: Counter[str] = Counter()
    offset = 0  # running count of modelled pixels: the subsample is regular over the region
    for tile in plan.tiles:
        rows, cols = tile.to_slices(plan.origin_row, plan.origin_col)
        arrays = read_product_tile(plan.product_cube_url, tile, so)
        land_use = np.asarray(cube["land_use"].isel(latitude=rows, longitude=cols).values)
        area = np.broadcast_to(cell_area_ha(tile.latitudes())[:, None], land_use.shape)
        ok = arrays[REASON_VAR] == Reason.OK
        for lu in np.unique(land_use[ok]):
            sel = ok & (land_use == lu)
            acc = by_lu[int(lu)]
            acc["pixels"] += int(sel.sum())
            acc["area_ha"] += float(area[sel].sum())
            for layer in shown:
                acc[layer] += float(np.nansum(arrays[layer][sel] * area[sel]))
        for layer in shown:
            sums[layer] += float(np.nansum(np.where(ok, arrays[layer], np.nan) * area))
            block = _block_mean(arrays[layer].astype(np.float64), f)
            maps[layer][rows.start // f: rows.stop // f, cols.start // f: cols.stop // f] = block
        idx = np.flatnonzero(ok.ravel())
        keep = idx[(np.arange(idx.size) + offset) % step == 0]
        offset += idx.size
        for layer in shown:
            samples[layer].append(arrays[layer].ravel()[keep])
        if other is not None:
            theirs = read_product_tile(other_plan.product_cube_url, tile, so)
            mine_key, their_key = (("exact", "fao") if config["scheme"] == "exact"
                                   else ("fao", "exact"))
            sub = np.arange(ok.size)[::step]  # every pixel of the subsample, masked ones too
            pairs[mine_key].append([arrays[k].ravel()[sub] for k in (*LAYER_NAMES, REASON_VAR)])
            pairs[their_key].append([theirs[k].ravel()[sub] for k in (*LAYER_NAMES, REASON_VAR)])
            exact, fao = (arrays, theirs) if config["scheme"] == "exact" else (theirs, arrays)
            d = fao["T0"].astype(np.float64) - exact["T0"].astype(np.float64)
            assert diff_map is not None
            diff_map[rows.start // f: rows.stop // f, cols.start // f: cols.stop // f] = \
                _block_mean(d, f)
    report.maps = maps
    report.samples = {k: np.concatenate(v)[np.isfinite(np.concatenate(v))] for k, v in
                      samples.items()}
    report.t0_difference = diff_map
    report.scenario_totals = _scenario_table(sums, scenarios)
    report.land_use_totals = _land_use_table(by_lu, scenarios)
    if other is not None:
        report.comparison = compare_results(_as_result(pairs["exact"]), _as_result(pairs["fao"]))
    return report


@dataclass(frozen=True)
class _Pixels:
    """Layers and reasons of a set of pixels, shaped as :func:`gsocseq.compare.compare_results` reads."""

    layers: dict[str, np.ndarray]
    reason: np.ndarray


def _as_result(parts: list[list[np.ndarray]]) -> _Pixels:
    cols = [np.concatenate([p[i] for p in parts]) for i in range(len(LAYER_NAMES) + 1)]
    return _Pixels(dict(zip(LAYER_NAMES, cols[:-1], strict=True)), cols[-1])


def _scenario_table(sums: Counter[str], scenarios: list[str]) -> pd.DataFrame:
    """Per-scenario regional totals: T0, final SOC (Mt C), change (Mt C), ASR (Mt C/yr)."""
    rows = []
    for s in scenarios:
        x = SCENARIO_LABELS[s]
        final = sums[f"finalSOC_{x}"] / 1e6
        rows.append({"scenario": s, "T0 (Mt C)": sums["T0"] / 1e6, "final SOC 2040 (Mt C)": final,
                     "change (Mt C)": final - sums["T0"] / 1e6,
                     "ASR (Mt C/yr)": sums[f"ASR_{x}"] / 1e6})
    return pd.DataFrame(rows).set_index("scenario")


def _land_use_table(by_lu: dict[int, Counter[str]], scenarios: list[str]) -> pd.DataFrame:
    """Per-land-use totals of the modelled pixels: area, T0, final SOC and ASR per scenario."""
    rows = []
    for lu in sorted(by_lu):
        acc = by_lu[lu]
        row = {"land use": f"{lu} {MODELLED_LAND_USE.get(lu, 'other')}",
               "pixels": int(acc["pixels"]), "area (kha)": acc["area_ha"] / 1e3,
               "T0 (Mt C)": acc["T0"] / 1e6}
        for s in scenarios:
            x = SCENARIO_LABELS[s]
            row[f"final SOC {s} (Mt C)"] = acc[f"finalSOC_{x}"] / 1e6
            row[f"ASR {s} (Mt C/yr)"] = acc[f"ASR_{x}"] / 1e6
        rows.append(row)
    return pd.DataFrame(rows).set_index("land use") if rows else pd.DataFrame()


# ------------------------------------------------------------------------------------ rendering


def _figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _histograms(report: RunReport, layers: list[str], title: str) -> bytes:
    """Step histograms of the sampled values of ``layers`` on one axis."""
    fig = Figure(figsize=(7.0, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    values = [report.samples.get(k, np.empty(0)) for k in layers]
    allv = np.concatenate(values) if values else np.empty(0)
    if allv.size:
        lo, hi = np.percentile(allv, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 60)
        for k, v in zip(layers, values, strict=True):
            if v.size:
                ax.hist(v, bins=bins, histtype="step", label=k, linewidth=1.4)
        ax.legend(fontsize=8)
    units = layer_style(layers[0]).units
    ax.set_xlabel(units)
    ax.set_ylabel("pixels" + (" (subsample)" if report.pixels > SAMPLE_PIXELS else ""))
    ax.set_title(title)
    return _figure_png(fig)


def _reason_bars(report: RunReport) -> bytes:
    """Horizontal bars: share of the region's cells per reason code."""
    codes = sorted(report.reasons)
    shares = [100.0 * report.reasons[c] / max(report.pixels, 1) for c in codes]
    fig = Figure(figsize=(7.0, 0.5 + 0.35 * len(codes)), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.barh([f"{c} {Reason(c).name.lower()}" for c in codes], shares, color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel("% of the cells")
    return _figure_png(fig)


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(classes="num", float_format=lambda v: f"{v:,.{digits}f}", border=0,
                         na_rep="–")


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{data_uri(png)}" alt="{html.escape(alt)}">'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e3e3e3;text-align:left}
table.num td{text-align:right;font-variant-numeric:tabular-nums}
.maps{display:flex;flex-wrap:wrap;gap:.8rem}.maps figure{margin:0}
img{max-width:100%;height:auto}code{font-size:.85rem}.note{color:#555;font-size:.9rem}
"""


def render_html(report: RunReport) -> str:
    """Return the report as one self-contained HTML page (pictures as data URIs)."""
    p, c = report.plan, report.config
    scenarios = list(c["scenarios"])
    esc = html.escape
    w, s, e, n = report.bbox
    title = f"GSOCseq {c['map_version']} — {p.region_name} ({c['scheme']} scheme)"
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<link rel='icon' href='data:,'><title>{esc(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    run_rows = {
        "region": f"{p.region} (products named {p.region_name})",
        "extent (W, S, E, N)": f"{w:.4f}, {s:.4f}, {e:.4f}, {n:.4f} degrees (EPSG:4326, 30″ cells)",
        "tiles": f"{len(p.tiles)} of {p.tile_size}² cells; {report.pixels:,} cells, "
                 f"{report.reasons.get(0, 0):,} modelled",
        "scheme / map version": f"{c['scheme']} / {c['map_version']}",
        "scenarios": ", ".join(scenarios),
        "uncertainty (bracket runs)": "yes" if c.get("uncertainty") else "no",
        "config hash": p.config_hash,
        "code version": f"gsocseq {p.code_version}",
        "compute time": f"{report.seconds:.1f} s (sum over tiles)",
        "run folder": p.run_url,
        "input cube": p.cube_url,
    }
    if report.published:
        run_rows["STAC item"] = ", ".join(report.published.get("items", []))
        run_rows["products"] = f"{len(report.published.get('cogs', {}))} COGs under {p.products_url}"
    parts.append("<h2>Run</h2><table>" + "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in run_rows.items())
        + "</table>")
    sources = json.loads(report.cube_attrs.get("sources", "{}") or "{}")
    parts.append("<h2>Inputs and versions</h2><table><tr><th>dataset</th><th>kind</th>"
                 "<th>version</th><th>URL</th></tr>")
    for name, desc in sorted(sources.items()):
        kind, version, url = (str(desc).split(" ", 2) + ["", ""])[:3]
        parts.append(f"<tr><td>{esc(name)}</td><td>{esc(kind)}</td><td>{esc(version)}</td>"
                     f"<td><code>{esc(url)}</code></td></tr>")
    parts.append(f"</table><p class='note'>Input cube built by gsocseq "
                 f"{esc(str(report.cube_attrs.get('gsocseq_version', '?')))}, years "
                 f"{esc(str(report.cube_attrs.get('first_year')))}–"
                 f"{esc(str(report.cube_attrs.get('last_year')))}.</p>")
    parts.append("<h2>Totals per scenario</h2><p class='note'>Σ value × cell area over modelled "
                 "cells (SOC 0–30 cm; 1 Mt = 10⁶ t).</p>")
    assert report.scenario_totals is not None and report.land_use_totals is not None
    parts.append(_table(report.scenario_totals, 5))
    parts.append("<h2>Totals per land use</h2>" + _table(report.land_use_totals, 5))
    parts.append(_maps_html(report, scenarios))
    parts.append("<h2>Histograms</h2>")
    labels = [SCENARIO_LABELS[x] for x in scenarios]
    parts.append(_img(_histograms(report, ["T0", *[f"finalSOC_{x}" for x in labels]],
                                  "SOC stocks (modelled cells)"), "histogram of SOC stocks"))
    parts.append(_img(_histograms(report, [f"ASR_{x}" for x in labels],
                                  "Absolute sequestration rates"), "histogram of ASR"))
    parts.append("<h2>Masked cells by reason</h2><table class='num'><tr><th>code</th>"
                 "<th>reason</th><th>cells</th><th>share</th></tr>")
    for code in sorted(report.reasons):
        count = report.reasons[code]
        parts.append(f"<tr><td>{code}</td><td style='text-align:left'>"
                     f"{esc(REASON_DESCRIPTIONS[code])}</td><td>{count:,}</td>"
                     f"<td>{100.0 * count / max(report.pixels, 1):.2f} %</td></tr>")
    parts.append("</table>" + _img(_reason_bars(report), "shares of cells by reason"))
    parts.append(_comparison_html(report))
    parts.append("</body></html>")
    return "\n".join(parts)


def _maps_html(report: RunReport, scenarios: list[str]) -> str:
    """Return maps of T0, final SOC and ASR per scenario (stocks share colours, so do rates)."""
    labels = [SCENARIO_LABELS[x] for x in scenarios]
    stocks = ["T0", *[f"finalSOC_{x}" for x in labels]]
    rates = [f"ASR_{x}" for x in labels]
    out = ["<h2>Maps</h2>"]
    for group in (stocks, rates):
        values = np.concatenate([report.maps[k].ravel() for k in group])
        limits = colour_limits(values, layer_style(group[0]))
        out.append("<div class='maps'>")
        for k in group:
            png = render_png(report.maps[k], layer=k, bbox=report.bbox, limits=limits,
                             title=f"{report.plan.region_name} {k}", max_pixels=520)
            out.append(f"<figure>{_img(png, f'map of {k}')}</figure>")
        out.append("</div>")
    return "\n".join(out)


def _comparison_html(report: RunReport) -> str:
    """Return the exact-vs-fao section (or a note saying how to get it)."""
    if report.comparison is None:
        other = "fao" if report.config["scheme"] == "exact" else "exact"
        return ("<h2>exact vs fao</h2><p class='note'>Only the "
                f"{html.escape(report.config['scheme'])} scheme was run on these tiles; run "
                f"<code>gsocseq run … --scheme {other}</code> with the same region, tile size and "
                "output to compare.</p>")
    cmp = report.comparison
    layers = cmp.layers.rename(columns={"rel_diff_pct": "rel_diff_%"})
    masked = (100.0 * cmp.masked).rename(columns={"exact": "exact (%)", "fao": "fao (%)"})
    out = ["<h2>exact vs fao</h2>",
           f"<p class='note'>The other run: <code>{html.escape(str(report.other_run))}</code>. "
           f"{cmp.n_pixels:,} cells compared; per layer over the n cells where both schemes have "
           "a value: means and |fao − exact| (layer units), relative difference "
           "100·mean|Δ|/mean|exact| (%).</p>", _table(layers, 4),
           "<h3>Cells per reason in each scheme</h3>", _table(masked, 2)]
    if report.t0_difference is not None:
        png = render_png(report.t0_difference, layer="T0_difference", bbox=report.bbox,
                         title="T0: fao − exact", max_pixels=620)
        out.append(_img(png, "map of T0 fao minus exact"))
    return "\n".join(out)


def write_reports(
    url: str, storage_options: dict[str, Any] | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """Write ``report.html`` in the folder of every finished run under ``url`` (a run's ``--out``).

    Returns ``(report URL, HTML)`` per run written and, per run left out, why (its unfinished
    tiles). No run at all raises :class:`~gsocseq.errors.PipelineError`.
    """
    from gsocseq.pipeline.completeness import find_manifests

    so = dict(storage_options or {})
    manifests = find_manifests(url, so)
    if not manifests:
        raise PipelineError(f"no gsocseq run found under {url}")
    written, problems = [], []
    for manifest in manifests:
        try:
            page = render_html(collect_report(manifest, so))
        except PipelineError as exc:
            problems.append(str(exc))
            continue
        target = manifest.rsplit("/", 1)[0] + f"/{REPORT_NAME}"
        storage.put_bytes(target, page.encode("utf-8"), so)
        written.append((target, page))
    return written, problems
