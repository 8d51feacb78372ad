"""Root fixtures shared by every test suite: local S3, the demo world, a Prefect server, free ports.

Fixtures
--------
``s3_server`` (session)
    Starts moto's server (``tests/moto_main.py -H 127.0.0.1 -p <free port>``: ``moto_server`` with its
    per-request module listing done once) as a **separate process** (an in-process
    moto server deadlocks when GDAL writes to /vsis3/, and ``mock_aws`` does not work with s3fs),
    polls ``GET /`` until it answers, and stops it at the end of the session. It also sets
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (dummy) and ``AWS_DEFAULT_REGION`` for the
    session. Yields an :class:`S3Server` with

    - ``endpoint_url`` (``http://127.0.0.1:PORT``) and ``host_port`` (``127.0.0.1:PORT``);
    - ``storage_options``: a dict for s3fs / fsspec / xarray
      (``{"key", "secret", "client_kwargs": {"endpoint_url": …}}``);
    - ``fs()``: a fresh :class:`s3fs.S3FileSystem` on the server (listing cache cleared);
    - ``gdal_env()``: the GDAL config for /vsis3/ (``AWS_S3_ENDPOINT`` host:port, ``AWS_HTTPS=NO``,
      ``AWS_VIRTUAL_HOSTING=FALSE``, ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``,
      ``CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE=YES``, credentials) as environment variables for a
      process (``rasterio.Env`` refuses ``AWS_*`` keys as options: pass them as a session).
``s3_bucket`` (function)
    A fresh, uniquely named bucket on ``s3_server``; yields ``"s3://<name>"`` and deletes it after.
``demo_world`` (session)
    ``demo_world(store, tiles_y=2, tiles_x=3, tile_size=60)``: a tiny demo world (seed 0;
    :func:`gsocseq.demo.write_demo_world`) on ``file``, ``memory`` or ``s3``, written once per
    session. A :class:`DemoWorld` with ``url``, ``sources_url`` (its ``sources.toml``),
    ``storage_options`` and ``tile_size``. Treat it as read-only. ``demo_world_s3`` is
    ``demo_world("s3")`` (``s3://gsocseq-demo-world/world``).
``reliability_reference`` (session)
    sha256 of every product of an undisturbed demo run on S3 (``tests/reliability.py``), shared by
    the reliability tests of ``tests/pipeline`` and ``tests/e2e``.
``prefect_server`` (session)
    A real ``prefect server start`` process (:func:`servers.prefect_server_process`), a
    :class:`servers.PrefectServer` with the REST calls the UI makes.
``free_port()``
    A free loopback TCP port (``tests/servers.py``, with the process helpers).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from servers import PrefectServer, free_port, prefect_server_process

# CI replays a fixed set of examples (derandomized) so a submission is judged on the examples that
# were run before it; locally hypothesis explores new ones (`HYPOTHESIS_PROFILE=explore` forces it).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "explore"))

# Every retry waits a tenth of the product's default (`GSOCSEQ_RETRY_BACKOFF_S`, README "Reliability"):
# the same retry paths, less sleep. Set before anything imports gsocseq, inherited by every process
# the tests start (CLI runs, dask workers, Prefect serve); a developer's own value is kept.
os.environ.setdefault("GSOCSEQ_RETRY_BACKOFF_S", "0.1")

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server (see the module docstring)."""

    endpoint_url: str
    storage_options: dict[str, Any] = field(hash=False)

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT`` (GDAL's ``AWS_S3_ENDPOINT`` takes no scheme)."""
        return self.endpoint_url.split("://", 1)[1]

    def fs(self) -> Any:
        """Return an s3fs filesystem on this server with a clean listing cache."""
        import s3fs

        fs = s3fs.S3FileSystem(**self.storage_options)
        fs.invalidate_cache()
        return fs

    def gdal_env(self) -> dict[str, str]:
        """GDAL configuration options that point /vsis3/ at this server."""
        return {
            "AWS_S3_ENDPOINT": self.host_port,
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE": "YES",
            "AWS_ACCESS_KEY_ID": AWS_ENV["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": AWS_ENV["AWS_DEFAULT_REGION"],
        }


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"moto_server exited with {proc.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer at {url} within {timeout} s")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Run a local moto S3 server process for the whole session."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # moto's own server, its list of service modules read once (tests/moto_main.py: ≈ 1.45× less CPU)
    cmd = [sys.executable, str(Path(__file__).with_name("moto_main.py"))]
    log = Path(tempfile.mkdtemp(prefix="moto-")) / "moto.log"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AWS_ENV.items():
            mp.setenv(key, value)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cmd, "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **AWS_ENV},
                start_new_session=True,
            )
        try:
            _wait_until_up(url, proc, log, timeout=60.0)
            so = {
                "key": AWS_ENV["AWS_ACCESS_KEY_ID"],
                "secret": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                "client_kwargs": {"endpoint_url": url},
            }
            yield S3Server(endpoint_url=url, storage_options=so)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """Create a fresh bucket; yield ``s3://<name>``; delete it afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3_server.fs()
    fs.mkdir(name)
    yield f"s3://{name}"
    fs = s3_server.fs()
    fs.rm(name, recursive=True)


@dataclass(frozen=True)
class DemoWorld:
    """A demo world on some store (see the module docstring)."""

    url: str
    sources_url: str
    storage_options: dict[str, Any] = field(hash=False)
    tile_size: int = 60


DEMO_BUCKET = "gsocseq-demo-world"


@pytest.fixture(scope="session")
def demo_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., DemoWorld]:
    """Return ``make(store, tiles_y=2, tiles_x=3, tile_size=60)``: a demo world written once per session.

    ``store`` is ``file`` (a temporary folder), ``memory`` (fsspec's in-process store) or ``s3``
    (the local moto server, bucket ``gsocseq-demo-world``). Seed 0. Treat it as read-only.
    """
    from gsocseq.demo import write_demo_world

    made: dict[tuple[str, int, int, int], DemoWorld] = {}

    def make(store: str, *, tiles_y: int = 2, tiles_x: int = 3, tile_size: int = 60) -> DemoWorld:
        key = (store, tiles_y, tiles_x, tile_size)
        if key in made:
            return made[key]
        name = f"world-{tiles_y}x{tiles_x}-t{tile_size}"
        so: dict[str, Any] = {}
        if store == "s3":
            s3 = request.getfixturevalue("s3_server")
            fs = s3.fs()
            if not fs.exists(DEMO_BUCKET):
                fs.mkdir(DEMO_BUCKET)
            so = dict(s3.storage_options)
            url = f"s3://{DEMO_BUCKET}/{'world' if key[1:] == (2, 3, 60) else name}"
        elif store == "file":
            url = f"file://{tmp_path_factory.mktemp(name)}"
        elif store == "memory":
            url = f"memory://demo-{uuid.uuid4().hex[:8]}/{name}"
        else:
            raise ValueError(f"unknown store {store!r}: file, memory or s3")
        sources_url = write_demo_world(url, so, tiles_y=tiles_y, tiles_x=tiles_x,
                                       tile_size=tile_size, seed=0)
        made[key] = DemoWorld(url=url, sources_url=sources_url, storage_options=so,
                              tile_size=tile_size)
        return made[key]

    return make


@pytest.fixture(scope="session")
def demo_world_s3(demo_world: Callable[..., DemoWorld]) -> DemoWorld:
    """The default demo world (2 × 3 tiles of 60 cells) on the local S3: ``demo_world("s3")``."""
    return demo_world("s3")


@pytest.fixture(scope="session")
def reliability_reference(s3_server: S3Server, demo_world_s3: DemoWorld) -> dict[str, str]:
    """Digest of an uninterrupted synchronous demo run (map version ``rel-ref``, uncertainty off)
    under the shared pipeline prefix: what the reliability tests' faulty runs must equal
    (``tests/reliability.py``; one run for the integration and the command-line tests)."""
    from reliability import ensure_bucket, make_config, run_digest

    from gsocseq.pipeline import run

    so = s3_server.storage_options
    ensure_bucket(so)
    config = make_config(so, demo_world_s3.sources_url, "rel-ref")
    assert run(config, progress=False).ok
    digest = run_digest(config, so)
    assert sum(k.startswith("cog:") for k in digest) == 19 and len(digest) > 19  # no uncertainty
    return digest


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """A real ``prefect server start`` on a free loopback port (temporary home, SQLite, UI on)."""
    home = Path(tempfile.mkdtemp(prefix="gsocseq-prefect-home-"))
    with prefect_server_process(home) as server:
        yield server
