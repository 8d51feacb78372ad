"""Tests of the fao-points backend on FAO-layout point tables (the ARG_PE sample)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gsocseq.errors import InputValidationError
from gsocseq.fao_points import STACK_COLUMNS, fao_points_command, run_fao_points
from gsocseq.model import fao_phases

POINTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "fao-sample" / "ARG_PE" / "points"
SPIN = POINTS / "points_spinup_inputs.csv.xz"
WARM = POINTS / "points_warmup_inputs.csv.xz"
FWD = POINTS / "points_forward_inputs.csv.xz"


@pytest.fixture(scope="module")
def sample_outputs(tmp_path_factory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("fao_points")
    written = run_fao_points(SPIN, WARM, FWD, out)
    assert set(written) == {"spinup", "warmup", "forward"}
    assert [p.name for p in written.values()] == ["spinup.csv", "warmup.csv", "forward.csv"]
    return {k: pd.read_csv(p) for k, p in written.items()}


@pytest.fixture(scope="module")
def sample_inputs() -> dict[str, pd.DataFrame]:
    return {"spinup": pd.read_csv(SPIN), "warmup": pd.read_csv(WARM), "forward": pd.read_csv(FWD)}


def test_sample_outputs_have_fao_columns(sample_outputs):
    ids = ["FID", "x", "y"]
    assert list(sample_outputs["spinup"].columns) == ids + list(fao_phases.SPINUP_COLUMNS)
    assert list(sample_outputs["warmup"].columns) == ids + list(fao_phases.WARMUP_COLUMNS)
    assert list(sample_outputs["forward"].columns) == ids + list(fao_phases.FORWARD_COLUMNS)
    assert all(len(t) == 3825 for t in sample_outputs.values())


def test_sample_skip_rules(sample_outputs, sample_inputs):
    spin_in = sample_inputs["spinup"].set_index("FID")
    warm_in = sample_inputs["warmup"].set_index("FID")
    skip_spin = spin_in[list(STACK_COLUMNS[3:])].isna().any(axis=1)
    skip_warm = skip_spin | warm_in.drop(columns=["NPP_81_00_MIN", "NPP_81_00_MAX"]).isna().any(
        axis=1)
    assert 0 < skip_spin.sum() < 100  # the sample's edge cells
    for key, flag, skip in (("spinup", "SOC_FAO", skip_spin), ("warmup", "SOC_FAO", skip_warm),
                            ("forward", "SOC_t0", skip_warm)):
        table = sample_outputs[key].set_index("FID")
        rest = table.drop(columns=["x", "y", flag])
        skipped = table.loc[skip[skip].index]
        assert (skipped[flag] == 0).all(), key
        assert rest.loc[skip[skip].index].isna().all().all(), key
        kept = rest.loc[skip[~skip].index]
        assert kept.notna().all().all(), key
        assert (table.loc[skip[~skip].index, flag] > 0).all(), key


def test_sample_values_are_consistent(sample_outputs, sample_inputs):
    spin = sample_outputs["spinup"].set_index("FID").query("SOC_FAO > 0")
    soc = sample_inputs["spinup"].set_index("FID").loc[spin.index, "SOC"]
    np.testing.assert_allclose(spin["SOC_pedotransfer"], soc, rtol=1e-8)
    np.testing.assert_allclose(spin["SOC_min"], 0.8 * soc, rtol=1e-8)
    np.testing.assert_allclose(spin["IOM_min"], 0.049 * soc**1.139, rtol=1e-8)  # central IOM
    fwd = sample_outputs["forward"].set_index("FID").query("SOC_t0 > 0")
    warm = sample_outputs["warmup"].set_index("FID").loc[fwd.index]
    np.testing.assert_allclose(fwd["SOC_t0"], warm["SOC_t0"], rtol=1e-8)
    np.testing.assert_allclose(fwd["UNC_t0"], (warm["SOC_t0max"] - warm["SOC_t0min"])
                               / (2 * warm["SOC_t0"]) * 100, rtol=1e-6)
    assert (fwd["High_Scenario"] > fwd["Med_Scenario"]).all()
    assert (fwd["Med_Scenario"] > fwd["Low_Scenario"]).all()
    ratio = (fwd["SOC_t0"] / spin.loc[fwd.index, "SOC_FAO"]).median()
    assert 0.85 < ratio < 1.1  # two decades of warm-up move a temperate stock a few %


def _subset(tmp_path: Path, rows: slice, inputs: dict[str, pd.DataFrame]) -> tuple[Path, ...]:
    """Write rows of the sample tables as plain .csv files."""
    paths = []
    for key, name in (("spinup", "s.csv"), ("warmup", "w.csv"), ("forward", "f.csv")):
        path = tmp_path / name
        inputs[key].iloc[rows].to_csv(path, index=False, na_rep="NA")
        paths.append(path)
    return tuple(paths)


def test_plain_csv_equilibrium_variant_matches_analytical_input_closely(tmp_path, sample_inputs):
    s, w, f = _subset(tmp_path, slice(20, 26), sample_inputs)
    eq = run_fao_points(s, w, f, tmp_path / "eq", spinup_variant="equilibrium")
    an = run_fao_points(s, w, f, tmp_path / "an")
    c_eq = pd.read_csv(eq["spinup"])["Cinput_EQ"]
    c_an = pd.read_csv(an["spinup"])["Cinput_EQ"]
    assert c_eq.notna().all()
    # 500-yr seasonal Euler vs mean-modifier steady state: same input within a few %
    np.testing.assert_allclose(c_eq, c_an, rtol=0.05)
    assert not np.allclose(c_eq, c_an, rtol=1e-6)


def test_click_command_writes_the_three_tables(tmp_path, sample_inputs):
    s, w, f = _subset(tmp_path, slice(0, 4), sample_inputs)
    result = CliRunner().invoke(fao_points_command, [str(s), str(w), str(f), "--out",
                                                     str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "forward.csv").is_file()
    assert "spinup.csv" in result.output


def test_mismatched_fids_are_rejected(tmp_path, sample_inputs):
    s, w, f = _subset(tmp_path, slice(0, 4), sample_inputs)
    pd.read_csv(f).iloc[:3].to_csv(f, index=False)
    with pytest.raises(InputValidationError, match="other FIDs"):
        run_fao_points(s, w, f, tmp_path / "out")


def test_missing_columns_are_reported(tmp_path, sample_inputs):
    s, w, f = _subset(tmp_path, slice(0, 4), sample_inputs)
    pd.read_csv(s).drop(columns=["DR"]).to_csv(s, index=False)
    with pytest.raises(InputValidationError, match="missing columns"):
        run_fao_points(s, w, f, tmp_path / "out")
