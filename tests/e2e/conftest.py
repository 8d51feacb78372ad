"""Fixtures of the end-to-end tests: a real serve process on the root ``prefect_server``, and the
headless Chromium (Debian's, else Playwright's managed one) that the browser tests drive.

A separate OS process, started once per session (only when a test asks for it) and stopped by its
finalizer (SIGTERM to the process group, SIGKILL after 15 s). It reaches the moto S3 server of the
root conftest through the standard AWS/GDAL environment variables, as a deployment reaches a real
object store.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright
from prefect_procs import COUNTRY, GLOBAL, ServeProcess, s3_env
from servers import PrefectServer, start_process, stop_process, tail

# Debian's chromium when installed, else Playwright's managed browser (`make test` provisions one of them)
CHROMIUM = os.environ.get("GSOCSEQ_CHROMIUM") or shutil.which("chromium")
# flags measured on the project's machines (headless, no network side channels)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for one test module (each test opens its own context).

    Not for the session: Playwright's sync API keeps an event loop running in the main thread while
    it is open, and Prefect's sync-or-async functions then return coroutines in later tests.
    """
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


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
