"""World runs: publish time against workers, peak memory per publishing task, and the world's cost.

1. A ``--region world`` run of the demo world (its world is its two countries, DEM and DMX) on a
   local ``file://`` store: input cube, tiles and publication timed on a process LocalCluster;
   the per-cell rates of this code are derived from its CPU-seconds per stage (all processes of
   the run, ``RunSummary.stage_cpu_seconds``: not inflated by other load on the machine, as
   wall time × workers is; core-seconds per cell for the inputs,
   per modelled pixel for the tiles, per cell × layer for publishing; bytes stored per cell, and
   of the product cube and COGs per cell × layer).
2. Publication alone — the global COGs (one task per layer) and both national sets (one task per
   country) — repeated on fresh clusters of 1 and 2 workers: wall time, speed-up, and each worker's
   peak resident memory (``VmHWM``) above its idle level after warm-up: the memory of its tasks,
   bounded by strips of whole tile rows (``gsocseq.products.blocks.STRIP_BYTES``).
3. One synthetic wide layer (default 2400 × 43 200 cells: ten rows of 2° tiles around the globe)
   written as a COG in a fresh process with world strips (240 rows) and in one piece: peak memory.
4. One tall synthetic layer (default 4096 × 21 600) written as one COG by one task (today's
   writer for a region's layer) and by parts (:mod:`gsocseq.products.cog_parts`: one task per
   2 048 rows, then one assembly task) on fresh clusters of 1 and 2 workers: wall time, the
   workers' CPU-seconds, speed-up; the two COGs' pixels are compared at every level.
5. A simulated world plan: ``gsocseq.pipeline.costing.cost_plan("world")`` on a real admin-0
   boundaries file (default: the Natural Earth 1:110m countries shipped in pyogrio's test
   fixtures, ``--boundaries`` for another; Antarctica left out as ``world`` leaves it out:
   ``gsocseq.vocabulary.WORLD_EXCLUDED``) at 2° tiles — tile count, land fraction — with the rates
   of step 1: extrapolated core-hours, wall time for ``--world-workers`` workers, bytes stored.

Usage::

    python benchmarks/bench_world.py [--tile-size 120] [--tiles 2x3] [--json out.json]
                                     [--rates-out gsocseq/pipeline/rates.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import resource
import shutil
import tempfile
import time
from importlib import resources as ilr
from pathlib import Path
from typing import Any

GRID_TILES_240 = 90 * 180
"""Tiles of 2° (240 cells) on the whole globe."""


def _peak_mib() -> float:
    """Peak resident memory of this process, MiB (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _warm_up() -> None:
    """Import what a publishing task imports and write one tiny COG (GDAL loaded)."""
    import numpy as np
    import xarray as xr

    from gsocseq.cube.grid import cell_latitudes, cell_longitudes
    from gsocseq.products.cog import write_cog

    data = xr.DataArray(np.ones((4, 4), np.float32), name="T0", dims=("latitude", "longitude"),
                        coords={"latitude": cell_latitudes(0, 4), "longitude": cell_longitudes(0, 4)})
    with tempfile.TemporaryDirectory() as tmp:
        write_cog(data, f"{tmp}/w.tif")


def _cpu_s() -> float:
    """CPU-seconds (user + system) this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _clear_publication(plan: Any, root: Path) -> None:
    """Remove the COGs, STAC and publication markers so that publishing runs again in full."""
    base = Path(plan.base_url.removeprefix("file://"))
    for sub in ("products", "stac"):
        shutil.rmtree(base / sub, ignore_errors=True)
    run = Path(plan.run_url.removeprefix("file://"))
    for name in ("published.json", "publishing.json"):
        (run / name).unlink(missing_ok=True)


def world_run(root: Path, tile_size: int, tiles_y: int, tiles_x: int, workers: int) -> dict[str, Any]:
    """Run ``--region world`` on the demo world; time its stages; derive the per-cell rates."""
    from distributed import Client, LocalCluster

    from gsocseq.config import RunConfig
    from gsocseq.demo import write_demo_world
    from gsocseq.pipeline import plan_run, run
    from gsocseq.vocabulary import Reason

    sources = write_demo_world(f"file://{root}/inputs", tiles_y=tiles_y, tiles_x=tiles_x,
                               tile_size=tile_size)
    config = RunConfig(region="world", out=f"file://{root}/out", sources=sources,
                       tile_size=tile_size)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_warm_up)
        summary = run(config, client=client, progress=False)
    assert summary.ok and summary.published, summary.tiles_failed
    plan = plan_run(config)
    cells = summary.pixels
    in_region = cells - summary.masked.get(int(Reason.OUTSIDE_REGION), 0)
    # CPU-seconds of every process of the run (workers, scheduler, client; ``stage_cpu_seconds``):
    # they do not grow with the machine's other load, as wall time × workers does
    cpu = summary.stage_cpu_seconds
    stages = summary.stage_seconds
    n_layers = len(json.loads(Path(plan.published_url.removeprefix("file://")).read_text())["cogs"])
    out = Path(root / "out")
    stored = _du(out / "gsocseq")
    per_layer = sum(_du(Path(u.removeprefix("file://")))
                    for u in (plan.product_cube_url, plan.products_url))
    rates = {
        "input_core_s_per_cell": cpu["inputs"] / cells,
        "tile_core_s_per_pixel": cpu["tiles"] / max(1, summary.modelled),
        "publish_core_s_per_cell_layer": cpu["publish"] / (cells * n_layers),
        "stored_bytes_per_cell": stored / cells,
        "stored_bytes_per_cell_layer": per_layer / (cells * n_layers),
        "stored_layers": n_layers,
        "eligible_fraction": summary.modelled / max(1, in_region),
        "measured": (f"benchmarks/bench_world.py {dt.date.today()}: demo world {tiles_y}x{tiles_x} "
                     f"tiles of {tile_size}, {workers} workers, {os.cpu_count()}-core machine "
                     f"(load {os.getloadavg()[0]:.1f}); CPU-seconds of the run's processes per "
                     "stage (wall x workers / CPU: " + ", ".join(
                         f"{k} {stages[k] * workers / max(cpu[k], 1e-9):.2f}"
                         for k in ("inputs", "tiles", "publish")) + ")"),
    }
    return {"config": config, "plan": plan, "summary": summary, "layers": n_layers,
            "stored_bytes": stored, "rates": rates, "cells": cells}


def publish_scaling(config: Any, plan: Any, root: Path, workers: list[int]) -> list[dict[str, Any]]:
    """Publish (global + national COGs, STAC) on fresh clusters of each worker count."""
    from distributed import Client, LocalCluster, get_task_stream

    from gsocseq.pipeline import publish

    rows = []
    for n in workers:
        _clear_publication(plan, root)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(_warm_up)
            idle = client.run(_peak_mib)
            cpu0 = client.run(_cpu_s)
            t = time.perf_counter()
            with get_task_stream(client) as stream:
                result = publish(config, plan, client)
            seconds = time.perf_counter() - t
            peaks = client.run(_peak_mib)
            cpu = sum(client.run(_cpu_s).values()) - sum(cpu0.values())
        durations = [sum(ss["stop"] - ss["start"] for ss in rec["startstops"]
                         if ss["action"] == "compute") for rec in stream.data]
        assert not result.skipped and len(result.country_totals) == 2
        rows.append({
            "workers": n, "publish_s": round(seconds, 2), "worker_cpu_s": round(cpu, 2),
            "cogs": len(result.cogs) * (1 + len(result.country_totals)),
            "worker_peak_mib": sorted(round(v, 1) for v in peaks.values()),
            "worker_idle_mib": sorted(round(v, 1) for v in idle.values()),
            "task_peak_above_idle_mib": round(max(peaks[k] - idle[k] for k in peaks), 1),
            "tasks": len(durations), "task_seconds_sum": round(sum(durations), 2),
            "longest_task_s": round(max(durations), 2),
            "ideal_wall_s": round(max(sum(durations) / n, max(durations)), 2),
        })
    base = rows[0]["publish_s"]
    for row in rows:
        row["speedup_vs_1"] = round(base / row["publish_s"], 2)
    return rows


def _write_wide(rows: int, cols: int, strip_rows: int, out: str, queue: Any) -> None:
    """Child process: write one synthetic (rows × cols) layer as a COG; report its peak MiB."""
    import dask
    import dask.array as da
    import numpy as np
    import xarray as xr

    from gsocseq.cube.grid import cell_latitudes, cell_longitudes
    from gsocseq.products.blocks import task_env
    from gsocseq.products.cog import write_cog

    base = _peak_mib()

    def block(block_info: Any = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        y, x = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        return (50 + 20 * np.sin(y / 700.0) * np.cos(x / 900.0)).astype(np.float32)

    data = xr.DataArray(da.map_blocks(block, dtype=np.float32, chunks=((240,) * (rows // 240),
                                                                       (240,) * (cols // 240))),
                        dims=("latitude", "longitude"), name="T0",
                        coords={"latitude": cell_latitudes(0, rows),
                                "longitude": cell_longitudes(0, cols)})
    t = time.perf_counter()
    with dask.config.set(scheduler="synchronous"), task_env():  # as a publishing task
        asset = write_cog(data, out, strip_rows=strip_rows)
    queue.put({"strip_rows": strip_rows, "peak_above_start_mib": round(_peak_mib() - base, 1),
               "seconds": round(time.perf_counter() - t, 1), "cog_bytes": asset.size})


def wide_layer_memory(root: Path, rows: int, cols: int) -> list[dict[str, Any]]:
    """Peak memory of writing one wide layer with world-like strips vs the whole layer at once."""
    import multiprocessing as mp

    from gsocseq.products.blocks import strip_rows_for

    ctx = mp.get_context("spawn")
    out = []
    for strip in (strip_rows_for(cols, 240), rows):
        q = ctx.Queue()
        p = ctx.Process(target=_write_wide, args=(rows, cols, strip, str(root / f"w{strip}.tif"), q))
        p.start()
        res = q.get(timeout=1800)
        p.join()
        res["layer_mib"] = round(rows * cols * 4 / 2**20, 1)
        out.append(res)
    return out


def _synthetic(rows: int, cols: int) -> Any:
    """A lazy synthetic T0 layer of ``rows × cols`` cells (blocks of 240², NaN west of 1/8)."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    from gsocseq.cube.grid import cell_latitudes, cell_longitudes

    def block(block_info: Any = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        y, x = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        v = (50 + 20 * np.sin(y / 700.0) * np.cos(x / 900.0)).astype(np.float32)
        v[:, x[0] < cols / 8] = np.nan
        return v

    chunks = (tuple(min(240, rows - r) for r in range(0, rows, 240)),
              tuple(min(240, cols - c) for c in range(0, cols, 240)))
    return xr.DataArray(da.map_blocks(block, dtype=np.float32, chunks=chunks),
                        dims=("latitude", "longitude"), name="T0",
                        coords={"latitude": cell_latitudes(0, rows),
                                "longitude": cell_longitudes(0, cols)})


def _one_piece(rows: int, cols: int, url: str) -> str:
    import dask

    from gsocseq.products.blocks import strip_rows_for, task_env
    from gsocseq.products.cog import write_cog

    with dask.config.set(scheduler="synchronous"), task_env():
        return write_cog(_synthetic(rows, cols), url, strip_rows=strip_rows_for(cols, 240),
                         tags={"GSOCSEQ_REGION": "world"}).href


def _part(rows: int, cols: int, layout: Any, i: int, url: str) -> str:
    import dask

    from gsocseq.products.blocks import strip_rows_for, task_env
    from gsocseq.products.cog_parts import write_part

    with dask.config.set(scheduler="synchronous"), task_env():
        return write_part(_synthetic(rows, cols), layout, i, url, None, region="world",
                          strip_rows=strip_rows_for(cols, 240))


def _assemble(rows: int, cols: int, layout: Any, urls: list[str], out: str, _: Any) -> str:
    from gsocseq.products.blocks import task_env
    from gsocseq.products.cog_parts import write_cog_from_parts

    with task_env():
        return write_cog_from_parts(_synthetic(rows, cols), layout, urls, out, None,
                                    region="world").href


def layer_in_parts(root: Path, rows: int, cols: int, workers: list[int]) -> dict[str, Any]:
    """One layer written in one piece by one task, then in parts by 1 and 2 workers: wall, CPU."""
    import numpy as np
    from distributed import Client, LocalCluster

    from gsocseq.products.cog import read_levels
    from gsocseq.products.cog_parts import PART_ROWS, part_layout
    from gsocseq.products.profiles import get_profile

    layout = part_layout(rows, cols, get_profile("gsocseq"), PART_ROWS)
    runs = []
    for n in workers:
        for mode in ("one_piece", "parts"):
            if mode == "one_piece" and n != workers[0]:
                continue
            folder = root / f"layer-{mode}-{n}"
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.run(_warm_up)
                idle = client.run(_peak_mib)
                cpu0 = sum(client.run(_cpu_s).values())
                t = time.perf_counter()
                if mode == "one_piece":
                    href = client.submit(_one_piece, rows, cols, f"{folder}/one.tif").result()
                else:
                    urls = [f"file://{folder}/parts/part-{i:04d}.tif" for i in range(layout.n_parts)]
                    done = [client.submit(_part, rows, cols, layout, i, u, pure=False)
                            for i, u in enumerate(urls)]
                    href = client.submit(_assemble, rows, cols, layout, urls, f"file://{folder}",
                                         done, pure=False).result()
                seconds = time.perf_counter() - t
                cpu = sum(client.run(_cpu_s).values()) - cpu0
                peaks = client.run(_peak_mib)
            runs.append({"mode": mode, "workers": n, "wall_s": round(seconds, 2),
                         "worker_cpu_s": round(cpu, 2),
                         "task_peak_above_idle_mib": round(max(peaks[k] - idle[k] for k in peaks), 1),
                         "href": href.removeprefix("file://")})
    base = runs[0]
    ref = read_levels(base["href"])
    for r in runs:
        r["speedup_vs_one_piece"] = round(base["wall_s"] / r["wall_s"], 2)
        r["same_pixels_every_level"] = all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            for a, b in zip(ref, read_levels(r["href"]), strict=True))
        r["cog_bytes"] = Path(r.pop("href")).stat().st_size
    return {"rows": rows, "cols": cols, "parts": layout.n_parts, "levels_in_parts": layout.levels,
            "runs": runs}


def _natural_earth_lowres() -> Path | None:
    try:
        import pyogrio
    except ImportError:
        return None
    path = (Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
            / "naturalearth_lowres.shp")
    return path if path.exists() else None


def simulated_world_plan(boundaries: Path, root: Path, rates: dict[str, Any], workers: int,
                         tile_size: int = 240) -> dict[str, Any]:
    """Plan ``world`` on a real admin-0 file with the measured rates (no source is opened)."""
    import numpy as np
    from pyogrio.raw import read as ogr_read
    from pyogrio.raw import write as ogr_write

    from gsocseq.pipeline.costing import Rates, cost_plan, format_cost_plan

    meta, _, geoms, fields = ogr_read(str(boundaries))
    names = [str(f) for f in meta["fields"]]
    key = next(f for f in ("ADM0_A3", "ISO_A3", "iso_a3", "adm0_a3") if f in names)
    codes = np.array([c if c and c != "-99" else f"X{i:02d}" for i, c in
                      enumerate(fields[names.index(key)])], dtype=object)
    buf = io.BytesIO()
    ogr_write(buf, geoms, [codes], ["ADM0_A3"], driver="GeoJSON", geometry_type="MultiPolygon",
              crs="EPSG:4326", layer="admin0", promote_to_multi=True)
    (root / "admin0.geojson").write_bytes(buf.getvalue())
    shipped = ilr.files("gsocseq.sources").joinpath("sources.toml").read_text()
    url = "https://naciscdn.org/naturalearth/10m/cultural/ne_10m_admin_0_countries.zip"
    assert url in shipped, "shipped boundaries URL changed; update the benchmark"
    toml = root / "sources.toml"
    toml.write_text(shipped.replace(url, f"file://{root}/admin0.geojson"))
    t = time.perf_counter()
    plan = cost_plan("world", sources_url=f"file://{toml}", tile_size=tile_size, workers=workers,
                     rates=Rates(**rates), read_sources=False)
    seconds = time.perf_counter() - t
    print(format_cost_plan(plan))
    from gsocseq.vocabulary import WORLD_EXCLUDED

    return {"boundaries": str(boundaries), "countries": int(len(set(codes) - set(WORLD_EXCLUDED))),
            "excluded": sorted(set(codes) & set(WORLD_EXCLUDED)),
            "tiles": plan.tiles, "tiles_globe": GRID_TILES_240 if tile_size == 240 else None,
            "land_tile_fraction": round(plan.tiles / plan.tiles_in_rectangle, 4),
            "tiles_in_rectangle": plan.tiles_in_rectangle,
            "region_cells": plan.region_cells, "eligible_pixels": plan.eligible_pixels,
            "core_hours": round(plan.core_hours, 1), "workers": workers,
            "wall_hours": round(plan.wall_hours, 2), "stored_TB": round(plan.stored_bytes / 1e12, 2),
            "cost": round(plan.cost, 0), "plan_seconds": round(seconds, 1)}


def main() -> None:
    """Run the three parts and print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=120)
    parser.add_argument("--tiles", default="2x3", help="demo world tiles, ROWSxCOLS")
    parser.add_argument("--workers", default="1,2", help="worker counts for publishing")
    parser.add_argument("--world-workers", type=int, default=500)
    parser.add_argument("--boundaries", default=None, help="admin-0 vector file for the world plan")
    parser.add_argument("--wide", default="2400x43200",
                        help="ROWSxCOLS of a synthetic layer written with strips vs whole ('' skips)")
    parser.add_argument("--parts-layer", default="4096x21600",
                        help="ROWSxCOLS of a synthetic layer written in one piece and in parts "
                             "('' skips)")
    parser.add_argument("--only-parts", action="store_true",
                        help="run only the layer-in-parts measurement")
    parser.add_argument("--eligible-share", type=float, default=0.37,
                        help="modelled share of land for the world plan (FAOSTAT agricultural "
                             "land ≈ 4.8 of 13.0 Gha; the demo world's share is not the globe's)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    parser.add_argument("--rates-out", default=None, help="write the measured rates (JSON) here")
    args = parser.parse_args()
    ty, tx = (int(v) for v in args.tiles.split("x"))
    counts = [int(v) for v in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-world-") as tmp:
        root = Path(tmp)
        parts = (layer_in_parts(root, *(int(v) for v in args.parts_layer.split("x")), counts)
                 if args.parts_layer else {})
        if args.only_parts:
            print(json.dumps({"cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
                              "layer_in_parts": parts}, indent=2))
            return
        t = time.perf_counter()
        w = world_run(root, args.tile_size, ty, tx, max(counts))
        t_run = time.perf_counter() - t
        scaling = publish_scaling(w["config"], w["plan"], root, counts)
        wide = wide_layer_memory(root, *(int(v) for v in args.wide.split("x"))) if args.wide else []
        boundaries = Path(args.boundaries) if args.boundaries else _natural_earth_lowres()
        world_rates = {**w["rates"], "eligible_fraction": args.eligible_share}
        world = (simulated_world_plan(boundaries, root, world_rates, args.world_workers)
                 if boundaries else {"skipped": "no boundaries file"})
    s = w["summary"]
    report = {
        "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
        "demo_world_run": {"tiles": s.tiles_total, "tile_size": args.tile_size, "cells": w["cells"],
                           "modelled_pixels": s.modelled, "layers": w["layers"],
                           "stages_s": s.stage_seconds, "stages_cpu_s": s.stage_cpu_seconds,
                           "wall_s": round(t_run, 1),
                           "stored_bytes": w["stored_bytes"], "countries": s.country_totals},
        "rates": w["rates"], "publish_vs_workers": scaling, "wide_layer_memory": wide,
        "layer_in_parts": parts,
        "world_plan": world,
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.rates_out:  # the shipped rates plan any region: the land share defaults to the globe's
        out = Path(args.rates_out)  # keys of other benchmarks (bench_montecarlo) are kept
        kept = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(json.dumps({**kept, **world_rates}, indent=2) + "\n")


if __name__ == "__main__":
    main()
