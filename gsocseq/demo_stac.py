"""The STAC flavour of the demo world: ESA CCI COG tiles, MODIS 13A1-like NDVI, a static catalog.

``write_demo_stac(url)`` writes the file flavour (:func:`gsocseq.demo.write_demo_world`) and then,
under ``url/stac/``, the layouts of the Planetary Computer collections the shipped sources use:

* ``esa-cci-lc``: one COG per 11.25° tile (4050² cells of 1/360°, uint8 LCCS codes, nodata 0,
  asset ``lccs_class``), items ``ESACCI-LC-L4-LCCS-Map-300m-P1Y-2015-v2.0.7cds-S45W068``; the codes
  are the file flavour's map (same seed → same land cover);
* ``modis-13A1-061``: 16-day composites starting on day 1, 17, …, 353 of each NDVI year, in the
  MODIS sinusoidal projection on the real 500 m tile grid (463.3127 m cells, tiles ``hHHvVV``
  cropped to the demo world), int16 band ``500m_16_days_NDVI`` (scale 1e-4, valid −2000…10000,
  fill −3000), platform ``terra``; plus two Aqua (``MYD13A1``) composites that a Terra-only query
  must leave out. Clouds (fill) fall only on the second composite of a month, so every month keeps
  a valid composite and the STAC demo models the same pixels as the file flavour.

``url/stac/catalog.json`` is a self-contained static catalog (absolute asset hrefs) and
``url/sources.toml`` reads land cover and cover through it (``kind = "stac"``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pystac
from affine import Affine
from rasterio.io import MemoryFile

from gsocseq.demo import LC_RES, _land_cover, _World, write_demo_world
from gsocseq.sources.cover import MOD13_FILL, MOD13_SCALE
from gsocseq.sources.stac import FsspecStacIO
from gsocseq.storage import filesystem

#: MODIS sinusoidal sphere and tile grid (MODLAND): 36 × 18 tiles of 2400² cells of 463.3127 m.
MODIS_R: float = 6371007.181
MODIS_CRS: str = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
MODIS_TILE_M: float = 1111950.5196666666
MODIS_X0: float = -20015109.354
MODIS_Y0: float = 10007554.677
MODIS_CELLS: int = 2400
MODIS_RES: float = MODIS_TILE_M / MODIS_CELLS
NDVI_ASSET = "500m_16_days_NDVI"
ESA_TILE_DEG: float = 11.25
ESA_TILE_CELLS: int = 4050
ESA_YEAR: int = 2015
ESA_VERSION: str = "v2.0.7cds"
COMPOSITE_DAYS: tuple[int, ...] = tuple(range(1, 366, 16))


def _cog(data: np.ndarray, transform: Affine, crs: str, nodata: float, tags: dict,
         overviews: str = "average") -> bytes:
    profile = {"driver": "COG", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": str(data.dtype), "crs": crs, "transform": transform, "nodata": nodata,
               "compress": "DEFLATE", "blocksize": 512, "overview_resampling": overviews}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data[None])
            dst.update_tags(**tags)
        return bytes(mem.read())


def _tile_name(south: float, west: float) -> str:
    lat = f"{'N' if south >= 0 else 'S'}{math.floor(abs(south) + 0.5):02d}"
    return f"{lat}{'E' if west >= 0 else 'W'}{math.floor(abs(west) + 0.5):03d}"


def _bbox_geometry(bbox: tuple[float, float, float, float]) -> dict:
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _esa_items(world: _World, root: str) -> tuple[list[pystac.Item], dict[str, bytes]]:
    lc, t = _land_cover(world)
    w, _, _, n = world.bounds()
    row0, col0 = round((90.0 - n) / LC_RES), round((w + 180.0) / LC_RES)
    rows, cols = lc.shape
    items, files = [], {}
    for tr in range(row0 // ESA_TILE_CELLS, (row0 + rows - 1) // ESA_TILE_CELLS + 1):
        for tc in range(col0 // ESA_TILE_CELLS, (col0 + cols - 1) // ESA_TILE_CELLS + 1):
            tile = np.zeros((ESA_TILE_CELLS, ESA_TILE_CELLS), np.uint8)
            r0, c0 = tr * ESA_TILE_CELLS, tc * ESA_TILE_CELLS
            rs = slice(max(row0, r0), min(row0 + rows, r0 + ESA_TILE_CELLS))
            cs = slice(max(col0, c0), min(col0 + cols, c0 + ESA_TILE_CELLS))
            tile[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0] = (
                lc[rs.start - row0:rs.stop - row0, cs.start - col0:cs.stop - col0])
            west, north = -180.0 + tc * ESA_TILE_DEG, 90.0 - tr * ESA_TILE_DEG
            bbox = (west, north - ESA_TILE_DEG, west + ESA_TILE_DEG, north)
            iid = (f"ESACCI-LC-L4-LCCS-Map-300m-P1Y-{ESA_YEAR}-{ESA_VERSION}-"
                   f"{_tile_name(bbox[1], west)}")
            key = f"stac/esa-cci-lc/{iid}/{iid}-lccs_class.tif"
            transform = Affine(LC_RES, 0.0, west, 0.0, -LC_RES, north)
            files[key] = _cog(tile, transform, "EPSG:4326", 0, {"source": "demo ESA CCI LC"},
                              overviews="mode")
            item = pystac.Item(
                iid, _bbox_geometry(bbox), list(bbox), None,
                {"start_datetime": f"{ESA_YEAR}-01-01T00:00:00Z",
                 "end_datetime": f"{ESA_YEAR}-12-31T23:59:59Z",
                 "esa_cci_lc:version": ESA_VERSION, "esa_cci_lc:tile": _tile_name(bbox[1], west),
                 "proj:code": "EPSG:4326", "proj:shape": [ESA_TILE_CELLS] * 2,
                 "proj:transform": list(transform)[:6]},
                collection="esa-cci-lc",
            )
            item.add_asset("lccs_class", pystac.Asset(
                f"{root}/{key}", media_type=pystac.MediaType.COG, roles=["data"],
                extra_fields={"raster:bands": [{"data_type": "uint8", "nodata": 0,
                                                "spatial_resolution": 300}]}))
            items.append(item)
    return items, files


def modis_tiles(bounds: tuple[float, float, float, float]) -> list[tuple[int, int]]:
    """Return the MODIS (h, v) tiles that a lon/lat box touches (sinusoidal grid)."""
    w, s, e, n = bounds
    lats = np.linspace(s, n, 41)[:, None]
    lons = np.linspace(w, e, 41)[None, :]
    x = MODIS_R * np.deg2rad(lons) * np.cos(np.deg2rad(lats))
    y = MODIS_R * np.deg2rad(lats) * np.ones_like(x)
    h = np.floor((x - MODIS_X0) / MODIS_TILE_M).astype(int)
    v = np.floor((MODIS_Y0 - y) / MODIS_TILE_M).astype(int)
    return sorted(set(zip(h.ravel().tolist(), v.ravel().tolist(), strict=True)))


def _modis_window(
    h: int, v: int, bounds: tuple[float, float, float, float]
) -> tuple[Affine, int, int, np.ndarray, np.ndarray]:
    """Return the part of tile (h, v) covering ``bounds``: transform, shape, centre lat/lon."""
    w, s, e, n = bounds
    lats = np.linspace(s, n, 41)[:, None]
    lons = np.linspace(w, e, 41)[None, :]
    xs = MODIS_R * np.deg2rad(lons) * np.cos(np.deg2rad(lats))
    ys = MODIS_R * np.deg2rad(lats) * np.ones_like(xs)
    tx0, ty0 = MODIS_X0 + h * MODIS_TILE_M, MODIS_Y0 - v * MODIS_TILE_M
    c0 = max(0, int(np.floor((xs.min() - tx0) / MODIS_RES)) - 2)
    c1 = min(MODIS_CELLS, int(np.ceil((xs.max() - tx0) / MODIS_RES)) + 2)
    r0 = max(0, int(np.floor((ty0 - ys.max()) / MODIS_RES)) - 2)
    r1 = min(MODIS_CELLS, int(np.ceil((ty0 - ys.min()) / MODIS_RES)) + 2)
    transform = Affine(MODIS_RES, 0.0, tx0 + c0 * MODIS_RES, 0.0, -MODIS_RES, ty0 - r0 * MODIS_RES)
    x = tx0 + (np.arange(c0, c1) + 0.5) * MODIS_RES
    y = ty0 - (np.arange(r0, r1) + 0.5) * MODIS_RES
    lat = np.rad2deg(y / MODIS_R)[:, None]
    lon = np.rad2deg(x[None, :] / (MODIS_R * np.cos(np.deg2rad(lat))))
    return transform, r1 - r0, c1 - c0, lat * np.ones_like(lon), lon


def _modis_item(
    product: str, platform: str, start: dt.datetime, h: int, v: int, transform: Affine,
    shape: tuple[int, int], href: str, bbox: tuple[float, float, float, float],
) -> pystac.Item:
    doy = start.timetuple().tm_yday
    iid = f"{product}.A{start.year}{doy:03d}.h{h:02d}v{v:02d}.061.{start.year + 1}001000000"
    end = start + dt.timedelta(days=15, hours=23, minutes=59, seconds=59)
    item = pystac.Item(
        iid, _bbox_geometry(bbox), list(bbox), start,
        {"start_datetime": start.isoformat().replace("+00:00", "Z"),
         "end_datetime": end.isoformat().replace("+00:00", "Z"),
         "platform": platform, "instruments": ["modis"],
         "modis:horizontal-tile": h, "modis:vertical-tile": v,
         "modis:tile-id": f"51{h:03d}{v:03d}", "proj:code": None, "proj:wkt2": MODIS_CRS,
         "proj:shape": list(shape), "proj:transform": list(transform)[:6]},
        collection="modis-13A1-061",
    )
    item.add_asset(NDVI_ASSET, pystac.Asset(
        href, media_type=pystac.MediaType.COG, roles=["data"],
        extra_fields={"raster:bands": [{"data_type": "int16", "nodata": MOD13_FILL,
                                        "scale": MOD13_SCALE, "offset": 0.0,
                                        "spatial_resolution": 500}]}))
    return item


def _at_points(waves: Any, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Evaluate a demo wave field at scattered points (2-D lat/lon arrays)."""
    out = np.zeros(lat.shape)
    for k, theta, phase in zip(waves.k, waves.theta, waves.phase, strict=True):
        out += np.cos(k * np.cos(theta) * lon + phase + k * np.sin(theta) * lat)
    return out * np.sqrt(2.0 / waves.n)


def _ndvi(world: _World, lat: np.ndarray, lon: np.ndarray, start: dt.datetime, cloudy: bool,
          rng: np.random.Generator) -> np.ndarray:
    season = np.cos(2 * np.pi * (start.month - 1) / 12.0)
    share = 0.55 + 0.25 * season + 0.12 * _at_points(world.cover, lat, lon)
    ndvi = 0.15 + 0.55 * share + rng.normal(0.0, 0.08, lat.shape)
    ndvi[_at_points(world.water, lat, lon) > 1.75] = -0.1
    raw = np.clip(np.rint(ndvi / MOD13_SCALE), -2000, 10000).astype(np.int16)
    if cloudy:
        shifted = _at_points(world.water, lat + 0.37 * start.day, lon - 0.21 * start.month)
        raw[shifted > 0.9] = MOD13_FILL
    return raw


def _modis_items(
    world: _World, root: str, years: tuple[int, int], seed: int
) -> tuple[list[pystac.Item], dict[str, bytes]]:
    rng = np.random.default_rng(seed + 13)
    bounds = world.bounds()
    items, files = [], {}
    composites = [("MOD13A1", "terra", dt.datetime(y, 1, 1, tzinfo=dt.UTC) + dt.timedelta(d - 1))
                  for y in range(years[0], years[1] + 1) for d in COMPOSITE_DAYS]
    composites += [("MYD13A1", "aqua", dt.datetime(years[0], 1, 1, tzinfo=dt.UTC)
                    + dt.timedelta(d - 1)) for d in (9, 25)]
    for h, v in modis_tiles(bounds):
        transform, ny, nx, lat, lon = _modis_window(h, v, bounds)
        wgs = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        previous_month = None
        for product, platform, start in composites:
            cloudy = product == "MOD13A1" and previous_month == (start.year, start.month)
            previous_month = (start.year, start.month) if product == "MOD13A1" else previous_month
            raw = _ndvi(world, lat, lon, start, cloudy, rng)
            if platform == "aqua":
                raw[:] = 9000  # fully vegetated: a wrong platform filter would show at once
            doy = start.timetuple().tm_yday
            name = f"{product}.A{start.year}{doy:03d}.h{h:02d}v{v:02d}.061_{NDVI_ASSET}.tif"
            key = f"stac/modis-13A1-061/h{h:02d}v{v:02d}/{name}"
            files[key] = _cog(raw, transform, MODIS_CRS, MOD13_FILL,
                              {"scale_factor": str(MOD13_SCALE), "long_name": "500m 16 days NDVI"})
            items.append(_modis_item(product, platform, start, h, v, transform, (ny, nx),
                                     f"{root}/{key}", wgs))
    return items, files


def _catalog(items: dict[str, list[pystac.Item]], bbox: list[float]) -> pystac.Catalog:
    cat = pystac.Catalog("gsocseq-demo-stac", "gsocseq demo world as STAC (synthetic)")
    for cid, its in items.items():
        times = [i.common_metadata.start_datetime or i.datetime for i in its]
        coll = pystac.Collection(
            cid, f"demo {cid} (synthetic, real layout)",
            pystac.Extent(pystac.SpatialExtent([bbox]),
                          pystac.TemporalExtent([[min(times), max(times)]])))
        coll.add_items(its)
        cat.add_child(coll)
    return cat


def stac_sources_toml(base_toml: str, ndvi_years: tuple[int, int]) -> str:
    """Return the demo ``sources.toml`` with land cover and cover read through the catalog."""
    head = base_toml.split("[sources.land_cover]")[0]
    tail = base_toml.split("[sources.climate]")[1].split("[sources.cover]")[0]
    return head + f"""[sources.land_cover]
kind = "stac"
url = "stac/catalog.json"
collection = "esa-cci-lc"
asset = "lccs_class"
period = [{ESA_YEAR}, {ESA_YEAR}]
nodata = 0
resampling = "nearest"
version = "demo"

[sources.climate]{tail}[sources.cover]
kind = "stac"
url = "stac/catalog.json"
collection = "modis-13A1-061"
asset = "{NDVI_ASSET}"
query = {{platform = {{eq = "terra"}}}}
period = [{ndvi_years[0]}, {ndvi_years[1]}]
crs = "{MODIS_CRS}"
nodata = {MOD13_FILL}
threshold = 0.4
resampling = "nearest"
version = "demo"
"""


def write_demo_stac(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    tiles_y: int = 2,
    tiles_x: int = 3,
    tile_size: int = 240,
    seed: int = 0,
    ndvi_years: tuple[int, int] = (2020, 2020),
) -> str:
    """Write the STAC flavour of the demo world under ``url``; returns its ``sources.toml`` URL."""
    toml_url = write_demo_world(url, storage_options, tiles_y=tiles_y, tiles_x=tiles_x,
                                tile_size=tile_size, seed=seed)
    fs, root = filesystem(url, storage_options)
    root = root.rstrip("/")
    protocol = url.split("://", 1)[0] + "://" if "://" in url else ""
    href_root = f"{protocol}{root}" if protocol else root
    world = _World(seed, tiles_y, tiles_x, tile_size)
    esa, files = _esa_items(world, href_root)
    modis, more = _modis_items(world, href_root, ndvi_years, seed)
    files.update(more)
    if "file" in fs.protocol or "local" in fs.protocol:
        for parent in {f"{root}/{key}".rsplit("/", 1)[0] for key in files}:
            fs.makedirs(parent, exist_ok=True)
    fs.pipe({f"{root}/{key}": data for key, data in files.items()})
    cat = _catalog({"esa-cci-lc": esa, "modis-13A1-061": modis}, list(world.bounds()))
    cat.normalize_hrefs(f"{href_root}/stac")
    cat.save(pystac.CatalogType.SELF_CONTAINED, stac_io=FsspecStacIO(storage_options))
    with fs.open(f"{root}/sources.toml", "rt") as f:
        base = f.read()
    fs.pipe({f"{root}/sources.toml": stac_sources_toml(base, ndvi_years).encode()})
    return toml_url
