"""Reliability of the ``gsocseq`` command: SIGKILL of the whole run, secrets, path traversal.

Real processes only: the installed ``gsocseq`` script runs as a subprocess (own process group) and
is killed with SIGKILL; storage is the session's moto server, optionally behind
:class:`faultproxy.FaultProxy` (a real HTTP proxy that fails chosen keys).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from reliability import (
    OUT,
    TILE,
    assert_complete_as_reference,
    assert_nothing_partial,
    fs_for,
    make_config,
    remove_run,
)

from gsocseq.pipeline import plan_run, run
from gsocseq.storage import list_names, read_json

pytestmark = [pytest.mark.s3, pytest.mark.slow]

GSOCSEQ = str(Path(sys.executable).parent / "gsocseq")


def _args(sources: str, version: str, *extra: str) -> list[str]:
    return [GSOCSEQ, "run", "--region", "demo", "--sources", sources, "--out", OUT,
            "--map-version", version, "--tile-size", str(TILE), "--no-uncertainty",
            "--no-progress", *extra]


def _env(so: dict[str, Any], **extra: str) -> dict[str, str]:
    return {**os.environ, "GSOCSEQ_STORAGE_OPTIONS": json.dumps(so),
            "AWS_ACCESS_KEY_ID": so["key"], "AWS_SECRET_ACCESS_KEY": so["secret"],
            "AWS_DEFAULT_REGION": "us-east-1", **extra}


def _kill_when(cmd: list[str], env: dict[str, str], ready: Any, timeout: float = 180) -> None:
    """Start ``cmd`` in its own process group; SIGKILL the group as soon as ``ready()`` is true."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"run ended (status {proc.returncode}) before the kill"
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _markers(fs: Any, done: str) -> dict[str, Any]:
    """Completion markers (``*.json``; a killed write may leave a ``.tmp-*``) → LastModified."""
    return {k: v["LastModified"] for k, v in fs.find(done, detail=True).items()
            if k.endswith(".json")}


@pytest.fixture
def reference(reliability_reference: dict[str, str]) -> dict[str, str]:
    """Digest of an uninterrupted synchronous run (map version ``rel-ref``; root conftest)."""
    return reliability_reference


def test_sigkill_mid_tiles_and_mid_publish_leaves_nothing_partial_and_rerun_matches(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str], tmp_path: Path
) -> None:
    so = s3_server.storage_options
    config = make_config(so, demo_world_s3.sources_url, "rel-cli-kill")
    remove_run(config, so)
    plan = plan_run(config)
    cmd = _args(demo_world_s3.sources_url, "rel-cli-kill", "--cluster", "synchronous")

    _kill_when(cmd, _env(so), lambda: sum(n.endswith(".json") for n in list_names(plan.done_url, so)) >= 2)
    finished = assert_nothing_partial(config, so)
    assert 2 <= finished < 6
    assert read_json(plan.published_url, so) is None
    fs = fs_for(so)
    done = plan.done_url.removeprefix("s3://")
    before = _markers(fs, done)

    cogs = f"{plan.products_url}/{plan.region_name}"  # killed after 3 of 19 COG uploads started
    _kill_when(cmd, _env(so), lambda: len(list_names(cogs, so)) >= 3)
    assert assert_nothing_partial(config, so) == 6
    assert read_json(plan.published_url, so) is None
    fs.invalidate_cache()
    after = _markers(fs, done)
    assert {k: after[k] for k in before} == before  # the rerun computed only unfinished tiles
    assert len(after) == 6

    # the rerun in this process (the kills above are what needs the command; its exit status and
    # summary file: tests/e2e/test_cli.py): the same configuration, so it only publishes
    again = run(config, progress=False)
    assert again.ok and again.published, again.tiles_failed
    assert len(again.tiles_skipped) == 6 and not again.tiles_done, again
    assert_complete_as_reference(config, so, reference)


def test_credentials_never_leave_the_process(
    s3_server: Any, demo_world_s3: Any, reference: dict[str, str], tmp_path: Path
) -> None:
    key_id, secret = f"AKIA{uuid.uuid4().hex[:16].upper()}", f"sEcReT-{uuid.uuid4().hex}"
    so = {**s3_server.storage_options, "key": key_id, "secret": secret}
    config = make_config(so, demo_world_s3.sources_url, "rel-secret")
    remove_run(config, so)
    plan = plan_run(config)
    tile = plan.tiles[0]
    rows, cols = tile.to_slices(plan.origin_row, plan.origin_col)
    proxy = FaultProxy(s3_server.endpoint_url,
                       fail_paths=(f"product.zarr/T0/c/{rows.start // TILE}/{cols.start // TILE}",))
    proxy.start()
    try:  # a failing run (threads scheduler: dask logs failed tasks), logs at INFO + traceback
        faulty = proxy.storage_options(so, config_kwargs={"retries": {"max_attempts": 1}})
        cmd = _args(demo_world_s3.sources_url, "rel-secret", "--cluster", "threads")
        failed = subprocess.run(
            [cmd[0], "-v", *cmd[1:]],
            env=_env(faulty), capture_output=True, text=True, timeout=300, check=False)
    finally:
        proxy.stop()
    assert failed.returncode == 1 and tile.id in failed.stderr, failed.stderr[-3000:]
    summary = tmp_path / "summary.json"
    ok = subprocess.run(
        [*_args(demo_world_s3.sources_url, "rel-secret", "--cluster", "synchronous"),
         "--summary-json", str(summary)],
        env=_env(so), capture_output=True, text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stderr
    texts = {"failed stdout": failed.stdout, "failed stderr": failed.stderr,
             "ok stdout": ok.stdout, "ok stderr": ok.stderr, "summary": summary.read_text()}
    fs = fs_for(so)
    objects = fs.find(f"{OUT}/gsocseq/rel-secret".removeprefix("s3://"))
    assert any(k.endswith(".tif") for k in objects) and any(k.endswith("run.json") for k in objects)
    for key in objects:
        texts[key] = fs.cat_file(key).decode("latin-1")
    for where, text in texts.items():
        assert secret not in text and key_id not in text, f"credential found in {where}"
    remove_run(config, so)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--out", "s3://b/x", "--map-version", "../v1"], "--map-version"),
     (["--out", "s3://other@b/x"], "bucket"),
     (["--out", "s3://b/x/./y"], "path traversal"),
     (["--out", "/tmp/a/../../etc"], "path traversal"),
     (["--out", "s3://b/x", "--sources", "s3://b/../other/sources.toml"], "path traversal"),
     (["--out", "s3://b/x", "--region", "AR/G"], "--region")],
)
def test_cli_rejects_writes_outside_the_prefix(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from gsocseq.cli import main

    res = CliRunner().invoke(main, ["run", "--region", "demo", *args] if "--region" not in args
                             else ["run", *args])
    assert res.exit_code == 2 and message in res.output, res.output


def test_cli_config_file_with_traversal_is_rejected(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gsocseq.cli import main

    toml = tmp_path / "run.toml"
    toml.write_text('[run]\nregion = "demo"\nout = "s3://b/runs/../../other-bucket"\n')
    res = CliRunner().invoke(main, ["run", "--config", str(toml)])
    assert res.exit_code == 2 and "path traversal" in res.output, res.output
