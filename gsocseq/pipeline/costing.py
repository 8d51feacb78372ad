"""``gsocseq plan``: what a run of a region would read, compute, store and cost — without running it.

Owns the dry run: the region's tiles and cells (from the boundaries only), its eligible pixels (a
decimated read of the land-cover source where it is reachable), the bytes each source would be read
for (file sizes × the share of each file the region's tiles cover), and core-hours, wall time,
bytes stored and cost from per-cell rates measured on this code (``rates.json``, written by
``benchmarks/bench_world.py`` and, for Monte Carlo draws, ``benchmarks/bench_montecarlo.py``;
``--rates FILE`` for another calibration), for the layers the run's configuration publishes.
Nothing is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
import shapely
from affine import Affine

from gsocseq.vocabulary import SCENARIOS, UNCERTAINTY_METHODS

RATES_FILE: str = "rates.json"
"""Rates shipped beside this module (``gsocseq/pipeline/rates.json``)."""
LC_MAX_CELLS: int = 4_000_000
"""Cells of the decimated land-cover read that estimates the eligible share."""


@dataclass(frozen=True)
class Rates:
    """Per-cell costs measured on this code (``benchmarks/bench_world.py`` writes them)."""

    input_core_s_per_cell: float
    """Input cube build, core-seconds per cell of the region's tiles."""
    tile_core_s_per_pixel: float
    """Tile stage (read cube, whole GSOCseq procedure, write 29 layers), core-seconds per eligible
    (modelled) pixel."""
    publish_core_s_per_cell_layer: float
    """COG writing, core-seconds per cell of the region's tiles and layer."""
    stored_bytes_per_cell: float
    """Bytes stored (input cube + product cube + COGs) per cell of the region's tiles, by a run
    publishing ``stored_layers`` layers."""
    eligible_fraction: float
    """Share of the region's cells modelled, when the land cover is not reachable."""
    measured: str = ""
    """Where and when the rates were measured."""
    montecarlo_core_s_per_pixel_draw: float | None = None
    """Monte Carlo draws (``uncertainty = "montecarlo"``), core-seconds per modelled pixel and draw
    on top of the tile stage; ``None``: the shipped rate is used."""
    montecarlo_measured: str = ""
    """Where and when the Monte Carlo rate was measured."""
    stored_bytes_per_cell_layer: float | None = None
    """Bytes of the product cube and COGs per cell and published layer (a part of
    ``stored_bytes_per_cell``); ``None``: the shipped rate is used."""
    stored_layers: int | None = None
    """Layers published by the run that measured ``stored_bytes_per_cell``; ``None``: the shipped
    value is used."""

    def stored_bytes(self, cells: float, layers: int) -> float:
        """Return the bytes stored for ``cells`` cells of tiles publishing ``layers`` layers.

        ``stored_bytes_per_cell`` is moved by ``stored_bytes_per_cell_layer`` for each layer more
        (or fewer) than the measured run published; raises ``ValueError`` without those rates.
        """
        if self.stored_bytes_per_cell_layer is None or self.stored_layers is None:
            raise ValueError("rates lack stored_bytes_per_cell_layer and stored_layers")
        per_cell = (self.stored_bytes_per_cell
                    + (layers - self.stored_layers) * self.stored_bytes_per_cell_layer)
        return cells * per_cell


@dataclass(frozen=True)
class SourceRead:
    """Bytes one source would be read for."""

    name: str
    files: int
    """Files the run opens."""
    bytes: float | None
    """Estimated bytes read (file sizes × covered share), ``None`` when not reachable."""
    note: str = ""


@dataclass(frozen=True)
class CostPlan:
    """The dry-run figures of a region (see module docstring); units in the field names."""

    region: str
    tile_size: int
    tiles: int
    tiles_in_rectangle: int
    """Tiles of the region's bounding rectangle (ocean/outside tiles are never read or built)."""
    cells: int
    """Cells of the region's tiles."""
    uncertainty: str
    """Uncertainty method planned (``brackets``, ``montecarlo`` or ``none``)."""
    draws: int
    """Monte Carlo draws per pixel (0 without Monte Carlo)."""
    layers: int
    """Product layers the run publishes (its scenarios, uncertainty method and scheme)."""
    region_cells: int
    """Cells inside the region (area share of each tile)."""
    eligible_pixels: int
    eligible_source: str
    """``land cover`` (a decimated read of the source) or ``rates`` (its default share)."""
    sources: tuple[SourceRead, ...]
    core_hours: float
    workers: int
    wall_hours: float
    stored_bytes: float
    cost: float
    """core_hours × price_core_hour + stored GB × price_gb_month (one month), currency units."""
    rates: Rates
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


def load_rates(url: str | None = None) -> Rates:
    """Return the rates of ``url`` (a JSON file of :class:`Rates` fields) or the shipped ones."""
    if url is None:
        text = resources.files("gsocseq.pipeline").joinpath(RATES_FILE).read_text()
    else:
        import fsspec

        with fsspec.open(url, "rt") as f:
            text = f.read()
    doc = json.loads(text)
    return Rates(**{k: doc[k] for k in Rates.__dataclass_fields__ if k in doc})


def region_cells(region: Any) -> int:
    """Return the cells of ``region`` inside its tiles, from each tile's covered area share."""
    size = region.tile_size
    if region.geometry is None:
        return int(sum(int(region.mask(t).sum()) for t in region.tiles))
    boxes = shapely.box(*np.array([t.bounds for t in region.tiles]).T)
    shapely.prepare(region.geometry)
    share = shapely.area(shapely.intersection(region.geometry, boxes)) / shapely.area(boxes)
    return int(round(float(np.sum(share)) * size * size))


def eligible_share(region: Any, sources: Any) -> float:
    """Return the share of ``region``'s cells whose land cover is modelled (decimated nearest read).

    Raises whatever opening the land-cover source raises (the caller reports it as unreachable).
    """
    import rasterio
    from rasterio.features import rasterize
    from rasterio.windows import from_bounds

    from gsocseq.model.landuse import is_modelled
    from gsocseq.sources.landcover import esa_to_fao
    from gsocseq.storage import filesystem as url_to_fs

    spec = sources["land_cover"]
    year = spec.period[0] if spec.period else 2015
    fs, path = url_to_fs(spec.format_url(year=year), sources.storage_options)
    west, south, east, north = region.bounds
    with fs.open(path, "rb") as f, rasterio.open(f) as src:
        window = from_bounds(max(west, src.bounds.left), max(south, src.bounds.bottom),
                             min(east, src.bounds.right), min(north, src.bounds.top),
                             src.transform).round_offsets().round_lengths()
        scale = max(1.0, math.sqrt(window.width * window.height / LC_MAX_CELLS))
        shape = (max(1, int(window.height / scale)), max(1, int(window.width / scale)))
        codes = src.read(1, window=window, out_shape=shape)
        transform = src.window_transform(window) @ Affine.scale(window.width / shape[1],
                                                                 window.height / shape[0])
    inside = np.ones(shape, dtype=bool)
    if region.geometry is not None:
        inside = rasterize([(region.geometry, 1)], out_shape=shape, transform=transform,
                           fill=0, dtype="uint8").astype(bool)
    if not inside.any():
        return 0.0
    return float(np.mean(is_modelled(esa_to_fao(codes))[inside]))


def _source_files(spec: Any) -> list[str]:
    """Return the URLs a run opens for one source (templates expanded as the adapters do)."""
    if spec.name == "climate" and spec.period:
        return [spec.format_url(var=v, year=y) for v in spec.layers
                for y in range(spec.period[0], spec.period[1] + 1)]
    if spec.name == "clay":
        return [spec.format_url(depth=d) for d in spec.layers] or [spec.url]
    if spec.name == "land_cover":
        return [spec.format_url(year=spec.period[0] if spec.period else 2015)]
    if spec.name == "cover":
        return [spec.format_url(month=m) for m in range(1, 13)]
    return [spec.url]


def _file_bounds(fs: Any, path: str) -> tuple[float, float, float, float] | None:
    """Return (west, south, east, north) of a raster or netCDF file, degrees; None if unknown."""
    try:
        if path.endswith((".nc", ".nc4", ".h5")):
            import h5py

            with fs.open(path, "rb") as f, h5py.File(f, "r") as h5:
                lat = next(np.asarray(h5[n][:]) for n in ("lat", "latitude") if n in h5)
                lon = next(np.asarray(h5[n][:]) for n in ("lon", "longitude") if n in h5)
            return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        import rasterio
        from rasterio.warp import transform_bounds

        with fs.open(path, "rb") as f, rasterio.open(f) as src:
            b = src.bounds
            if src.crs is not None and src.crs.to_epsg() != 4326:
                return tuple(transform_bounds(src.crs, "EPSG:4326", *b))  # type: ignore[return-value]
            return (b.left, b.bottom, b.right, b.top)
    except Exception:  # noqa: BLE001 - unknown extent: the whole file is counted
        return None


def source_reads(region: Any, sources: Any) -> tuple[SourceRead, ...]:
    """Return the estimated bytes each source is read for: Σ file size × share of it covered.

    The share is the area of the region's tiles (plus one tile of margin for resampling) inside
    the file's extent over the extent's area; boundaries are read whole. Unreachable files give
    ``bytes=None`` with the error as note.
    """
    from gsocseq.storage import filesystem as url_to_fs

    pad = region.tile_size / 120.0 / 10.0
    tiles = shapely.union_all(shapely.box(*np.array(
        [(w - pad, s - pad, e + pad, n + pad) for w, s, e, n in (t.bounds for t in region.tiles)]
    ).T))
    out = []
    for spec in sources.specs:
        urls = _source_files(spec)
        total, note = 0.0, ""
        bounds_cache: dict[str, Any] = {}
        try:
            for url in urls:
                fs, path = url_to_fs(url, sources.storage_options)
                size = float(fs.size(path))
                if spec.name == "boundaries":
                    total += size
                    continue
                key = url.rsplit("/", 1)[0]
                if key not in bounds_cache:  # one extent per folder (a dataset's files agree)
                    bounds_cache[key] = _file_bounds(fs, path)
                b = bounds_cache[key]
                if b is None:
                    total += size
                    continue
                ext = shapely.box(*b)
                total += size * min(1.0, shapely.area(shapely.intersection(tiles, ext))
                                    / max(shapely.area(ext), 1e-12))
        except Exception as exc:  # noqa: BLE001 - reported, the plan goes on
            out.append(SourceRead(spec.name, len(urls), None,
                                  f"not reachable: {type(exc).__name__}: {exc}"[:200]))
            continue
        out.append(SourceRead(spec.name, len(urls), total, note))
    return tuple(out)


def cost_plan(
    region_spec: str,
    *,
    sources_url: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    tile_size: int = 240,
    workers: int = 100,
    rates: Rates | None = None,
    scenarios: tuple[str, ...] = SCENARIOS,
    uncertainty: str = "brackets",
    draws: int | None = None,
    scheme: str = "exact",
    price_core_hour: float = 0.05,
    price_gb_month: float = 0.023,
    read_sources: bool = True,
) -> CostPlan:
    """Return the dry-run figures of ``region_spec`` (nothing is computed or written).

    Parameters
    ----------
    region_spec
        ISO3, ``w,s,e,n``, ``world`` or an alias of the sources (``demo``).
    sources_url, storage_options
        The ``sources.toml`` (default: the shipped one) and the fsspec options to read it.
    tile_size
        Tile edge, cells of 30″.
    rates
        Per-cell rates (default: :func:`load_rates` of the shipped file).
    scenarios, uncertainty, draws, scheme
        What the run publishes, as in :class:`~gsocseq.config.RunConfig`: the product layers are
        those of :func:`~gsocseq.pipeline.publish.product_layers` (29 for every scenario with the
        brackets, 65 with Monte Carlo); ``draws`` (default 100 with ``"montecarlo"``) scales
        the Monte Carlo compute.
    workers
        Dask workers of one core each, for the wall time.
    price_core_hour, price_gb_month
        Prices per core-hour and per GB stored for a month (currency units, e.g. USD).
    read_sources
        Also size the reads of every source and the land-cover share (opens their headers).
    """
    from gsocseq.config import DEFAULT_DRAWS, MAX_DRAWS
    from gsocseq.cube import resolve_region
    from gsocseq.pipeline.publish import product_layers
    from gsocseq.sources import load_sources

    if uncertainty not in UNCERTAINTY_METHODS:
        raise ValueError(f"uncertainty {uncertainty!r}: expected one of {UNCERTAINTY_METHODS}")
    if draws and uncertainty != "montecarlo":
        raise ValueError(f"draws={draws} needs uncertainty 'montecarlo', got {uncertainty!r}")
    n_draws = (draws or DEFAULT_DRAWS) if uncertainty == "montecarlo" else 0
    if not 0 <= n_draws <= MAX_DRAWS:
        raise ValueError(f"draws {draws} must be in [1, {MAX_DRAWS}]")
    bad = [x for x in scenarios if x not in SCENARIOS]
    if bad or not scenarios:
        raise ValueError(f"scenarios {list(scenarios)!r}: each must be one of {SCENARIOS}")
    layers = len(product_layers(tuple(scenarios), uncertainty != "none", scheme, n_draws > 0))
    rates = rates or load_rates()
    draw_s = rates.montecarlo_core_s_per_pixel_draw
    notes: list[str] = []
    if n_draws and draw_s is None:
        draw_s = load_rates().montecarlo_core_s_per_pixel_draw or 0.0
        notes.append("Monte Carlo rate not in the given rates: the shipped one is used")
    sources = load_sources(sources_url, storage_options=storage_options)
    region = resolve_region(region_spec, sources, tile_size=tile_size)
    cells = len(region.tiles) * tile_size * tile_size
    in_region = region_cells(region)
    share, eligible_from = rates.eligible_fraction, "rates"
    reads: tuple[SourceRead, ...] = ()
    if read_sources:
        try:
            share, eligible_from = eligible_share(region, sources), "land cover"
        except Exception as exc:  # noqa: BLE001 - an unreachable source falls back to the rates
            notes.append(f"land cover not reachable ({type(exc).__name__}); eligible share "
                         f"{rates.eligible_fraction:.2f} from the rates")
        reads = source_reads(region, sources)
    eligible = int(round(in_region * share))
    core_s = (cells * rates.input_core_s_per_cell
              + eligible * (rates.tile_core_s_per_pixel + n_draws * (draw_s or 0.0))
              + cells * layers * rates.publish_core_s_per_cell_layer)
    per_tile_s = core_s / max(1, len(region.tiles))
    wall_s = max(core_s / max(1, workers), per_tile_s) if workers > 0 else math.inf
    if rates.stored_bytes_per_cell_layer is None or rates.stored_layers is None:
        shipped = load_rates()
        rates = replace(rates, stored_bytes_per_cell_layer=shipped.stored_bytes_per_cell_layer,
                        stored_layers=shipped.stored_layers)
        notes.append("bytes stored per layer not in the given rates: the shipped rate is used")
    stored = rates.stored_bytes(cells, layers)
    core_h = core_s / 3600.0
    return CostPlan(
        region=region_spec, tile_size=tile_size, tiles=len(region.tiles),
        tiles_in_rectangle=len(region.all_tiles()), cells=cells, uncertainty=uncertainty,
        draws=n_draws, layers=layers, region_cells=in_region,
        eligible_pixels=eligible, eligible_source=eligible_from, sources=reads,
        core_hours=core_h, workers=workers, wall_hours=wall_s / 3600.0, stored_bytes=stored,
        cost=core_h * price_core_hour + stored / 1e9 * price_gb_month, rates=rates,
        notes=tuple(notes),
    )


def _bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n:.1f} PB"


def _num(x: float) -> str:
    """Return ``x`` with thousands separators, at least 3 significant digits."""
    return f"{x:,.1f}" if abs(x) >= 100 else f"{x:.3g}"


def format_cost_plan(p: CostPlan) -> str:
    """Return the human-readable dry-run report."""
    lines = [
        f"plan for region {p.region} (tile size {p.tile_size}; nothing computed or written)",
        f"tiles: {p.tiles} to build and compute ({p.tiles_in_rectangle} in the bounding "
        f"rectangle; {p.tiles_in_rectangle - p.tiles} outside the region are never read)",
        f"cells: {p.cells:,} in those tiles, {p.region_cells:,} inside the region",
        f"eligible pixels: {p.eligible_pixels:,} (share from {p.eligible_source})",
        f"layers published: {p.layers} (uncertainty {p.uncertainty}"
        + (f", {p.draws} Monte Carlo draws per pixel)" if p.draws else ")"),
        "bytes read per source:",
    ]
    for s in p.sources:
        lines.append(f"  {s.name:<11s} {s.files:>5d} file(s)  {_bytes(s.bytes):>10s}"
                     + (f"  ({s.note})" if s.note else ""))
    known = [s.bytes for s in p.sources if s.bytes is not None]
    if p.sources:
        lines.append(f"  total       {_bytes(sum(known))}"
                     + ("" if len(known) == len(p.sources) else " (reachable sources only)"))
    lines += [
        f"core-hours: {_num(p.core_hours)}",
        f"wall time with {p.workers} worker(s) of one core: {_num(p.wall_hours)} h",
        f"bytes stored: {_bytes(p.stored_bytes)}",
        f"estimated cost: {_num(p.cost)} (compute + one month of storage)",
        f"rates: {p.rates.measured or 'unspecified'}",
    ]
    if p.draws and p.rates.montecarlo_measured:
        lines.append(f"Monte Carlo rate: {p.rates.montecarlo_measured}")
    lines += [f"note: {n}" for n in p.notes]
    return "\n".join(lines)


def plan_command() -> Any:
    """Return the ``gsocseq plan`` click command (registered by :mod:`gsocseq.cli`)."""
    import click

    @click.command("plan")
    @click.option("--region", required=True, help="ISO3, 'west,south,east,north', 'world' or an alias.")
    @click.option("--sources", default=None, help="URL of a sources.toml (default: shipped sources).")
    @click.option("--tile-size", type=int, default=240, show_default=True)
    @click.option("--workers", type=int, default=100, show_default=True,
                  help="Workers (one core each) for the wall time.")
    @click.option("--rates", "rates_url", default=None,
                  help="Rates JSON (benchmarks/bench_world.py --rates-out); default: shipped.")
    @click.option("--scenarios", default=",".join(SCENARIOS), show_default=True,
                  help="Comma-separated scenarios of the run.")
    @click.option("--uncertainty", type=click.Choice(list(UNCERTAINTY_METHODS)),
                  default="brackets", show_default=True, help="Uncertainty method of the run.")
    @click.option("--draws", type=int, default=None,
                  help="Monte Carlo draws per pixel (with --uncertainty montecarlo; default 100).")
    @click.option("--scheme", type=click.Choice(["exact", "fao"]), default="exact",
                  show_default=True)
    @click.option("--price-core-hour", type=float, default=0.05, show_default=True)
    @click.option("--price-gb-month", type=float, default=0.023, show_default=True)
    @click.option("--no-source-reads", is_flag=True, help="Skip sizing the sources (no file opened).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the report.")
    @click.option("--storage-options", "storage_options", envvar="GSOCSEQ_STORAGE_OPTIONS",
                  default=None, help="fsspec options as JSON.")
    def plan_command(region: str, sources: str | None, tile_size: int, workers: int,
                     rates_url: str | None, scenarios: str, uncertainty: str,
                     draws: int | None, scheme: str, price_core_hour: float, price_gb_month: float,
                     no_source_reads: bool, as_json: bool, storage_options: str | None) -> None:
        """Dry run: tiles, cells, eligible pixels, bytes read, core-hours, wall time, cost."""
        import sys

        from gsocseq.errors import GsocseqError

        try:
            so = json.loads(storage_options) if storage_options else None
            result = cost_plan(region, sources_url=sources, storage_options=so,
                               tile_size=tile_size, workers=workers, rates=load_rates(rates_url),
                               scenarios=tuple(x.strip() for x in scenarios.split(",") if x.strip()),
                               uncertainty=uncertainty, draws=draws, scheme=scheme,
                               price_core_hour=price_core_hour, price_gb_month=price_gb_month,
                               read_sources=not no_source_reads)
        except (GsocseqError, OSError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_cost_plan(result))

    return plan_command
