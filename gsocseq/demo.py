"""The demo world: a small, realistic synthetic region written in the real sources' formats.

``write_demo_world(url)`` writes, under ``url`` (any fsspec URL):

================================================  =============================================
``soc/GSOCmap_demo.tif``                          COG, 30″, float32 t C/ha (GSOCmap layout)
``clay/clay_{0-5cm,5-15cm,15-30cm}_mean.tif``     COGs, 1/240°, int16 clay g/kg (SoilGrids 2.0)
``land_cover/ESACCI-LC-L4-LCCS-Map-300m-P1Y-2015-v2.0.7.tif``  COG, 1/360°, uint8 ESA CCI codes
``climate/TerraClimate_{var}_{year}.nc``          netCDF4, 1/24°, tmax/tmin/ppt/pet, 1981-2020,
                                                  int16 × scale_factor (TerraClimate layout)
``cover/cover_M{01..12}.tif``                     GeoTIFFs, MODIS 1 km grid, vegetated share 0-1
``boundaries/admin0.geojson``                     countries ``DEM`` (most of it) and ``DMX``
``sources.toml``                                  points at the above (relative URLs); ``demo``
                                                  is an alias of region ``DEM``
================================================  =============================================

The world is ``tiles_y × tiles_x`` tiles of ``tile_size`` cells whose north-west corner is
64°W 34°S (the Pampas), tile-aligned for tile sizes 60, 120 and 240. Fields are spatially smooth
(sums of random plane waves, evaluated at each file's own resolution so layers agree), with
realistic ranges: SOC 20-120 t C/ha, clay 5-60 %, T −5…30 °C, P 0-300 mm/month, with a
seasonal cycle, a warming trend and year-to-year variation. Water and towns are nodata/not
agricultural, as in the real data.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyogrio.raw import write as ogr_write
from rasterio.io import MemoryFile

from gsocseq.cube.grid import RES_DEG
from gsocseq.cube.schema import FIRST_YEAR, LAST_YEAR
from gsocseq.storage import filesystem

WEST: float = -64.0
NORTH: float = -34.0
MARGIN_DEG: float = 0.1
"""Source files extend this far beyond the tiles (real sources are global)."""
CLAY_RES: float = 1.0 / 240.0
LC_RES: float = 1.0 / 360.0
CLIMATE_RES: float = 1.0 / 24.0
COVER_RES: float = 0.008983152841195214
DEPTHS: tuple[str, ...] = ("0-5cm", "5-15cm", "15-30cm")
LC_FILE = "land_cover/ESACCI-LC-L4-LCCS-Map-300m-P1Y-2015-v2.0.7.tif"

#: ESA CCI classes of the demo world and their area shares (Pampas-like: mostly crops and grass).
LC_SHARES: tuple[tuple[int, float], ...] = (
    (10, 0.30),
    (11, 0.08),
    (30, 0.12),
    (130, 0.20),
    (120, 0.05),
    (12, 0.02),
    (20, 0.02),
    (60, 0.05),
    (70, 0.03),
    (180, 0.04),
    (190, 0.02),
    (200, 0.01),
    (210, 0.06),
)


class _Waves:
    """Smooth random field: a sum of plane waves (wavelengths in degrees), values ~ N(0, 1)."""

    def __init__(self, rng: np.random.Generator, n: int, lo: float, hi: float) -> None:
        self.k = 2 * np.pi / rng.uniform(lo, hi, n)
        self.theta = rng.uniform(0, np.pi, n)
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.n = n

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        # cos(a + b) = cos a·cos b − sin a·sin b: one matrix product instead of n full-grid cosines
        a = np.outer(self.k * np.cos(self.theta), lon) + self.phase[:, None]  # (n, nx)
        b = np.outer(lat, self.k * np.sin(self.theta))  # (ny, n)
        left = np.hstack([np.cos(b), -np.sin(b)])
        right = np.vstack([np.cos(a), np.sin(a)])
        return (left @ right) * np.sqrt(2.0 / self.n)


class _World:
    def __init__(self, seed: int, tiles_y: int, tiles_x: int, tile_size: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.height = tiles_y * tile_size * RES_DEG
        self.width = tiles_x * tile_size * RES_DEG
        self.soc = _Waves(rng, 10, 0.5, 4.0)
        self.clay = _Waves(rng, 10, 0.5, 4.0)
        self.clay_depth = _Waves(rng, 6, 0.3, 2.0)
        self.lc = _Waves(rng, 14, 0.08, 0.8)
        self.water = _Waves(rng, 10, 0.1, 0.6)
        self.temp = _Waves(rng, 6, 1.0, 6.0)
        self.prec = _Waves(rng, 6, 1.0, 6.0)
        self.cover = _Waves(rng, 8, 0.3, 2.0)

    def bounds(self) -> tuple[float, float, float, float]:
        return (
            WEST - MARGIN_DEG,
            NORTH - self.height - MARGIN_DEG,
            WEST + self.width + MARGIN_DEG,
            NORTH + MARGIN_DEG,
        )

    def grid(self, res: float) -> tuple[np.ndarray, np.ndarray, Any]:
        w, s, e, n = self.bounds()
        nx, ny = int(np.ceil((e - w) / res)), int(np.ceil((n - s) / res))
        lon = w + (np.arange(nx) + 0.5) * res
        lat = n - (np.arange(ny) + 0.5) * res
        return lat, lon, Affine(res, 0.0, w, 0.0, -res, n)

    def is_water(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return self.water(lat, lon) > 1.75  # ≈ 4 % of the area


def _cog_bytes(
    data: np.ndarray,
    transform: Any,
    nodata: float | None,
    tags: dict[str, str],
    driver: str = "COG",
) -> bytes:
    count = 1 if data.ndim == 2 else data.shape[0]
    profile = {
        "driver": driver,
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": count,
        "dtype": str(data.dtype),
        "crs": "EPSG:4326",
        "transform": transform,
        "nodata": nodata,
        "compress": "DEFLATE",
    }
    if driver == "COG":
        profile["blocksize"] = 256
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data if data.ndim == 3 else data[None])
            dst.update_tags(**tags)
        return bytes(mem.read())


def _soc(world: _World) -> tuple[np.ndarray, Any]:
    lat, lon, transform = world.grid(RES_DEG)
    east = (lon - WEST) / max(world.width, 1e-9)
    soc = 55.0 + 14.0 * world.soc(lat, lon) + 25.0 * east[None, :]  # wetter east: more SOC
    soc = np.clip(soc, 20.0, 120.0).astype("float32")
    soc[world.is_water(lat, lon)] = -9999.0
    return soc, transform


def _clay(world: _World, depth_index: int) -> tuple[np.ndarray, Any]:
    lat, lon, transform = world.grid(CLAY_RES)
    pct = 28.0 + 10.0 * world.clay(lat, lon) + 2.5 * depth_index * (1 + world.clay_depth(lat, lon))
    gkg = np.clip(pct, 5.0, 60.0) * 10.0
    out = np.rint(gkg).astype("int16")
    out[world.is_water(lat, lon)] = -32768
    return out, transform


def _land_cover(world: _World) -> tuple[np.ndarray, Any]:
    lat, lon, transform = world.grid(LC_RES)
    f = world.lc(lat, lon)
    codes = np.array([c for c, _ in LC_SHARES if c != 210], dtype=np.uint8)
    shares = np.array([s for c, s in LC_SHARES if c != 210])
    edges = np.quantile(f, np.cumsum(shares / shares.sum())[:-1])
    out = codes[np.searchsorted(edges, f)]
    out[world.is_water(lat, lon)] = 210
    return out, transform


def _climate_year(
    world: _World, year: int, lat: np.ndarray, lon: np.ndarray, anomaly: tuple[float, float]
) -> dict[str, np.ndarray]:
    east = (lon - WEST)[None, :] / max(world.width, 1e-9)
    south = (NORTH - lat)[:, None]
    t_mean = 16.5 - 0.6 * south + 1.2 * world.temp(lat, lon) + 0.02 * (year - FIRST_YEAR)
    p_year = (650.0 + 400.0 * east) * (1 + 0.08 * world.prec(lat, lon)) * anomaly[1]
    m = np.arange(12)[:, None, None]
    season = np.cos(2 * np.pi * m / 12.0)  # January (m=0) is mid-summer in the Pampas
    tmp = t_mean[None] + anomaly[0] + 7.5 * season
    dtr = 12.0 + 1.5 * season
    wet = 1.0 + 0.45 * season
    noise = world.rng.gamma(8.0, 1 / 8.0, size=(12, 1, 1))
    ppt = np.clip(p_year[None] / 12.0 * wet * noise, 0.0, 300.0)
    pet = np.clip(8.0 + 5.2 * np.maximum(tmp, 0.0), 0.0, None)
    return {"tmax": tmp + dtr / 2, "tmin": tmp - dtr / 2, "ppt": ppt, "pet": pet}


def _terraclimate_bytes(
    var: str, year: int, values: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> bytes:
    """Write one TerraClimate-style netCDF-4 file (int16 × 0.1, _FillValue −32768) to bytes."""
    units = {"tmax": "degC", "tmin": "degC", "ppt": "mm", "pet": "mm"}[var]
    long = {
        "tmax": "maximum_2m_air_temperature",
        "tmin": "minimum_2m_air_temperature",
        "ppt": "precipitation_amount",
        "pet": "potential_evapotranspiration",
    }[var]
    days = (
        pd.date_range(f"{year}-01-01", periods=12, freq="MS") - pd.Timestamp("1900-01-01")
    ).days.values.astype("float64")
    packed = np.rint(values / 0.1)
    packed[~np.isfinite(values)] = -32768
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:  # netCDF-4 layout: dimension scales + CF attributes
        h5.attrs["title"] = f"TerraClimate-like demo {var} {year}"
        h5.attrs["source"] = "gsocseq demo world"
        h5.attrs["Conventions"] = "CF-1.6"
        scales = []
        for name, data, attrs in (
            ("time", days, {"units": "days since 1900-01-01", "calendar": "gregorian"}),
            ("lat", lat, {"units": "degrees_north"}),
            ("lon", lon, {"units": "degrees_east"}),
        ):
            d = h5.create_dataset(name, data=data)
            d.make_scale(name)
            for k, v in attrs.items():
                d.attrs[k] = v
            scales.append(d)
        v = h5.create_dataset(
            var,
            data=packed.astype("int16"),
            fillvalue=np.int16(-32768),
            compression="gzip",
            compression_opts=1,
            chunks=(12, min(lat.size, 64), min(lon.size, 64)),
        )
        for i, d in enumerate(scales):
            v.dims[i].attach_scale(d)
        v.attrs["_FillValue"] = np.int16(-32768)
        v.attrs["scale_factor"] = np.float32(0.1)
        v.attrs["add_offset"] = np.float32(0.0)
        v.attrs["units"] = units
        v.attrs["long_name"] = long
    return buf.getvalue()


def _cover(world: _World, month: int) -> tuple[np.ndarray, Any]:
    lat, lon, transform = world.grid(COVER_RES)
    season = np.cos(2 * np.pi * (month - 1) / 12.0)
    share = 0.55 + 0.25 * season + 0.12 * world.cover(lat, lon)
    out = np.clip(share, 0.0, 1.0).astype("float32")
    out[world.is_water(lat, lon)] = np.nan
    return out, transform


def _boundaries(world: _World) -> bytes:
    w, n = WEST, NORTH
    e, s = WEST + world.width, NORTH - world.height
    x_cut = w + 0.72 * world.width
    rng = np.random.default_rng(world.rng.integers(1 << 31))
    ys = np.linspace(n - 0.02 * world.height, s + 0.02 * world.height, 9)
    wiggle = rng.uniform(-0.06, 0.06, ys.size) * world.width
    border = [(x_cut + d, y) for y, d in zip(ys, wiggle, strict=True)]
    dem = shapely.Polygon([(w + 0.01, n - 0.01), *border, (w + 0.01, s + 0.01 * world.height)])
    dmx = shapely.Polygon([*border, (e - 0.01, s + 0.01), (e - 0.01, n - 0.01)][::-1])
    dmx = shapely.make_valid(dmx).buffer(0)
    geoms = np.array([shapely.to_wkb(shapely.make_valid(dem)), shapely.to_wkb(dmx)], dtype=object)
    fields = [
        np.array(["DEM", "DMX"], dtype=object),
        np.array(["DEM", "DMX"], dtype=object),
        np.array(["Demoland", "Demoxia"], dtype=object),
    ]

    buf = io.BytesIO()
    ogr_write(
        buf,
        geoms,
        fields,
        ["ADM0_A3", "ISO_A3", "NAME"],
        driver="GeoJSON",
        geometry_type="Polygon",
        crs="EPSG:4326",
        layer="admin0",
    )
    return buf.getvalue()


def sources_toml(tile_size: int, tiles_y: int, tiles_x: int, seed: int) -> str:
    """Return the demo world's ``sources.toml`` (URLs relative to its own directory)."""
    return f"""# gsocseq demo world (synthetic, Pampas-like), by gsocseq.demo.write_demo_world.
[demo]
tile_size = {tile_size}
tiles_y = {tiles_y}
tiles_x = {tiles_x}
seed = {seed}

[regions]
demo = "DEM"

[sources.boundaries]
kind = "natural_earth"
url = "boundaries/admin0.geojson"
variable = "ADM0_A3"
version = "demo"

[sources.soc]
kind = "gsocmap"
url = "soc/GSOCmap_demo.tif"
units = "t C/ha"
version = "demo"

[sources.clay]
kind = "soilgrids"
url = "clay/clay_{{depth}}_mean.tif"
units = "g/kg"
layers = {list(DEPTHS)!r}
version = "demo"

[sources.land_cover]
kind = "esa_cci"
url = "land_cover/ESACCI-LC-L4-LCCS-Map-300m-P1Y-{{year}}-v2.0.7.tif"
period = [2015, 2015]
resampling = "nearest"
version = "demo"

[sources.climate]
kind = "terraclimate"
url = "climate/TerraClimate_{{var}}_{{year}}.nc"
layers = ["tmax", "tmin", "ppt", "pet"]
period = [{FIRST_YEAR}, {LAST_YEAR}]
version = "demo"

[sources.cover]
kind = "cover_monthly"
url = "cover/cover_M{{month:02d}}.tif"
units = "1"
version = "demo"
"""


def write_demo_world(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    tiles_y: int = 2,
    tiles_x: int = 3,
    tile_size: int = 240,
    seed: int = 0,
) -> str:
    """Write the demo world under ``url``; returns the URL of its ``sources.toml``."""
    if tiles_y < 1 or tiles_x < 1:
        raise ValueError(f"need at least one tile, got tiles_y={tiles_y}, tiles_x={tiles_x}")
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    world = _World(seed, tiles_y, tiles_x, tile_size)
    files: dict[str, bytes] = {}
    soc, t = _soc(world)
    files["soc/GSOCmap_demo.tif"] = _cog_bytes(soc, t, -9999.0, {"units": "t C/ha"})
    for i, depth in enumerate(DEPTHS):
        clay, t = _clay(world, i)
        files[f"clay/clay_{depth}_mean.tif"] = _cog_bytes(clay, t, -32768, {"units": "g/kg"})
    lc, t = _land_cover(world)
    files[LC_FILE] = _cog_bytes(lc, t, 0, {"source": "ESA CCI LCCS codes (demo)"})
    for month in range(1, 13):
        cov, t = _cover(world, month)
        files[f"cover/cover_M{month:02d}.tif"] = _cog_bytes(
            cov, t, float("nan"), {"units": "1"}, driver="GTiff"
        )
    files["boundaries/admin0.geojson"] = _boundaries(world)
    lat, lon, _ = world.grid(CLIMATE_RES)
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        anomaly = (float(world.rng.normal(0.0, 0.5)), float(world.rng.lognormal(0.0, 0.15)))
        fields = _climate_year(world, year, lat, lon, anomaly)
        for var, values in fields.items():
            files[f"climate/TerraClimate_{var}_{year}.nc"] = _terraclimate_bytes(
                var, year, values, lat, lon
            )
    files["sources.toml"] = sources_toml(tile_size, tiles_y, tiles_x, seed).encode()
    if "file" in fs.protocol or "local" in fs.protocol:
        for parent in {f"{root}/{key}".rsplit("/", 1)[0] for key in files}:
            fs.makedirs(parent, exist_ok=True)
    fs.pipe({f"{root}/{key}": data for key, data in files.items()})
    protocol = url.split("://", 1)[0] + "://" if "://" in url else ""
    return f"{protocol}{root}/sources.toml" if protocol else f"{root}/sources.toml"
