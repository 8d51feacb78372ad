"""The tile stage against the bare procedure on the same pixels, in CPU-seconds, file:// and S3.

For the demo world on each store (``file://``, a real local ``moto_server`` S3 process, and the
same moto S3 under uvicorn with HTTP keep-alive, ``s3-keepalive``: werkzeug's ``moto_server`` closes
the connection after every request, which real S3 does not):

1. inputs: the demo world is written and its input cube built (reported, not part of the ratios);
2. tile stage, twice on the same warmed process cluster (model imported, kernels loaded, one
   untimed pass over every tile), each pass computing every tile from scratch (markers removed):
   first with the input cube opened for every tile (``CUBE_CACHE_SIZE = 0`` on the workers: the
   code before issue 14 §3), then opened once per worker (:func:`gsocseq.cube.store.cached_cube`).
   CPU-seconds of the workers (all their threads, ``getrusage``) and of this process (client +
   scheduler) are measured per pass; wall time too;
3. bare procedure: ``run_phases`` on the same modelled pixels in this process (one core), CPU-s;
4. ratios, from the same run: tile-stage worker CPU-s ÷ bare CPU-s per pass (aim ≤ 2), and the
   cached pass against the per-tile-open pass; the per-tile layer sha256 of both passes must agree;
5. bytes: the tile's input chunks (stored sizes), bytes read by the workers (``/proc/self/io``
   ``rchar``: file reads only, so S3 socket reads are not in it), bytes stored per tile;
6. publish (29 COGs + STAC) once after the cached pass, and the workers' peak memory (``VmHWM``).

CPU-seconds, not wall time, carry the comparison: the machine is shared; the load average is printed.
Usage::

    python benchmarks/bench_pipeline.py [--tile-size 240] [--workers 2]
        [--stores file,s3,s3-keepalive]
        [--scales 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _local_s3 import free_port, wait_until_up


def start_moto(keepalive: bool = False) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a moto S3 server process; return it and fsspec storage options.

    ``keepalive``: moto's application under uvicorn (``_keepalive_s3.py``), which keeps HTTP
    connections open as real S3 does, instead of ``moto_server`` (werkzeug: a new connection per
    request).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION")})
    if keepalive:
        cmd = [sys.executable, str(Path(__file__).with_name("_keepalive_s3.py")), str(port)]
    else:
        cmd = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
               str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_up(url)
    so = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": url}}
    return proc, so


def _worker_peak_mib() -> float:
    """Peak resident memory of this process, MiB (``VmHWM``; ``ru_maxrss`` survives exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _warm_up() -> None:
    """Import the model and load its compiled kernels in a worker (as any first tile would)."""
    import numpy as np

    from gsocseq.model.phases import PhaseConfig, run_phases

    n = 4
    run_phases(soc=np.full(n, 50.0), clay=np.full(n, 20.0), land_use=np.full(n, 2, np.uint8),
               tmp=np.full((480, n), 15.0), prec=np.full((480, n), 60.0),
               pet=np.full((480, n), 50.0), cover=np.full((12, n), 0.5), config=PhaseConfig())


def _worker_usage() -> dict[str, float]:
    """CPU-seconds (user + system, all threads) and bytes read from files by this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rchar = 0
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            rchar = int(line.split()[1])
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "rchar": float(rchar)}


def _set_cube_cache(size: int) -> None:
    """Set the per-process cube cache size in a worker (0: open the cube for every tile)."""
    from gsocseq.cube import store

    store.CUBE_CACHE_SIZE = size
    store.clear_cube_cache()


def kernel_cpu(config: Any, plan: Any) -> tuple[int, float]:
    """Return (modelled pixels, CPU-s) of ``run_phases`` alone on the run's modelled pixels."""
    from gsocseq.cube.store import open_cube, read_tile
    from gsocseq.model.phases import run_phases
    from gsocseq.pipeline.tile import phase_config
    from gsocseq.vocabulary import Reason

    ds = open_cube(plan.cube_url, config.storage_options)
    parts: dict[str, list[np.ndarray]] = {}
    for tile in plan.tiles:
        arrays = read_tile(ds, tile)
        ok = arrays["reason"].ravel() == Reason.OK
        n = ok.size
        for k, v in arrays.items():
            parts.setdefault(k, []).append(v.reshape(n, -1)[ok])
    flat = {k: np.concatenate(v) for k, v in parts.items()}
    inputs = {k: flat[k][:, 0] for k in ("soc", "clay", "land_use")}
    inputs |= {k: np.ascontiguousarray(flat[k].T) for k in ("tmp", "prec", "pet", "cover")}
    pc = phase_config(config)
    run_phases(**{k: v[..., :16] for k, v in inputs.items()}, config=pc)  # compile / load cache
    best = float("inf")
    for _ in range(2):  # best of two: the machine is shared
        t = time.process_time()
        run_phases(**inputs, config=pc)
        best = min(best, time.process_time() - t)
    return int(inputs["soc"].size), best


def _checksums(config: Any, plan: Any) -> dict[str, dict[str, str]]:
    """Per-tile layer sha256 from the completion markers."""
    from gsocseq import storage

    return {t: storage.read_json(plan.marker_url(t), config.storage_options)["checksums"]
            for t in plan.tile_ids}


def _stored_bytes(url: str, so: dict[str, Any]) -> int:
    """Total stored bytes under a URL."""
    from gsocseq.storage import filesystem

    fs, path = filesystem(url, so)
    return int(fs.du(path))


def tile_pass(client: Any, config: Any, plan: Any, cache_size: int) -> dict[str, Any]:
    """Compute every tile from scratch once with the given cube cache size; return CPU, wall, bytes."""
    from gsocseq.pipeline import run_tiles
    from gsocseq.storage import filesystem, list_names

    fs, done = filesystem(plan.done_url, config.storage_options)
    fs.invalidate_cache(done)  # markers were written by the workers: never a cached listing
    if fs.exists(done):
        fs.rm(done, recursive=True)
    left = list_names(plan.done_url, config.storage_options)
    assert not left, f"completion markers left after removal: {left}"
    client.run(_set_cube_cache, cache_size)
    before = client.run(_worker_usage)
    own = time.process_time()
    t = time.perf_counter()
    outcomes = run_tiles(config, plan, client)
    wall = time.perf_counter() - t
    own = time.process_time() - own
    after = client.run(_worker_usage)
    assert all(o.status == "done" for o in outcomes), [o.error for o in outcomes]
    return {
        "outcomes": outcomes,
        "wall_s": wall,
        "workers_cpu_s": sum(after[w]["cpu_s"] - before[w]["cpu_s"] for w in after),
        "client_scheduler_cpu_s": own,
        "workers_file_bytes_read": int(sum(after[w]["rchar"] - before[w]["rchar"] for w in after)),
        "checksums": _checksums(config, plan),
    }


def bench_store(store: str, base: str, so: dict[str, Any], scale: int, tile_size: int,
                workers: int) -> dict[str, Any]:
    """Benchmark one store and region size (scale 1: 2 × 3 tiles; scale 4: 4 × 6 tiles)."""
    from distributed import Client

    from gsocseq.config import RunConfig
    from gsocseq.demo import write_demo_world
    from gsocseq.pipeline import finish_region, plan_run, prepare_inputs, prepare_outputs
    from gsocseq.pipeline.run import local_cluster

    ty, tx = (2, 3) if scale == 1 else (4, 6)
    t = time.perf_counter()
    sources = write_demo_world(f"{base}/world-x{scale}", so, tiles_y=ty, tiles_x=tx,
                               tile_size=tile_size)
    t_world = time.perf_counter() - t
    config = RunConfig(region="demo", out=f"{base}/out-x{scale}", sources=sources,
                       tile_size=tile_size, storage_options=so)
    plan = plan_run(config)
    with local_cluster(workers, 1, True) as cluster, Client(cluster) as client:
        t = time.perf_counter()
        prepare_inputs(config, plan, client)
        t_inputs = time.perf_counter() - t
    prepare_outputs(config, plan)
    # a fresh cluster, so the workers' peak memory is that of the tile runs alone
    with local_cluster(workers, 1, True) as cluster, Client(cluster) as client:
        client.run(_warm_up)
        idle = client.run(_worker_peak_mib)
        # an untimed pass first: lazy imports, codecs and every kernel signature loaded, so the
        # order of the two timed passes does not favour the second
        tile_pass(client, config, plan, cache_size=0)
        per_tile = tile_pass(client, config, plan, cache_size=0)
        cached = tile_pass(client, config, plan, cache_size=4)
        peaks = client.run(_worker_peak_mib)
    t = time.perf_counter()
    summary, published = finish_region(config, plan, cached["outcomes"], started=time.time())
    t_publish = time.perf_counter() - t
    assert summary.ok and published is not None, summary.tiles_failed
    same = per_tile["checksums"] == cached["checksums"]
    assert same, "products differ between the per-tile-open and the cached pass"
    n_kernel, k_cpu = kernel_cpu(config, plan)
    assert n_kernel == summary.modelled
    from gsocseq.cube.climate import ClimateStore, climate_url

    # the tile stage reads the input cube and the climate store's tile windows beside it (native
    # resolution; the store's region grid, from which the windows are written, is not read)
    climate_all = _stored_bytes(climate_url(plan.cube_url), so)
    climate_grid = sum(_stored_bytes(f"{climate_url(plan.cube_url)}/{k}_grid", so)
                       for k in ClimateStore(plan.cube_url, so).packing)
    climate_bytes = climate_all - climate_grid
    input_chunk_bytes = _stored_bytes(plan.cube_url, so) + climate_bytes
    stored = _stored_bytes(plan.product_cube_url, so)
    products = _stored_bytes(f"{plan.products_url}/{plan.region_name}", so)
    n_tiles = len(plan.tiles)

    def figures(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "wall_s": round(p["wall_s"], 2),
            "workers_cpu_s": round(p["workers_cpu_s"], 3),
            "client_scheduler_cpu_s": round(p["client_scheduler_cpu_s"], 3),
            "px_per_cpu_s": round(summary.modelled / p["workers_cpu_s"], 1),
            "ratio_to_bare": round(p["workers_cpu_s"] / k_cpu, 2),
            "workers_file_bytes_read_per_tile": p["workers_file_bytes_read"] // n_tiles,
        }

    return {
        "store": store, "scale": scale, "tiles": n_tiles, "tile_size": tile_size,
        "cells": summary.pixels, "modelled_pixels": summary.modelled, "workers": workers,
        "demo_world_s": round(t_world, 2), "input_cube_s": round(t_inputs, 2),
        "bare_cpu_s": round(k_cpu, 3), "bare_px_per_cpu_s": round(n_kernel / k_cpu, 1),
        "open_per_tile": figures(per_tile), "cached_open": figures(cached),
        "cached_vs_per_tile_cpu": round(cached["workers_cpu_s"] / per_tile["workers_cpu_s"], 3),
        "products_identical": same,
        "input_cube_bytes_per_tile": input_chunk_bytes // n_tiles,
        "climate_store_bytes_per_tile": climate_bytes // n_tiles,
        "climate_grid_bytes_per_tile": climate_grid // n_tiles,
        "product_cube_bytes_per_tile": stored // n_tiles,
        "cog_bytes_per_tile": products // n_tiles,
        "publish_s": round(t_publish, 2),
        "worker_peak_mib": sorted(round(v, 1) for v in peaks.values()),
        "worker_idle_mib": sorted(round(v, 1) for v in idle.values()),
    }


def main() -> None:
    """Run the benchmark on each store and region size and print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=240)  # the demo world's own
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stores", default="file,s3",
                        help="comma-separated: file, s3 (moto_server), s3-keepalive (moto under "
                             "uvicorn: HTTP keep-alive as real S3)")
    parser.add_argument("--scales", default="1")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args()
    stores = args.stores.split(",")
    scales = [int(s) for s in args.scales.split(",")]
    load_start = os.getloadavg()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    procs = []
    try:
        for store in stores:
            if store in ("s3", "s3-keepalive"):
                import s3fs

                proc, so = start_moto(keepalive=store == "s3-keepalive")
                procs.append(proc)
                s3fs.S3FileSystem(**so).mkdir("gsocseq-bench")
                base = "s3://gsocseq-bench"
            else:
                so, base = {}, f"file://{tmp}"
            results += [bench_store(store, base, so, s, args.tile_size, args.workers)
                        for s in scales]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"cpu_count": os.cpu_count(), "load_avg_start": load_start,
              "load_avg_end": os.getloadavg(), "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
