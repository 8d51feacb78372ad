"""Publishing as cluster tasks: one task per layer of the run's region, one task per country of a world.

Each task opens the product cube itself (arguments are the config, the plan and names, never
arrays), streams its layer(s) in strips of whole tile rows (:mod:`gsocseq.products.blocks`: memory
per task bounded by :data:`~gsocseq.products.blocks.STRIP_BYTES` plus GDAL's cache), writes the COGs
through :func:`~gsocseq.products.cog.write_region_cogs` and returns their descriptions. With a
dask client the tasks run on its workers (publish time ∝ layers ÷ workers); without, one after
another in this process — the same bytes either way.

A world run's national COGs are cut from the world product cube on the country's own tile
rectangle and masked to the country, so they equal a country run's COGs byte for byte.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dask

from gsocseq.config import RunConfig
from gsocseq.cube.product_cube import open_product_cube
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
from gsocseq.products.cog import CogAsset, write_region_cogs

T = TypeVar("T")


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
    ds = open_product_cube(plan.product_cube_url, so)[[layer]]
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
    window = cut_window(open_product_cube(plan.product_cube_url, so)[list(layers)],
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
    only_if_changed: bool = False,
) -> list[CogAsset]:
    """Write the region's (a world run's global) COGs, one task per layer, FAO order."""
    kwargs = {"skip_existing": skip_existing, "only_if_changed": only_if_changed}
    calls = [((config, plan, layer), kwargs) for layer in layers]
    return map_tasks(client, layer_cog_task, calls, "cog")


def write_country_cogs(
    config: RunConfig, plan: RunPlan, countries: Sequence[str], layers: Sequence[str],
    client: Any, *, skip_existing: bool, only_if_changed: bool = False,
) -> dict[str, tuple[list[CogAsset], dict[str, float]]]:
    """Write the given countries' COGs from a world product cube, one task per country."""
    kwargs = {"skip_existing": skip_existing, "only_if_changed": only_if_changed}
    calls = [((config, plan, iso3, tuple(layers)), kwargs) for iso3 in countries]
    results = map_tasks(client, country_cogs_task, calls, "country")
    return dict(zip(countries, results, strict=True))
