"""The LocalCluster a CLI run builds: process workers without dask's statistical profiler.

A real process LocalCluster through :func:`gsocseq.pipeline.run.open_client` (the CLI's path): its
workers take :data:`~gsocseq.pipeline.run.LOCAL_WORKER_CONFIG` at creation (the profiler samples
every thread every 10 ms for a dashboard this cluster does not serve), while the client process's
own dask configuration is left as it was.
"""

from __future__ import annotations

import os
from typing import Any

import dask
import distributed  # noqa: F401 - loads the distributed section of the dask configuration
import pytest

from gsocseq.config import RunConfig
from gsocseq.pipeline.run import LOCAL_WORKER_CONFIG, open_client

pytestmark = pytest.mark.timeout(180)


def _profiler(dask_worker: Any) -> tuple[bool, list[str]]:
    """(profile setting, the worker's profiling periodic callbacks) in a worker process."""
    return (bool(dask.config.get("distributed.worker.profile.enabled")),
            sorted(k for k in dask_worker.periodic_callbacks if k.startswith("profile")))


def test_cli_local_cluster_workers_run_without_the_profiler() -> None:
    assert LOCAL_WORKER_CONFIG == {"distributed.worker.profile.enabled": False}
    before = dask.config.get("distributed.worker.profile.enabled")
    config = RunConfig(region="demo", out="memory://local-cluster")
    with open_client(config) as client:
        client.wait_for_workers(os.cpu_count() or 1, timeout=60)
        found = client.run(_profiler)
        pids = client.run(os.getpid)
    assert len(found) == (os.cpu_count() or 1)
    assert set(pids.values()).isdisjoint({os.getpid()})  # separate processes
    assert all(f == (False, []) for f in found.values()), found
    # the setting applied to the workers only
    assert dask.config.get("distributed.worker.profile.enabled") == before is True
