"""Which leases a run holds, so that two runs of the same products never interleave.

A run holds the lease of its **product set** — region × map version × scheme under one output (the
COGs ``products/{REGION}/`` and the STAC item it publishes) — from before its first tile to after
publication; a second run of that set waits, then skips the tiles the first finished. The demo
world is written under a lease too. Leases live at ``{out}/gsocseq/{map_version}/{scheme}/leases/``
and ``{out}/gsocseq/leases/`` (:mod:`gsocseq.lease`: heartbeat, stale holders taken over).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gsocseq.config import RunConfig
from gsocseq.lease import Holder, Lease, held
from gsocseq.pipeline.plan import RunPlan, demo_inputs_url
from gsocseq.pipeline.prepare import ensure_demo_world

log = logging.getLogger(__name__)


def lease_url(plan: RunPlan) -> str:
    """Return the URL of the lease of the plan's product set (region × map version × scheme)."""
    return f"{plan.base_url}/leases/{plan.region_name}"


def product_set_lease(
    config: RunConfig, plan: RunPlan, *, on_wait: Callable[[Holder], None] | None = None
) -> Lease:
    """Return the (not yet acquired) lease a run of ``plan`` holds while it computes and publishes.

    ``on_wait`` is called with the holder when the run has to wait (default: a warning saying who
    holds it, since when, and that this run will then skip the tiles already finished).
    """
    url = lease_url(plan)
    what = f"{plan.region_name} ({config.map_version}/{config.scheme}) under {config.out}"

    def warn(holder: Holder) -> None:
        log.warning("%s is being computed by another run: %s. Waiting for it; this run then "
                    "skips every tile it finished (a stale holder is taken over after %.0f s "
                    "without heartbeat).", what, holder.describe(), holder.ttl_s)

    return Lease(url, config.storage_options, on_wait=on_wait or warn,
                 purpose=f"gsocseq run {plan.region} (config {plan.config_hash[:12]})")


def ensure_demo_world_once(config: RunConfig) -> str | None:
    """Write the demo world if a demo run needs it and it is missing, one writer at a time.

    Returns the URL of its ``sources.toml`` (``None`` when the run is not a default demo run). The
    check is repeated under the lease, so a run that waited finds the world written and reuses it.
    """
    if config.region != "demo" or config.sources is not None:
        return None
    lease = Lease(f"{config.out}/gsocseq/leases/{_DEMO_LEASE}", config.storage_options,
                  purpose=f"gsocseq demo world {demo_inputs_url(config)}")
    with held(lease):
        return ensure_demo_world(config)


_DEMO_LEASE = "demo-inputs"
