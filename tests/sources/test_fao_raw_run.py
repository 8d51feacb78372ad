"""The ARG_PE FAO raw-input folder end to end with scheme ``fao``: cube, 29 COGs + the fao quality COG, STAC.

The input cube is checked against FAO's own point extraction of the same folder
(``points/points_*_inputs.csv.xz``: the values the FAO stack scripts hand to RothC).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from gsocseq.cube.grid import RES_DEG, TileKey
from gsocseq.cube.store import open_cube, read_tile
from gsocseq.errors import SourceError
from gsocseq.pipeline import run_fao_inputs
from gsocseq.pipeline.publish import product_layers
from gsocseq.products.validate import validate_products
from gsocseq.vocabulary import LAYER_NAMES, SCHEME_QUALITY_LAYERS, Reason, fao_file_name

SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "fao-sample" / "ARG_PE"


@pytest.fixture(scope="module")
def arg_pe_run(tmp_path_factory: pytest.TempPathFactory):
    """One fao-scheme run of ARG_PE (tiles of 120 cells, synchronous)."""
    out = tmp_path_factory.mktemp("arg_pe")
    summary = run_fao_inputs(str(SAMPLE / "raw"), str(out), tile_size=120, cluster="synchronous")
    return out, summary


@pytest.mark.slow
def test_run_publishes_29_products_the_quality_layer_and_stac(arg_pe_run) -> None:
    out, summary = arg_pe_run
    assert summary.ok and summary.published and summary.region == "ARG"
    products = out / "gsocseq" / "v1.1" / "fao" / "products" / "ARG"
    names = sorted(p.name for p in products.glob("*.tif"))
    assert len(LAYER_NAMES) == 29
    layers = product_layers(("bau", "ssm_low", "ssm_med", "ssm_high"), True, "fao")
    assert set(layers) == set(LAYER_NAMES) | set(SCHEME_QUALITY_LAYERS["fao"])  # + EulerUnstableMonths
    assert names == sorted(fao_file_name("ARG", layer) for layer in layers)
    stac = summary.urls["stac"]
    report = validate_products(stac, {}, layers, regions=["ARG"])
    assert report.problems == () and report.n_items == 1 and report.n_assets >= len(layers)
    catalog = json.loads(Path(stac.removeprefix("file://")).read_text())
    assert catalog["type"] == "Catalog"
    with rasterio.open(products / fao_file_name("ARG", "T0")) as src:
        t0 = src.read(1, masked=True)
    assert 0 < summary.modelled == t0.count()
    assert 30.0 < float(t0.mean()) < 90.0  # t C/ha: a Pampas topsoil after warm-up


def _climate_at_points(cube: xr.Dataset, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Monthly climate (points, 480) of the cells holding the points, as the tile task reads it
    (``read_tile``: the climate store at the source's resolution, regridded to the tile)."""
    size = int(cube.attrs["tile_size"])
    rows = np.floor((90.0 - y) / RES_DEG).astype(int)
    cols = np.floor((x + 180.0) / RES_DEG).astype(int)
    out = {v: np.full((len(x), 480), np.nan) for v in ("tmp", "prec", "pet")}
    for tr, tc in sorted(set(zip(rows // size, cols // size, strict=True))):
        key = TileKey(int(tr), int(tc), size)
        sel = (rows // size == tr) & (cols // size == tc)
        try:
            tile = read_tile(cube, key)
        except SourceError:  # a tile of the bounding box that no point of the region needs
            continue
        for v in out:
            out[v][sel] = tile[v][rows[sel] - key.row0, cols[sel] - key.col0]
    return out


@pytest.mark.slow
def test_cube_matches_fao_point_extraction(arg_pe_run) -> None:
    _, summary = arg_pe_run
    cube = open_cube(summary.urls["cube"])
    spin = pd.read_csv(SAMPLE / "points" / "points_spinup_inputs.csv.xz")
    fwd = pd.read_csv(SAMPLE / "points" / "points_forward_inputs.csv.xz")
    at = cube.sel(latitude=xr.DataArray(spin.y.values, dims="p"),
                  longitude=xr.DataArray(spin.x.values, dims="p"), method="nearest")
    inside = at.reason.values != Reason.OUTSIDE_REGION
    assert inside.mean() > 0.98  # the AOI mask by cell centre drops a few edge points
    np.testing.assert_allclose(at.soc.values[inside], spin.SOC[inside], rtol=1e-6)
    np.testing.assert_allclose(at.clay.values[inside], spin.clay[inside], atol=1e-4)
    np.testing.assert_array_equal(at.land_use.values[inside], spin.LU[inside])
    n = len(spin)
    climate = _climate_at_points(cube, spin.x.values, spin.y.values)  # from the climate store
    for var, col, tol in (("tmp", "T", 0.01), ("prec", "P", 0.1), ("pet", "PET", 0.01)):
        series = climate[var]
        for frame, months in ((spin, slice(0, 240)), (fwd, slice(240, 480))):
            mean = series[:, months].reshape(n, 20, 12).mean(axis=1)
            want = frame[[f"{col}{m}" for m in range(1, 13)]].to_numpy()
            ok = inside[:, None] & np.isfinite(want)
            assert np.median(np.abs(mean - want)[ok]) < tol, var
    cover_factor = 1.0 - 0.4 * at.cover.values
    want = spin[[f"Cov{m}" for m in range(1, 13)]].to_numpy()
    ok = inside[:, None] & np.isfinite(want)
    assert np.median(np.abs(cover_factor - want)[ok]) < 1e-3
