"""The dask settings of the worker processes a run starts: no statistical profiler unless asked.

Real process LocalClusters started by the pipeline's own :func:`open_client` and with the kwargs
of the flows' prefect-dask runtime; the workers' own periodic callbacks are inspected.
"""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster

from flows.cluster import DaskRuntime
from gsocseq.config import RunConfig
from gsocseq.pipeline.run import PROFILE_ENV, open_client, worker_dask_config


def _profiling(dask_worker) -> bool:  # type: ignore[no-untyped-def]
    """Whether this worker runs dask's statistical profiler."""
    return "profile" in dask_worker.periodic_callbacks


def test_the_run_cluster_has_no_worker_profiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 1)  # one worker is enough
    with open_client(RunConfig(region="demo", out="file:///unused")) as client:
        flags = client.run(_profiling)
    assert flags and not any(flags.values())


def test_the_environment_turns_the_profiler_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "True")
    assert worker_dask_config() == {"distributed.worker.profile.enabled": True}
    kwargs = DaskRuntime(address=None, n_workers=1).task_runner().cluster_kwargs
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        assert all(client.run(_profiling).values())


def test_the_flows_local_cluster_gets_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # the cluster prefect-dask starts from these kwargs is the one started in the test above
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    kwargs = DaskRuntime(address=None, n_workers=1).task_runner().cluster_kwargs
    assert kwargs["config"] == {"distributed.worker.profile.enabled": False}
