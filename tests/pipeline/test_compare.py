"""Scheme comparison: the table's numbers against hand values and an independent numpy computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gsocseq.cli import compare_schemes_command
from gsocseq.compare import (
    compare_results,
    compare_schemes,
    format_comparison,
    layer_differences,
    masked_shares,
    tile_pixels,
)
from gsocseq.cube.grid import TileKey
from gsocseq.cube.store import open_cube, read_tile
from gsocseq.errors import InputValidationError
from gsocseq.model.phases import PhaseConfig, PhaseResult, run_phases
from gsocseq.vocabulary import LAYER_NAMES, Reason


def _result(t0: list[float], reason: list[int]) -> PhaseResult:
    layers = {name: np.full(len(t0), np.nan, np.float32) for name in LAYER_NAMES}
    layers["T0"] = np.array(t0, np.float32)
    return PhaseResult(layers=layers, reason=np.array(reason, np.uint8))


def test_layer_differences_by_hand() -> None:
    exact = _result([10, 20, np.nan, 40], [0, 0, 3, 0])
    fao = _result([11, 18, 5, np.nan], [0, 0, 0, 7])
    row = layer_differences(exact, fao).loc["T0"]
    # pixels 0 and 1 only: |Δ| = 1, 2
    assert row["n"] == 2
    assert (row["mean_exact"], row["mean_fao"]) == (15.0, 14.5)
    assert (row["mean_abs_diff"], row["median_abs_diff"], row["max_abs_diff"]) == (1.5, 1.5, 2.0)
    assert row["rel_diff_pct"] == pytest.approx(10.0)  # 100 · 1.5 / 15
    empty = layer_differences(exact, fao).loc["ASR_BAU"]
    assert empty["n"] == 0 and np.isnan(empty["mean_abs_diff"])


def test_masked_shares_by_hand() -> None:
    shares = masked_shares(_result([1] * 4, [0, 0, 3, 0]), _result([1] * 4, [0, 0, 0, 7]))
    assert shares.loc["ok"].tolist() == [0.75, 0.75]
    assert shares.loc["missing_input"].tolist() == [0.25, 0.0]
    assert shares.loc["fao_euler_unstable"].tolist() == [0.0, 0.25]
    with pytest.raises(InputValidationError, match="differ in shape"):
        masked_shares(_result([1] * 4, [0] * 4), _result([1] * 3, [0] * 3))


def _pixels() -> dict[str, np.ndarray]:
    """Six pixels: 3 cool croplands, 1 hot bare cropland, 1 forest, 1 cropland without SOC."""
    months = np.arange(480)
    cool = 10.0 + 5.0 * np.sin(2 * np.pi * months / 12)  # 5…15 °C: xi = a(T) < 2.4
    tmp = np.stack([cool, cool + 0.5, cool - 0.5, np.full(480, 25.0), cool, cool], axis=1)
    prec = np.full((480, 6), 80.0)
    prec[:, 3] = 150.0  # wet soil, moisture factor 1: a(25 °C) ≈ 3.8 > 2.4 on bare soil
    cover = np.full((12, 6), 0.5)
    cover[:, 3] = 0.0
    return {
        "soc": np.array([40.0, 50.0, 60.0, 50.0, 50.0, np.nan]),
        "clay": np.array([20.0, 25.0, 30.0, 25.0, 25.0, 25.0]),
        "land_use": np.array([2, 2, 3, 2, 4, 2], np.uint8),
        "tmp": tmp, "prec": prec, "pet": np.full((480, 6), 40.0), "cover": cover,
    }


@pytest.fixture(scope="module")
def synthetic() -> tuple[dict[str, np.ndarray], PhaseResult, PhaseResult]:
    """The six pixels and both schemes' results, run independently of ``compare``."""
    pixels = _pixels()
    exact = run_phases(**pixels, config=PhaseConfig(scheme="exact"))
    fao = run_phases(**pixels, config=PhaseConfig(scheme="fao"))
    return pixels, exact, fao


def test_table_equals_independent_numpy(synthetic) -> None:
    pixels, exact, fao = synthetic
    table = compare_schemes(**pixels).layers
    assert list(table.index) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        d = fao.layers[name].astype(float) - exact.layers[name].astype(float)  # NaN if either is
        kept = ~np.isnan(d)
        assert table.loc[name, "n"] == kept.sum() == 3, name
        np.testing.assert_allclose(
            table.loc[name, ["mean_abs_diff", "median_abs_diff", "max_abs_diff"]].to_numpy(float),
            [np.nanmean(np.abs(d)), np.nanmedian(np.abs(d)), np.nanmax(np.abs(d))], rtol=1e-12)
        np.testing.assert_allclose(table.loc[name, "mean_fao"], np.mean(fao.layers[name][kept]),
                                   rtol=1e-6)
        scale = np.abs(exact.layers[name][kept].astype(float)).mean()
        np.testing.assert_allclose(table.loc[name, "rel_diff_pct"],
                                   100 * np.nanmean(np.abs(d)) / scale, rtol=1e-12)
    assert table.loc["T0", "max_abs_diff"] > 0  # the schemes do differ


def test_masked_shares_of_synthetic_pixels(synthetic) -> None:
    pixels, *_ = synthetic
    masked = compare_schemes(**pixels, config=PhaseConfig(uncertainty=False)).masked
    expected = pd.DataFrame(
        {"exact": [4 / 6, 1 / 6, 1 / 6, 0.0], "fao": [3 / 6, 1 / 6, 1 / 6, 1 / 6]},
        index=["ok", "not_agricultural", "missing_input", "fao_euler_unstable"],
    )
    pd.testing.assert_frame_equal(masked, expected, check_names=False)


def test_format_comparison(synthetic) -> None:
    _, exact, fao = synthetic
    text = format_comparison(compare_results(exact, fao))
    lines = text.splitlines()
    assert lines[0].startswith("| layer | n | mean exact |") and len(lines[0].split("|")) == 10
    t0 = next(line for line in lines if line.startswith("| T0 |"))
    assert t0.split("|")[2].strip() == "3"
    assert "| fao_euler_unstable | 0.00 % | 16.67 % |" in lines
    assert "Pixels: 6" in lines


def test_tile_pixels_layout() -> None:
    arrays = {
        "reason": np.array([[0, 2], [0, 0]], np.uint8),
        "soc": np.array([[1.0, 2.0], [3.0, 4.0]]),
        "clay": np.zeros((2, 2)), "land_use": np.full((2, 2), 2),
        "tmp": np.arange(12.0).reshape(2, 2, 3), "prec": np.zeros((2, 2, 3)),
        "pet": np.zeros((2, 2, 3)), "cover": np.zeros((2, 2, 12)),
    }
    out = tile_pixels(arrays)
    np.testing.assert_array_equal(out["soc"], [1.0, 3.0, 4.0])
    np.testing.assert_array_equal(out["tmp"], [[0, 6, 9], [1, 7, 10], [2, 8, 11]])
    assert out["cover"].shape == (12, 3)


def test_command_on_one_demo_tile(tmp_path: Path) -> None:
    csv = tmp_path / "layers.csv"
    result = CliRunner().invoke(compare_schemes_command, [
        "--out", str(tmp_path), "--tile-size", "60", "--max-tiles", "1", "--no-uncertainty",
        "--csv", str(csv),
    ])
    assert result.exit_code == 0, result.output
    cube = open_cube(str(next(p for p in tmp_path.glob("gsocseq/cube/demo-t60-*.zarr")
                              if not p.name.endswith(".climate.zarr"))))
    size = int(cube.attrs["tile_size"])
    tile = TileKey(int(cube.attrs["origin_row"]) // size, int(cube.attrs["origin_col"]) // size, size)
    n_ok = int((read_tile(cube, tile)["reason"] == Reason.OK).sum())
    assert f"Pixels: {n_ok}" in result.output
    table = pd.read_csv(csv, index_col=0)
    assert len(table) == 29 and table.loc["T0_Uncertainty", "n"] == 0
    assert 0 < table.loc["T0", "n"] <= n_ok


def test_command_needs_out_or_cube() -> None:
    result = CliRunner().invoke(compare_schemes_command, [])
    assert result.exit_code == 2 and "give --out" in result.output
