"""Run-start check that the client, the dask scheduler and every worker run the same software.

A task pickled by one gsocseq or dask version and run by another can fail late or, worse, compute with
other code; on Kubernetes that happens when pods pull different images. :func:`check_versions` asks
each process for its versions and raises :class:`VersionMismatchError` naming the process that differs.
"""

from __future__ import annotations

from typing import Any

from gsocseq.errors import PipelineError

PACKAGES: tuple[str, ...] = ("gsocseq", "dask", "distributed")
"""Packages whose versions must be identical on the client, the scheduler and every worker."""


class VersionMismatchError(PipelineError):
    """The client, the scheduler and the workers do not run the same package versions."""


def installed_versions() -> dict[str, str]:
    """Return ``{package: version}`` of :data:`PACKAGES` as imported by this process."""
    import importlib

    return {name: str(getattr(importlib.import_module(name), "__version__", "unknown"))
            for name in PACKAGES}


def check_versions(client: Any) -> dict[str, dict[str, str]]:
    """Raise :class:`VersionMismatchError` unless every process of ``client``'s cluster matches it.

    ``client`` is a connected ``distributed.Client``. Returns ``{process: {package: version}}`` for
    the client, the scheduler and each worker (by address). A process that cannot even run the
    check (e.g. gsocseq not installed there) is reported as a mismatch too.
    """
    mine = installed_versions()
    reports: dict[str, Any] = {"client": mine}
    try:
        reports[f"scheduler {client.scheduler.address}"] = client.run_on_scheduler(installed_versions)
    except Exception as exc:  # reported below, with the process named
        reports[f"scheduler {client.scheduler.address}"] = exc
    for address, result in sorted(client.run(installed_versions, on_error="return").items()):
        reports[f"worker {address}"] = result
    problems = []
    for process, found in reports.items():
        if isinstance(found, BaseException):
            problems.append(f"{process}: cannot report its versions ({type(found).__name__}: {found})")
            continue
        for name in PACKAGES:
            if found.get(name) != mine[name]:
                problems.append(f"{process}: {name} {found.get(name)} (client: {mine[name]})")
    if problems:
        raise VersionMismatchError(
            "client, scheduler and workers must run the same gsocseq/dask versions (one image for "
            "every pod, infra/README.md); differing: " + "; ".join(problems))
    return reports
