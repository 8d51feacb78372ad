"""Regions: what part of the global grid a run covers, its tiles and its rasterised mask.

A region is a rectangle of whole tiles (the cube's extent, origin ``(origin_row, origin_col)`` in
global cells) plus a mask of the cells that belong to it: a country polygon from the boundaries
source, the union of every country of that source (``world``: land only, Antarctica left out:
``vocabulary.WORLD_EXCLUDED``), or a bbox. ``tiles`` are the tiles that contain region cells — the
units of work; other tiles of the rectangle stay at the cube's fill values (reason
``OUTSIDE_REGION``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from gsocseq.cube.grid import RES_DEG, TILE_SIZE, TileKey, tiles_for_bbox, tiles_of_rectangle
from gsocseq.errors import InputValidationError
from gsocseq.sources.boundaries import country_codes, read_country
from gsocseq.sources.spec import SourcesConfig
from gsocseq.vocabulary import WORLD_EXCLUDED

_ISO3 = re.compile(r"^[A-Za-z]{3}$")
WORLD: str = "world"
"""Region spec of every country of the boundaries source (their union)."""


@dataclass(frozen=True)
class Region:
    """A run's region on the global 30″ grid (see module docstring)."""

    name: str
    """Region code used in product names: ISO3 (``ARG``), or ``BBOX`` for a bbox."""
    spec: str
    """The spec string it was resolved from (``"ARG"``, ``"-64,-36,-60,-34"``, ``"demo"``)."""
    tile_size: int
    """Tile edge in cells."""
    origin_row: int
    """Global row of the cube's first cell."""
    origin_col: int
    """Global column of the cube's first cell."""
    n_rows: int
    """Cube rows (a multiple of ``tile_size``)."""
    n_cols: int
    """Cube columns (a multiple of ``tile_size``)."""
    tiles: tuple[TileKey, ...]
    """Tiles containing region cells, row-major."""
    bbox: tuple[float, float, float, float]
    """(west, south, east, north) of the region itself, degrees."""
    geometry: Any = field(default=None, compare=False, repr=False)
    """Shapely (multi)polygon in EPSG:4326, or None: every cell inside ``bbox``."""
    countries: tuple[str, ...] = ()
    """ISO3 codes the region is the union of (``world``), else empty."""

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the cube."""
        return (self.n_rows, self.n_cols)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the cube's tile rectangle, degrees."""
        west = -180.0 + self.origin_col * RES_DEG
        north = 90.0 - self.origin_row * RES_DEG
        return (west, north - self.n_rows * RES_DEG, west + self.n_cols * RES_DEG, north)

    def all_tiles(self) -> list[TileKey]:
        """All tiles of the cube's rectangle, row-major (including tiles outside the region)."""
        return tiles_of_rectangle(self.origin_row, self.origin_col, self.n_rows, self.n_cols,
                                  self.tile_size)

    def contains_tile(self, tile: TileKey) -> bool:
        """Whether ``tile`` lies in the cube's rectangle (same tile size)."""
        r, c = tile.row0 - self.origin_row, tile.col0 - self.origin_col
        return tile.size == self.tile_size and 0 <= r < self.n_rows and 0 <= c < self.n_cols

    def mask(self, tile: TileKey) -> np.ndarray:
        """Boolean (size, size) mask of the tile's cells inside the region (cell centres)."""
        if tile.size != self.tile_size:
            raise InputValidationError(
                f"tile {tile.id} has size {tile.size}; region {self.name} uses {self.tile_size}"
            )
        lat, lon = tile.latitudes(), tile.longitudes()
        if self.geometry is None:
            w, s, e, n = self.bbox
            return ((lat >= s) & (lat <= n))[:, None] & ((lon >= w) & (lon <= e))[None, :]
        west, south, east, north = tile.bounds
        pad = RES_DEG  # clip far-away parts (a world union is large); edges near the tile are kept
        geom = shapely.clip_by_rect(self.geometry, west - pad, south - pad, east + pad, north + pad)
        if geom.is_empty:
            return np.zeros((tile.size, tile.size), dtype=bool)
        burned = rasterize(
            [(geom, 1)],
            out_shape=(tile.size, tile.size),
            transform=Affine(RES_DEG, 0.0, west, 0.0, -RES_DEG, north),
            fill=0,
            dtype="uint8",
        )
        return burned.astype(bool)

    def mask_array(self) -> np.ndarray:
        """Boolean mask of the whole cube rectangle (rows, cols); for small regions and tests."""
        out = np.zeros(self.shape, dtype=bool)
        for tile in self.tiles:
            out[tile.to_slices(self.origin_row, self.origin_col)] = self.mask(tile)
        return out


def _from_geometry(
    name: str, spec: str, geometry: Any, bbox: tuple[float, float, float, float], tile_size: int
) -> Region:
    w, s, e, n = bbox
    candidates = tiles_for_bbox(
        max(w, -180.0), max(s, -90.0), min(e, 180.0), min(n, 90.0), tile_size
    )
    if geometry is None:
        tiles = candidates
    else:
        shapely.prepare(geometry)
        boxes = shapely.box(*np.array([t.bounds for t in candidates]).T)
        tiles = [
            t for t, hit in zip(candidates, shapely.intersects(geometry, boxes), strict=True) if hit
        ]
    if not tiles:
        raise InputValidationError(f"region {spec!r} covers no tile of the grid")
    r0 = min(t.row for t in tiles)
    r1 = max(t.row for t in tiles) + 1
    c0 = min(t.col for t in tiles)
    c1 = max(t.col for t in tiles) + 1
    return Region(
        name=name,
        spec=spec,
        tile_size=tile_size,
        origin_row=r0 * tile_size,
        origin_col=c0 * tile_size,
        n_rows=(r1 - r0) * tile_size,
        n_cols=(c1 - c0) * tile_size,
        tiles=tuple(tiles),
        bbox=(float(w), float(s), float(e), float(n)),
        geometry=geometry,
    )


def parse_bbox(spec: str) -> tuple[float, float, float, float]:
    """Parse ``"west,south,east,north"`` (degrees) with range checks."""
    try:
        w, s, e, n = (float(x) for x in spec.split(","))
    except ValueError as exc:
        raise InputValidationError(
            f"region bbox {spec!r}: expected 'west,south,east,north' in degrees"
        ) from exc
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90) or not all(
        math.isfinite(v) for v in (w, s, e, n)
    ):
        raise InputValidationError(
            f"region bbox {spec!r}: need -180 <= west < east <= 180 and -90 <= south < north <= 90"
        )
    return (w, s, e, n)


def resolve_region(
    spec: str, sources: SourcesConfig | None = None, tile_size: int = TILE_SIZE
) -> Region:
    """Resolve a region spec: an ISO3 code, a ``"w,s,e,n"`` bbox, or an alias such as ``demo``.

    ISO3 codes are looked up in ``sources["boundaries"]``; an unknown code raises
    :class:`InputValidationError` naming it and the boundaries URL.
    """
    text = spec.strip()
    if sources is not None:
        alias = sources.region_alias(text)
        if alias is not None and alias != text:
            region = resolve_region(alias, sources, tile_size)
            return Region(**{**region.__dict__, "spec": text})
    if "," in text:
        bbox = parse_bbox(text)
        return _from_geometry("BBOX", text, None, bbox, tile_size)
    if text.lower() == WORLD:
        return resolve_world(sources, tile_size)
    if _ISO3.match(text):
        if sources is None:
            raise InputValidationError(f"region {text!r}: an ISO3 region needs a boundaries source")
        geom = read_country(sources["boundaries"], text, sources.storage_options)
        if geom.is_empty:
            raise InputValidationError(f"region {text!r}: empty boundary geometry")
        return _from_geometry(text.upper(), text, geom, tuple(geom.bounds), tile_size)
    raise InputValidationError(
        f"region {spec!r}: expected an ISO3 code (e.g. 'ARG'), 'west,south,east,north', "
        f"'world', or an alias defined in the sources config "
        f"({[a for a, _ in sources.regions] if sources else []})"
    )


def resolve_world(sources: SourcesConfig | None, tile_size: int = TILE_SIZE) -> Region:
    """Return the ``world`` region: the union of every country of ``sources["boundaries"]``.

    Its tiles are the tiles that intersect some country (ocean-only tiles are never read, built
    or computed); ``countries`` lists the ISO3 codes in the boundaries file, sorted, less
    :data:`~gsocseq.vocabulary.WORLD_EXCLUDED` (Antarctica).
    """
    if sources is None:
        raise InputValidationError(f"region {WORLD!r} needs a boundaries source")
    spec = sources["boundaries"]
    codes = tuple(c for c in country_codes(spec, sources.storage_options) if c not in WORLD_EXCLUDED)
    if not codes:
        raise InputValidationError(f"region {WORLD!r}: no country in source 'boundaries' at {spec.url}")
    geoms = {c: read_country(spec, c, sources.storage_options) for c in codes}
    codes = tuple(c for c in codes if not geoms[c].is_empty)
    geom = shapely.union_all([geoms[c] for c in codes])
    region = _from_geometry(WORLD, WORLD, geom, tuple(geom.bounds), tile_size)
    return Region(**{**region.__dict__, "countries": codes})
