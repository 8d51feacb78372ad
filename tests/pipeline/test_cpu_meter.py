"""Stage CPU-seconds: every process of a real dask cluster counted once, lost workers not at all."""

from __future__ import annotations

import os
import time

from distributed import Client, LocalCluster

from gsocseq.pipeline.cpu_meter import cluster_cpu, cpu_between, process_cpu_s


def _burn(seconds: float) -> float:
    """Spin on this thread for ``seconds`` of its own CPU time; return the CPU it used, s."""
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < seconds:
        x += 1
    return time.thread_time() - start


def test_process_cluster_counts_each_worker_process_and_this_one() -> None:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        before = cluster_cpu(client)
        workers = {k for k in before if k[0] not in ("client", "scheduler")}
        assert len(workers) == 2 and len({pid for _, pid in workers} | {os.getpid()}) == 3
        used = client.gather(client.map(_burn, [0.6, 0.6], pure=False,
                                        workers=[a for a, _ in workers], allow_other_workers=False))
        after = cluster_cpu(client)
    assert sum(used) >= 1.2
    per_worker = {k: after[k] - before[k] for k in workers}
    assert all(v >= 0.5 for v in per_worker.values()), per_worker
    assert cpu_between(before, after) >= sum(per_worker.values()) >= 1.2


def test_threads_cluster_is_this_process_counted_once() -> None:
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = cluster_cpu(client)
        assert list(before) == [("client", os.getpid())]  # workers and scheduler are this process
        t0 = process_cpu_s()
        client.gather(client.map(_burn, [0.3, 0.3], pure=False))
        after = cluster_cpu(client)
        spent = process_cpu_s() - t0
    assert 0.6 <= cpu_between(before, after) <= spent + 0.05


def test_new_process_counts_from_zero_and_a_lost_one_is_dropped() -> None:
    before = {("client", 1): 10.0, ("tcp://a", 2): 5.0}
    after = {("client", 1): 12.5, ("tcp://b", 3): 4.0}  # worker a lost, worker b started
    assert cpu_between(before, after) == 2.5 + 4.0
    assert list(cluster_cpu(None)) == [("client", os.getpid())]  # no cluster: this process only
