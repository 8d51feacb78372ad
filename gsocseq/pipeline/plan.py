"""Plan a run: resolve the region to tiles and lay out every URL the run reads or writes.

Layout: the input cube depends on the inputs only, so runs of both schemes share it::

    {out}/gsocseq/cube/{region}-t{tile}-{inputs_hash}.zarr   harmonised input cube (chunks = tiles)

and everything a run produces lies under ``{out}/gsocseq/{map_version}/{scheme}/``::

    runs/{region}-t{tile}-{config_hash}/
        product.zarr                                29 layers + reason (chunks = tiles)
        _done/{tile_id}.json                        completion marker per tile (written last)
        run.json                                    the plan (manifest, read by ``validate``)
        published.json                              written after the COGs and the STAC catalog
    products/{region}/{ISO3}_GSOCseq_{layer}_Map030.tif
    stac/catalog.json …

Hashes are the first 12 hex digits of a SHA-256: ``inputs_hash`` of (region, sources, tile size),
``config_hash`` of :attr:`RunConfig.config_hash` (science-relevant fields), so a
changed configuration never reuses another's intermediates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from gsocseq import __version__, storage
from gsocseq.config import RunConfig
from gsocseq.cube.grid import TileKey
from gsocseq.errors import PipelineError

#: Name of the folder (under ``out``) where ``--region demo`` writes the demo world.
DEMO_INPUTS: str = "demo-inputs"
MANIFEST_VERSION: int = 1


@dataclass(frozen=True)
class RunPlan:
    """What a run covers and where everything lives (picklable; sent to a cluster once per run)."""

    region: str
    """Canonical region string (``ARG``, ``demo``, ``w,s,e,n``)."""
    region_name: str
    """Region name in product file names (ISO3 such as ``ARG``, else ``demo`` / ``bbox_…``)."""
    config_hash: str
    """Full SHA-256 hex of the science-relevant configuration."""
    tile_size: int
    """Tile edge, cells of 30 arc-seconds."""
    tiles: tuple[TileKey, ...]
    """Tiles of the region (with region cells), row-major."""
    origin_row: int
    """Global row of the product cube's first cell."""
    origin_col: int
    """Global column of the product cube's first cell."""
    n_rows: int
    """Rows of the product cube (cells)."""
    n_cols: int
    """Columns of the product cube (cells)."""
    base_url: str
    """``{out}/gsocseq/{map_version}/{scheme}``."""
    sources_url: str | None
    """URL of the ``sources.toml`` used (``None``: the shipped defaults)."""
    cube_url: str
    """Input cube (zarr v3)."""
    run_url: str
    """Folder of this configuration's intermediates (product cube, markers, manifest)."""
    products_url: str
    """Prefix of the COGs (``{products_url}/{region_name}/…tif``)."""
    stac_url: str
    """Prefix of the STAC catalog."""
    code_version: str = __version__
    """gsocseq version that made the plan."""

    @property
    def product_cube_url(self) -> str:
        """Return the product cube URL (zarr v3)."""
        return f"{self.run_url}/product.zarr"

    @property
    def done_url(self) -> str:
        """Return the prefix of the per-tile completion markers."""
        return f"{self.run_url}/_done"

    @property
    def manifest_url(self) -> str:
        """Return the URL of the run manifest (``run.json``)."""
        return f"{self.run_url}/run.json"

    @property
    def published_url(self) -> str:
        """Return the URL of the publication marker (written after COGs and STAC)."""
        return f"{self.run_url}/published.json"

    def marker_url(self, tile_id: str) -> str:
        """Return the URL of one tile's completion marker."""
        return f"{self.done_url}/{tile_id}.json"

    @property
    def tile_ids(self) -> tuple[str, ...]:
        """Return the tile ids (:attr:`TileKey.id`), row-major."""
        return tuple(t.id for t in self.tiles)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as a JSON-ready dict (tiles as ids)."""
        return {**asdict(self), "tiles": list(self.tile_ids)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RunPlan:
        """Rebuild a plan from :meth:`to_dict` output."""
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "tiles": tuple(TileKey.from_id(t) for t in fields["tiles"])})


def base_url(config: RunConfig) -> str:
    """Return ``{out}/gsocseq/{map_version}/{scheme}``."""
    return f"{config.out}/gsocseq/{config.map_version}/{config.scheme}"


def demo_inputs_url(config: RunConfig) -> str:
    """Return where the demo world lives for a ``--region demo`` run without ``sources``."""
    return f"{config.out}/{DEMO_INPUTS}"


def sources_url(config: RunConfig) -> str | None:
    """Return the ``sources.toml`` URL of a run (the demo world's for region demo)."""
    if config.sources is not None:
        return config.sources
    if config.region == "demo":
        return f"{demo_inputs_url(config)}/sources.toml"
    return None


def cube_url(config: RunConfig) -> str:
    """Return the input cube URL of a run: ``{out}/gsocseq/cube/{region}-t{tile}-{inputs_hash}.zarr``."""
    inputs_hash = _short_hash({"region": config.region, "sources": sources_url(config),
                               "tile_size": config.tile_size})
    return f"{config.out}/gsocseq/cube/{config.region_slug}-t{config.tile_size}-{inputs_hash}.zarr"


def run_url(config: RunConfig) -> str:
    """Return the folder of a run's intermediates: ``{base}/runs/{region}-t{tile}-{config_hash[:12]}``."""
    return f"{base_url(config)}/runs/{config.region_slug}-t{config.tile_size}-{config.config_hash[:12]}"


def resolve(config: RunConfig) -> tuple[Any, Any]:
    """Return ``(sources, region)`` of a run: the loaded ``SourcesConfig`` and resolved ``Region``."""
    return _resolve(config.model_dump_json())


@lru_cache(maxsize=8)
def _resolve(config_json: str) -> tuple[Any, Any]:
    from gsocseq.cube import resolve_region
    from gsocseq.sources import load_sources

    config = RunConfig.model_validate_json(config_json)
    sources = load_sources(sources_url(config), storage_options=config.storage_options,
                           out=config.out)
    return sources, resolve_region(config.region, sources, tile_size=config.tile_size)


def product_region_name(config: RunConfig, region: Any) -> str:
    """Return the region name used in product file names: the ISO3 code, else the region slug."""
    name = str(getattr(region, "name", ""))
    return name if name.isalpha() and name.isupper() and name != "BBOX" else config.region_slug


def plan_run(config: RunConfig) -> RunPlan:
    """Resolve the region into tiles and lay out the run's URLs (never writes inputs).

    The sources must exist (a default demo run writes them first: ``ensure_demo_world``). Writes
    the manifest ``run.json`` (only when its content changed). The configuration is validated again
    first (:meth:`RunConfig.check`): no output outside ``config.out``.
    """
    config.check()
    _, region = resolve(config)
    tiles = sorted(region.tiles)
    if not tiles:
        raise PipelineError(f"region {config.region!r} covers no tile")
    size = config.tile_size
    src = sources_url(config)
    base = base_url(config)
    plan = RunPlan(
        region=config.region,
        region_name=product_region_name(config, region),
        config_hash=config.config_hash,
        tile_size=size,
        tiles=tuple(tiles),
        origin_row=region.origin_row,
        origin_col=region.origin_col,
        n_rows=region.n_rows,
        n_cols=region.n_cols,
        base_url=base,
        sources_url=src,
        cube_url=cube_url(config),
        run_url=run_url(config),
        products_url=f"{base}/products",
        stac_url=f"{base}/stac",
    )
    manifest = {"manifest_version": MANIFEST_VERSION, "plan": plan.to_dict(),
                "config": {k: v for k, v in config.public_dict().items() if k != "cluster"}}
    storage.write_json_if_changed(plan.manifest_url, manifest, config.storage_options)
    return plan


def _short_hash(doc: dict[str, Any]) -> str:
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
