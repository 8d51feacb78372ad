"""CPU-seconds of a run's stages: this process plus every process of its dask cluster.

Owns the summary's ``stage_cpu_seconds`` (what ``benchmarks/bench_world.py`` turns into the rates of
``gsocseq plan``): user + system time from ``getrusage`` of each process (all its threads), read at
a stage's start and end. Unlike wall time it does not grow with other load on the machine.
"""

from __future__ import annotations

import logging
import os
import resource
from typing import Any

log = logging.getLogger(__name__)

ProcessKey = tuple[str, int]
"""(dask address or ``"client"``, process id): a restarted worker is a new process."""


def process_cpu_s() -> float:
    """CPU-seconds (user + system, all threads) this process has used so far, s."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pid_cpu() -> tuple[int, float]:
    """(process id, CPU-seconds so far): run on each worker and on the scheduler."""
    return os.getpid(), process_cpu_s()


def cluster_cpu(client: Any = None) -> dict[ProcessKey, float]:
    """CPU-seconds so far of this process and of the cluster's worker and scheduler processes.

    Processes that are this one (a threads cluster, a scheduler in this process) count once.
    A worker that does not answer is left out (its CPU is then not counted), never an error.
    """
    me = os.getpid()
    out: dict[ProcessKey, float] = {("client", me): process_cpu_s()}
    if client is None:
        return out
    answers: dict[str, Any] = {}
    try:
        answers = dict(client.run(_pid_cpu, on_error="return"))
        answers["scheduler"] = client.run_on_scheduler(_pid_cpu)
    except Exception as exc:  # noqa: BLE001 - metering must never fail a run
        log.warning("CPU meter: cluster not read (%s); stage CPU counts this process only", exc)
    for address, answer in answers.items():
        if isinstance(answer, tuple) and answer[0] != me:
            out[(address, int(answer[0]))] = float(answer[1])
    return out


def cpu_between(start: dict[ProcessKey, float], end: dict[ProcessKey, float]) -> float:
    """CPU-seconds used between two readings of :func:`cluster_cpu`, s.

    A process that started in between counts from zero; one that ended in between (a lost
    worker) is not counted.
    """
    return sum(max(0.0, cpu - start.get(key, 0.0)) for key, cpu in end.items())
