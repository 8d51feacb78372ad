"""Register the two GSOCseq deployments on a Prefect server and serve them from this process.

Usage (``PREFECT_API_URL`` points at the server, e.g. ``http://127.0.0.1:4200/api``)::

    python flows/serve.py --out s3://my-bucket/gsocseq-runs [--sources s3://…/sources.toml]
    python -m flows.serve --out s3://my-bucket/gsocseq-runs      # the same, as a module

Deployments (``<flow name>/<deployment name>``):

- ``gsocseq-global-rebuild/global-rebuild`` — cron ``0 2 1 * *`` (02:00 UTC on the 1st of each month);
- ``gsocseq-country-rerun/country-rerun`` — on demand, from the UI form (Run ▸ Custom run) or
  ``prefect deployment run 'gsocseq-country-rerun/country-rerun' -p iso3=KEN``.

Concurrency: runs of one region (product set) queue — a second rerun of a country waits for the
first, a rerun waits for a rebuild covering that country — while other regions run side by side
(per-region Prefect global concurrency limits, :mod:`flows.concurrency`); each deployment also has
a concurrency limit with collision strategy ENQUEUE (``--rebuild-concurrency``,
``--country-concurrency``).

``--out``, ``--sources`` and the other options become the deployments' default parameters (editable
per run in the UI). Flow runs execute in subprocesses of this process, which loads the flows by module
path (``flows.gsocseq_flows:…``), so the ``gsocseq`` package must be installed where this runs. Storage
credentials and endpoints come from the environment (``AWS_*`` variables), never from parameters.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (`python flows/serve.py`): make the checkout importable
    sys.path[:1] = [str(Path(__file__).resolve().parents[1])]

from prefect import serve  # noqa: E402
from prefect.client.schemas.objects import (  # noqa: E402
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.deployments.runner import EntrypointType, RunnerDeployment  # noqa: E402

from flows.gsocseq_flows import country_rerun, global_rebuild  # noqa: E402

GLOBAL_CRON = "0 2 1 * *"
"""Schedule of the global rebuild: 02:00 UTC on the first day of each month."""
GLOBAL_DEPLOYMENT = "global-rebuild"
COUNTRY_DEPLOYMENT = "country-rerun"
TAGS = ["gsocseq"]
REBUILD_CONCURRENCY = 1
"""Global rebuilds running at once; more wait in the queue (a rebuild never overlaps the next)."""
COUNTRY_CONCURRENCY = 4
"""Country reruns running at once; more wait in the queue. Reruns of one region also queue among
themselves and with a rebuild covering it (per-region limits, :mod:`flows.concurrency`)."""


def enqueue(limit: int) -> ConcurrencyLimitConfig:
    """Return a deployment concurrency limit whose extra runs wait (collision strategy ENQUEUE)."""
    return ConcurrencyLimitConfig(limit=limit, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(
    *,
    out: str,
    sources: str | None = None,
    map_version: str = "v1.1",
    tile_size: int = 240,
    uncertainty: bool = True,
    local_workers: int = 2,
    world: str | None = None,
    scenarios: Sequence[str] | None = None,
    cron: str | None = GLOBAL_CRON,
    rebuild_concurrency: int = REBUILD_CONCURRENCY,
    country_concurrency: int = COUNTRY_CONCURRENCY,
) -> list[RunnerDeployment]:
    """Return the global-rebuild (scheduled) and country-rerun (on demand) deployments.

    Each has a deployment concurrency limit with collision strategy ENQUEUE (runs beyond it wait
    in state ``AwaitingConcurrencySlot``); runs of one region queue in any case (per-region global
    concurrency limits taken by the flows), while runs of different regions go side by side.
    """
    common: dict[str, Any] = {
        "out": out,
        "map_version": map_version,
        "tile_size": tile_size,
        "uncertainty": uncertainty,
        "local_workers": local_workers,
    }
    if sources is not None:
        common["sources"] = sources
    if scenarios:
        common["scenarios"] = list(scenarios)
    rebuild_params = dict(common, **({"world": world} if world else {}))
    shared: dict[str, Any] = {
        "tags": TAGS,
        "enforce_parameter_schema": True,
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        global_rebuild.to_deployment(
            name=GLOBAL_DEPLOYMENT,
            cron=cron,
            parameters=rebuild_params,
            description="Monthly rebuild of every tile of the world (or of a list of countries).",
            concurrency_limit=enqueue(rebuild_concurrency),
            **shared,
        ),
        country_rerun.to_deployment(
            name=COUNTRY_DEPLOYMENT,
            parameters=common,
            description="Rerun one country (ISO3) and republish its COGs and STAC items.",
            concurrency_limit=enqueue(country_concurrency),
            **shared,
        ),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output URL prefix (s3://bucket/prefix)")
    p.add_argument("--sources", default=None, help="URL of sources.toml (default: shipped)")
    p.add_argument("--map-version", default="v1.1")
    p.add_argument("--tile-size", type=int, default=240, help="tile edge in cells (240 = 2°)")
    p.add_argument("--no-uncertainty", action="store_true", help="skip the uncertainty layers")
    p.add_argument("--local-workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--world", default=None, help="region of a whole-world rebuild (bbox or demo)")
    p.add_argument("--scenarios", default=None,
                   help="default scenarios, comma-separated (default: bau,ssm_low,ssm_med,ssm_high)")
    p.add_argument("--no-schedule", action="store_true", help="register the rebuild unscheduled")
    p.add_argument("--limit", type=int, default=None, help="max concurrent flow runs")
    p.add_argument("--rebuild-concurrency", type=int, default=REBUILD_CONCURRENCY,
                   help="global rebuilds at once; more are queued (default: %(default)s)")
    p.add_argument("--country-concurrency", type=int, default=COUNTRY_CONCURRENCY,
                   help="country reruns at once; more are queued (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Register both deployments and serve them until interrupted."""
    args = parse_args(argv)
    deployments = build_deployments(
        out=args.out,
        sources=args.sources,
        map_version=args.map_version,
        tile_size=args.tile_size,
        uncertainty=not args.no_uncertainty,
        local_workers=args.local_workers,
        world=args.world,
        scenarios=args.scenarios.split(",") if args.scenarios else None,
        cron=None if args.no_schedule else GLOBAL_CRON,
        rebuild_concurrency=args.rebuild_concurrency,
        country_concurrency=args.country_concurrency,
    )
    serve(*deployments, limit=args.limit)


if __name__ == "__main__":
    main()
