"""Size a global GSOCseq rebuild on the Kubernetes Dask cluster (infra/README.md, "Sizing").

The arithmetic, from a land mask and one measured number:

* tiles: the 30-arc-second global grid (43 200 × 21 600 cells) in 2° × 2° tiles of 240 × 240 cells
  = 180 × 90 = 16 200 tiles; *land tiles* are those that intersect a land polygon (Natural Earth
  1:110m countries less ``gsocseq.vocabulary.WORLD_EXCLUDED`` — Antarctica: no agricultural land —
  the rule ``gsocseq plan/run --region world`` applies);
* land cells: the 30″ cells inside land polygons, ``area in deg² × 120²`` summed over tiles;
* modelled pixels ``N = s × land cells``, ``s`` the modelled (agricultural: cropland + grassland)
  share of land, FAOSTAT ≈ 4.8 Gha of 13.0 Gha ice-free land ≈ 0.37 (an area share used as a cell
  share; the exact count comes from the land-cover mask at run time);
* ``X`` the measured whole-procedure throughput in pixels per second per core (spin-up, warm-up,
  forward scenarios, uncertainty brackets and tile I/O; ``benchmarks/bench_*.py``);
* one tile runs on one Dask thread (= one core), so a cluster of ``W`` worker pods × 2 threads works
  in waves: ``wall = ceil(T / 2W) × (N / T) / X`` seconds (every tile given the mean pixel count);
* cost: allocated vCPU-hours × price, ``2W × wall × p`` (plus the scheduler, negligible).

Per-tile figures measured by ``benchmarks/bench_pipeline.py`` (:data:`MEASURED`: tile-stage
pixels per CPU-second, input bytes read and product bytes stored per cell) give, for a world
rebuild and one large country (:data:`LARGE_COUNTRY`), core-hours ``N / X / 3600``, bytes read
(``tiles × 240² × input bytes per cell``), bytes stored (product cube + COGs) and a cost estimate
(core-hours × vCPU price, plus a month of storage).

Run ``python infra/sizing.py`` for the README's Markdown table, ``--x 1234`` to evaluate it at a
measured throughput, ``--bench report.json`` to take every figure from a benchmark report. Needs
only shapely, pyogrio (its test data ship Natural Earth 1:110m) and ``gsocseq.vocabulary``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.raw import read as read_raw

from gsocseq.vocabulary import WORLD_EXCLUDED

TILE_DEG: int = 2
"""Tile edge in degrees (240 cells of 30″)."""
CELLS_PER_DEG: int = 120
AGRICULTURAL_SHARE: float = 0.37
"""Modelled share of land cells: FAOSTAT agricultural land ≈ 4.8 Gha / 13.0 Gha ice-free land."""
THREADS_PER_WORKER: int = 2
"""Dask threads (cores) per worker pod, as in infra/k8s/daskcluster.yaml."""
PRICE_PER_VCPU_HOUR: float = 0.05
"""Assumed on-demand price in USD per vCPU-hour with 3 GiB memory (general-purpose VMs)."""
WORKER_COUNTS: tuple[int, ...] = (25, 50, 100, 200)
X_PLACEHOLDER: str = "<<X_MEASURED>>"
PRICE_PER_GB_MONTH: float = 0.023
"""Assumed object-storage price in USD per GB-month (standard tier)."""
LARGE_COUNTRY: str = "Brazil"
"""The large country of the sizing table (Natural Earth ``name``)."""
TILE_CELLS: int = (TILE_DEG * CELLS_PER_DEG) ** 2


@dataclass(frozen=True)
class Measured:
    """Per-tile figures of ``benchmarks/bench_pipeline.py`` (tile stage, warmed workers)."""

    px_per_cpu_s: float
    """Modelled pixels per worker CPU-second of the whole tile stage (read, phases, write)."""
    input_bytes_per_cell: float
    """Input-cube bytes per cell (stored, compressed; the tile stage reads a tile's chunks once)."""
    product_bytes_per_cell: float
    """Bytes stored per cell: product cube (29 layers + reason) and the 29 COGs."""
    source: str
    """Where the figures come from (benchmark, date, store, region)."""


MEASURED = Measured(
    px_per_cpu_s=65766.2, input_bytes_per_cell=65.06, product_bytes_per_cell=129.17,
    source="bench_pipeline.py 2026-11-30 (late night, climate per tile window), s3 (moto), demo "
           "world 6 tiles of 240², cached pass",
)
"""``measured_from_bench`` of that run's report (2-core VM, load average ≈ 0.5–1.5)."""


def measured_from_bench(path: Path, store: str = "s3") -> Measured:
    """Read the per-tile figures of a ``bench_pipeline.py --json`` report (cached pass)."""
    report = json.loads(Path(path).read_text())
    (r,) = [r for r in report["results"] if r["store"] == store][:1]
    cells = r["tiles"] * r["tile_size"] ** 2
    return Measured(
        px_per_cpu_s=float(r["cached_open"]["px_per_cpu_s"]),
        input_bytes_per_cell=r["input_cube_bytes_per_tile"] * r["tiles"] / cells,
        product_bytes_per_cell=(r["product_cube_bytes_per_tile"] + r["cog_bytes_per_tile"])
        * r["tiles"] / cells,
        source=f"bench_pipeline.py, {store}, demo world {r['tiles']} tiles of {r['tile_size']}²",
    )


def naturalearth_path() -> Path:
    """Return the Natural Earth 1:110m countries shapefile shipped with pyogrio's test data."""
    return (Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
            / "naturalearth_lowres.shp")


@dataclass(frozen=True)
class LandTiles:
    """Land tiles of the global 2° grid and the land cells they hold."""

    n_tiles: int
    """Tiles of the global grid (16 200)."""
    n_land_tiles: int
    """Tiles that intersect land (``WORLD_EXCLUDED``, i.e. Antarctica, left out)."""
    land_cells: float
    """30″ cells inside land polygons."""


def land_tiles(shapefile: Path | None = None, country: str | None = None) -> LandTiles:
    """Count the 2° tiles that intersect land (or one country) and the 30″ land cells in them.

    ``shapefile``: any admin-0 vector file with Natural Earth's ISO3 and name attributes (either
    case: ``iso_a3``/``name`` in pyogrio's 1:110m copy, ``ISO_A3``/``NAME`` in the 1:10m file);
    invalid polygons (1:10m has some) are repaired as :mod:`gsocseq.sources.boundaries` does.
    """
    path = shapefile or naturalearth_path()
    meta, _fids, wkb, fields = read_raw(path)
    column = {str(k).lower(): v for k, v in zip(meta["fields"], fields, strict=True)}
    if "iso_a3" not in column or "name" not in column:
        raise ValueError(f"{path}: needs ISO_A3 and NAME attributes, has {list(meta['fields'])}")
    geoms = shapely.from_wkb(wkb)
    invalid = ~shapely.is_valid(geoms)
    geoms[invalid] = shapely.make_valid(geoms[invalid])
    keep = ((np.asarray(column["name"]) == country) if country
            else ~np.isin(np.asarray(column["iso_a3"]), list(WORLD_EXCLUDED)))
    if not keep.any():
        raise ValueError(f"{path}: no country named {country!r}")
    land = shapely.union_all(geoms[keep])
    west = np.arange(-180, 180, TILE_DEG)
    south = np.arange(-90, 90, TILE_DEG)
    ww, ss = np.meshgrid(west, south)
    boxes = shapely.box(ww.ravel(), ss.ravel(), ww.ravel() + TILE_DEG, ss.ravel() + TILE_DEG)
    shapely.prepare(land)
    hit = shapely.intersects(land, boxes)
    area_deg2 = shapely.area(shapely.intersection(boxes[hit], land))
    return LandTiles(n_tiles=boxes.size, n_land_tiles=int(hit.sum()),
                     land_cells=float(area_deg2.sum() * CELLS_PER_DEG**2))


@dataclass(frozen=True)
class SizingRow:
    """One cluster size of the sizing table."""

    workers: int
    cores: int
    waves: int
    wall_s_times_x: float
    """Wall time in seconds × X (divide by X in pixels/s/core to get seconds)."""
    cost_usd_times_x: float
    """Cost in USD × X."""


def sizing_rows(tiles: LandTiles, share: float = AGRICULTURAL_SHARE,
                worker_counts: Sequence[int] = WORKER_COUNTS) -> list[SizingRow]:
    """Return the sizing table (wall time and cost as multiples of 1/X)."""
    pixels = share * tiles.land_cells
    per_tile = pixels / tiles.n_land_tiles
    rows = []
    for w in worker_counts:
        cores = w * THREADS_PER_WORKER
        waves = math.ceil(tiles.n_land_tiles / cores)
        wall = waves * per_tile
        rows.append(SizingRow(w, cores, waves, wall, cores * wall / 3600 * PRICE_PER_VCPU_HOUR))
    return rows


@dataclass(frozen=True)
class Rebuild:
    """Work, bytes and cost of rebuilding one area from the measured per-tile figures."""

    tiles: int
    pixels: float
    core_hours: float
    bytes_read: float
    bytes_stored: float
    compute_usd: float
    storage_usd_month: float


def rebuild(tiles: LandTiles, m: Measured, share: float = AGRICULTURAL_SHARE) -> Rebuild:
    """Return the figures of one rebuild of ``tiles`` (whole tiles are read and stored)."""
    pixels = share * tiles.land_cells
    core_hours = pixels / m.px_per_cpu_s / 3600 if m.px_per_cpu_s else math.nan
    cells = tiles.n_land_tiles * TILE_CELLS
    stored = cells * m.product_bytes_per_cell
    return Rebuild(tiles.n_land_tiles, pixels, core_hours, cells * m.input_bytes_per_cell, stored,
                   core_hours * PRICE_PER_VCPU_HOUR, stored / 1e9 * PRICE_PER_GB_MONTH)


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} B"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds / 60:.3g} min"


def markdown(tiles: LandTiles, x: float | None = None, share: float = AGRICULTURAL_SHARE,
             measured: Measured = MEASURED, country: LandTiles | None = None,
             land: str = "Natural Earth 1:110m land") -> str:
    """Return the README's sizing section body, evaluated at ``x`` or with the placeholder.

    The rebuild table (world and :data:`LARGE_COUNTRY`) uses ``measured``; ``country`` defaults
    to :func:`land_tiles` of :data:`LARGE_COUNTRY`.
    """
    pixels = share * tiles.land_cells
    per_tile = pixels / tiles.n_land_tiles
    xs = X_PLACEHOLDER if x is None else f"{x:g}"
    lines = [
        f"- tiles: 43 200 × 21 600 cells / (240 × 240) = {tiles.n_tiles} tiles of 2° × 2°",
        f"- land tiles T = {tiles.n_land_tiles} (tiles meeting {land}, "
        "Antarctica excluded)",
        f"- land cells = Σ land area (deg²) × 120² = {tiles.land_cells:.4g}",
        f"- modelled pixels N = s × land cells = {share} × {tiles.land_cells:.4g} = {pixels:.4g}",
        f"- mean pixels per land tile N / T = {per_tile:.4g}",
        f"- total work N / X = {pixels:.4g} / X core-seconds = {pixels / 3600:.4g} / X core-hours",
        f"- X = **{xs}** pixels/s/core (measured, whole procedure)",
        "",
        "| worker pods W | cores 2W | waves ⌈T / 2W⌉ | wall = waves × (N/T) / X | "
        f"wall at X = {xs} | cost = 2W × wall × ${PRICE_PER_VCPU_HOUR}/vCPU-h | "
        f"cost at X = {xs} |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sizing_rows(tiles, share):
        wall = _hours(r.wall_s_times_x / x) if x else xs
        cost = f"${r.cost_usd_times_x / x:.3g}" if x else xs
        lines.append(
            f"| {r.workers} | {r.cores} | {r.waves} | {r.wall_s_times_x / 3600:.4g} / X h | "
            f"{wall} | ${r.cost_usd_times_x:.4g} / X | {cost} |"
        )
    m = measured
    lines += [
        "",
        f"Measured per-tile figures ({m.source}): {m.px_per_cpu_s:.4g} modelled pixels per "
        f"CPU-second of the tile stage, {m.input_bytes_per_cell:.4g} input bytes read and "
        f"{m.product_bytes_per_cell:.4g} bytes stored (product cube + COGs) per cell; "
        f"{PRICE_PER_GB_MONTH} $/GB-month storage.",
        "",
        "| rebuild | land tiles | modelled pixels | core-hours | bytes read | bytes stored | "
        f"compute at ${PRICE_PER_VCPU_HOUR}/vCPU-h | storage per month |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    country = country or land_tiles(country=LARGE_COUNTRY)
    for name, area in (("world", tiles), (LARGE_COUNTRY, country)):
        b = rebuild(area, m, share)
        lines.append(
            f"| {name} | {b.tiles} | {b.pixels:.4g} | {b.core_hours:.4g} | {_bytes(b.bytes_read)} "
            f"| {_bytes(b.bytes_stored)} | ${b.compute_usd:.3g} | ${b.storage_usd_month:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the sizing section (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", type=float, default=None,
                        help="measured throughput, pixels per second per core")
    parser.add_argument("--share", type=float, default=AGRICULTURAL_SHARE,
                        help="modelled (agricultural) share of land cells")
    parser.add_argument("--boundaries", type=Path, default=None,
                        help="admin-0 vector file (default: Natural Earth 1:110m from pyogrio)")
    parser.add_argument("--bench", type=Path, default=None,
                        help="a benchmarks/bench_pipeline.py --json report (its s3 figures)")
    args = parser.parse_args(argv)
    measured = measured_from_bench(args.bench) if args.bench else MEASURED
    land = f"the land of {args.boundaries.name}" if args.boundaries else "Natural Earth 1:110m land"
    print(markdown(land_tiles(args.boundaries), args.x, args.share, measured,
                   land_tiles(args.boundaries, country=LARGE_COUNTRY), land), end="")


if __name__ == "__main__":
    main()
