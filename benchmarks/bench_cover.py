"""Vegetation cover from MODIS NDVI through a local STAC API + S3: items, bytes, s/tile, memory.

Starts ``moto_server``, writes the STAC demo world (MODIS 13A1-like composites of the FAO period
2015-2020, i.e. 138 Terra composites per MODIS tile) to S3, serves its items with a real STAC API
(``rustac serve``) and puts a counting HTTP proxy (``tests/faultproxy.py``, no faults) between
GDAL and S3. Each region (1× = 1 tile, 4× = 2 × 2 tiles) is computed in a fresh child process,
tile after tile as the cube builder does, so its peak resident memory (``ru_maxrss``) is its own.
Baseline in the same run: reading the same items' full windows with plain rasterio (the bytes a
whole-file reader would fetch). Prints items and bytes read per tile, seconds per tile, peak memory
and the 4×/1× memory ratio, then the item count and byte estimate for Kenya (h21v08 h21v09 h22v08
h22v09).

    .venv/bin/python benchmarks/bench_cover.py [--tile-size 120] [--years 2015 2020]
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

ROOT = Path(__file__).resolve().parents[1]
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
       "AWS_DEFAULT_REGION": "us-east-1"}


def _so(endpoint: str) -> dict:
    return {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": endpoint}}


def child(endpoint: str, sources_url: str, bbox: str, tile_size: int) -> None:
    """Compute the cover of every tile of one region; print one JSON line."""
    from gsocseq.cube import resolve_region
    from gsocseq.sources import load_sources
    from gsocseq.sources.adapters import read_source
    from gsocseq.sources.stac import search_items

    so = _so(endpoint)
    sources = load_sources(sources_url, storage_options=so)
    region = resolve_region(bbox, sources, tile_size=tile_size)
    spec = sources["cover"]
    items, seconds, valid = 0, [], 0
    for tile in region.tiles:
        t0 = time.perf_counter()
        cover = read_source(spec, tile.bounds, so)["cover"]
        seconds.append(time.perf_counter() - t0)
        items += len(search_items(spec, tile.bounds, so))
        valid += int((cover.notnull().all("month")).sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tiles": len(region.tiles), "items": items, "seconds": seconds,
                      "cells_with_cover": valid, "peak_rss_mib": peak}))


def baseline(endpoint: str, sources_url: str, bbox: str, tile_size: int) -> None:
    """Whole-window baseline: read each item's full COG of the region's tiles with rasterio."""
    import rasterio

    from gsocseq.cube import resolve_region
    from gsocseq.sources import load_sources
    from gsocseq.sources.stac import rio_env, search_items

    so = _so(endpoint)
    sources = load_sources(sources_url, storage_options=so)
    region = resolve_region(bbox, sources, tile_size=tile_size)
    spec = sources["cover"]
    t0 = time.perf_counter()
    hrefs = {i.assets[spec.asset].href for t in region.tiles for i in search_items(spec, t.bounds, so)}
    with rio_env(so):
        for href in sorted(hrefs):
            with rasterio.open(href) as src:
                src.read(1)
    print(json.dumps({"files": len(hrefs), "seconds": time.perf_counter() - t0}))


def _run_child(kind: str, spec: dict) -> dict:
    cmd = [sys.executable, __file__, f"--{kind}", json.dumps(spec)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=120, choices=(60, 120, 240))
    parser.add_argument("--years", type=int, nargs=2, default=(2015, 2020))
    parser.add_argument("--child", help="internal: JSON arguments of one region")
    parser.add_argument("--baseline", help="internal: JSON arguments of the baseline")
    args = parser.parse_args()
    os.environ.update(AWS)
    if args.child:
        child(**json.loads(args.child))
        return
    if args.baseline:
        baseline(**json.loads(args.baseline))
        return

    import fsspec

    sys.path.insert(0, str(ROOT))
    from gsocseq.demo import NORTH, WEST
    from gsocseq.demo_stac import write_demo_stac
    from tests.faultproxy import FaultProxy
    from tests.stac_server import start_stac_api

    ts = args.tile_size
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H",
                             "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **AWS},
                            start_new_session=True)
    api = None
    try:
        wait_until_up(endpoint)
        so = _so(endpoint)
        fs = fsspec.filesystem("s3", **so)
        fs.mkdir("bench")
        t0 = time.perf_counter()
        write_demo_stac("s3://bench/world", so, tiles_y=2, tiles_x=2, tile_size=ts,
                        ndvi_years=tuple(args.years))
        print(f"STAC demo world 2×2 tiles of {ts}, NDVI {args.years[0]}-{args.years[1]}, "
              f"written to S3 in {time.perf_counter() - t0:.1f} s")
        api = start_stac_api("s3://bench/world/stac/catalog.json", so, free_port())
        text = fs.cat("bench/world/sources.toml").decode()
        fs.pipe("bench/world/sources-api.toml",
                text.replace('url = "stac/catalog.json"', f'url = "{api.url}"').encode())
        proxy = FaultProxy(endpoint).start()
        deg = ts / 120
        eps = 1e-6
        regions = {
            "1x": f"{WEST + eps},{NORTH - deg + eps},{WEST + deg - eps},{NORTH - eps}",
            "4x": f"{WEST + eps},{NORTH - 2 * deg + eps},{WEST + 2 * deg - eps},{NORTH - eps}",
        }
        results = {}
        for name, bbox in regions.items():
            spec = {"endpoint": proxy.endpoint_url, "sources_url": "s3://bench/world/sources-api.toml",
                    "bbox": bbox, "tile_size": ts}
            before = proxy.counts["bytes_out"]
            r = _run_child("child", spec)
            r["bytes"] = proxy.counts["bytes_out"] - before
            before = proxy.counts["bytes_out"]
            b = _run_child("baseline", spec)
            b["bytes"] = proxy.counts["bytes_out"] - before
            results[name] = (r, b)
            n = r["tiles"]
            print(f"{name}: {n} tile(s) of {ts}², {r['items']} items read ({r['items'] / n:.0f}/tile), "
                  f"{r['bytes'] / 2**20:.1f} MiB read ({r['bytes'] / n / 2**20:.2f} MiB/tile), "
                  f"{sum(r['seconds']) / n:.2f} s/tile, peak RSS {r['peak_rss_mib']:.0f} MiB; "
                  f"whole-file baseline {b['files']} files, {b['bytes'] / 2**20:.1f} MiB "
                  f"(windowed/whole = {r['bytes'] / max(b['bytes'], 1):.2f})")
        ratio = results["4x"][0]["peak_rss_mib"] / results["1x"][0]["peak_rss_mib"]
        print(f"peak memory ratio 4x / 1x = {ratio:.2f} (region is 4x larger)")
        one = results["1x"][0]
        per_item_px = one["bytes"] / one["items"] / (ts * ts)
        composites = 23 * (args.years[1] - args.years[0] + 1)
        kenya_items = 4 * composites
        kenya_cells = 8.5 * 10.5 * 120 * 120  # bbox ≈ 33.9-42.4°E, 4.7°S-5.0°N in 30″ cells
        print(f"Kenya (h21v08 h21v09 h22v08 h22v09): {kenya_items} Terra items over "
              f"{args.years[0]}-{args.years[1]}; at the measured {per_item_px:.2f} B per 30″ cell "
              f"per item ≈ {kenya_items / 4 * kenya_cells * per_item_px / 2**30:.2f} GiB read "
              f"(every 30″ cell of the bbox sees one MODIS tile per composite); the cells' own "
              f"500 m pixels are {composites * kenya_cells * 4 * 2 / 2**30:.2f} GiB as raw int16 "
              f"(the rest is whole 512² COG blocks and headers)")
    finally:
        if api is not None:
            api.stop()
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    main()
