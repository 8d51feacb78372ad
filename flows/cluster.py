"""The dask runtime of a flow run: an existing cluster's address, or a LocalCluster.

Chosen inside the flow at run time (never at import): the ``cluster_address`` parameter first, then the
Prefect variable ``gsocseq-dask-address``, else a process LocalCluster started by prefect-dask for the
duration of the run. An address is checked before it is used: a scheduler that cannot be reached, or
that has no workers within ``wait_s`` seconds, fails the run with a clear message instead of letting
``DaskTaskRunner`` wait forever for a worker that never comes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prefect.variables import Variable
from prefect_dask import DaskTaskRunner

from gsocseq.pipeline.run import ClusterUnavailableError, connect

__all__ = ["ADDRESS_VARIABLE", "ClusterUnavailableError", "DaskRuntime", "check_cluster",
           "resolve_address", "resolve_runtime"]

ADDRESS_VARIABLE = "gsocseq-dask-address"
"""Name of the Prefect variable holding a default scheduler address (``tcp://host:8786``)."""


@dataclass(frozen=True)
class DaskRuntime:
    """Where the tiles of a run are computed."""

    address: str | None
    """Scheduler address, or ``None`` for a LocalCluster owned by the run."""
    n_workers: int
    """Workers seen at the check (existing cluster) or started (LocalCluster)."""

    @property
    def description(self) -> str:
        """Return a one-line description for logs and the run report."""
        workers = f"{self.n_workers} worker{'s' if self.n_workers != 1 else ''}"
        if self.address is None:
            return f"LocalCluster ({workers}, one process each)"
        return f"dask cluster {self.address} ({workers})"

    def task_runner(self) -> DaskTaskRunner:
        """Return a fresh prefect-dask task runner for this runtime."""
        if self.address is not None:
            return DaskTaskRunner(address=self.address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": self.n_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": ":0",
            },
        )


def resolve_address(cluster_address: str | None) -> str | None:
    """Return the parameter if given, else the Prefect variable ``gsocseq-dask-address``, else None."""
    if cluster_address:
        return cluster_address
    value = Variable.get(ADDRESS_VARIABLE, default=None)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ClusterUnavailableError(
            f"Prefect variable {ADDRESS_VARIABLE!r} = {value!r} is not a string; "
            "set it to a scheduler address such as tcp://scheduler:8786"
        )
    return value


def check_cluster(address: str, *, wait_s: float = 30.0, connect_s: float = 10.0) -> int:
    """Return the number of workers of the scheduler at ``address``.

    Raises :class:`ClusterUnavailableError` if the scheduler cannot be reached within ``connect_s``
    seconds or has no worker after ``wait_s`` seconds (the pipeline's own check, :func:`connect`).
    """
    with connect(address, wait_s=wait_s, connect_s=connect_s) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def resolve_runtime(
    cluster_address: str | None, *, local_workers: int, wait_s: float = 30.0
) -> DaskRuntime:
    """Pick and check the dask runtime of a run (see the module docstring)."""
    address = resolve_address(cluster_address)
    if address is None:
        return DaskRuntime(address=None, n_workers=local_workers)
    n = check_cluster(address, wait_s=wait_s)
    logging.getLogger(__name__).debug("scheduler %s has %d workers", address, n)
    return DaskRuntime(address=address, n_workers=n)
