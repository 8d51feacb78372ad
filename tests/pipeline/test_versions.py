"""The run-start version check on a real process LocalCluster (scheduler + 2 worker processes).

Simulated: a worker built from another image. We cannot install a second gsocseq/dask into one worker
process here, so the test changes the version *that worker process reports* (``gsocseq.__version__``
or ``dask.__version__``, set with ``client.run`` on that one worker, in its own process only). The
cluster, its comms, the check and the two places that call it (the pipeline's ``open_client`` and the
flows' ``check_cluster``) are real.
"""

from __future__ import annotations

from collections.abc import Iterator

import dask
import distributed
import pytest
from distributed import Client, LocalCluster

import gsocseq
from flows.cluster import check_cluster
from gsocseq.config import RunConfig
from gsocseq.pipeline.run import open_client
from gsocseq.pipeline.versions import PACKAGES, VersionMismatchError, check_versions

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as c:
        yield c


def _pretend(client: Client, worker: str, package: str, version: str) -> None:
    """Make one worker process report ``version`` for ``package`` (see the module docstring)."""

    def set_version(package: str = package, version: str = version) -> None:
        import importlib

        importlib.import_module(package).__version__ = version

    client.run(set_version, workers=[worker])


@pytest.fixture
def odd_worker(cluster: LocalCluster) -> Iterator[tuple[Client, str]]:
    """Yield (client, address of one worker); restore that worker's reported versions afterwards."""
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        worker = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
        yield client, worker
        real = {"gsocseq": gsocseq.__version__, "dask": dask.__version__,
                "distributed": distributed.__version__}
        for package, version in real.items():
            _pretend(client, worker, package, version)


def test_matching_cluster_passes_and_reports_every_process(cluster: LocalCluster) -> None:
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        reports = check_versions(client)
    assert len(reports) == 4  # client, scheduler, 2 workers
    assert sum(p.startswith("worker tcp://") for p in reports) == 2
    for found in reports.values():
        assert found == {"gsocseq": gsocseq.__version__, "dask": dask.__version__,
                         "distributed": distributed.__version__}
    assert set(PACKAGES) >= {"gsocseq", "dask"}


@pytest.mark.parametrize("package", ["gsocseq", "dask"])
def test_pipeline_run_start_fails_on_a_worker_with_another_version(
        cluster: LocalCluster, odd_worker: tuple[Client, str], package: str) -> None:
    client, worker = odd_worker
    _pretend(client, worker, package, "0.0.1")
    config = RunConfig(region="demo", out="memory://versions", cluster=cluster.scheduler_address)
    with pytest.raises(VersionMismatchError) as err, open_client(config):
        pytest.fail("open_client yielded a client for a cluster running mixed versions")
    message = str(err.value)
    assert f"worker {worker}: {package} 0.0.1" in message
    real = gsocseq.__version__ if package == "gsocseq" else dask.__version__
    assert f"(client: {real})" in message
    # Only the odd worker is named: the other worker and the scheduler match.
    assert message.count("worker tcp://") == 1 and "scheduler" not in message.split("differing:")[1]


def test_flow_cluster_check_fails_on_a_worker_with_another_version(
        cluster: LocalCluster, odd_worker: tuple[Client, str]) -> None:
    client, worker = odd_worker
    _pretend(client, worker, "gsocseq", "9.9.9")
    with pytest.raises(VersionMismatchError, match=rf"worker {worker}: gsocseq 9\.9\.9"):
        check_cluster(cluster.scheduler_address, wait_s=30)
