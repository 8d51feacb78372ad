"""The run configuration: parsed once at the boundary (CLI, TOML, Prefect parameters), then frozen.

:class:`RunConfig` validates the two strings that name places: the *region* (ISO3 code, a
``"west,south,east,north"`` bbox in degrees, or ``demo``) and the *out* URL prefix (``file://``,
``s3://``, ``memory://`` …; a bare path becomes an absolute ``file://`` URL). Path traversal (``..``
segments, which could reach another bucket or directory) is rejected. Nothing below the entry points
reads the environment or this model's runtime fields (``cluster``, ``storage_options``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gsocseq.model.inputs import check_ssm_increase
from gsocseq.vocabulary import (
    DEFAULT_SSM_INCREASE,
    LAND_USE_GROUPS,
    SCENARIOS,
    UNCERTAINTY_METHODS,
)

#: URL schemes accepted for ``out`` (and ``sources``).
URL_SCHEMES: tuple[str, ...] = ("file", "s3", "memory", "gs", "gcs", "az", "abfs")
#: A sources file, like the data it names, may also be on a web server.
SOURCES_URL_SCHEMES: tuple[str, ...] = (*URL_SCHEMES, "http", "https")

_ISO3 = re.compile(r"^[A-Z]{3}$")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://(.*)$")

#: Monte Carlo draws per pixel of ``uncertainty = "montecarlo"`` unless given, and the most allowed.
DEFAULT_DRAWS: int = 100
MAX_DRAWS: int = 10_000

#: Fields that change the numbers in the products; the rest (where, how) do not.
SCIENCE_FIELDS: tuple[str, ...] = ("region", "scenarios", "scheme", "sources", "map_version",
                                   "uncertainty", "ssm_increase")


def normalise_url(value: str, *, what: str, schemes: tuple[str, ...] = URL_SCHEMES) -> str:
    """Return ``value`` as a URL without trailing slash; reject ``..`` segments and odd schemes.

    A bare path (no ``scheme://``) becomes an absolute ``file://`` URL.
    """
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty; expected a URL such as s3://bucket/prefix")
    m = _SCHEME.match(value)
    if m is None:
        if "://" in value or value.startswith(("\\", "~")):
            raise ValueError(f"{what}={value!r} is not a URL or an absolute/relative path")
        scheme, rest = "file", str(Path(value).absolute())
    else:
        scheme, rest = m.group(1), m.group(2)
    if scheme not in schemes:
        raise ValueError(f"{what}={value!r}: scheme {scheme!r} not supported; use one of {schemes}")
    parts = rest.replace("\\", "/").split("/")
    if any(p in ("..", ".") for p in parts):
        raise ValueError(f"{what}={value!r} contains a '.' or '..' path segment (path traversal)")
    if any(ord(ch) < 32 for ch in rest):
        raise ValueError(f"{what}={value!r} contains control characters")
    if scheme not in ("file", "memory") and (not parts[0] or "@" in parts[0]):
        raise ValueError(f"{what}={value!r} has no valid bucket name")
    if scheme == "file" and not rest.startswith("/"):
        raise ValueError(f"{what}={value!r}: file URLs must be absolute (file:///path)")
    return f"{scheme}://{rest.rstrip('/') or '/'}"


def parse_region(spec: str) -> str:
    """Return the canonical region string: ``demo``, an upper-case ISO3 code or a ``w,s,e,n`` bbox.

    Raises ``ValueError`` naming the value for anything else (paths, URLs, empty strings).
    """
    spec = spec.strip()
    if spec.lower() in ("demo", "world"):
        return spec.lower()
    if _ISO3.match(spec.upper()) and spec.isalpha():
        return spec.upper()
    parts = spec.split(",")
    if len(parts) == 4:
        try:
            w, s, e, n = (float(p) for p in parts)
        except ValueError:
            pass
        else:
            if not all(math.isfinite(v) for v in (w, s, e, n)):
                raise ValueError(f"region bbox {spec!r} has non-finite numbers")
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(
                    f"region bbox {spec!r} must satisfy -180 <= west < east <= 180 and "
                    "-90 <= south < north <= 90 (degrees)"
                )
            return ",".join(f"{v:g}" for v in (w, s, e, n))
    raise ValueError(
        f"region {spec!r} is not an ISO3 code (e.g. ARG), a bbox 'west,south,east,north' in degrees, "
        "'demo' or 'world'"
    )


def region_slug(region: str) -> str:
    """Return a path-safe name of a canonical region (``ARG``, ``demo``, ``bbox_-60p5_-40_-58_-38``)."""
    if "," in region:
        return "bbox_" + "_".join(v.replace(".", "p") for v in region.split(","))
    return region


class RunConfig(BaseModel):
    """Everything a GSOCseq run needs, validated and frozen.

    ``out`` is the URL prefix of the run; all outputs lie under
    ``{out}/gsocseq/{map_version}/{scheme}/``. ``sources`` is the URL of a ``sources.toml``
    (``None``: the shipped defaults, or the demo world under ``{out}/demo-inputs/`` for region
    ``demo``). ``cluster`` is a scheduler address (``tcp://…``), ``"threads"``, ``"processes"``,
    ``"synchronous"`` or ``None`` (a process LocalCluster sized to this machine).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    out: str
    scenarios: tuple[str, ...] = SCENARIOS
    scheme: Literal["exact", "fao"] = "exact"
    cluster: str | None = None
    sources: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """fsspec options (endpoint, credentials): never in ``repr``, logs, manifests or products."""
    map_version: str = "v1.1"
    tile_size: int = 240
    uncertainty: bool = True
    """FAO's min/max bracket runs and layers. Also given as the method ``"brackets"`` (True),
    ``"none"`` (False) or ``"montecarlo"`` (True, with ``draws`` Monte Carlo draws)."""
    draws: int = 0
    """Monte Carlo draws per pixel; 0 without Monte Carlo, > 0 is the ``"montecarlo"`` method
    (its default: :data:`DEFAULT_DRAWS`)."""
    seed: int = 0
    """Seed of the Monte Carlo draws (each pixel's draws are keyed by seed, global cell and draw)."""
    ssm_increase: dict[str, tuple[float, float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_SSM_INCREASE))
    """SSM input increases over BAU per land-use group (``crops``, ``grass``, ``paddy``): three
    fractions [low, medium, high] each in [0, 1], non-decreasing; groups not given keep
    [0.05, 0.10, 0.20]. All 0: every SSM layer equals BAU."""

    @field_validator("ssm_increase", mode="before")
    @classmethod
    def _check_ssm_increase(cls, v: Any) -> dict[str, tuple[float, float, float]]:
        if v is None:
            v = {}
        if not isinstance(v, dict):
            raise ValueError(f"ssm_increase {v!r} must map land-use groups {LAND_USE_GROUPS} "
                             "to [low, medium, high]")
        check_ssm_increase(v)
        given = {str(k): tuple(float(x) for x in vals) for k, vals in v.items()}
        return {g: given.get(g, DEFAULT_SSM_INCREASE[g]) for g in LAND_USE_GROUPS}

    @model_validator(mode="before")
    @classmethod
    def _uncertainty_method(cls, data: Any) -> Any:
        """Map ``uncertainty = "brackets" | "montecarlo" | "none"`` onto the fields."""
        if not isinstance(data, dict) or not isinstance(data.get("uncertainty"), str):
            return data
        method = data["uncertainty"].strip().lower()
        if method not in UNCERTAINTY_METHODS:
            raise ValueError(f"uncertainty {data['uncertainty']!r}: expected one of "
                             f"{UNCERTAINTY_METHODS}")
        data = {**data, "uncertainty": method != "none"}
        if method == "montecarlo":
            data["draws"] = data.get("draws") or DEFAULT_DRAWS
        elif data.get("draws"):
            raise ValueError(f"draws={data['draws']!r} needs uncertainty 'montecarlo', "
                             f"got {method!r}")
        return data

    @model_validator(mode="after")
    def _check_montecarlo(self) -> RunConfig:
        if not 0 <= self.draws <= MAX_DRAWS:
            raise ValueError(f"draws {self.draws} must be in [0, {MAX_DRAWS}] (0: no Monte Carlo)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed {self.seed} must be in [0, 2**63)")
        if self.draws and not self.uncertainty:
            raise ValueError(f"draws={self.draws}: Monte Carlo also publishes the brackets; "
                             "it cannot run with uncertainty 'none'")
        if self.draws and self.scheme != "exact":
            raise ValueError(f"uncertainty 'montecarlo' runs the exact scheme, got scheme "
                             f"{self.scheme!r}")
        return self

    @property
    def uncertainty_method(self) -> str:
        """``"montecarlo"``, ``"brackets"`` or ``"none"``."""
        return "montecarlo" if self.draws else ("brackets" if self.uncertainty else "none")

    @field_validator("region")
    @classmethod
    def _check_region(cls, v: str) -> str:
        return parse_region(v)

    @field_validator("out")
    @classmethod
    def _check_out(cls, v: str) -> str:
        return normalise_url(v, what="out")

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, v: str | None) -> str | None:
        return None if v is None else normalise_url(v, what="sources", schemes=SOURCES_URL_SCHEMES)

    @field_validator("scenarios", mode="before")
    @classmethod
    def _check_scenarios(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [s for s in re.split(r"[,\s]+", v) if s]
        names = tuple(dict.fromkeys(str(s).strip().lower() for s in v))
        bad = [s for s in names if s not in SCENARIOS]
        if bad or not names:
            raise ValueError(f"scenarios {list(v)!r}: each must be one of {SCENARIOS}")
        return tuple(s for s in SCENARIOS if s in names)

    @field_validator("map_version")
    @classmethod
    def _check_version(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", v) or ".." in v:
            raise ValueError(f"map_version {v!r} must be a short name like v1.1")
        return v

    @field_validator("tile_size")
    @classmethod
    def _check_tile_size(cls, v: int) -> int:
        if v < 8 or 21600 % v or 43200 % v:
            raise ValueError(f"tile_size {v} must be >= 8 cells and divide 21600 and 43200")
        return v

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, v: str | None) -> str | None:
        if v is None or v in ("threads", "processes", "synchronous"):
            return v
        if re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s]+", v):
            return v
        raise ValueError(
            f"cluster {v!r}: expected a scheduler address (tcp://host:8786), 'threads', "
            "'processes' or 'synchronous'"
        )

    @model_validator(mode="after")
    def _add_storage_retries(self) -> RunConfig:
        """Give S3 runs bounded request retries with backoff (:mod:`gsocseq.storage`)."""
        from gsocseq.storage import with_s3_retries

        so = with_s3_retries(self.storage_options, self.out, self.sources)
        if so is not self.storage_options:
            object.__setattr__(self, "storage_options", so)
        return self

    def check(self) -> RunConfig:
        """Re-run every validator (a ``model_copy(update=…)`` skips them); return ``self``.

        Entry points below the CLI (the pipeline, the flows) call this so that a configuration
        changed after construction cannot write outside its ``out`` prefix.
        """
        type(self).model_validate(self.model_dump())
        return self

    @property
    def config_hash(self) -> str:
        """Return the SHA-256 (hex) of the science-relevant fields (see ``SCIENCE_FIELDS``)."""
        doc = {k: getattr(self, k) for k in SCIENCE_FIELDS}
        if self.draws:  # only Monte Carlo runs: the hashes of the other runs stay as they were
            doc.update(draws=self.draws, seed=self.seed)
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=list)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def region_slug(self) -> str:
        """Return the path-safe region name used in output keys."""
        return region_slug(self.region)

    def public_dict(self) -> dict[str, Any]:
        """Return the fields safe to record in products (``storage_options`` left out: secrets)."""
        return self.model_dump(mode="json", exclude={"storage_options"})

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> RunConfig:
        """Load a config from a TOML file (keys = field names, optionally under ``[run]``).

        ``overrides`` that are not ``None`` replace the file's values (CLI flags over the file).
        """
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        doc = dict(doc.get("run", doc))
        doc.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**doc)
