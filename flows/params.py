"""Typed flow parameters: the types the Prefect UI turns into a validated form.

Prefect builds each deployment's parameter schema from the flow's signature. Constraints live in the
``Annotated`` types below (``pattern``, ``enum``, ``minItems``, bounds) so they reach the JSON schema:
the UI form refuses a malformed value and the server rejects it on ``create_flow_run`` (deployments
are served with ``enforce_parameter_schema=True``); the flow re-validates on entry. Descriptions come
from the flows' docstrings (``Args:`` sections), which Prefect parses into the form's help texts.

:func:`build_config` turns a flow's parameters into the one :class:`gsocseq.config.RunConfig` the
pipeline reads; nothing else in ``flows/`` interprets them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from gsocseq.config import RunConfig

ISO3 = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        min_length=3,
        max_length=3,
        examples=["KEN", "ARG"],
        description="ISO 3166-1 alpha-3 country code, upper case (e.g. KEN)",
    ),
]
"""An ISO 3166-1 alpha-3 code (three upper-case letters)."""

Scenario = Literal["bau", "ssm_low", "ssm_med", "ssm_high"]
"""A forward scenario: business as usual, sustainable soil management low / medium / high."""

Scenarios = Annotated[list[Scenario], Field(min_length=1, max_length=4)]
"""One to four forward scenarios."""

Scheme = Literal["exact", "fao"]
"""Numerical scheme: ``exact`` RothC-26.3 or ``fao`` (the FAO R scripts' SoilR explicit Euler)."""

MapVersion = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$", examples=["v1.1"])]
"""A short product version name used in output keys (``v1.1``)."""

OutUrl = Annotated[
    str,
    Field(
        pattern=r"^(s3|gs|gcs|az|abfs|file|memory)://\S+$",
        examples=["s3://gsocseq-products"],
    ),
]
"""A URL prefix on an fsspec store (``s3://bucket/prefix``)."""

DaskAddress = Annotated[str, Field(pattern=r"^(tcp|tls|ws|wss|ucx)://\S+$")]
"""A dask scheduler address (``tcp://host:8786``)."""

UncertaintyMethod = Literal["brackets", "montecarlo", "none"]
"""FAO's min/max brackets, brackets plus seeded Monte Carlo layers, or no uncertainty."""

Draws = Annotated[int, Field(ge=1, le=10_000)]
"""Monte Carlo draws per pixel."""

Seed = Annotated[int, Field(ge=0, lt=2**63)]
"""Seed of the Monte Carlo draws."""

TileSize = Annotated[int, Field(ge=8, le=3600)]
"""Tile edge in 30-arc-second cells; must divide 21600 (checked by ``RunConfig``)."""

ALL_SCENARIOS: list[Scenario] = ["bau", "ssm_low", "ssm_med", "ssm_high"]


def build_config(
    region: str,
    *,
    out: str,
    scenarios: list[str],
    scheme: str,
    map_version: str,
    sources: str | None,
    tile_size: int,
    uncertainty: bool | str,
    storage_options: dict[str, Any] | None = None,
    ssm_increase: dict[str, list[float]] | None = None,
    draws: int | None = None,
    seed: int = 0,
) -> RunConfig:
    """Build the frozen run configuration of one region from flow parameters.

    The cluster is not part of the configuration: the flow owns the dask runtime and the pipeline's
    tile functions never start one.
    """
    return RunConfig(
        region=region,
        out=out,
        scenarios=tuple(scenarios),
        scheme=scheme,  # type: ignore[arg-type]  # validated by RunConfig
        map_version=map_version,
        sources=sources,
        tile_size=tile_size,
        uncertainty=uncertainty,
        storage_options=dict(storage_options or {}),
        ssm_increase=ssm_increase,
        **({"draws": draws} if draws is not None else {}),
        seed=seed,
    )
