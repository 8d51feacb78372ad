"""One tile of a run: read the input cube, run the GSOCseq phases, write the product cube, mark done.

:func:`run_tile` is the unit of work and retry. It takes URLs and a tile id (never arrays), so it can
run on any dask worker or Prefect task. The completion marker ``_done/{tile_id}.json`` (counts, totals,
checksums) is written last; a tile whose marker exists for the same configuration is skipped.
Memory per call is bounded by the tile size: the inputs of one tile plus one batch of pixels.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gsocseq import __version__, storage
from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey, cell_area_ha
from gsocseq.cube.product_cube import REASON_VAR, write_product_tile
from gsocseq.cube.tile_inputs import TileInputs, read_tile_inputs
from gsocseq.errors import PipelineError
from gsocseq.model.montecarlo import montecarlo_layers
from gsocseq.model.phases import PhaseConfig, run_phases
from gsocseq.pipeline.incremental import input_key, input_keys
from gsocseq.pipeline.malloc import reuse_large_allocations
from gsocseq.pipeline.plan import RunPlan
from gsocseq.storage import TILE_ATTEMPTS, call_with_retries, error_text
from gsocseq.vocabulary import (
    LAND_USE_GROUPS,
    LAYER_NAMES,
    LAYERS,
    MONTECARLO_LAYERS,
    QUALITY_NODATA,
    SCHEME_QUALITY_LAYERS,
    Reason,
)

PIXEL_BATCH: int = 8192
"""Cells whose climate is regridded and passed to ``run_phases`` at once: bounds the batch's
(months × pixels) float32 climate to 3 × 480 × 8 192 × 4 B ≈ 47 MB, whatever the tile size
(the demo world's 6 tiles in one process: 5 % fewer CPU-seconds than with 16 384 in 5 of 6
interleaved pairs, 65 536 was 20 % slower)."""

#: Layers summed over area in the totals (stocks t C/ha → t C, rates t C/ha/yr → t C/yr).
TOTAL_LAYERS: tuple[str, ...] = tuple(n for n, u in LAYERS.items() if u.startswith("t C/ha"))

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class TileOutcome:
    """Result of :func:`run_tile` for one tile."""

    tile_id: str
    """Tile id (:attr:`TileKey.id`)."""
    status: Status
    """``done`` (computed now), ``skipped`` (marker found) or ``failed``."""
    pixels: int = 0
    """Cells in the tile."""
    modelled: int = 0
    """Cells with a modelled value (reason 0)."""
    reasons: dict[int, int] = field(default_factory=dict)
    """Cell count per :class:`Reason` code (0 included)."""
    totals: dict[str, float] = field(default_factory=dict)
    """Σ value × cell area per stock / rate layer: t C (stocks) or t C/yr (rates)."""
    seconds: float = 0.0
    """Wall time of the computation (from the marker for skipped tiles), s."""
    error: str | None = None
    """Error message of a failed tile."""


def phase_config(config: RunConfig) -> PhaseConfig:
    """Return the model settings of a run configuration."""
    return PhaseConfig(
        scheme=config.scheme, uncertainty=config.uncertainty,
        ssm_increase=tuple(tuple(config.ssm_increase[g]) for g in LAND_USE_GROUPS),
    )


def compute_tile(
    inputs: TileInputs | dict[str, np.ndarray], config: PhaseConfig, *,
    batch: int = PIXEL_BATCH, montecarlo: tuple[int, int] | None = None,
    origin: tuple[int, int] = (0, 0),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the phases on one tile's inputs; return layers and reasons.

    ``inputs`` as read by :func:`gsocseq.cube.tile_inputs.read_tile_inputs` (the climate
    regridded per batch, only where it decides a code) or ``read_tile``'s arrays. Only pixels
    whose input reason is 0 are modelled; the others keep their input reason and NaN.
    Returns float32 ``(ny, nx)`` layers (t C/ha, t C/ha/yr, %), the scheme's uint8 quality layers
    (``vocabulary.SCHEME_QUALITY_LAYERS``) and uint8 ``(ny, nx)`` reasons. With ``montecarlo`` =
    (draws, seed) also the Monte Carlo layers (``vocabulary.MONTECARLO_LAYERS``) of the modelled
    pixels, their draws keyed by global cell: ``origin`` is the (row, col) of cell [0, 0].
    """
    if not isinstance(inputs, TileInputs):
        inputs = TileInputs.from_arrays(inputs)
    shape, n = inputs.shape, inputs.reason.size
    reason = inputs.reason.copy()
    layers = {name: np.full(n, np.nan, dtype=np.float32) for name in LAYER_NAMES}
    mc_layers = {name: np.full(n, np.nan, dtype=np.float32)
                 for name in (MONTECARLO_LAYERS if montecarlo is not None else ())}
    quality = {name: np.full(n, QUALITY_NODATA, dtype=np.uint8)
               for name in SCHEME_QUALITY_LAYERS[config.scheme]}
    flat = inputs.flat
    cand = inputs.candidates
    for start in range(0, cand.size, batch):
        cells = cand[start : start + batch]
        series, codes = inputs.climate(cells)
        reason[cells] = codes
        ok = codes == Reason.OK
        if not ok.all():  # the climate masked some: keep the modelled columns only
            cells = cells[ok]
            series = {k: np.ascontiguousarray(v[:, ok]) for k, v in series.items()}
        if cells.size == 0:
            continue
        pixels = {"soc": flat["soc"][cells], "clay": flat["clay"][cells],
                  "land_use": flat["land_use"][cells], **series,
                  "cover": np.ascontiguousarray(inputs.cover[cells].T)}
        result = run_phases(**pixels, config=config)
        reason[cells] = result.reason
        for name in LAYER_NAMES:
            layers[name][cells] = result.layers[name]
        for name in quality:
            quality[name][cells] = result.quality[name]
        if montecarlo is not None:
            _montecarlo(pixels, flat, cells, result.reason, shape, config, montecarlo, origin,
                        mc_layers)
    layers.update(quality)  # uint8 quality layers of the scheme (fao), after the 29
    layers.update(mc_layers)
    return {k: v.reshape(shape) for k, v in layers.items()}, reason.reshape(shape)


def _montecarlo(
    pixels: dict[str, np.ndarray], flat: dict[str, np.ndarray], cells: np.ndarray,
    reason: np.ndarray, shape: tuple[int, int], config: PhaseConfig,
    settings: tuple[int, int], origin: tuple[int, int], out: dict[str, np.ndarray],
) -> None:
    """Fill the Monte Carlo layers (float32, flat ``out``) of the batch's modelled pixels."""
    draws, seed = settings
    ok = np.flatnonzero(reason == Reason.OK)
    if ok.size == 0:
        return
    idx = cells[ok]
    every = ok.size == cells.size
    columns = {k: v if every else np.ascontiguousarray(v[..., ok]) for k, v in pixels.items()}
    result = montecarlo_layers(
        **columns, rows=origin[0] + idx // shape[-1], cols=origin[1] + idx % shape[-1],
        draws=draws, seed=seed, config=config,
        soc_uncertainty=flat["soc_uncertainty"][idx] if "soc_uncertainty" in flat else None,
    )
    for name, arr in result.items():
        out[name][idx] = arr


def tile_statistics(
    tile: TileKey, layers: dict[str, np.ndarray], reason: np.ndarray
) -> dict[str, Any]:
    """Return counts per reason, area totals (t C, t C/yr) and sha256 checksums of a tile's results."""
    area = cell_area_ha(tile.latitudes())[:, None]
    codes, counts = np.unique(reason, return_counts=True)
    totals = {
        name: float(np.nansum(layers[name].astype(np.float64) * area)) for name in TOTAL_LAYERS
    }
    checksums = {
        name: hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        for name, arr in (*layers.items(), (REASON_VAR, reason))
    }
    return {
        "pixels": int(reason.size),
        "modelled": int(np.count_nonzero(reason == Reason.OK)),
        "reasons": {str(int(c)): int(k) for c, k in zip(codes, counts, strict=True)},
        "totals": totals,
        "checksums": dict(sorted(checksums.items())),
    }


def run_tile(
    config: RunConfig, plan: RunPlan, tile_id: str, *, raise_errors: bool = False,
    attempts: int = TILE_ATTEMPTS,
) -> TileOutcome:
    """Compute one tile into the product cube and write its completion marker last.

    Skips the tile (status ``skipped``) when its marker exists for this configuration. A transient
    storage error retries the whole tile (up to ``attempts`` times, :mod:`gsocseq.storage`).
    Errors give status ``failed`` with the message, or raise :class:`PipelineError` with
    ``raise_errors``.
    """
    try:
        return call_with_retries(lambda: _run_tile_once(config, plan, tile_id),
                                 what=f"tile {tile_id}", attempts=attempts)
    except Exception as exc:
        if raise_errors:
            raise PipelineError(f"tile {tile_id} failed: {error_text(exc)}") from exc
        return TileOutcome(tile_id, "failed", error=error_text(exc))


def _run_tile_once(config: RunConfig, plan: RunPlan, tile_id: str) -> TileOutcome:
    """One attempt of :func:`run_tile` (raises on any error)."""
    so = config.storage_options
    marker_url = plan.marker_url(tile_id)
    marker = storage.read_json(marker_url, so)
    inputs = input_key(plan.cube_url, tile_id, so)  # the cube tile and climate it reads now
    if current(marker, plan, inputs):
        return outcome_from_marker(marker, "skipped")
    t_start = time.perf_counter()
    reuse_large_allocations()  # once per process: a dask worker re-maps every array otherwise
    tile = TileKey.from_id(tile_id)
    arrays = _read_inputs(plan.cube_url, so, tile)
    layers, reason = compute_tile(
        arrays, phase_config(config), origin=(tile.row0, tile.col0),
        montecarlo=(config.draws, config.seed) if config.draws else None)
    del arrays
    write_product_tile(plan.product_cube_url, tile, layers, reason, so)
    doc = {
        "tile": tile_id, "config_hash": plan.config_hash, "code_version": __version__,
        "inputs": inputs, "product_cube": plan.product_cube_url, "cube": plan.cube_url,
        **tile_statistics(tile, layers, reason),
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    storage.write_json(marker_url, doc, so)
    return outcome_from_marker(doc, "done")


def current(marker: dict[str, Any] | None, plan: RunPlan, inputs: str | None) -> bool:
    """Return whether a completion marker holds this configuration's results of these inputs.

    ``inputs`` is the tile's input key now (:func:`gsocseq.pipeline.incremental.input_keys`); a
    marker from another configuration or other inputs (or from before input keys) is not current.
    """
    return (marker is not None and marker.get("config_hash") == plan.config_hash
            and bool(inputs) and marker.get("inputs") == inputs)


def outcome_from_marker(marker: dict[str, Any], status: Status) -> TileOutcome:
    """Build a :class:`TileOutcome` from a completion marker document."""
    return TileOutcome(
        tile_id=marker["tile"], status=status, pixels=int(marker["pixels"]),
        modelled=int(marker["modelled"]),
        reasons={int(k): int(v) for k, v in marker["reasons"].items()},
        totals={k: float(v) for k, v in marker["totals"].items()},
        seconds=float(marker.get("seconds", 0.0)),
    )


def finished_tiles(config: RunConfig, plan: RunPlan) -> dict[str, TileOutcome]:
    """Return the tiles whose completion marker is current (this configuration, these inputs).

    One listing of the marker folder, then the markers fetched together (concurrently on object
    stores); the input keys come from the cube's tile records (one listing, :func:`input_keys`).
    """
    so = config.storage_options
    keys = input_keys(plan.cube_url, plan.tile_ids, so)
    wanted = {f"{t}.json": t for t in plan.tile_ids}
    names = [n for n in storage.list_names(plan.done_url, so) if n in wanted]
    if not names:
        return {}
    fs, path = storage.filesystem(plan.done_url, so)
    blobs = fs.cat([f"{path}/{n}" for n in names], on_error="omit")
    out = {}
    for blob in blobs.values():
        marker = json.loads(blob)
        if current(marker, plan, keys.get(marker["tile"])):
            out[marker["tile"]] = outcome_from_marker(marker, "skipped")
    return out


def _read_inputs(cube_url: str, so: dict[str, Any], tile: TileKey) -> TileInputs:
    """Read one tile of the input cube (:func:`~gsocseq.cube.tile_inputs.read_tile_inputs`).

    The cube is opened once per worker process (:func:`~gsocseq.cube.store.cached_cube`); only the
    tile's chunks are read.
    """
    from gsocseq.cube.store import cached_cube

    return read_tile_inputs(cached_cube(cube_url, so), tile)
