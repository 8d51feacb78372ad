"""Concurrent ``gsocseq run`` processes on the demo world, on ``file://`` and the local S3 server.

The design under test (README, "Concurrent runs"): two runs of the same product set (region × map
version × scheme under one output) take turns — the second waits for the first's lease, names it,
then skips every tile the first finished, and both exit 0 with the same products; runs of other
product sets go side by side, racing to create the input cube they share (another map version of
the same region). A SIGKILLed run's lease does not block the next run. Real processes only (the installed
``gsocseq`` script, own process groups); storage is a temporary folder or the session's moto server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest

from gsocseq.config import RunConfig
from gsocseq.cube.store import open_cube
from gsocseq.pipeline import plan_run
from gsocseq.storage import list_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

GSOCSEQ = str(Path(sys.executable).parent / "gsocseq")
TILE = 60


@dataclass(frozen=True)
class Target:
    """Where the runs of one store kind write, and how a process reaches it."""

    out: str
    sources: str
    storage_options: dict[str, Any]
    env: dict[str, str]


@pytest.fixture(scope="module", params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Target]:
    """A fresh output prefix (so the first test of each store builds the input cube)."""
    if request.param == "file":
        from gsocseq.demo import write_demo_world

        root = tmp_path_factory.mktemp("concurrent")
        sources = write_demo_world(f"file://{root}/world", tiles_y=2, tiles_x=3, tile_size=TILE)
        yield Target(f"file://{root}/out", sources, {}, dict(os.environ))
        return
    s3 = request.getfixturevalue("s3_server")
    world = request.getfixturevalue("demo_world_s3")
    bucket = f"concurrent-{uuid.uuid4().hex[:8]}"
    s3.fs().mkdir(bucket)
    so = dict(s3.storage_options)
    env = {**os.environ, "GSOCSEQ_STORAGE_OPTIONS": json.dumps(so), "AWS_ACCESS_KEY_ID": so["key"],
           "AWS_SECRET_ACCESS_KEY": so["secret"], "AWS_DEFAULT_REGION": "us-east-1"}
    yield Target(f"s3://{bucket}/out", world.sources_url, so, env)
    s3.fs().rm(bucket, recursive=True)


def _cmd(t: Target, version: str, summary: Path) -> list[str]:
    return [GSOCSEQ, "run", "--region", "demo", "--sources", t.sources, "--out", t.out,
            "--map-version", version, "--tile-size", str(TILE), "--scenarios", "bau",
            "--no-uncertainty", "--cluster", "synchronous", "--no-progress",
            "--summary-json", str(summary)]


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{text[-4000:]}"
    return text


def _config(t: Target, version: str) -> RunConfig:
    return RunConfig(region="demo", out=t.out, sources=t.sources, tile_size=TILE,
                     scenarios=("bau",), uncertainty=False, map_version=version,
                     cluster="synchronous", storage_options=t.storage_options)


def _digest(t: Target, version: str) -> dict[str, str]:
    """sha256 of every product-cube chunk, COG and quick-look of a run, keyed by the path inside it."""
    plan = plan_run(_config(t, version))
    fs, _ = fsspec.core.url_to_fs(t.out, **t.storage_options)
    fs.invalidate_cache()
    out: dict[str, str] = {}
    for prefix, tag in ((plan.product_cube_url, "cube"),
                        (f"{plan.products_url}/{plan.region_name}", "cog")):
        root = fsspec.core.url_to_fs(prefix, **t.storage_options)[1]
        for key in fs.find(root):
            if key.endswith(".partial"):  # zarr's LocalStore temp file of a write a SIGKILL cut:
                continue  # never read (the chunk is renamed into place only when complete)
            if tag == "cog" or "/c/" in key:
                kind = "png" if key.endswith(".png") else tag  # quick-looks beside the COGs
                out[f"{kind}:{key.removeprefix(root)}"] = hashlib.sha256(fs.cat_file(key)).hexdigest()
    assert sum(k.startswith("cog:") for k in out) == 4 and sum(k.startswith("cube:") for k in out)
    return out


_REFERENCES: dict[str, dict[str, str]] = {}


def _reference(t: Target) -> dict[str, str]:
    """Digest of one undisturbed run of the same configuration (made once per store, on demand:
    after the concurrent runs of the first test, so that those still race to create the cube)."""
    if t.out not in _REFERENCES:
        from gsocseq.pipeline import run

        assert run(_config(t, "conc-reference"), progress=False).ok
        _REFERENCES[t.out] = _digest(t, "conc-reference")
    return _REFERENCES[t.out]


def _summary(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def _validate(t: Target) -> None:
    """``gsocseq validate`` of the output, in this process (click's runner: the runs are the
    processes under test; the command's own process is tested in ``test_cli.py``)."""
    from click.testing import CliRunner

    from gsocseq.cli import main

    res = CliRunner().invoke(main, ["validate", t.out, "--storage-options",
                                    json.dumps(t.storage_options)])
    assert res.exit_code == 0, res.output[-5000:]


# Both orders on file://; on S3 one (the lease code is shared, the order only decides which run
# waits, and the second S3 order cost ≈ 85 s on CI). S3 leases themselves: tests/pipeline/test_lease.py.
@pytest.mark.parametrize(("target", "order"),
                         [("file", "a-first"), ("file", "b-first"), ("s3", "a-first")],
                         indirect=["target"])
def test_two_runs_of_one_region_take_turns_beside_a_run_of_another_version(
    target: Target, order: str, tmp_path: Path
) -> None:
    """A and B: same products (they take turns); C (first order only, when the input cube is new):
    another map version of the region, side by side, racing A or B to create the cube."""
    t = target
    same, other = f"conc-{order}", f"conc-{order}-other"
    a, b, c = (tmp_path / f"{n}.json" for n in "abc")
    cmds = {"a": _cmd(t, same, a), "b": _cmd(t, same, b), "c": _cmd(t, other, c)}
    names = ["a", "b", "c"] if order == "a-first" else ["b", "a"]
    procs = {n: _start(cmds[n], t.env, tmp_path / f"{n}.log") for n in names}  # together
    logs = {n: _finish(procs[n], tmp_path / f"{n}.log") for n in names}
    sa, sb = _summary(a), _summary(b)

    # A and B: one computed every tile, the other waited for it (named) and skipped them all
    first, second = ("a", "b") if "wait" in sb["stage_seconds"] else ("b", "a")
    s1, s2 = (sa, sb) if first == "a" else (sb, sa)
    assert "wait" not in s1["stage_seconds"] and s2["stage_seconds"]["wait"] > 0
    assert s1["tiles"]["done"] == 6 and s1["tiles"]["skipped"] == 0, s1["tiles"]
    assert s2["tiles"]["done"] == 0 and s2["tiles"]["skipped"] == 6, s2["tiles"]
    assert s1["totals"] == s2["totals"] and s1["published"] and s2["published"]
    pid = procs[first].pid
    waited = re.search(r"DEM \(conc-[a-z-]+/exact\) under \S+ is being computed by another run: "
                       rf"gsocseq run demo \(config [0-9a-f]{{12}}\) \(pid {pid} on \S+, since "
                       r"\S+Z, renewed \d+ s ago\)\. Waiting for it; this run then skips every "
                       "tile it finished", logs[second])
    assert waited, logs[second][-3000:]
    assert "Traceback" not in "".join(logs.values())
    if "c" in procs:  # C ran side by side (no wait) on the same, new input cube
        sc = _summary(c)
        assert "wait" not in sc["stage_seconds"] and sc["tiles"]["done"] == 6
        assert _digest(t, other) == _reference(t)

    # the products equal an undisturbed run's; one complete input cube, nothing temporary left
    assert _digest(t, same) == _reference(t)
    plan = plan_run(_config(t, same))
    cube = open_cube(plan.cube_url, t.storage_options)
    assert (cube["tile_status"].values >= 0).all()
    fs, root = fsspec.core.url_to_fs(plan.cube_url, **t.storage_options)
    assert [k for k in fs.find(root) if ".tmp-" in k or k.endswith(".partial")] == []
    _validate(t)  # every run under the output: complete, COGs valid, STAC valid


@pytest.mark.parametrize("target", ["file"], indirect=True)  # on S3: tests/pipeline/test_lease.py
def test_a_killed_run_does_not_block_the_next_one(target: Target, tmp_path: Path) -> None:
    """SIGKILL mid-tiles (lease left behind, ttl 60 s); the next run takes over at once, resumes."""
    t = target
    version = "conc-killed"
    plan = plan_run(_config(t, version))
    first = _start(_cmd(t, version, tmp_path / "first.json"), t.env, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 600
        while sum(n.endswith(".json") for n in list_names(plan.done_url, t.storage_options)) < 2:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the first run never finished two tiles"
            time.sleep(0.01)
        # frozen at once (a demo tile takes ~0.1 s: polling then killing could let it finish all
        # six), then killed: it never releases its lease
        os.killpg(first.pid, signal.SIGSTOP)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finished = sum(n.endswith(".json") for n in list_names(plan.done_url, t.storage_options))
    assert 2 <= finished < 6

    t0 = time.monotonic()
    second = _start(_cmd(t, version, tmp_path / "second.json"), t.env, tmp_path / "second.log")
    log = _finish(second, tmp_path / "second.log")
    summary = _summary(tmp_path / "second.json")
    assert f"taking over from gsocseq run demo (config {plan.config_hash[:12]}) (pid {first.pid} " in log
    assert f"its process (pid {first.pid} on this host) is gone" in log
    assert "wait" not in summary["stage_seconds"]
    assert time.monotonic() - t0 < 300
    assert summary["tiles"]["skipped"] == finished and summary["tiles"]["done"] == 6 - finished
    assert _digest(t, version) == _reference(t)
    # a chunk write the kill cut left no temporary file behind (publication removes them)
    fs, root = fsspec.core.url_to_fs(plan.product_cube_url, **t.storage_options)
    assert [k for k in fs.find(root) if k.endswith(".partial")] == []
