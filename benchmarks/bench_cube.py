"""Cube-building throughput and peak memory, 1× vs 16× region, from a local S3 endpoint.

Starts its own ``moto_server`` process, uploads a demo world of 4 × 4 tiles, then builds the cube
of a 1-tile bbox region and of the 16-tile region, each in a fresh child process so that the peak
resident memory (``ru_maxrss``) of each build is measured on its own. Prints pixels/s and the
memory ratio (16× region / 1× region), which stays near 1 because tiles are built one at a time.

    .venv/bin/python benchmarks/bench_cube.py [--tile-size 120]
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

from _local_s3 import free_port, wait_until_up

AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _so(endpoint: str) -> dict:
    return {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": endpoint}}


def child(endpoint: str, sources_url: str, bbox: str, tile_size: int, out: str) -> None:
    """Build one cube and print a JSON line with timings (run in a fresh process)."""
    from gsocseq.cube import build_cube, open_cube, resolve_region
    from gsocseq.cube.store import cube_summary
    from gsocseq.sources import load_sources

    so = _so(endpoint)
    sources = load_sources(sources_url, storage_options=so)
    region = resolve_region(bbox, sources, tile_size=tile_size)
    t0 = time.perf_counter()
    build_cube(region, sources, out, so)
    seconds = time.perf_counter() - t0
    summary = cube_summary(open_cube(out, so))
    pixels = len(region.tiles) * tile_size * tile_size
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tiles": len(region.tiles),
                "pixels": pixels,
                "seconds": seconds,
                "pixels_per_s": pixels / seconds,
                "peak_rss_mib": peak_mib,
                "modelled": summary["modelled_pixels"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=120, choices=(60, 120, 240))
    parser.add_argument("--child", help="internal: JSON arguments of one build")
    args = parser.parse_args()
    os.environ.update(AWS)
    if args.child:
        child(**json.loads(args.child))
        return

    import fsspec

    from gsocseq.demo import NORTH, WEST, write_demo_world

    ts = args.tile_size
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **AWS},
        start_new_session=True,
    )
    try:
        wait_until_up(endpoint)
        fs = fsspec.filesystem("s3", **_so(endpoint))
        fs.mkdir("bench")
        t0 = time.perf_counter()
        sources_url = write_demo_world(
            "s3://bench/world", _so(endpoint), tiles_y=4, tiles_x=4, tile_size=ts
        )
        print(f"demo world 4×4 tiles of {ts} written to S3 in {time.perf_counter() - t0:.1f} s")
        deg = ts / 120
        eps = 1e-6
        regions = {
            "1x": f"{WEST + eps},{NORTH - deg + eps},{WEST + deg - eps},{NORTH - eps}",
            "16x": f"{WEST + eps},{NORTH - 4 * deg + eps},{WEST + 4 * deg - eps},{NORTH - eps}",
        }
        results = {}
        for name, bbox in regions.items():
            spec = {
                "endpoint": endpoint,
                "sources_url": sources_url,
                "bbox": bbox,
                "tile_size": ts,
                "out": f"s3://bench/cube-{name}.zarr",
            }
            cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[name] = json.loads(line.strip().splitlines()[-1])
            r = results[name]
            print(
                f"{name:>4}: {r['tiles']:2d} tiles, {r['pixels']:7d} px in {r['seconds']:6.1f} s"
                f" = {r['pixels_per_s']:8.0f} px/s, peak RSS {r['peak_rss_mib']:6.0f} MiB,"
                f" modelled {r['modelled']}"
            )
        ratio = results["16x"]["peak_rss_mib"] / results["1x"]["peak_rss_mib"]
        print(f"peak memory ratio 16x / 1x = {ratio:.2f} (region is 16x larger)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
