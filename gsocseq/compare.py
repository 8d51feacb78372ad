"""Compare the ``exact`` and ``fao`` schemes on the same pixels: layer differences and masking.

:func:`compare_schemes` runs :func:`~gsocseq.model.phases.run_phases` twice (``exact``, ``fao``)
on identical inputs; :func:`compare_results` tabulates, per product layer over the pixels both
schemes modelled, the mean of each scheme, the mean / median / max absolute difference
``|fao − exact|`` (layer units: t C/ha, t C/ha/yr or %) and the relative difference
``100 · mean|fao − exact| / mean|exact|`` (%), plus the share of pixels per reason code in each
scheme. :func:`compare_cube` does it on tiles of a built input cube; ``compare_schemes_command``
is the ``gsocseq compare-schemes`` CLI command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import click
import numpy as np
import pandas as pd

from gsocseq.errors import GsocseqError, InputValidationError
from gsocseq.model.inputs import EULER_CRITERION
from gsocseq.model.phases import PhaseConfig, PhaseResult, run_phases
from gsocseq.vocabulary import LAYER_NAMES, Reason

#: Columns of :attr:`SchemeComparison.layers`.
LAYER_COLUMNS: tuple[str, ...] = (
    "n", "mean_exact", "mean_fao", "mean_abs_diff", "median_abs_diff", "max_abs_diff",
    "rel_diff_pct",
)


@dataclass(frozen=True)
class SchemeComparison:
    """Differences between the two schemes on the same ``n_pixels`` pixels."""

    layers: pd.DataFrame
    """One row per product layer, columns :data:`LAYER_COLUMNS` (``n`` = pixels compared)."""
    masked: pd.DataFrame
    """One row per reason code present (index = reason name), columns ``exact``/``fao``: share."""
    n_pixels: int
    """Pixels given to both schemes."""


def layer_differences(exact: PhaseResult, fao: PhaseResult) -> pd.DataFrame:
    """Return per-layer statistics of ``fao − exact`` over pixels finite in both results."""
    rows = {}
    for name in LAYER_NAMES:
        a = exact.layers[name].astype(np.float64)
        b = fao.layers[name].astype(np.float64)
        both = np.isfinite(a) & np.isfinite(b)
        if not both.any():
            rows[name] = [0] + [np.nan] * (len(LAYER_COLUMNS) - 1)
            continue
        diff = np.abs(b[both] - a[both])
        scale = float(np.mean(np.abs(a[both])))
        rel = 100.0 * float(diff.mean()) / scale if scale > 0 else np.nan
        rows[name] = [int(both.sum()), float(a[both].mean()), float(b[both].mean()),
                      float(diff.mean()), float(np.median(diff)), float(diff.max()), rel]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(LAYER_COLUMNS))
    frame["n"] = frame["n"].astype(int)
    frame.index.name = "layer"
    return frame


def masked_shares(exact: PhaseResult, fao: PhaseResult) -> pd.DataFrame:
    """Return the share (0-1) of pixels per reason code in each scheme (rows: codes present)."""
    if exact.reason.shape != fao.reason.shape:
        raise InputValidationError(
            f"reason arrays differ in shape: exact {exact.reason.shape}, fao {fao.reason.shape}"
        )
    n = max(exact.reason.size, 1)
    codes = sorted(set(np.unique(exact.reason).tolist()) | set(np.unique(fao.reason).tolist()))
    frame = pd.DataFrame(
        {
            "exact": [np.count_nonzero(exact.reason == c) / n for c in codes],
            "fao": [np.count_nonzero(fao.reason == c) / n for c in codes],
        },
        index=[Reason(c).name.lower() for c in codes],
    )
    frame.index.name = "reason"
    return frame


def compare_results(exact: PhaseResult, fao: PhaseResult) -> SchemeComparison:
    """Tabulate two :class:`PhaseResult` of the same pixels (see module docstring)."""
    return SchemeComparison(
        layers=layer_differences(exact, fao),
        masked=masked_shares(exact, fao),
        n_pixels=int(exact.reason.size),
    )


def compare_schemes(
    *,
    soc: np.ndarray,
    clay: np.ndarray,
    land_use: np.ndarray,
    tmp: np.ndarray,
    prec: np.ndarray,
    pet: np.ndarray,
    cover: np.ndarray,
    config: PhaseConfig = PhaseConfig(),
) -> SchemeComparison:
    """Run both schemes on the same pixels (``run_phases`` layout and units) and compare them.

    ``config`` supplies every setting but the scheme (``fao_*`` settings apply to ``fao`` only).
    """
    inputs = {"soc": soc, "clay": clay, "land_use": land_use, "tmp": tmp, "prec": prec,
              "pet": pet, "cover": cover}
    exact = run_phases(**inputs, config=replace(config, scheme="exact"))
    fao = run_phases(**inputs, config=replace(config, scheme="fao"))
    return compare_results(exact, fao)


def _fmt(value: float, digits: int = 4) -> str:
    return "–" if not np.isfinite(value) else f"{value:.{digits}g}"


def format_comparison(comparison: SchemeComparison) -> str:
    """Return the comparison as two markdown tables (layer differences, then pixel shares)."""
    head = ["layer", "n", "mean exact", "mean fao", "mean abs Δ", "median abs Δ", "max abs Δ",
            "rel %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in comparison.layers.iterrows():
        cells = [str(name), str(int(row["n"]))] + [_fmt(row[c]) for c in LAYER_COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Pixels: {comparison.n_pixels}", "", "| reason | exact | fao |", "|---|---|---|"]
    for name, row in comparison.masked.iterrows():
        lines.append(f"| {name} | {100 * row['exact']:.2f} % | {100 * row['fao']:.2f} % |")
    return "\n".join(lines) + "\n"


def tile_pixels(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the modelled pixels (cube reason 0) of a ``read_tile`` dict in ``run_phases`` layout."""
    ok = np.asarray(arrays["reason"]).reshape(-1) == Reason.OK
    out = {k: np.asarray(arrays[k]).reshape(-1)[ok] for k in ("soc", "clay", "land_use")}
    for k in ("tmp", "prec", "pet", "cover"):
        series = np.asarray(arrays[k])
        out[k] = np.ascontiguousarray(series.reshape(-1, series.shape[-1])[ok].T)
    return out


def compare_cube(
    cube_url: str,
    *,
    tiles: Sequence[Any] | None = None,
    config: PhaseConfig = PhaseConfig(),
    storage_options: Mapping[str, Any] | None = None,
) -> SchemeComparison:
    """Compare the schemes on the modelled pixels of built ``tiles`` of the cube (default: all)."""
    from gsocseq.cube.grid import tiles_of_rectangle
    from gsocseq.cube.store import open_cube, read_tile, tile_status

    ds = open_cube(cube_url, dict(storage_options or {}))
    if tiles is None:
        tiles = tiles_of_rectangle(int(ds.attrs["origin_row"]), int(ds.attrs["origin_col"]),
                                   ds.sizes["latitude"], ds.sizes["longitude"],
                                   int(ds.attrs["tile_size"]))
    parts = [tile_pixels(read_tile(ds, t)) for t in tiles if tile_status(ds, t) > 0]
    if not parts:
        raise InputValidationError(f"cube at {cube_url}: no built tile with modelled pixels")
    pixels = {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}
    return compare_schemes(**pixels, config=config)


def build_comparison_cube(
    region: str,
    out: str,
    *,
    sources: str | None = None,
    tile_size: int = 60,
    max_tiles: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """Build the input cube of ``region`` under ``out`` (demo world written there if needed).

    Returns ``(cube URL, tiles built)``; ``max_tiles`` keeps the first tiles only.
    """
    from gsocseq.cube import build_cube, resolve_region
    from gsocseq.sources import load_sources

    so = dict(storage_options or {})
    out = out.rstrip("/")
    if sources is None and region == "demo":
        from gsocseq.demo import write_demo_world

        sources = write_demo_world(f"{out}/demo-inputs", so, tile_size=tile_size)
    config = load_sources(sources, storage_options=so)
    resolved = resolve_region(region, config, tile_size=tile_size)
    tiles = list(resolved.tiles[:max_tiles] if max_tiles else resolved.tiles)
    url = f"{out}/compare-{resolved.name}-t{tile_size}.zarr"
    build_cube(resolved, config, url, so, tiles=tiles)
    return url, tiles


@click.command("compare-schemes")
@click.option("--region", default="demo", show_default=True,
              help="ISO3 code, bbox 'west,south,east,north', 'demo' or an alias of --sources.")
@click.option("--out", default=None, help="URL prefix for the demo world and the input cube.")
@click.option("--cube", "cube_url", default=None, help="Use this built input cube instead.")
@click.option("--sources", default=None, help="URL of a sources.toml (default: demo world).")
@click.option("--tile-size", type=int, default=60, show_default=True)
@click.option("--max-tiles", type=int, default=None, help="Compare only the first N tiles.")
@click.option("--no-uncertainty", is_flag=True, help="Skip the bracket runs.")
@click.option("--euler-criterion", type=click.Choice(["month", "cycle"]), default=EULER_CRITERION,
              show_default=True, help="How the fao scheme masks unstable Euler steps.")
@click.option("--csv", "csv_path", default=None, help="Also write the layer table as CSV here.")
@click.option("--storage-options", default=None, help="fsspec options as a JSON object.")
def compare_schemes_command(
    region: str, out: str | None, cube_url: str | None, sources: str | None, tile_size: int,
    max_tiles: int | None, no_uncertainty: bool, euler_criterion: str, csv_path: str | None,
    storage_options: str | None,
) -> None:
    """Compare the exact and fao schemes on a region's pixels; print markdown tables."""
    try:
        so = json.loads(storage_options) if storage_options else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--storage-options") from exc
    if cube_url is None and out is None:
        raise click.UsageError("give --out (to build the input cube) or --cube")
    config = PhaseConfig(uncertainty=not no_uncertainty, fao_euler_criterion=euler_criterion)
    try:
        tiles = None
        if cube_url is None:
            assert out is not None
            cube_url, tiles = build_comparison_cube(
                region, out, sources=sources, tile_size=tile_size, max_tiles=max_tiles,
                storage_options=so,
            )
        comparison = compare_cube(cube_url, tiles=tiles, config=config, storage_options=so)
    except GsocseqError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_comparison(comparison))
    if csv_path:
        comparison.layers.to_csv(csv_path)
