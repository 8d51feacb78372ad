"""Run report helpers: map decimation, block means, totals tables (the page itself: e2e browser test)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from gsocseq import report
from gsocseq.cube.grid import TileKey
from gsocseq.pipeline.plan import RunPlan


def _plan(n_rows: int, n_cols: int, tile: int) -> RunPlan:
    return RunPlan(region="demo", region_name="DEM", config_hash="c" * 64, tile_size=tile,
                   tiles=(TileKey(0, 0, tile),), origin_row=14880, origin_col=13920,
                   n_rows=n_rows, n_cols=n_cols, base_url="file:///x", sources_url=None,
                   cube_url="file:///x/c.zarr", run_url="file:///x/r", products_url="file:///x/p",
                   stac_url="file:///x/s")


@pytest.mark.parametrize(("rows", "cols", "tile", "factor"),
                         [(120, 180, 60, 1), (2400, 3600, 240, 6), (43200, 86400, 240, 240)])
def test_map_factor_divides_the_tile_and_bounds_the_map(rows, cols, tile, factor) -> None:
    f = report._map_factor(_plan(rows, cols, tile))
    assert f == factor and tile % f == 0
    assert max(rows, cols) / f <= report.MAP_CELLS or f == tile


def test_block_mean_ignores_nan_and_keeps_empty_blocks_empty() -> None:
    values = np.arange(16, dtype=float).reshape(4, 4)
    values[0, 0] = np.nan
    values[2:, 2:] = np.nan
    got = report._block_mean(values, 2)
    assert got[0, 0] == pytest.approx((1 + 4 + 5) / 3)
    assert got[1, 0] == pytest.approx((8 + 9 + 12 + 13) / 4)
    assert np.isnan(got[1, 1])


def test_totals_tables_in_mt() -> None:
    sums = Counter({"T0": 2e6, "finalSOC_BAU": 2.5e6, "ASR_BAU": 0.025e6})
    table = report._scenario_table(sums, ["bau"])
    assert table.loc["bau", "T0 (Mt C)"] == 2.0
    assert table.loc["bau", "change (Mt C)"] == pytest.approx(0.5)
    assert table.loc["bau", "ASR (Mt C/yr)"] == pytest.approx(0.025)
    by_lu = {2: Counter({"pixels": 3, "area_ha": 2000.0, "T0": 1e6, "finalSOC_BAU": 1.1e6,
                         "ASR_BAU": 5e3})}
    lu = report._land_use_table(by_lu, ["bau"])
    assert list(lu.index) == ["2 cropland"]
    assert lu.loc["2 cropland", "area (kha)"] == 2.0
    assert lu.loc["2 cropland", "ASR bau (Mt C/yr)"] == pytest.approx(0.005)
