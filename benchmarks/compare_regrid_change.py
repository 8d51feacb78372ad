"""Count the float32 input-cube values that differ between two builds of the same demo world.

Compares the static variables stored in two input cubes cell by cell (bitwise; NaN equals NaN),
and the monthly climate each tile read gives: regridded by this checkout's
:func:`gsocseq.cube.regrid.bilinear` and by the ``regrid.py`` of another checkout (``--old``,
loaded by path) from the same climate store. Prints one JSON document. Used to report the
effect of replacing the dense BLAS regridding by the 2-tap loop (issue 14 §3)::

    python benchmarks/compare_regrid_change.py OLD_CUBE_URL NEW_CUBE_URL --old /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cells whose float32 bits differ (NaN equal to NaN)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    both_nan = np.isnan(a) & np.isnan(b)
    return (a.view(np.uint32) != b.view(np.uint32)) & ~both_nan


def main() -> None:
    """Compare the two cubes and print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_cube")
    parser.add_argument("new_cube")
    parser.add_argument("--old", required=True, help="checkout whose gsocseq/cube/regrid.py is old")
    args = parser.parse_args()

    from gsocseq.cube.climate import ADAPTERS, YEARS, ClimateStore
    from gsocseq.cube.regrid import regrid_to_cells
    from gsocseq.cube.store import DTYPES, cube_dims, open_cube, read_tile

    spec = importlib.util.spec_from_file_location(
        "old_regrid", Path(args.old) / "gsocseq/cube/regrid.py")
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    a, b = open_cube(args.old_cube), open_cube(args.new_cube)
    report: dict[str, dict[str, float]] = {}
    for name in cube_dims(b.data_vars):
        if DTYPES[name] != "float32":
            same = np.array_equal(a[name].values, b[name].values)
            report[name] = {"values": int(a[name].size), "changed": 0 if same else -1}
            continue
        x, y = a[name].values, b[name].values
        d = _differ(x, y)
        rel = np.abs(x[d].astype(float) - y[d]) / np.maximum(np.abs(x[d]), 1e-30)
        report[name] = {"values": int(x.size), "changed": int(d.sum()),
                        "max_rel": float(rel.max()) if d.any() else 0.0}
    store = ClimateStore(args.new_cube)
    counts = {k: [0, 0, 0.0] for k in ("tmp", "prec", "pet")}
    for tile in [t for t in _tiles(b)]:
        inside = read_tile(b, tile)["reason"] != 1  # Reason.OUTSIDE_REGION
        raw, lat, lon = store.native(tile)
        units = {k: p.units for k, p in store.packing.items()}
        fields = ADAPTERS[store.spec.kind].combine(raw, units, "", YEARS)
        for k in counts:
            new = regrid_to_cells("bilinear", fields[k], lat, lon, tile)[inside]
            was = old.regrid_to_cells("bilinear", fields[k], lat, lon, tile)[inside]
            d = _differ(was, new)
            counts[k][0] += int(new.size)
            counts[k][1] += int(d.sum())
            if d.any():
                rel = np.abs(was[d].astype(float) - new[d]) / np.maximum(np.abs(was[d]), 1e-30)
                counts[k][2] = max(counts[k][2], float(rel.max()))
    for k, (n, c, r) in counts.items():
        report[f"{k} (climate, cells in the region)"] = {"values": n, "changed": c, "max_rel": r}
    print(json.dumps(report, indent=1))


def _tiles(ds: object) -> list:
    """Return the cube's tiles (row-major)."""
    from gsocseq.cube.grid import TileKey

    ts = int(ds.attrs["tile_size"])  # type: ignore[attr-defined]
    r0, c0 = int(ds.attrs["origin_row"]), int(ds.attrs["origin_col"])  # type: ignore[attr-defined]
    ny, nx = ds.sizes["latitude"] // ts, ds.sizes["longitude"] // ts  # type: ignore[attr-defined]
    return [TileKey((r0 // ts) + i, (c0 // ts) + j, ts) for i in range(ny) for j in range(nx)]


if __name__ == "__main__":
    main()
