"""The global 30-arc-second EPSG:4326 grid and its fixed tiles.

One tile key type names everything tiled: the zarr region, the dask task, the COG window and the STAC
item. No other module computes tile offsets.

Global grid: 43200 columns × 21600 rows of 1/120°, row 0 at the north edge (90°N), column 0 at the
west edge (180°W). Tiles are ``TILE_SIZE`` × ``TILE_SIZE`` blocks of that grid (2° × 2° by default), so
tiles from different runs and countries line up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gsocseq.vocabulary import CRS as CRS  # the global grid itself is vocabulary (re-exported)
from gsocseq.vocabulary import N_COLS as N_COLS
from gsocseq.vocabulary import N_ROWS as N_ROWS
from gsocseq.vocabulary import RES_DEG as RES_DEG
from gsocseq.vocabulary import cell_latitudes as cell_latitudes
from gsocseq.vocabulary import cell_longitudes as cell_longitudes

TILE_SIZE: int = 240
"""Default tile edge in cells (2°); divides both grid dimensions."""


@dataclass(frozen=True, order=True)
class TileKey:
    """A tile of the global grid: ``row``/``col`` are tile indices (not cell indices)."""

    row: int
    col: int
    size: int = TILE_SIZE

    def __post_init__(self) -> None:
        if N_ROWS % self.size or N_COLS % self.size:
            raise ValueError(f"tile size {self.size} must divide {N_ROWS} and {N_COLS}")
        if not (0 <= self.row < N_ROWS // self.size and 0 <= self.col < N_COLS // self.size):
            raise ValueError(f"tile ({self.row}, {self.col}) outside the global grid")

    @property
    def id(self) -> str:
        """Stable name, e.g. ``t240_r022_c090`` (used in task names, file keys and STAC ids)."""
        return f"t{self.size}_r{self.row:03d}_c{self.col:03d}"

    @classmethod
    def from_id(cls, tile_id: str) -> TileKey:
        """Parse :attr:`id`."""
        try:
            size, row, col = tile_id.split("_")
            return cls(int(row[1:]), int(col[1:]), int(size[1:]))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"not a tile id: {tile_id!r}") from exc

    @property
    def row0(self) -> int:
        """First global cell row."""
        return self.row * self.size

    @property
    def col0(self) -> int:
        """First global cell column."""
        return self.col * self.size

    def global_slices(self) -> tuple[slice, slice]:
        """(row, col) slices of the tile's cells in the global grid."""
        return (slice(self.row0, self.row0 + self.size), slice(self.col0, self.col0 + self.size))

    def to_slices(self, origin_row: int, origin_col: int) -> tuple[slice, slice]:
        """(row, col) slices of the tile in an array whose cell (0, 0) is global (origin_row, origin_col)."""
        r, c = self.row0 - origin_row, self.col0 - origin_col
        if r < 0 or c < 0:
            raise ValueError(f"tile {self.id} lies before the array origin ({origin_row}, {origin_col})")
        return (slice(r, r + self.size), slice(c, c + self.size))

    def chunk_index(self, origin_row: int, origin_col: int) -> tuple[int, int]:
        """(i, j) of the tile in a tile-chunked array whose cell (0, 0) is global (origin_row, origin_col)."""
        if origin_row % self.size or origin_col % self.size:
            raise ValueError(f"origin ({origin_row}, {origin_col}) is not aligned to tiles of {self.size}")
        rows, cols = self.to_slices(origin_row, origin_col)
        return rows.start // self.size, cols.start // self.size

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        west = -180.0 + self.col0 * RES_DEG
        north = 90.0 - self.row0 * RES_DEG
        return (west, north - self.size * RES_DEG, west + self.size * RES_DEG, north)

    def latitudes(self) -> np.ndarray:
        """Cell-centre latitudes (descending), degrees."""
        return cell_latitudes(self.row0, self.row0 + self.size)

    def longitudes(self) -> np.ndarray:
        """Cell-centre longitudes (ascending), degrees."""
        return cell_longitudes(self.col0, self.col0 + self.size)


def tiles_of_rectangle(
    origin_row: int, origin_col: int, n_rows: int, n_cols: int, size: int = TILE_SIZE
) -> list[TileKey]:
    """All tiles of a tile-aligned rectangle of cells (global origin, extent in cells), row-major."""
    r0, c0 = origin_row // size, origin_col // size
    return [TileKey(r, c, size) for r in range(r0, r0 + n_rows // size)
            for c in range(c0, c0 + n_cols // size)]


def tiles_for_bbox(
    west: float, south: float, east: float, north: float, size: int = TILE_SIZE
) -> list[TileKey]:
    """All tiles that intersect a bbox (degrees), in row-major order."""
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ValueError(f"invalid bbox (west, south, east, north) = {(west, south, east, north)}")
    tdeg = size * RES_DEG
    c0 = int(math.floor((west + 180.0) / tdeg + 1e-9))
    c1 = int(math.ceil((east + 180.0) / tdeg - 1e-9))
    r0 = int(math.floor((90.0 - north) / tdeg + 1e-9))
    r1 = int(math.ceil((90.0 - south) / tdeg - 1e-9))
    return [TileKey(r, c, size) for r in range(r0, r1) for c in range(c0, c1)]


def cell_area_ha(latitudes: np.ndarray) -> np.ndarray:
    """Area of 30″ cells centred at ``latitudes`` (degrees) on the WGS84 authalic sphere, hectares."""
    r = 6371007.2  # authalic radius, m
    lat = np.deg2rad(np.asarray(latitudes, dtype=np.float64))
    half = np.deg2rad(RES_DEG) / 2.0
    area_m2 = r * r * np.deg2rad(RES_DEG) * (np.sin(lat + half) - np.sin(lat - half))
    return area_m2 / 1e4
