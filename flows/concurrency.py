"""Per-region concurrency of the flows: runs of one product set queue, other regions run side by side.

Prefect's deployment-level limit (``flows/serve.py``, collision strategy ENQUEUE) counts the runs of
a deployment whatever their parameters, so the per-region limit is a Prefect **global concurrency
limit** of one slot per product set (region × map version × scheme under one output;
:func:`limit_name`), created on first use and held by the flow run around everything that writes
(with a lease the server expires if the run dies). Inside it the flow also holds the storage lease
a CLI run takes (:func:`gsocseq.pipeline.exclusive.product_set_lease`), so a flow run and a
``gsocseq run`` of the same products take turns too.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Sequence

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists

from gsocseq.config import RunConfig
from gsocseq.lease import held
from gsocseq.pipeline import RunPlan
from gsocseq.pipeline.exclusive import lease_url, product_set_lease

SLOT_LEASE_S: float = 300.0
"""Lease of a held region slot on the Prefect server, s (renewed at 75 %; a dead run's slot is
freed when it expires)."""


def limit_name(config: RunConfig, plan: RunPlan) -> str:
    """Return the name of the global concurrency limit of the plan's product set.

    ``gsocseq:{REGION}:{map_version}:{scheme}:{8 hex of the output URL}`` (Prefect names may not
    contain ``/``, so the output is hashed; it tells two buckets apart).
    """
    out = hashlib.sha256(config.out.encode()).hexdigest()[:8]
    return f"gsocseq:{plan.region_name}:{config.map_version}:{config.scheme}:{out}"


def ensure_limits(names: Sequence[str]) -> None:
    """Create each global concurrency limit (one slot) unless it exists (an existing one is kept)."""
    with get_client(sync_client=True) as client:
        for name in names:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextlib.contextmanager
def hold_regions(jobs: Sequence[tuple[RunConfig, RunPlan]]) -> Iterator[None]:
    """Hold the Prefect slot and the storage lease of every product set in ``jobs`` (waiting).

    All slots are taken at once (the server grants all or none, so two multi-region runs cannot
    deadlock); storage leases are taken in URL order.
    """
    logger = get_run_logger()
    names = sorted({limit_name(config, plan) for config, plan in jobs})
    ensure_limits(names)
    ctx = FlowRunContext.get()
    holder = (ConcurrencyLeaseHolder(type="flow_run", id=ctx.flow_run.id)
              if ctx is not None and ctx.flow_run is not None else None)
    logger.info("taking the region slot(s) %s (runs of the same region queue)", ", ".join(names))
    t0 = time.monotonic()
    with concurrency(names, occupy=1, strict=True, lease_duration=SLOT_LEASE_S, holder=holder):
        logger.info("region slot(s) %s held after %.0f s", ", ".join(names), time.monotonic() - t0)
        with contextlib.ExitStack() as stack:
            for config, plan in sorted(jobs, key=lambda job: lease_url(job[1])):
                lease = product_set_lease(
                    config, plan, on_wait=lambda h, r=plan.region: logger.warning(
                        "%s: waiting for %s", r, h.describe()))
                stack.enter_context(held(lease))
            yield
