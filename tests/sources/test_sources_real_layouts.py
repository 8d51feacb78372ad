"""Sources in their real published layouts, written by the tests from each dataset's documentation.

* TerraClimate v1.1: one netCDF-4 per variable and year, ``int16`` × ``scale_factor`` with
  ``_FillValue`` = ``missing_value`` = −32768, latitude descending, ``time`` in days since 1900-01-01;
  older files name the time dimension ``day``.
* CRU TS 4.x: one gzipped netCDF-3 per variable and decade (``cru_ts4.07.1981.1990.tmp.dat.nc.gz``),
  float32, latitude ascending, ``missing_value`` = ``_FillValue`` = 9.96921e36; longitudes 0…360
  here (as some mirrors publish them) to exercise the seam.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gsocseq.cube.climate import ClimateStore, build_climate, climate_files, climate_url
from gsocseq.cube.region import resolve_region
from gsocseq.cube.regrid import regrid_to_cells
from gsocseq.errors import GridMismatchError, SourceError
from gsocseq.sources.adapters import read_source
from gsocseq.sources.readers import read_netcdf_raw
from gsocseq.sources.spec import SourceSpec

YEARS = range(1981, 2021)
TC_SCALE = {"tmax": 0.01, "tmin": 0.01, "ppt": 0.1, "pet": 0.1}
TC_UNITS = {"tmax": "degC", "tmin": "degC", "ppt": "mm", "pet": "mm"}
CRU_FILL = np.float32(9.96921e36)


def _days(years: range) -> np.ndarray:
    t = pd.date_range(f"{years[0]}-01-01", periods=12 * len(years), freq="MS") + pd.Timedelta(
        days=14
    )
    return (t - pd.Timestamp("1900-01-01")).days.values.astype("float64")


def _tc_values(var: str, year: int, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    m = np.arange(12)[:, None, None]
    base = {"tmax": 25.0, "tmin": 10.0, "ppt": 60.0, "pet": 90.0}[var]
    field = base + 3 * np.cos(2 * np.pi * m / 12) + 0.1 * (year - 1981)
    return field + 0.5 * np.sin(lat)[None, :, None] + 0.3 * np.cos(lon)[None, None, :]


def write_terraclimate(folder: Path, lat: np.ndarray, lon: np.ndarray, *, time_dim: str = "time",
                       hole: tuple[int, int] | None = None, years: range = YEARS,
                       variables: tuple[str, ...] = tuple(TC_SCALE)) -> str:
    """Write TerraClimate_{var}_{year}.nc (default 1981–2020); return the URL template."""
    folder.mkdir(parents=True, exist_ok=True)
    for var in variables:
        scale = TC_SCALE[var]
        for year in years:
            values = _tc_values(var, year, lat, lon)
            if hole is not None:
                values[:, hole[0], hole[1]] = np.nan
            da = xr.DataArray(values, dims=(time_dim, "lat", "lon"), name=var,
                              attrs={"units": TC_UNITS[var], "long_name": var})
            ds = da.to_dataset().assign_coords({
                time_dim: (time_dim, _days(range(year, year + 1)),
                           {"units": "days since 1900-01-01", "calendar": "gregorian"}),
                "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"}),
            })
            enc = {var: {"dtype": "int16", "scale_factor": scale, "add_offset": 0.0,
                         "_FillValue": np.int16(-32768), "missing_value": np.int16(-32768),
                         "zlib": True, "chunksizes": (1, lat.size, lon.size)},
                   time_dim: {"dtype": "float64"}}
            ds.to_netcdf(folder / f"TerraClimate_{var}_{year}.nc", engine="h5netcdf",
                         encoding=enc)
    return f"file://{folder}/TerraClimate_{{var}}_{{year}}.nc"


def write_cru(folder: Path, lat: np.ndarray, lon360: np.ndarray) -> str:
    """Write gzipped netCDF-3 CRU TS decade files (tmp, pre, pet); return the URL template."""
    folder.mkdir(parents=True, exist_ok=True)
    lon = np.where(lon360 > 180, lon360 - 360, lon360)
    for var in ("tmp", "pre", "pet"):
        for first in range(1981, 2021, 10):
            years = range(first, first + 10)
            values = np.concatenate([_tc_values("tmax", y, lat, lon) for y in years]).astype(
                "float32"
            )
            if var == "pet":
                values = values / 10.0
            values[:, 0, 0] = CRU_FILL  # a sea cell
            ds = xr.Dataset(
                {var: (("time", "lat", "lon"), values,
                       {"units": "mm/day" if var == "pet" else ("degC" if var == "tmp" else "mm"),
                        "missing_value": CRU_FILL, "_FillValue": CRU_FILL})},
                coords={"time": ("time", _days(years), {"units": "days since 1900-1-1"}),
                        "lat": ("lat", lat, {"units": "degrees_north"}),
                        "lon": ("lon", lon360, {"units": "degrees_east"})},
            )
            raw = ds.to_netcdf(None, engine="scipy", format="NETCDF3_64BIT",
                               encoding={var: {"_FillValue": None}})
            assert bytes(raw[:3]) == b"CDF"
            name = f"cru_ts4.07.{first}.{first + 9}.{var}.dat.nc.gz"
            (folder / name).write_bytes(gzip.compress(bytes(raw)))
    return f"file://{folder}/cru_ts4.07.{{first}}.{{last}}.{{var}}.dat.nc.gz"


def _grid(west: float, south: float, east: float, north: float, res: float, *,
          lat_ascending: bool = False) -> tuple[np.ndarray, np.ndarray]:
    lat = np.arange(north - res / 2, south, -res)
    lon = np.arange(west + res / 2, east, res)
    return (lat[::-1] if lat_ascending else lat), lon


@pytest.fixture(scope="module")
def terraclimate(tmp_path_factory: pytest.TempPathFactory) -> str:
    lat, lon = _grid(-64.0, -35.0, -63.0, -34.0, 1 / 24)
    return write_terraclimate(tmp_path_factory.mktemp("tc"), lat, lon, hole=(10, 10))


def test_terraclimate_packing_decoded_in_float64(tmp_path: Path) -> None:
    lat, lon = _grid(-64.0, -35.0, -63.0, -34.0, 1 / 24)
    template = write_terraclimate(tmp_path, lat, lon, hole=(10, 10), years=range(1990, 1991),
                                  variables=("ppt",))
    url = template.format(var="ppt", year=1990)
    win = read_netcdf_raw(url, "ppt", (-63.8, -34.8, -63.2, -34.2), source="climate")
    with xr.open_dataset(url.removeprefix("file://"), engine="h5netcdf",
                         mask_and_scale=False) as ds:
        raw = ds["ppt"].values
        scale = ds["ppt"].attrs["scale_factor"]
        assert raw.dtype == np.int16 and ds["lat"].values[0] > ds["lat"].values[-1]
    i0 = int(np.flatnonzero(ds["lat"].values == win.latitude[0])[0])
    j0 = int(np.flatnonzero(ds["lon"].values == win.longitude[0])[0])
    expect = raw[:, i0, j0].astype(np.float64) * scale
    np.testing.assert_array_equal(win.values[:, 0, 0], expect)
    assert np.isnan(win.values[:, 10 - i0, 10 - j0]).all()  # _FillValue → NaN
    assert win.latitude[0] > win.latitude[-1]  # latitude order kept


@pytest.mark.slow  # 160 files written and read (≈ 1 min on 2 cores)
def test_climate_store_equals_direct_regridding(terraclimate: str, tmp_path: Path) -> None:
    """The store (read once per file, regridded per tile) gives the numbers a direct read gives."""
    spec = SourceSpec(name="climate", kind="terraclimate", url=terraclimate, period=(1981, 2020),
                      version="1.1")
    region = resolve_region("-63.9,-34.9,-63.1,-34.1", tile_size=60)
    cube = (tmp_path / "c.zarr").as_uri()
    build_climate(region, spec, cube)
    files = climate_files(spec)
    assert len(files) == 160 and len({f.url for f in files}) == 160
    store = ClimateStore(cube)
    for tile in region.tiles:
        got = store.read_tile(tile)
        direct = read_source(spec, tile.bounds)
        for name in ("tmp", "prec", "pet"):
            da = direct[name]
            want = regrid_to_cells("bilinear", da.values, da.latitude.values,
                                   da.longitude.values, tile)
            assert got[name].dtype == np.float32 and got[name].shape == (60, 60, 480)
            np.testing.assert_array_equal(got[name], want)
    # stored at the source's resolution: 1/24° cells, not 30″ cells
    g = xr.open_zarr(climate_url(cube), consolidated=False, zarr_format=3)
    assert g["tmax"].dtype == np.int16 and g["tmax"].shape[3] < 60


def test_older_terraclimate_day_dimension(tmp_path: Path) -> None:
    lat, lon = _grid(-64.0, -35.0, -63.5, -34.5, 1 / 24)
    url = write_terraclimate(tmp_path, lat, lon, time_dim="day", years=range(2001, 2002),
                             variables=("tmax",))
    win = read_netcdf_raw(url.format(var="tmax", year=2001), "tmax", (-63.9, -34.9, -63.6, -34.6))
    assert win.values.shape[0] == 12
    assert win.time is not None and (win.time.astype("datetime64[Y]").astype(int) == 31).all()


def test_cru_gzipped_netcdf3_with_0_360_longitudes(tmp_path: Path) -> None:
    lat, _ = _grid(0.0, -2.0, 1.0, 2.0, 0.5, lat_ascending=True)
    lon360 = np.concatenate([np.arange(0.25, 3.0, 0.5), np.arange(357.25, 360.0, 0.5)])
    url = write_cru(tmp_path, lat, lon360)
    spec = SourceSpec(name="climate", kind="cru_ts", url=url, period=(1981, 2020))
    win = read_netcdf_raw(spec.format_url(var="tmp", first=1981, last=1990), "tmp",
                          (-1.0, -1.0, 1.0, 1.0), source="climate")
    assert np.all(np.diff(win.longitude) > 0) and win.longitude.min() < 0 < win.longitude.max()
    lon = np.where(lon360 > 180, lon360 - 360, lon360)
    j = int(np.flatnonzero(np.isclose(win.longitude, -0.25))[0])
    i = int(np.flatnonzero(np.isclose(win.latitude, 0.25))[0])
    expect = _tc_values("tmax", 1981, np.array([0.25]), np.array([-0.25]))[:, 0, 0]
    np.testing.assert_allclose(win.values[:12, i, j], expect.astype("float32"), rtol=0)
    assert lon.size == 12
    region = resolve_region("-0.9,-0.9,0.9,0.9", tile_size=120)  # crosses the 0°/360° seam
    cube = (tmp_path / "c.zarr").as_uri()
    build_climate(region, spec, cube)
    out = ClimateStore(cube).read_tile(region.tiles[0])
    assert np.isfinite(out["tmp"]).all() and np.isfinite(out["pet"]).all()
    # pet mm/day × days of the month (January 1981: 31 days)
    pet_store = ClimateStore(cube).native(region.tiles[0])[0]["pet"]
    assert np.nanmax(pet_store) < 5  # stored as published (mm/day)
    assert out["pet"][0, 0, 0] > 31 * 1.5


def test_cru_missing_value_is_nodata(tmp_path: Path) -> None:
    lat, _ = _grid(0.0, -1.0, 1.0, 1.0, 0.5, lat_ascending=True)
    url = write_cru(tmp_path, lat, np.arange(0.25, 2.0, 0.5))
    win = read_netcdf_raw(url.format(var="pre", first=2011, last=2020), "pre",
                          (0.0, -1.0, 2.0, 1.0))
    assert np.isnan(win.values[:, 0, 0]).all() and np.isfinite(win.values[:, 1:, 1:]).all()


@pytest.mark.slow
def test_climate_file_on_another_grid_is_named(terraclimate: str, tmp_path: Path) -> None:
    folder = Path(terraclimate.removeprefix("file://")).parent
    shutil.copytree(folder, tmp_path / "a")
    url = f"file://{tmp_path}/a/TerraClimate_{{var}}_{{year}}.nc"
    # one file of the series on another grid (1/20° instead of 1/24°)
    bad_lat, bad_lon = _grid(-64.0, -35.0, -63.0, -34.0, 1 / 20)
    write_terraclimate(tmp_path / "b", bad_lat, bad_lon, years=range(1995, 1996),
                       variables=("ppt",))
    (tmp_path / "a" / "TerraClimate_ppt_1995.nc").write_bytes(
        (tmp_path / "b" / "TerraClimate_ppt_1995.nc").read_bytes()
    )
    spec = SourceSpec(name="climate", kind="terraclimate", url=url, period=(1981, 2020))
    region = resolve_region("-63.9,-34.9,-63.6,-34.6", tile_size=60)
    with pytest.raises(GridMismatchError, match=r"TerraClimate_ppt_1995\.nc.*another grid"):
        build_climate(region, spec, (tmp_path / "c.zarr").as_uri())
    # nothing half-done is taken for finished: that file is not marked stored
    with pytest.raises(SourceError, match=r"\d+ source file\(s\) not stored"):
        ClimateStore((tmp_path / "c.zarr").as_uri())


def test_climate_period_too_short_is_named(tmp_path: Path) -> None:
    spec = SourceSpec(name="climate", kind="terraclimate", url=str(tmp_path / "x_{var}_{year}.nc"),
                      period=(1990, 2020))
    with pytest.raises(Exception, match=r"period \(1990, 2020\) does not cover 1981-2020"):
        climate_files(spec)


def test_not_netcdf_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.nc"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(SourceError, match=r"x\.nc: not a netCDF-3 or netCDF-4 file"):
        read_netcdf_raw(bad.as_uri(), "ppt", (0, 0, 1, 1))


# --- SoilGrids 2.0: a VRT per layer over Homolosine GeoTIFF sub-tiles, ISRIC's own WKT ----------

ISRIC_WKT = (
    'PROJCS["Homolosine",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AUTHORITY["EPSG","4326"]],PROJECTION["Interrupted_Goode_Homolosine"],UNIT["Meter",1]]'
)


def write_soilgrids(folder: Path, depth: str, value: int) -> None:
    """clay_{depth}_mean.vrt over two 250 m sub-tiles (int16 g/kg, nodata −32768, ISRIC WKT)."""
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True, exist_ok=True)
    x0, y0, res, n = -7_100_000.0, -3_770_000.0, 250.0, 300  # 64.5–63.5 W, 33.9–34.6 S
    sources = []
    for k in range(2):
        data = np.full((n, n), value + k, np.int16)
        data[:3, :3] = -32768
        name = f"clay_{depth}_mean/tileSG-{k:03d}.tif"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(folder / name, "w", driver="GTiff", width=n, height=n, count=1,
                           dtype="int16", crs=ISRIC_WKT, nodata=-32768, tiled=True,
                           blockxsize=128, blockysize=128, compress="deflate",
                           transform=from_origin(x0 + k * n * res, y0, res, res)) as dst:
            dst.write(data, 1)
        sources.append(
            f'<ComplexSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>'
            f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{n}" ySize="{n}"/>'
            f'<DstRect xOff="{k * n}" yOff="0" xSize="{n}" ySize="{n}"/><NODATA>-32768</NODATA>'
            "</ComplexSource>"
        )
    vrt = (
        f'<VRTDataset rasterXSize="{2 * n}" rasterYSize="{n}"><SRS>{ISRIC_WKT}</SRS>'
        f"<GeoTransform>{x0}, {res}, 0, {y0}, 0, {-res}</GeoTransform>"
        '<VRTRasterBand dataType="Int16" band="1"><NoDataValue>-32768</NoDataValue>'
        + "".join(sources) + "</VRTRasterBand></VRTDataset>"
    )
    (folder / f"clay_{depth}_mean.vrt").write_text(vrt)


def test_soilgrids_vrt_with_isric_wkt_is_read_as_esri_54052(tmp_path: Path) -> None:
    from rangeserver import RangeServer

    for depth, value in (("0-5cm", 200), ("5-15cm", 300), ("15-30cm", 400)):
        write_soilgrids(tmp_path, depth, value)
    with RangeServer(tmp_path) as http:
        for base in (f"file://{tmp_path}", http.url):
            spec = SourceSpec(name="clay", kind="soilgrids", units="g/kg", crs="ESRI:54052",
                              url=f"{base}/clay_{{depth}}_mean.vrt", nodata=-32768,
                              layers=("0-5cm", "5-15cm", "15-30cm"))
            clay = read_source(spec, (-64.2, -34.4, -63.8, -34.1))["clay"]
            v = clay.values[np.isfinite(clay.values)]
            # (5·20 + 10·30 + 15·40)/30 % on the first sub-tile, +0.1 % on the second
            assert v.size and np.all((v > 33.3 - 1e-6) & (v < 33.4 + 1e-6))
        assert http.requests["/clay_0-5cm_mean.vrt"] >= 1
    bad = SourceSpec(name="clay", kind="soilgrids", units="g/kg", crs="EPSG:3857",
                     url=f"file://{tmp_path}/clay_{{depth}}_mean.vrt")
    with pytest.raises(GridMismatchError, match=r"clay_0-5cm_mean\.vrt.*declares EPSG:3857"):
        read_source(bad, (-64.2, -34.4, -63.8, -34.1))


def test_soilgrids_vrt_opened_once_per_worker_not_per_tile_and_layer(tmp_path: Path) -> None:
    """Five tile windows × three depth VRTs: each VRT fetched once, each byte about once."""
    from concurrent.futures import ThreadPoolExecutor

    from rangeserver import RangeServer

    from gsocseq.sources.readers import RASTERS

    for depth, value in (("0-5cm", 200), ("5-15cm", 300), ("15-30cm", 400)):
        write_soilgrids(tmp_path, depth, value)
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    windows = [(-64.3 + 0.1 * i, -34.4, -64.2 + 0.1 * i, -34.1) for i in range(5)]

    def read_all(url: str, threads: int = 1, fresh: bool = False) -> list[np.ndarray]:
        spec = SourceSpec(name="clay", kind="soilgrids", units="g/kg", crs="ESRI:54052",
                          url=f"{url}/clay_{{depth}}_mean.vrt", nodata=-32768,
                          layers=("0-5cm", "5-15cm", "15-30cm"))

        def read(w: tuple[float, float, float, float]) -> np.ndarray:
            if fresh:  # nothing kept open, nothing in GDAL's HTTP cache
                RASTERS.clear()
            return read_source(spec, w)["clay"].values

        with ThreadPoolExecutor(threads) as pool:  # dask threads share the open datasets
            return list(pool.map(read, windows))

    kept = RASTERS.size
    try:
        RASTERS.size = 0  # baseline: every read opens the VRT (and its sub-tiles) again
        with RangeServer(tmp_path) as http:
            want = read_all(http.url, fresh=True)
            per_open = http.requests["/clay_0-5cm_mean.vrt"] // len(windows)
            base_vrt = {k: v for k, v in http.requests.items() if k.endswith(".vrt")}
            base_bytes = sum(http.bytes_sent.values())
        RASTERS.size = kept
        RASTERS.clear()
        opens = RASTERS.opens
        with RangeServer(tmp_path) as http:
            got = read_all(http.url, threads=4)
            vrt = {k: v for k, v in http.requests.items() if k.endswith(".vrt")}
            sent = sum(http.bytes_sent.values())
            # one open per run (its HEAD and GET), not one per tile
            assert len(vrt) == 3 and set(vrt.values()) == {per_open}
            assert RASTERS.opens - opens == 3
            read_all(http.url)  # more tiles: no new open, no byte read twice
            assert {k: v for k, v in http.requests.items() if k.endswith(".vrt")} == vrt
            assert sum(http.bytes_sent.values()) == sent
    finally:
        RASTERS.size = kept
        RASTERS.clear()
    assert set(base_vrt.values()) == {per_open * len(windows)}  # the baseline: once per tile
    assert sent <= 1.2 * size < base_bytes
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


# --- ESA CCI LC v2.0.7: one GeoTIFF, one band per year 1992–2015 ----------------------------------


def test_esa_cci_band_per_year(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from gsocseq.sources.landcover import esa_to_fao

    path = tmp_path / "ESACCI-LC-L4-LCCS-Map-300m-P1Y-1992_2015-v2.0.7.tif"
    codes = [10, 130, 30, 60]  # 1992 cropland … 2015 tree cover after a cycle
    with rasterio.open(path, "w", driver="GTiff", width=120, height=120, count=24, dtype="uint8",
                       crs="EPSG:4326", nodata=0,
                       transform=from_origin(-64.0, -34.0, 1 / 360, 1 / 360)) as dst:
        for band in range(1, 25):
            dst.write(np.full((120, 120), codes[(band - 1) % 4], np.uint8), band)
    bounds = (-63.9, -34.25, -63.8, -34.1)
    spec = SourceSpec(name="land_cover", kind="esa_cci", url=str(path), period=(2015, 2015),
                      first_band_year=1992, bands=24, resampling="nearest")
    lu = read_source(spec, bounds)["land_use"].values
    assert (lu == esa_to_fao(np.array([codes[(24 - 1) % 4]]))[0]).all()  # band 24 = 2015
    lu_1993 = read_source(SourceSpec(**{**spec.__dict__, "period": (1993, 1993)}), bounds)
    assert (lu_1993["land_use"].values == esa_to_fao(np.array([130]))[0]).all()
    with pytest.raises(SourceError, match=r"has 24 band\(s\), the source declares 1.*first_band_year"):
        read_source(SourceSpec(name="land_cover", kind="esa_cci", url=str(path),
                               period=(2015, 2015)), bounds)
    with pytest.raises(Exception, match=r"year 2016 is not in the file's bands 1992…2015"):
        read_source(SourceSpec(**{**spec.__dict__, "period": (2016, 2016)}), bounds)


# --- Natural Earth admin-0: a zipped shapefile; ISO_A3, ISO_A3_EH, ADM0_A3 --------------------


def test_natural_earth_zipped_shapefile_lookup_says_which_attribute(tmp_path: Path) -> None:
    import zipfile

    import shapely
    from pyogrio.raw import write

    from gsocseq.sources.boundaries import country_codes, lookup_country

    shp = tmp_path / "shp"
    shp.mkdir()
    geoms = np.array([shapely.to_wkb(shapely.box(x, 0, x + 1, 1)) for x in (0, 1, 2)],
                     dtype=object)
    columns = [np.array(v, dtype=object) for v in (
        ["-99", "KEN", "-99"],    # ISO_A3: -99 for South Sudan's and France's rows here
        ["SSD", "KEN", "FRA"],    # ISO_A3_EH
        ["SDS", "KEN", "FRA"],    # ADM0_A3: Natural Earth's own code for South Sudan
    )]
    write(str(shp / "ne_10m_admin_0_countries.shp"), geoms, columns,
          fields=["ISO_A3", "ISO_A3_EH", "ADM0_A3"], geometry_type="Polygon", crs="EPSG:4326",
          driver="ESRI Shapefile")
    zipped = tmp_path / "ne_10m_admin_0_countries.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for f in shp.iterdir():
            z.write(f, f.name)
    spec = SourceSpec(name="boundaries", kind="natural_earth", url=str(zipped))
    geom, field = lookup_country(spec, "KEN")
    assert field == "ISO_A3" and geom.equals(shapely.box(1, 0, 2, 1))
    geom, field = lookup_country(spec, "ssd")
    assert field == "ISO_A3_EH" and geom.equals(shapely.box(0, 0, 1, 1))
    assert lookup_country(spec, "SDS")[1] == "ADM0_A3"
    assert country_codes(spec) == ["FRA", "KEN", "SSD"]  # one per country (a world publishes each once)
    with pytest.raises(Exception, match=r"unknown ISO3 'XYZ'.*ISO_A3.*ne_10m_admin_0_countries"):
        lookup_country(spec, "XYZ")
