"""Concurrency settings of the flows: deployment limits (ENQUEUE) and per-region limit names.

Queueing itself is exercised on a real Prefect server in ``tests/e2e/test_prefect_concurrency.py``.
"""

from __future__ import annotations

import pytest
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from flows.concurrency import limit_name
from flows.serve import COUNTRY_CONCURRENCY, REBUILD_CONCURRENCY, build_deployments, parse_args
from gsocseq.config import RunConfig
from gsocseq.pipeline import RunPlan
from gsocseq.pipeline.exclusive import lease_url


def test_deployments_enqueue_beyond_their_limits() -> None:
    rebuild, country = build_deployments(out="s3://bucket/runs")
    assert (rebuild.concurrency_limit, country.concurrency_limit) == (1, 4)
    assert (REBUILD_CONCURRENCY, COUNTRY_CONCURRENCY) == (1, 4)
    for dep in (rebuild, country):
        assert dep.concurrency_options is not None
        assert dep.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE
    rebuild, country = build_deployments(out="s3://b/r", rebuild_concurrency=2,
                                         country_concurrency=8)
    assert (rebuild.concurrency_limit, country.concurrency_limit) == (2, 8)
    args = parse_args(["--out", "s3://b/r", "--country-concurrency", "3"])
    assert (args.country_concurrency, args.rebuild_concurrency) == (3, 1)


def _plan(config: RunConfig, region_name: str) -> RunPlan:
    base = f"{config.out}/gsocseq/{config.map_version}/{config.scheme}"
    return RunPlan(region=config.region, region_name=region_name, config_hash="0" * 64,
                   tile_size=240, tiles=(), origin_row=0, origin_col=0, n_rows=240, n_cols=240,
                   base_url=base, sources_url=None, cube_url=f"{config.out}/gsocseq/cube/c.zarr",
                   run_url=f"{base}/runs/x", products_url=f"{base}/products",
                   stac_url=f"{base}/stac")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({}, {"scenarios": ("bau",), "uncertainty": False, "tile_size": 120}, True),
        ({}, {"map_version": "v1.2"}, False),
        ({}, {"scheme": "fao"}, False),
        ({}, {"out": "s3://other-bucket/runs"}, False),
    ],
)
def test_one_limit_and_one_lease_per_product_set(a: dict, b: dict, same: bool) -> None:
    """Runs that publish the same COGs share the limit and the lease; others do not."""
    ca = RunConfig(**{"region": "KEN", "out": "s3://bucket/runs", **a})
    cb = RunConfig(**{"region": "KEN", "out": "s3://bucket/runs", **b})
    pa, pb = _plan(ca, "KEN"), _plan(cb, "KEN")
    assert (limit_name(ca, pa) == limit_name(cb, pb)) is same
    assert (lease_url(pa) == lease_url(pb)) is same
    assert limit_name(ca, pa).startswith("gsocseq:KEN:v1.1:exact:")
    assert not set("/%&<>") & set(limit_name(ca, pa))  # characters Prefect names may not hold
    assert lease_url(pa) == "s3://bucket/runs/gsocseq/v1.1/exact/leases/KEN"
