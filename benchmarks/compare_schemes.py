"""Compare the ``exact`` and ``fao`` schemes on the demo world (or an FAO raw-input folder).

Writes the demo world (2 × 3 tiles) to a temporary folder, builds its input cube, reads every
tile and runs both schemes on the same modelled pixels, once per ``fao`` Euler criterion
(``month``: the default mask, ``cycle``: only pixels that blow up). Prints the markdown tables of
:func:`gsocseq.compare.format_comparison` and the wall times.

    .venv/bin/python benchmarks/compare_schemes.py [--tile-size 60] [--fao-raw DIR] [--no-uncertainty]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from gsocseq.compare import build_comparison_cube, compare_cube, format_comparison
from gsocseq.model.phases import PhaseConfig


def main() -> None:
    """Parse arguments, build the cube, compare and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=60)
    parser.add_argument("--fao-raw", default=None, help="FAO raw-input folder instead of the demo")
    parser.add_argument("--no-uncertainty", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if args.fao_raw:
            from gsocseq.sources.fao_raw import fao_raw_sources

            _, region = fao_raw_sources(args.fao_raw, f"{tmp}/fao-inputs")
            url, tiles = build_comparison_cube(region, tmp, sources=f"{tmp}/fao-inputs/sources.toml",
                                               tile_size=args.tile_size)
        else:
            url, tiles = build_comparison_cube("demo", tmp, tile_size=args.tile_size)
        print(f"input cube: {len(tiles)} tiles of {args.tile_size} cells, "
              f"{time.perf_counter() - t:.1f} s")
        for criterion in ("month", "cycle"):
            config = PhaseConfig(uncertainty=not args.no_uncertainty, fao_euler_criterion=criterion)
            t = time.perf_counter()
            comparison = compare_cube(url, tiles=tiles, config=config)
            print(f"\n## fao_euler_criterion = {criterion!r} ({time.perf_counter() - t:.1f} s)\n")
            print(format_comparison(comparison))


if __name__ == "__main__":
    main()
