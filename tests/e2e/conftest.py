"""Fixtures for the Prefect end-to-end tests: a real Prefect server and a real serve process.

Both are separate OS processes on loopback ports, started once per session (only when a test asks
for them) and stopped by their finalizers (SIGTERM to the process group, SIGKILL after 15 s). The
serve process reaches the moto S3 server of the root conftest through the standard AWS/GDAL
environment variables, as a deployment reaches a real object store.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect_procs import (
    COUNTRY,
    GLOBAL,
    PrefectServer,
    ServeProcess,
    free_port,
    s3_env,
    start_process,
    stop_process,
    tail,
)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """Start ``prefect server start`` on a free loopback port with a temporary home and SQLite."""
    home = Path(tempfile.mkdtemp(prefix="gsocseq-prefect-home-"))
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        # the UI calls the API at this URL (default: port 4200, not the one bound here)
        "PREFECT_SERVER_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    prefect = str(Path(sys.executable).parent / "prefect")
    proc = start_process([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                         env, log)
    server = PrefectServer(url=f"http://127.0.0.1:{port}", home=home, log=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited ({proc.returncode}):\n{tail(log)}")
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after 120 s:\n{tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def prefect_serve(
    prefect_server: PrefectServer, s3_server: Any, demo_world_s3: Any
) -> Iterator[ServeProcess]:
    """Serve both deployments against ``prefect_server``, writing to the local S3 server."""
    bucket = "gsocseq-e2e-prefect"
    fs = s3_server.fs()
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    out = f"s3://{bucket}/runs"
    env = {
        **os.environ,
        **s3_env(s3_server),
        "PREFECT_HOME": str(prefect_server.home),
        "PREFECT_API_URL": prefect_server.api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = prefect_server.home / "serve.log"
    cmd = [sys.executable, "-m", "flows.serve", "--out", out,
           "--sources", demo_world_s3.sources_url, "--tile-size", str(demo_world_s3.tile_size),
           "--no-uncertainty", "--scenarios", "bau,ssm_med", "--local-workers", "1",
           "--world", "demo"]
    proc = start_process(cmd, env, log)
    try:
        deadline = time.monotonic() + 120
        with prefect_server.client() as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"serve exited ({proc.returncode}):\n{tail(log)}")
                found = [c.get(f"/deployments/name/{f}/{d}").status_code == 200
                         for f, d in (COUNTRY, GLOBAL)]
                if all(found) and b"being served" in log.read_bytes():
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"deployments not served after 120 s:\n{tail(log)}")
                time.sleep(0.5)
        yield ServeProcess(out=out, sources=demo_world_s3.sources_url, log=log)
    finally:
        stop_process(proc)
