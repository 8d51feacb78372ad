"""The validation report's checks: numbers within the documented bounds, CSV and HTML written."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gsocseq.cli import main
from gsocseq.errors import InputValidationError
from gsocseq.validation import report as vr

REPO_EXAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "rothc-example"
FAO_SAMPLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "fao-sample" / "ARG_PE" / "raw"


def test_packaged_example_is_the_official_one_with_its_licence() -> None:
    for name in ("RothC_input.dat", "month_results.out", "year_results.out", "LICENSE"):
        assert filecmp.cmp(vr.EXAMPLE_DIR / name, REPO_EXAMPLE / name, shallow=False), name
    assert "Apache License" in (vr.EXAMPLE_DIR / "LICENSE").read_text()


@pytest.fixture(scope="module")
def example_sections() -> tuple[vr.Section, vr.Section]:
    return vr.example_section()


def test_official_example_month_by_month(example_sections) -> None:
    example, _ = example_sections
    monthly = example.tables["rothc_example_monthly"]
    assert len(monthly) == 828 and list(monthly[["year", "month"]].iloc[0]) == [1939, 1]
    # printed to 4 decimals; the Fortran's single-precision literals move values by ~1e-5
    assert 1e-6 < example.headline["example_max_abs_error_SOC_tC_ha"] < 5e-5 + 1e-5
    assert example.headline["example_spinup_months"] == 20916
    assert example.headline["example_share_same_4_decimals"] > 0.97
    worst = example.tables["rothc_example_max_error"]["max_abs_error"]
    assert worst["IOM"] == 0.0 and worst["SMD_mm"] <= 5e-3 + 1e-3
    assert len(example.plots) == 1 and example.plots[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_mass_balance_closes_every_month(example_sections) -> None:
    _, balance = example_sections
    mb = balance.tables["mass_balance"]
    assert len(mb) == 828
    np.testing.assert_allclose(mb["delta_SOC"], mb["inputs"] - mb["CO2"], rtol=0, atol=1e-10)
    assert (mb["CO2"] > 0).all() and mb["inputs"].sum() > 0
    assert balance.headline["mass_balance_max_residual_tC_ha"] < 1e-10


def test_closed_form_equilibrium_is_the_limit_of_the_iteration() -> None:
    sec = vr.equilibrium_section(years=100_000)
    assert sec.headline["equilibrium_max_abs_diff_tC_ha"] < 1e-9
    conv = sec.tables["equilibrium_convergence"]
    assert list(conv.index) == [10, 100, 1_000, 10_000, 100_000]
    assert (conv.iloc[0] > 1.0).all()  # far from steady after 10 years: the check can fail
    assert conv["cold continental"].loc[1000] > 1.0  # slow site still far after 1000 years


def test_kernel_speed_measured() -> None:
    sec = vr.speed_section(n_pixels=256, n_months=24)
    rates = sec.tables["kernel_speed"]["rate"]
    assert (rates > 0).all() and len(rates) == 3
    assert int(sec.tables["machine"].loc["cpu_count", "value"]) >= 1


def test_missing_example_file_is_named(tmp_path: Path) -> None:
    shutil.copy(REPO_EXAMPLE / "RothC_input.dat", tmp_path)
    with pytest.raises(InputValidationError, match="month_results.out missing"):
        vr.read_example(tmp_path)
    res = CliRunner().invoke(main, ["validation-report", str(tmp_path / "out"), "--rothc-example",
                                    str(tmp_path), "--no-demo"])
    assert res.exit_code == 1 and "month_results.out missing" in res.output


@pytest.mark.slow
def test_validation_report_command_writes_html_and_csv(tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = CliRunner().invoke(main, ["validation-report", str(out), "--fao-sample", str(FAO_SAMPLE),
                                    "--long-years", "100000"])
    assert res.exit_code == 0, res.output
    expected = {"rothc_example_monthly", "rothc_example_max_error", "mass_balance", "equilibrium",
                "equilibrium_convergence", "schemes_demo", "schemes_demo_masked_shares",
                "schemes_fao_sample", "schemes_fao_sample_masked_shares", "kernel_speed",
                "machine", "summary"}
    assert {p.stem for p in out.glob("*.csv")} == expected
    summary = pd.read_csv(out / "summary.csv").set_index("figure")["value"]
    for key in ("schemes_demo", "schemes_fao_sample"):
        # the schemes differ, but by percent, not by orders of magnitude
        assert 0.0 < summary[f"{key}_T0_rel_diff_pct"] < 20.0
        layers = pd.read_csv(out / f"{key}.csv", index_col="layer")
        assert layers.loc["T0", "n"] > 100
    page = (out / "index.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == 6
    for stem in expected - {"summary"}:
        assert f"href='{stem}.csv'" in page
