"""FAO raw-input folders (the layout FAO's GSOCseq v1.2 scripts read) → a normal gsocseq input cube.

A folder such as ``tests/data/fao-sample/ARG_PE/raw`` holds::

    AOI_POLYGON/{AOI}.shp                       area of interest, EPSG:4326 ({AOI} = e.g. ARG_PE)
    SOC_MAP/*.tif                               SOC 0-30 cm, t C/ha
    CLAY/CLYPPT_M_sl{1..4}_250m_ll.tif          clay % at 0/5/15/30 cm (SoilGrids 2017)
    TERRA_CLIMATE/{AverageTemperature,Precipitation,PET}_{first}-{last}.tif
                                                Earth Engine exports, one band per month:
                                                temperature 0.1 °C, precipitation mm, PET 0.1 mm
    COV/*_M{01..12}.tif                         vegetated share per calendar month (0-1)
    LAND_USE/**/*.tif                           ESA CCI LCCS codes, one band per year

:func:`prepare_fao_inputs` turns it into a ``sources.toml`` for the existing adapters: SOC and
cover are read in place; what no adapter reads is converted once, as the FAO stack scripts do:
clay 0-30 cm = ``sl1/30 + 4·sl2/30 + 10·sl3/30 + 15·sl4/30`` (reference §3.2, the script weights),
the monthly climate 1981-2020 → one netCDF per variable in °C and mm/month (read by the
``cru_ts`` adapter, whose layout is any monthly tmp/pre/pet netCDF), the land-cover band of
:data:`LAND_USE_YEAR` → one GeoTIFF (``esa_cci`` adapter, reclassified ESA → FAO, nearest), and the
AOI polygon → a GeoJSON boundaries file keyed by the ISO3 code (the first three letters of the AOI
name, which the run configuration and FAO product names use). Climate years missing from
1981-2020 raise an error naming them; nothing is invented.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import rasterio
import shapely
from affine import Affine
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.gdal_paths import raster
from gsocseq.sources.spec import SourcesConfig, load_sources
from gsocseq.storage import filesystem
from gsocseq.vocabulary import PERIODS

FIRST_YEAR: int = PERIODS["spinup"].first
"""First year of the monthly climate the scripts export (the spin-up's first year)."""
LAST_YEAR: int = PERIODS["warmup"].last
"""Last year of the monthly climate (the warm-up's last year, T0)."""

#: FAO script weights of the SoilGrids-2017 layers sl1…sl4 (0-1, 1-5, 5-15, 15-30 cm; §3.2).
CLAY_WEIGHTS: tuple[float, ...] = (1 / 30, 4 / 30, 10 / 30, 15 / 30)
#: Earth Engine TerraClimate exports: file prefix → (cube variable, file variable, scale to cube
#: units °C or mm/month).
CLIMATE_FILES: dict[str, tuple[str, str, float]] = {
    "AverageTemperature": ("tmp", "tmp", 0.1),
    "Precipitation": ("prec", "pre", 1.0),
    "PET": ("pet", "pet", 0.1),
}
#: The land-cover year the FAO v1.2 stack scripts sample for the spin-up and forward land use.
LAND_USE_YEAR: int = 2020
#: Folder under a run's ``out`` where :func:`gsocseq.pipeline.run_fao_inputs` writes the converted inputs.
FAO_INPUTS: str = "fao-inputs"

_YEARS = re.compile(r"(\d{4})\D+(\d{4})")
_BAND = re.compile(r"^(\d{4})(\d{2})")


@dataclass(frozen=True)
class FaoRawFolder:
    """The files of one FAO raw-input folder (fsspec URLs)."""

    name: str
    """AOI name, the AOI shapefile's stem (``ARG_PE``)."""
    aoi: str
    """``AOI_POLYGON/{name}.shp``."""
    soc: str
    """The SOC map."""
    clay: tuple[str, ...]
    """``CLYPPT_M_sl1`` … ``sl4``, in depth order."""
    climate: dict[str, tuple[str, ...]]
    """Key of :data:`CLIMATE_FILES` → its period files, sorted."""
    cover: tuple[str, ...]
    """The 12 monthly cover files, January first."""
    land_use: str
    """The multi-band ESA CCI stack."""

    @property
    def iso3(self) -> str:
        """Return the ISO3 code: the AOI name's first three letters, upper case."""
        code = self.name[:3].upper()
        if not (len(code) == 3 and code.isalpha() and code.isascii()):
            raise InputValidationError(
                f"AOI file {self.aoi}: name {self.name!r} does not start with an ISO3 code"
            )
        return code


def _url(fs: Any, path: str, folder: str) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    return path if "://" not in folder or protocol in ("file", "local") else f"{protocol}://{path}"


def _all(fs: Any, root: str, pattern: str, folder: str, what: str) -> list[str]:
    hits = sorted(fs.glob(f"{root}/{pattern}"))
    if not hits:
        raise SourceError(f"FAO raw folder {folder}: no {what} file matching {pattern!r}")
    return [_url(fs, h, folder) for h in hits]


def _one(fs: Any, root: str, pattern: str, folder: str, what: str) -> str:
    hits = _all(fs, root, pattern, folder, what)
    if len(hits) > 1:
        raise InputValidationError(
            f"FAO raw folder {folder}: {len(hits)} {what} files match {pattern!r} ({hits}); "
            "keep exactly one"
        )
    return hits[0]


def find_fao_raw(folder: str, storage_options: Mapping[str, Any] | None = None) -> FaoRawFolder:
    """Locate the files of an FAO raw-input folder; a missing dataset raises :class:`SourceError`."""
    if "://" not in folder:
        folder = str(Path(folder).resolve())
    fs, root = filesystem(folder, storage_options)
    root = root.rstrip("/")
    aoi = _one(fs, root, "AOI_POLYGON/*.shp", folder, "AOI polygon")
    clay = tuple(
        _one(fs, root, f"CLAY/CLYPPT_M_sl{i}_*.tif", folder, f"clay sl{i}") for i in range(1, 5)
    )
    climate = {
        key: tuple(_all(fs, root, f"TERRA_CLIMATE/{key}_*.tif", folder, f"climate {key}"))
        for key in CLIMATE_FILES
    }
    cover = tuple(
        _one(fs, root, f"COV/*_M{m:02d}.tif", folder, f"cover month {m:02d}") for m in range(1, 13)
    )
    return FaoRawFolder(
        name=aoi.rsplit("/", 1)[-1][: -len(".shp")],
        aoi=aoi,
        soc=_one(fs, root, "SOC_MAP/*.tif", folder, "SOC map"),
        clay=clay,
        climate=climate,
        cover=cover,
        land_use=_one(fs, root, "LAND_USE/**/*.tif", folder, "land cover"),
    )


@dataclass(frozen=True)
class Raster:
    """A whole raster read into memory: ``values`` (bands, rows, cols) and its georeferencing."""

    values: np.ndarray
    transform: Affine
    nodata: float | None
    descriptions: tuple[str | None, ...]


def read_raster(url: str, storage_options: Mapping[str, Any] | None = None) -> Raster:
    """Read every band of an EPSG:4326 raster; another CRS raises :class:`GridMismatchError`."""
    try:
        with raster(url, storage_options) as src:
            if src.crs is None or src.crs != CRS.from_epsg(4326):
                raise GridMismatchError(f"raster {url}: CRS is {src.crs}; expected EPSG:4326")
            return Raster(src.read(), src.transform, src.nodata, tuple(src.descriptions))
    except rasterio.errors.RasterioIOError as exc:
        raise SourceError(f"raster {url}: cannot open: {exc}") from exc


def clay_0_30(layers: Sequence[np.ndarray], nodata: float | None = None) -> np.ndarray:
    """Return the 0-30 cm clay (%) of the four CLYPPT layers with the FAO script weights.

    ``sl1/30 + 4·sl2/30 + 10·sl3/30 + 15·sl4/30``; a cell with ``nodata`` in any layer is NaN.
    """
    if len(layers) != len(CLAY_WEIGHTS):
        raise InputValidationError(f"clay: expected 4 layers sl1…sl4, got {len(layers)}")
    total = np.zeros(np.shape(layers[0]))
    bad = np.zeros(total.shape, dtype=bool)
    for weight, layer in zip(CLAY_WEIGHTS, layers, strict=True):
        values = np.asarray(layer, dtype=np.float64)
        bad |= ~np.isfinite(values) | (values == nodata if nodata is not None else False)
        total = total + weight * values
    total[bad] = np.nan
    return total


def _grid_check(first: Raster, other: Raster, url: str, what: str) -> None:
    if other.values.shape[1:] != first.values.shape[1:] or not other.transform.almost_equals(
        first.transform
    ):
        raise GridMismatchError(f"{what} file {url} is on another grid than the first {what} file")


def band_months(raster: Raster, url: str) -> list[tuple[int, int]]:
    """Return (year, month) of each band: from ``YYYYMM_…`` band names, else the file name."""
    names = raster.descriptions
    parsed = [_BAND.match(d) if d else None for d in names]
    if all(parsed):
        months = [(int(m.group(1)), int(m.group(2))) for m in parsed if m]
    else:
        found = _YEARS.search(url.rsplit("/", 1)[-1])
        if found is None:
            raise InputValidationError(
                f"climate file {url}: bands have no YYYYMM names and the file name has no years"
            )
        first = int(found.group(1))
        months = [(first + i // 12, i % 12 + 1) for i in range(raster.values.shape[0])]
    if any(not 1 <= m <= 12 for _, m in months):
        raise InputValidationError(f"climate file {url}: band names {names[:3]}… are not YYYYMM")
    return months


def gee_climate(
    urls: Sequence[str], scale: float, storage_options: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, Raster]:
    """Stack the Earth Engine exports of one variable for 1981-2020 in cube units.

    Returns ``(values (480, rows, cols) float32 = raw × scale, first raster)``. A month of 1981-2020
    that no file holds raises :class:`InputValidationError` naming the files and missing years;
    a month held twice, too.
    """
    by_month: dict[tuple[int, int], np.ndarray] = {}
    first: Raster | None = None
    for url in urls:
        raster = read_raster(url, storage_options)
        if first is None:
            first = raster
        _grid_check(first, raster, url, "climate")
        data = raster.values.astype(np.float32)
        if raster.nodata is not None:
            data[raster.values == raster.nodata] = np.nan
        for band, key in enumerate(band_months(raster, url)):
            if key in by_month:
                raise InputValidationError(f"climate file {url}: month {key} is also in another file")
            by_month[key] = data[band] * scale
    assert first is not None
    wanted = [(y, m) for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]
    missing = sorted({y for y, m in wanted if (y, m) not in by_month})
    if missing:
        raise InputValidationError(
            f"climate files {list(urls)}: no data for year(s) {missing}; the FAO procedure needs "
            f"every month of {FIRST_YEAR}-{LAST_YEAR} (export them from Earth Engine)"
        )
    return np.stack([by_month[k] for k in wanted]), first


def _centres(transform: Affine, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    lat = transform.f + (np.arange(rows) + 0.5) * transform.e
    lon = transform.c + (np.arange(cols) + 0.5) * transform.a
    return lat, lon


def monthly_netcdf(var: str, units: str, values: np.ndarray, transform: Affine) -> bytes:
    """Write ``values`` (months from January 1981, lat, lon) as a netCDF-4 file (bytes)."""
    lat, lon = _centres(transform, *values.shape[1:])
    months = np.arange(values.shape[0])
    starts = np.array(
        [f"{FIRST_YEAR + i // 12}-{i % 12 + 1:02d}-01" for i in months], dtype="datetime64[D]"
    )
    days = (starts - np.datetime64("1900-01-01")).astype(np.float64)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:  # netCDF-4 layout: dimension scales + CF attributes
        h5.attrs["Conventions"] = "CF-1.6"
        h5.attrs["source"] = "FAO raw TerraClimate export, converted by gsocseq.sources.fao_raw"
        scales = []
        for name, data, unit in (
            ("time", days, "days since 1900-01-01"),
            ("lat", lat, "degrees_north"),
            ("lon", lon, "degrees_east"),
        ):
            d = h5.create_dataset(name, data=data)
            d.make_scale(name)
            d.attrs["units"] = unit
            scales.append(d)
        v = h5.create_dataset(var, data=values.astype(np.float32), compression="gzip")
        for i, d in enumerate(scales):
            v.dims[i].attach_scale(d)
        v.attrs["units"] = units
    return buf.getvalue()


def geotiff(values: np.ndarray, transform: Affine, nodata: float, tags: Mapping[str, str]) -> bytes:
    """Write a single-band EPSG:4326 GeoTIFF (bytes)."""
    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
            dtype=values.dtype, crs="EPSG:4326", transform=transform, nodata=nodata,
        ) as dst:
            dst.write(values, 1)
            dst.update_tags(**tags)
        return mem.read()


def land_use_band(raster: Raster, url: str, year: int = LAND_USE_YEAR) -> np.ndarray:
    """Return the band of ``year`` of an ESA CCI stack (``…_{year}`` band names or file years)."""
    names = [d or "" for d in raster.descriptions]
    years = [int(m.group(1)) for d in names if (m := re.search(r"(\d{4})$", d))]
    if len(years) != len(names):
        found = _YEARS.search(url.rsplit("/", 1)[-1])
        years = list(range(int(found.group(1)), int(found.group(1)) + len(names))) if found else []
    if year not in years:
        raise InputValidationError(
            f"land cover file {url}: no band for year {year} (bands hold {years or names})"
        )
    return raster.values[years.index(year)]


def aoi_geojson(url: str, iso3: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Return the AOI shapefile's union polygon as a GeoJSON keyed by ``ADM0_A3 = iso3``."""
    fs, path = filesystem(url, storage_options)
    stem = path[: -len(".shp")]
    with tempfile.TemporaryDirectory() as tmp:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            if fs.exists(stem + ext):
                fs.get(stem + ext, f"{tmp}/aoi{ext}")
        try:
            meta, _, wkb, _ = ogr_read(f"{tmp}/aoi.shp")
        except Exception as exc:  # pyogrio raises its own DataSourceError family
            raise SourceError(f"AOI file {url}: not a readable shapefile: {exc}") from exc
    crs = meta.get("crs")
    if crs is None or CRS.from_user_input(crs) != CRS.from_epsg(4326):
        raise GridMismatchError(f"AOI file {url}: CRS is {crs}; expected EPSG:4326")
    geom = shapely.union_all(shapely.from_wkb([g for g in wkb if g is not None]))
    if geom.is_empty:
        raise InputValidationError(f"AOI file {url}: empty geometry")
    feature = {
        "type": "Feature",
        "properties": {"ADM0_A3": iso3, "NAME": url.rsplit("/", 1)[-1]},
        "geometry": shapely.geometry.mapping(geom),
    }
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


def _esc(url: str) -> str:
    return url.replace("{", "{{").replace("}", "}}")


def sources_toml(raw: FaoRawFolder) -> str:
    """Return the ``sources.toml`` of converted inputs (relative URLs) and raw SOC/cover."""
    cover = _esc(raw.cover[0])[: -len("01.tif")] + "{month:02d}.tif"
    return f"""# FAO raw-input folder {raw.name}, converted by gsocseq.sources.fao_raw.
[regions]
{raw.name} = "{raw.iso3}"

[sources.boundaries]
kind = "natural_earth"
url = "aoi.geojson"
variable = "ADM0_A3"
version = "AOI {raw.name}"

[sources.soc]
kind = "gsocmap"
url = {json.dumps(_esc(raw.soc))}
units = "t C/ha"
version = "FAO raw SOC_MAP"

[sources.clay]
kind = "soilgrids"
url = "clay/clay_{{depth}}.tif"
units = "%"
layers = ["0-30cm"]
version = "SoilGrids 2017 CLYPPT sl1-sl4, FAO weights 1/30 4/30 10/30 15/30"

[sources.land_cover]
kind = "esa_cci"
url = "land_cover/ESACCI_LCCS_{{year}}.tif"
period = [{LAND_USE_YEAR}, {LAND_USE_YEAR}]
resampling = "nearest"
version = "ESA CCI / C3S LCCS {LAND_USE_YEAR}"

[sources.climate]
kind = "cru_ts"
url = "climate/{{var}}_{FIRST_YEAR}-{LAST_YEAR}.nc"
layers = ["tmp", "pre", "pet"]
period = [{FIRST_YEAR}, {LAST_YEAR}]
resampling = "bilinear"
version = "TerraClimate (Earth Engine export)"

[sources.cover]
kind = "cover_monthly"
url = {json.dumps(cover)}
units = "1"
resampling = "bilinear"
version = "MOD13A2 NDVI share (FAO raw COV)"
"""


def converted_files(
    raw: FaoRawFolder, storage_options: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """Return the converted inputs of ``raw`` as ``{relative path: bytes}`` (with sources.toml)."""
    files: dict[str, bytes] = {"aoi.geojson": aoi_geojson(raw.aoi, raw.iso3, storage_options)}
    layers = [read_raster(u, storage_options) for u in raw.clay]
    for url, layer in zip(raw.clay[1:], layers[1:], strict=True):
        _grid_check(layers[0], layer, url, "clay")
    clay = clay_0_30([r.values[0] for r in layers], layers[0].nodata).astype(np.float32)
    finite = clay[np.isfinite(clay)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 100.0):
        raise InputValidationError(
            f"clay files {list(raw.clay)}: 0-30 cm clay {finite.min():.4g}…{finite.max():.4g} % "
            "is outside 0-100 % (CLYPPT layers must hold clay in %)"
        )
    files["clay/clay_0-30cm.tif"] = geotiff(clay, layers[0].transform, np.nan, {"units": "%"})
    lc = read_raster(raw.land_use, storage_options)
    band = land_use_band(lc, raw.land_use)
    files[f"land_cover/ESACCI_LCCS_{LAND_USE_YEAR}.tif"] = geotiff(band, lc.transform, 0, {})
    grid: Raster | None = None
    for key, (_, var, scale) in CLIMATE_FILES.items():
        values, first = gee_climate(raw.climate[key], scale, storage_options)
        if grid is not None:
            _grid_check(grid, first, raw.climate[key][0], "climate")
        grid = first
        units = "degC" if var == "tmp" else "mm/month"
        name = f"climate/{var}_{FIRST_YEAR}-{LAST_YEAR}.nc"
        files[name] = monthly_netcdf(var, units, values, first.transform)
    files["sources.toml"] = sources_toml(raw).encode()
    return files


def write_fao_inputs(
    raw: FaoRawFolder, dest: str, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Write the converted inputs of ``raw`` under ``dest``; returns ``dest/sources.toml``."""
    files = converted_files(raw, storage_options)
    if "://" not in dest:
        dest = str(Path(dest).resolve())
    fs, root = filesystem(dest, storage_options)
    root = root.rstrip("/")
    if "file" in fs.protocol or "local" in fs.protocol:
        for parent in {f"{root}/{k}".rsplit("/", 1)[0] for k in files}:
            fs.makedirs(parent, exist_ok=True)
    fs.pipe({f"{root}/{k}": v for k, v in files.items()})
    return f"{dest.rstrip('/')}/sources.toml"


def prepare_fao_inputs(
    folder: str, dest: str, *, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Convert an FAO raw-input folder into ``dest``; returns the URL of ``dest/sources.toml``."""
    return write_fao_inputs(find_fao_raw(folder, storage_options), dest, storage_options)


def fao_raw_sources(
    folder: str, dest: str, *, storage_options: Mapping[str, Any] | None = None
) -> tuple[SourcesConfig, str]:
    """Convert ``folder`` into ``dest`` and return ``(sources, region spec)`` for ``build_cube``.

    The region spec is the ISO3 code, resolved by ``resolve_region`` to the AOI polygon.
    """
    raw = find_fao_raw(folder, storage_options)
    url = write_fao_inputs(raw, dest, storage_options)
    return load_sources(url, storage_options=storage_options), raw.iso3
