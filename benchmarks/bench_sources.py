"""Data volume of the input stage: bytes and requests per source, served over real local HTTP.

Writes the demo world, serves it from a Range-honouring HTTP server on 127.0.0.1 that counts the
body bytes and requests per file (``tests/rangeserver.py``), builds the input cube of region
``demo`` from ``http://…/sources.toml`` and prints, per source: its files' total size, the bytes
read, their ratio (the baseline is the source's own size, measured in the same run), requests per
file, the wall time of the input stage, peak memory, and the cube's bytes per modelled pixel.
Goal (issue 11): every source ≤ 1.2× its files when the region covers them whole, and each climate
file opened by one task. The baseline pass reopens every raster for each read (``OPEN_RASTERS`` 0,
as before the per-worker raster cache); the second pass keeps them open per process (the default).

    .venv/bin/python benchmarks/bench_sources.py [--tiles-y 2 --tiles-x 3 --tile-size 60]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rangeserver import RangeServer  # noqa: E402

from gsocseq.config import RunConfig  # noqa: E402
from gsocseq.demo import write_demo_world  # noqa: E402
from gsocseq.pipeline.plan import plan_run  # noqa: E402
from gsocseq.pipeline.prepare import prepare_inputs  # noqa: E402
from gsocseq.sources.readers import RASTERS  # noqa: E402

#: Folder of the demo world → source name.
FOLDERS = {"soc": "soc", "clay": "clay", "land_cover": "land_cover", "climate": "climate",
           "cover": "cover", "boundaries": "boundaries"}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiles-y", type=int, default=2)
    ap.add_argument("--tiles-x", type=int, default=3)
    ap.add_argument("--tile-size", type=int, default=60)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sources-"))
    world = root / "world"
    write_demo_world(f"file://{world}", {}, tiles_y=args.tiles_y, tiles_x=args.tiles_x,
                     tile_size=args.tile_size, seed=0)
    print(f"demo world {args.tiles_y}×{args.tiles_x} tiles of {args.tile_size}")
    ratios = {}
    for label, open_rasters in (("baseline: rasters reopened per read", 0),
                                (f"rasters kept open per process ({RASTERS.size})", RASTERS.size)):
        ratios[open_rasters] = _pass(world, root / f"out-{open_rasters}", args.tile_size, label,
                                     open_rasters)
    base, now = ratios[0], ratios[RASTERS.size]
    print("read/size, baseline → cached: " + ", ".join(
        f"{k} {base[k]:.2f} → {now[k]:.2f}" for k in FOLDERS))


def _pass(world: Path, out: Path, tile_size: int, label: str, open_rasters: int) -> dict[str, float]:
    """Build the input cube once with ``open_rasters`` kept open; print and return read/size."""
    size_before = RASTERS.size
    RASTERS.clear()
    RASTERS.size = open_rasters
    opens = RASTERS.opens
    try:
        with RangeServer(world) as http:
            config = RunConfig(region="demo", out=f"file://{out}",
                               sources=f"{http.url}/sources.toml", tile_size=tile_size,
                               cluster="synchronous")
            t0 = time.perf_counter()
            plan = plan_run(config)
            prepare_inputs(config, plan)
            wall = time.perf_counter() - t0
            sent: dict[str, int] = defaultdict(int)
            reqs: dict[str, list[int]] = defaultdict(list)
            for path, n in http.requests.items():
                folder = path.lstrip("/").split("/", 1)[0]
                reqs[folder].append(n)
                sent[folder] += http.bytes_sent.get(path, 0)
    finally:
        RASTERS.clear()
        RASTERS.size = size_before
    print(f"\n{label}: input stage {wall:.1f} s, {RASTERS.opens - opens} raster opens, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")
    print(f"{'source':<11} {'files':>5} {'size MB':>9} {'read MB':>9} {'read/size':>9} "
          f"{'req/file max':>12} {'mean':>6}")
    ratios = {}
    for name, folder in FOLDERS.items():
        files = [p for p in (world / folder).rglob("*") if p.is_file()]
        size = _size(world / folder)
        r = reqs.get(folder, [0])
        ratios[name] = sent[folder] / max(size, 1)
        print(f"{name:<11} {len(files):>5} {size / 1e6:>9.3f} {sent[folder] / 1e6:>9.3f} "
              f"{ratios[name]:>9.2f} {max(r):>12} {sum(r) / max(len(r), 1):>6.1f}")
    cube = out / "gsocseq" / "cube"
    from gsocseq.cube.store import cube_summary, open_cube

    modelled = cube_summary(open_cube(plan.cube_url))["modelled_pixels"]
    total = _size(cube)
    cells = sum(t.size * t.size for t in plan.tiles)
    print(f"cube on disk {total / 1e6:.2f} MB (climate store included): "
          f"{total / cells:.1f} B per cell, {total / max(modelled, 1) / 1e3:.3f} kB per modelled "
          f"pixel ({modelled} modelled of {cells} cells)")
    return ratios

if __name__ == "__main__":
    main()
