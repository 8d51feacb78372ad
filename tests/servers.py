"""Local server processes of the tests: free ports, process groups, and a real Prefect server.

Shared by the fixtures in ``tests/conftest.py`` and the test modules that start a server of their own
(one start-up for every Prefect server the tests use: :func:`prefect_server_process`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, n: int = 4000) -> str:
    """Return the last ``n`` characters of a log file ('' if unreadable)."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def start_process(cmd: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session (process group) with output to ``log``."""
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, env=dict(env), stdout=fh, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process group we started: SIGTERM, wait 15 s, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class PrefectServer:
    """A running ``prefect server start`` process."""

    url: str
    """Base URL of the server (the UI is served at ``/``)."""
    home: Path
    """Temporary ``PREFECT_HOME`` (SQLite database, logs)."""
    log: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def deployment(self, flow_name: str, deployment_name: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/deployments/name/{flow_name}/{deployment_name}")
            r.raise_for_status()
            return dict(r.json())

    def deployment_id(self, flow_name: str, deployment_name: str) -> str:
        return str(self.deployment(flow_name, deployment_name)["id"])

    def create_flow_run(self, deployment_id: str, parameters: dict[str, Any]) -> httpx.Response:
        """POST the request the UI's Run button sends.

        A 503 (the server's answer to a retryable error, such as SQLite busy on a loaded machine)
        is retried up to 5 times, 1 s apart, as Prefect's own client does.
        """
        with self.client() as c:
            for _ in range(5):
                r = c.post(f"/deployments/{deployment_id}/create_flow_run",
                           json={"parameters": parameters})
                if r.status_code != 503:
                    break
                time.sleep(1.0)
            return r

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/flow_runs/{flow_run_id}")
            r.raise_for_status()
            return dict(r.json())

    def flow_runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        with self.client() as c:
            r = c.post("/flow_runs/filter", json={"flow_runs": flow_run_filter,
                                                 "sort": "EXPECTED_START_TIME_DESC"})
            r.raise_for_status()
            return list(r.json())

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        with self.client() as c:
            r = c.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}})
            r.raise_for_status()
            return list(r.json())

    def wait_for_terminal(self, flow_run_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(flow_run_id)
            if run["state_type"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {flow_run_id} still {run['state_type']} after "
                                     f"{timeout:.0f} s; logs: {self.logs(flow_run_id)[-10:]}")
            time.sleep(1.0)

    def logs(self, flow_run_id: str) -> list[str]:
        with self.client() as c:
            r = c.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}},
                                            "sort": "TIMESTAMP_ASC", "limit": 200})
            r.raise_for_status()
            return [str(entry["message"]) for entry in r.json()]

    def artifacts(self, flow_run_id: str) -> list[dict[str, Any]]:
        with self.client() as c:
            r = c.post("/artifacts/filter",
                       json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
            r.raise_for_status()
            return list(r.json())


@contextmanager
def prefect_server_process(
    home: Path, *, ui: bool = True, disabled_services: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> Iterator[PrefectServer]:
    """Run ``prefect server start`` on a free loopback port (SQLite in ``home``) until exit.

    ``disabled_services`` names server services to turn off (``SCHEDULER``, ``LATE_RUNS`` …).
    The environment of the caller's Prefect settings is not inherited (``PREFECT_*`` dropped).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        # the UI calls the API at this URL (default: port 4200, not the one bound here)
        "PREFECT_SERVER_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        # a run refused a concurrency slot retries after the server's Retry-After: the average slot
        # occupancy capped at this (default 30 s, then jitter), idle time in the queueing tests
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    })
    for service in disabled_services:
        env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    log = home / "server.log"
    prefect = str(Path(sys.executable).parent / "prefect")
    proc = start_process([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                         env, log)
    server = PrefectServer(url=f"http://127.0.0.1:{port}", home=home, log=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited ({proc.returncode}):\n{tail(log)}")
            try:
                if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s:\n{tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        stop_process(proc)
