"""End-to-end throughput and memory of the distributed run, beside the kernel-only rate.

For the demo world on a local S3 server (a real ``moto_server`` process):

1. inputs: the demo world is written and its input cube built (reported, not part of the rate);
2. end to end: ``gsocseq.pipeline.run`` on a process LocalCluster — input cube on S3 → tiles →
   product cube → 29 COGs + STAC on S3 — timed as modelled pixels / s / core;
3. kernel only: ``run_phases`` on the same modelled pixels in this process (one core);
4. the ratio kernel rate / end-to-end rate per core is the pipeline's overhead (aim ≤ 2);
5. peak resident memory of each worker (``VmHWM``) at 1× and 4× the region size: bounded by
   the tile size, so it should not grow with the region.

The workers are warmed up (model imported, compiled kernels loaded) before the timed run, as in a
long-lived cluster. Usage::

    python benchmarks/bench_pipeline.py [--tile-size 120] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _local_s3 import free_port, wait_until_up


def start_moto() -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a moto S3 server process; return it and fsspec storage options."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION")})
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def kernel_rate(config: Any, plan: Any) -> tuple[int, float]:
    """Return (modelled pixels, pixels/s) of ``run_phases`` alone on the run's modelled pixels."""
    from gsocseq.cube.store import open_cube, read_tile
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
    from gsocseq.model.phases import run_phases

    pc = phase_config(config)
    run_phases(**{k: v[..., :16] for k, v in inputs.items()}, config=pc)  # compile / load cache
    t = time.perf_counter()
    run_phases(**inputs, config=pc)
    return int(inputs["soc"].size), inputs["soc"].size / (time.perf_counter() - t)


def bench_size(so: dict[str, Any], bucket: str, scale: int, tile_size: int, workers: int
               ) -> dict[str, Any]:
    """Benchmark one region size (scale 1: 2 × 3 tiles; scale 4: 4 × 6 tiles)."""
    from distributed import Client, LocalCluster

    from gsocseq.config import RunConfig
    from gsocseq.demo import write_demo_world
    from gsocseq.pipeline import plan_run, prepare_inputs, run

    ty, tx = (2, 3) if scale == 1 else (4, 6)
    t = time.perf_counter()
    sources = write_demo_world(f"s3://{bucket}/world-x{scale}", so, tiles_y=ty, tiles_x=tx,
                               tile_size=tile_size)
    t_world = time.perf_counter() - t
    config = RunConfig(region="demo", out=f"s3://{bucket}/out-x{scale}", sources=sources,
                       tile_size=tile_size, storage_options=so)
    plan = plan_run(config)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t = time.perf_counter()
        prepare_inputs(config, plan, client)
        t_inputs = time.perf_counter() - t
    # a fresh cluster, so the workers' peak memory is that of the tile run alone
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(_warm_up)
        base = client.run(_worker_peak_mib)
        t = time.perf_counter()
        summary = run(config, client=client, progress=False)
        t_e2e = time.perf_counter() - t
        peaks = client.run(_worker_peak_mib)
    assert summary.ok and summary.published, summary.tiles_failed
    n_kernel, k_rate = kernel_rate(config, plan)
    assert n_kernel == summary.modelled
    e2e_rate = summary.modelled / t_e2e / workers
    return {
        "scale": scale, "tiles": len(plan.tiles), "tile_size": tile_size,
        "cells": summary.pixels, "modelled_pixels": summary.modelled, "workers": workers,
        "demo_world_s": round(t_world, 2), "input_cube_s": round(t_inputs, 2),
        "end_to_end_s": round(t_e2e, 2), "stages_s": summary.stage_seconds,
        "end_to_end_px_per_s_per_core": round(e2e_rate, 1),
        "kernel_px_per_s_per_core": round(k_rate, 1),
        "overhead_ratio": round(k_rate / e2e_rate, 2),
        "worker_peak_mib": sorted(round(v, 1) for v in peaks.values()),
        "worker_idle_mib": sorted(round(v, 1) for v in base.values()),
        "t0_MtC": round(summary.t0_stock_mt, 4),
    }


def main() -> None:
    """Run the benchmark at 1× and 4× the demo region and print a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scales", default="1,4")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args()
    proc, so = start_moto()
    try:
        import s3fs

        bucket = "gsocseq-bench"
        s3fs.S3FileSystem(**so).mkdir(bucket)
        results = [bench_size(so, bucket, int(s), args.tile_size, args.workers)
                   for s in args.scales.split(",")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
