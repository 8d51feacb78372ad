"""Publishing as cluster tasks: one task per layer (or per part of a global layer), one per country.

Each task opens the product cube itself, once per process while it is unchanged (arguments are
the config, the plan and names, never arrays), streams its layer(s) in strips of whole tile rows
(:mod:`gsocseq.products.blocks`: memory per task bounded by
:data:`~gsocseq.products.blocks.STRIP_BYTES` plus GDAL's cache), writes the COGs
through :func:`~gsocseq.products.cog.write_region_cogs` and returns their descriptions. With a
dask client the tasks run on its workers (publish time ∝ layers ÷ workers); without, one after
another in this process — the same bytes either way. A world run's global layer taller than
:data:`PART_ROWS` is encoded by one task per part of rows and assembled by one more
(:mod:`gsocseq.products.cog_parts`), so one layer no longer bounds the publication.

A world run's national COGs are cut from the world product cube on the country's own tile
rectangle and masked to the country, so they equal a country run's COGs byte for byte.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import dask

from gsocseq import storage
from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey
from gsocseq.cube.product_cube import cached_product_cube
from gsocseq.cube.region import WORLD
from gsocseq.pipeline.plan import RunPlan, product_region_name, resolve
from gsocseq.pipeline.summary import SCENARIO_LABELS
from gsocseq.products.blocks import (
    area_total,
    cut_window,
    mask_to_region,
    strip_rows_for,
    task_env,
)
from gsocseq.products.cog import CogAsset, cog_url, write_region_cogs
from gsocseq.products.cog_parts import PartLayout, part_layout, write_cog_from_parts, write_part
from gsocseq.products.profiles import get_profile

T = TypeVar("T")

PART_ROWS: int = 2048
"""Rows of one part of a global layer encoded by one task (world: 11 tasks per layer, ≤ 338 MiB)."""


def is_world(plan: RunPlan) -> bool:
    """Return whether the plan is a ``world`` run (global + national products)."""
    return plan.region == WORLD


def layer_cog_task(
    config: RunConfig, plan: RunPlan, layer: str, *, skip_existing: bool,
    only_if_changed: bool = False,
) -> CogAsset:
    """Task: write one layer of the run's region (the global layer of a world run) as a COG.

    With ``only_if_changed`` the COG is encoded but not uploaded when the object holds the same
    bytes (a partial republication: :func:`~gsocseq.products.cog.write_cog`).
    """
    so = config.storage_options
    ds = cached_product_cube(plan.product_cube_url, so)[[layer]]
    rows = strip_rows_for(plan.n_cols, plan.tile_size)
    with dask.config.set(scheduler="synchronous"), task_env():  # one strip in memory, no nested pool
        (asset,) = write_region_cogs(ds, plan.region_name, plan.products_url, so,
                                     skip_existing=skip_existing, strip_rows=rows,
                                     only_if_changed=only_if_changed)
    return asset


def country_region(config: RunConfig, iso3: str) -> Any:
    """Return the :class:`~gsocseq.cube.Region` a country run of ``iso3`` with ``config`` would use."""
    _, region = resolve(config.model_copy(update={"region": iso3}))
    return region


def country_cogs_task(
    config: RunConfig, plan: RunPlan, iso3: str, layers: Sequence[str], *, skip_existing: bool,
    only_if_changed: bool = False,
) -> tuple[list[CogAsset], dict[str, float]]:
    """Task: cut ``iso3``'s COGs from the world product cube; return them and the country's totals.

    The window is the country run's tile rectangle, masked to the country (tile masks computed
    once, shared by the layers); totals are Σ value × cell area of the masked layers (t C, t C/yr)
    in the units of :func:`~gsocseq.pipeline.summary.region_totals` (Mt C, Mt C/yr).
    """
    so = config.storage_options
    region = country_region(config, iso3)
    name = product_region_name(config.model_copy(update={"region": iso3}), region)
    window = cut_window(cached_product_cube(plan.product_cube_url, so)[list(layers)],
                        origin_row=region.origin_row, origin_col=region.origin_col,
                        n_rows=region.n_rows, n_cols=region.n_cols)
    masked = mask_to_region(window, region)
    rows = strip_rows_for(region.n_cols, region.tile_size)
    with dask.config.set(scheduler="synchronous"), task_env():
        assets = write_region_cogs(masked, name, plan.products_url, so,
                                   skip_existing=skip_existing, strip_rows=rows,
                                   only_if_changed=only_if_changed)
    sums = {layer: area_total(masked[layer]) / 1e6 for layer in _total_layers(config, layers)}
    return assets, totals_from_sums(sums, config.scenarios)


def _total_layers(config: RunConfig, layers: Sequence[str]) -> list[str]:
    wanted = ["T0"] + [f"{k}_{SCENARIO_LABELS[s]}" for s in config.scenarios
                       for k in ("finalSOC", "AbsDiff", "ASR")]
    return [n for n in wanted if n in layers]


def totals_from_sums(sums: dict[str, float], scenarios: Sequence[str]) -> dict[str, float]:
    """Return :func:`~gsocseq.pipeline.summary.region_totals`-style totals from per-layer sums (Mt)."""
    out = {"T0_MtC": sums.get("T0", float("nan"))}
    for s in scenarios:
        label = SCENARIO_LABELS[s]
        out[f"{s}_final_stock_MtC"] = sums.get(f"finalSOC_{label}", float("nan"))
        out[f"{s}_change_MtC"] = sums.get(f"AbsDiff_{label}", float("nan"))
        out[f"{s}_rate_MtC_per_yr"] = sums.get(f"ASR_{label}", float("nan"))
    return out


def map_tasks(client: Any, fn: Callable[..., T], calls: Sequence[tuple[tuple, dict]],
              name: str) -> list[T]:
    """Run ``fn(*args, **kwargs)`` for each call, on ``client``'s workers if given; results in order.

    A failed task raises its error here (after the others finished), so nothing is half-published
    silently: the caller writes the STAC catalog and ``published.json`` only after every task.
    """
    if client is None:
        return [fn(*args, **kwargs) for args, kwargs in calls]
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(fn, *args, key=f"gsocseq-{name}-{i}-{token}", pure=False, retries=1,
                             **kwargs) for i, (args, kwargs) in enumerate(calls)]
    from distributed import wait

    wait(futures)
    try:
        return [f.result() for f in futures]
    finally:
        for f in futures:
            f.release()


def write_layer_cogs(
    config: RunConfig, plan: RunPlan, layers: Sequence[str], client: Any, *, skip_existing: bool,
    only_if_changed: bool = False, changed_tiles: Collection[str] | None = None,
    previous: str | None = None, digest: str = "",
) -> list[CogAsset]:
    """Write the region's (a world run's global) COGs, FAO order.

    A layer of a region is one task; a global layer tall enough (:func:`layer_layout`) is encoded
    by one task per part and assembled by one more (:mod:`gsocseq.products.cog_parts`). The
    parts stay under the run (``cog-parts/``) with a manifest naming the publication ``digest``
    they made: a publication that follows ``previous`` with ``changed_tiles`` re-encodes only
    the parts holding a changed tile, and reuses the others.
    """
    kwargs = {"skip_existing": skip_existing, "only_if_changed": only_if_changed}
    layout = layer_layout(plan)
    so = config.storage_options
    whole = [n for n in layers if layout is None or (
        skip_existing and storage.exists(cog_url(plan.products_url, plan.region_name, n), so))]
    assets = dict(zip(whole, map_tasks(client, layer_cog_task,
                                       [((config, plan, n), kwargs) for n in whole], "cog"),
                      strict=True))
    split = [n for n in layers if n not in assets]
    if split:
        assert layout is not None
        stale = _parts_to_encode(plan, layout, changed_tiles)
        jobs = [(n, i, _reusable(config, plan, layout, n, i, stale, previous))
                for n in split for i in range(layout.n_parts)]
        digests = map_tasks(client, _part_or_kept, [((config, plan, n, layout, i, kept), {})
                                                    for n, i, kept in jobs], "part")
        by_layer = {n: digests[k * layout.n_parts:(k + 1) * layout.n_parts]
                    for k, n in enumerate(split)}
        calls = [((config, plan, n, layout, by_layer[n]),
                  {"digest": digest, "only_if_changed": only_if_changed}) for n in split]
        assets.update(zip(split, map_tasks(client, assemble_layer_task, calls, "assemble"),
                          strict=True))
    return [assets[n] for n in layers]


def layer_layout(plan: RunPlan) -> PartLayout | None:
    """Return how a world run's global layers are cut into parts (``None``: one task per layer)."""
    if not is_world(plan):
        return None
    layout = part_layout(plan.n_rows, plan.n_cols, get_profile("gsocseq"), PART_ROWS)
    return layout if layout.n_parts > 1 else None


def parts_url(plan: RunPlan, layer: str, layout: PartLayout) -> str:
    """Return the folder of a global layer's parts (keyed by the layout)."""
    return (f"{plan.run_url}/cog-parts/{layer}/"
            f"{layout.rows}x{layout.cols}-{layout.part_rows}-L{layout.levels}")


def _parts_to_encode(plan: RunPlan, layout: PartLayout,
                     changed_tiles: Collection[str] | None) -> set[int] | None:
    """Return the parts holding a changed tile (``None``: every part, nothing known)."""
    if changed_tiles is None:
        return None
    out = set()
    for tile_id in changed_tiles:
        tile = TileKey.from_id(tile_id)
        r0 = tile.row0 - plan.origin_row
        out |= {i for i in range(layout.n_parts)
                if r0 < layout.rows_of(i)[1] and layout.rows_of(i)[0] < r0 + tile.size}
    return out


def _reusable(config: RunConfig, plan: RunPlan, layout: PartLayout, layer: str, index: int,
              stale: set[int] | None, previous: str | None) -> str | None:
    """Return the recorded sha256 of a part that can be reused as stored, else ``None``."""
    if stale is None or previous is None or index in stale:
        return None
    manifest = storage.read_json(f"{parts_url(plan, layer, layout)}/parts.json",
                                 config.storage_options)
    if not manifest or manifest.get("digest") != previous:
        return None
    return str(manifest["parts"][index])


def _part_or_kept(config: RunConfig, plan: RunPlan, layer: str, layout: PartLayout, index: int,
                  kept: str | None) -> str:
    return kept if kept is not None else layer_part_task(config, plan, layer, layout, index)


def layer_part_task(config: RunConfig, plan: RunPlan, layer: str, layout: PartLayout,
                    index: int) -> str:
    """Task: encode rows ``layout.rows_of(index)`` of a global layer as a part; return its sha256."""
    so = config.storage_options
    data = cached_product_cube(plan.product_cube_url, so)[layer].rename(layer)
    url = f"{parts_url(plan, layer, layout)}/part-{index:04d}.tif"
    with dask.config.set(scheduler="synchronous"), task_env():
        return write_part(data, layout, index, url, so, region=plan.region_name,
                          strip_rows=strip_rows_for(plan.n_cols, plan.tile_size))


def assemble_layer_task(config: RunConfig, plan: RunPlan, layer: str, layout: PartLayout,
                        part_digests: Sequence[str], *, digest: str,
                        only_if_changed: bool = False) -> CogAsset:
    """Task: assemble a global layer's COG from its parts; record them for the next publication."""
    so = config.storage_options
    folder = parts_url(plan, layer, layout)
    data = cached_product_cube(plan.product_cube_url, so)[layer].rename(layer)
    urls = [f"{folder}/part-{i:04d}.tif" for i in range(layout.n_parts)]
    with task_env():
        asset = write_cog_from_parts(data, layout, urls, plan.products_url, so,
                                     region=plan.region_name, only_if_changed=only_if_changed)
    storage.write_json(f"{folder}/parts.json", {"digest": digest, "parts": list(part_digests)}, so)
    return asset


def write_country_cogs(
    config: RunConfig, plan: RunPlan, countries: Sequence[str], layers: Sequence[str],
    client: Any, *, skip_existing: bool, only_if_changed: bool = False,
) -> dict[str, tuple[list[CogAsset], dict[str, float]]]:
    """Write the given countries' COGs from a world product cube, one task per country."""
    kwargs = {"skip_existing": skip_existing, "only_if_changed": only_if_changed}
    calls = [((config, plan, iso3, tuple(layers)), kwargs) for iso3 in countries]
    results = map_tasks(client, country_cogs_task, calls, "country")
    return dict(zip(countries, results, strict=True))
