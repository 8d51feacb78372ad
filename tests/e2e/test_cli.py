"""The ``gsocseq`` command line end to end, as a user runs it: subprocesses against local S3.

Runs use the session's demo world and write under the pipeline tests' output prefix with their own
map version, so the input cube is built once per session and the products stay apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import s3fs

pytestmark = [pytest.mark.s3, pytest.mark.slow]

BUCKET = "gsocseq-pipeline-shared"
OUT = f"s3://{BUCKET}/runs"
VERSION = "cli-test"
GSOCSEQ = str(Path(sys.executable).parent / "gsocseq")


def validate(s3: Any, url: str) -> Any:
    """Run ``gsocseq validate URL`` in this process (click's runner; stderr kept apart)."""
    from click.testing import CliRunner

    from gsocseq.cli import main

    return CliRunner().invoke(main, ["validate", url, "--storage-options",
                                     json.dumps(s3.storage_options)])


def gsocseq(s3: Any, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gsocseq`` script with the S3 endpoint in the environment."""
    env = {**os.environ, "GSOCSEQ_STORAGE_OPTIONS": json.dumps(s3.storage_options),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([GSOCSEQ, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def world(s3_server: Any, demo_world_s3: Any) -> str:
    """Return the sources URL of the session's demo world (and make sure the bucket exists)."""
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return str(demo_world_s3.sources_url)


@pytest.fixture(scope="module")
def finished(s3_server: Any, world: str, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``gsocseq run`` of two scenarios on the demo world; returns the process and summary JSON."""
    summary = tmp_path_factory.mktemp("cli") / "summary.json"
    res = gsocseq(s3_server, "run", "--region", "demo", "--sources", world, "--out", OUT,
                  "--map-version", VERSION, "--tile-size", "60", "--cluster", "synchronous",
                  "--scenarios", "ssm_med,bau", "--summary-json", str(summary))
    return res, json.loads(summary.read_text()) if summary.exists() else {}


def test_demo_data_writes_a_world_with_its_sources_toml(s3_bucket: str, s3_server: Any) -> None:
    from click.testing import CliRunner

    from gsocseq.cli import main

    res = CliRunner().invoke(main, ["demo-data", f"{s3_bucket}/w", "--tiles-y", "1",
                                    "--tiles-x", "1", "--tile-size", "60",
                                    "--storage-options", json.dumps(s3_server.storage_options)])
    assert res.exit_code == 0, res.output
    assert f"{s3_bucket}/w/sources.toml" in res.output
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    assert "[sources.soc]" in fs.cat_file(f"{s3_bucket}/w/sources.toml".removeprefix("s3://")
                                          ).decode()


def test_run_prints_summary_with_totals_and_locations(
    finished: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    res, summary = finished
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout
    assert "tiles: 6 total, 6 computed, 0 skipped" in out
    assert "6/6" in out  # the progress bar reached the end
    assert "T0 (2020) stock:" in out and "Mt C/yr" in out
    assert "bau " in out and "ssm_med " in out and "ssm_high" not in out
    assert f"{OUT}/gsocseq/{VERSION}/exact/stac/catalog.json" in out
    assert summary["tiles"] == {"total": 6, "done": 6, "skipped": 0, "failed": {}}
    assert set(summary["totals"]) == {"T0_MtC", "bau", "ssm_med"}
    assert summary["totals"]["ssm_med"]["rate_MtC_per_yr"] > summary["totals"]["bau"][
        "rate_MtC_per_yr"]
    assert summary["pixels"]["modelled"] > 0 and summary["published"] is True


def test_validate_accepts_a_finished_run_and_flags_a_missing_cog(
    finished: tuple[subprocess.CompletedProcess[str], dict[str, Any]], s3_server: Any
) -> None:
    assert finished[0].returncode == 0
    res = validate(s3_server, OUT)
    assert res.exit_code == 0, res.output
    assert "valid and complete" in res.stdout
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    cogs = fs.glob(f"{BUCKET}/runs/gsocseq/{VERSION}/exact/products/*/*_T0_Map030.tif")
    assert len(cogs) == 1
    data = fs.cat_file(cogs[0])
    fs.rm(cogs[0])
    try:
        res = validate(s3_server, OUT)
    finally:
        fs.pipe_file(cogs[0], data)
    assert res.exit_code == 1
    assert "T0_Map030.tif" in res.stderr


def test_failed_tile_is_named_and_exit_status_is_nonzero(
    finished: tuple[subprocess.CompletedProcess[str], dict[str, Any]], s3_server: Any, world: str
) -> None:
    assert finished[0].returncode == 0
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    (cube,) = [c for c in fs.glob(f"{BUCKET}/runs/gsocseq/cube/*.zarr")
               if not c.endswith(".climate.zarr")]  # the climate store lies beside the cube
    key = f"{cube}/clay/c/0/1"
    original = fs.cat_file(key)
    fs.pipe_file(key, b"garbage, not a zstd chunk")
    try:  # a new configuration: tiles are computed again, on the default process LocalCluster
        res = gsocseq(s3_server, "run", "--region", "demo", "--sources", world, "--out", OUT,
                      "--map-version", VERSION, "--tile-size", "60", "--scenarios", "bau",
                      "--no-uncertainty", "--no-progress")
    finally:
        fs.pipe_file(key, original)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "tile(s) failed: t60_" in res.stderr
    failed = {w.rstrip(",") for w in res.stderr.split("tile(s) failed: ")[1].split()
              if w.startswith("t60_")}
    assert len(failed) == 1
    assert f"FAILED tile {failed.pop()}" in res.stdout and "clay" in res.stdout
    assert "tiles: 6 total, 5 computed, 0 skipped (already done), 1 failed" in res.stdout
    res = validate(s3_server, OUT)
    assert res.exit_code == 1 and "1/6 tile(s) not finished" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--region", "../etc", "--out", "s3://b/x"], "--region"),
     (["--region", "demo", "--out", "s3://b/../other"], "path traversal"),
     (["--region", "demo", "--out", "s3://b/x", "--scenarios", "ssm_max"], "--scenarios"),
     (["--region", "demo"], "--out: Field required"),
     (["--region", "demo", "--out", "s3://b/x", "--no-uncertainty", "--uncertainty",
       "montecarlo"], "contradicts"),
     (["--region", "demo", "--out", "s3://b/x", "--draws", "5", "--uncertainty", "none"],
      "montecarlo"),
     (["--region", "demo", "--out", "s3://b/x", "--uncertainty", "montecarlo", "--scheme",
       "fao"], "exact scheme")],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from gsocseq.cli import main

    res = CliRunner().invoke(main, ["run", *args])
    assert res.exit_code == 2
    assert message in res.output


POINTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "fao-sample" / "ARG_PE" / "points"


def cli(*args: str) -> Any:
    """Run a ``gsocseq`` command in this process (click's runner; stderr kept apart): for commands
    whose own process is not what a test is about (each start imports the scientific stack)."""
    from click.testing import CliRunner

    from gsocseq.cli import main

    return CliRunner().invoke(main, list(args))


def test_fao_points_writes_the_three_tables(tmp_path: Path) -> None:
    import pandas as pd

    paths = []
    for phase in ("spinup", "warmup", "forward"):
        path = tmp_path / f"{phase}.csv"
        pd.read_csv(POINTS / f"points_{phase}_inputs.csv.xz", nrows=3).to_csv(
            path, index=False, na_rep="NA")
        paths.append(str(path))
    res = cli("fao-points", "--spinup", paths[0], "--warmup", paths[1],
              "--forward", paths[2], "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    forward = pd.read_csv(tmp_path / "out" / "forward.csv")
    assert len(forward) == 3
    assert "forward:" in res.stdout


def test_fao_points_reports_missing_input(tmp_path: Path) -> None:
    res = cli("fao-points", "--spinup", str(tmp_path / "nope.csv"), "--warmup",
              str(tmp_path / "w.csv"), "--forward", str(tmp_path / "f.csv"), "--out",
              str(tmp_path / "out"))
    assert res.exit_code == 2 and "nope.csv" in res.stderr
