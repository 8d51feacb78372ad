"""Adapters on real small files (GeoTIFF, netCDF-4, GeoJSON) in an fsspec ``memory://`` store.

No disk or network: the files are written with rasterio/h5py into memory and read back through
fsspec exactly as from S3. Bad inputs must fail with errors naming the source, URL and value.
"""

from __future__ import annotations

import io
import uuid

import fsspec
import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from pyogrio.raw import write as ogr_write
from rasterio.io import MemoryFile

from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.sources import read_country, read_source
from gsocseq.sources.spec import SourceSpec

RES = 1 / 120
BOUNDS = (-63.9, -34.4, -63.6, -34.1)


def _root() -> str:
    return f"memory://adapters-{uuid.uuid4().hex[:8]}"


def put_tif(
    url: str,
    data: np.ndarray,
    *,
    res: float = RES,
    west: float = -64.0,
    north: float = -34.0,
    crs: str = "EPSG:4326",
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": str(data.dtype),
        "crs": crs,
        "nodata": nodata,
        "transform": Affine(res, 0, west, 0, -res, north),
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data[None])
            if tags:
                dst.update_tags(**tags)
        fsspec.filesystem("memory").pipe(url, bytes(mem.read()))


def put_nc(
    url: str,
    var: str,
    values: np.ndarray,
    year: int,
    *,
    units: str,
    scale: float | None = None,
    fill: int | None = None,
    res: float = 1 / 24,
    lat_units: str = "degrees_north",
) -> None:
    nt, ny, nx = values.shape
    lat = -34.0 - (np.arange(ny) + 0.5) * res
    lon = -64.0 + (np.arange(nx) + 0.5) * res
    days = (
        pd.date_range(f"{year}-01-01", periods=nt, freq="MS") - pd.Timestamp("1900-01-01")
    ).days.values.astype(float)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        scales = []
        for name, data, u in (
            ("time", days, "days since 1900-01-01"),
            ("lat", lat, lat_units),
            ("lon", lon, "degrees_east"),
        ):
            d = h5.create_dataset(name, data=data)
            d.make_scale(name)
            d.attrs["units"] = u
            scales.append(d)
        data = values if scale is None else np.rint(np.nan_to_num(values) / scale).astype("int16")
        if fill is not None:
            data = np.where(np.isnan(values), fill, data).astype("int16")
        v = h5.create_dataset(var, data=data)
        for i, d in enumerate(scales):
            v.dims[i].attach_scale(d)
        v.attrs["units"] = units
        if scale is not None:
            v.attrs["scale_factor"] = np.float32(scale)
        if fill is not None:
            v.attrs["_FillValue"] = np.int16(fill)
    fsspec.filesystem("memory").pipe(url, buf.getvalue())


def test_soc_tagged_kg_m2_conflicts_with_declared_t_ha() -> None:
    url = f"{_root()}/soc.tif"
    put_tif(url, np.full((60, 60), 4.5, "float32"), tags={"units": "kg/m2"})
    spec = SourceSpec(name="soc", kind="gsocmap", url=url, units="t C/ha")
    with pytest.raises(InputValidationError, match=rf"'soc'.*{url}.*'kg/m2'.*'t C/ha'"):
        read_source(spec, BOUNDS)


def test_soc_declared_kg_m2_is_converted_to_t_ha() -> None:
    url = f"{_root()}/soc.tif"
    data = np.full((60, 60), 4.5, "float32")
    data[0, 0] = -9999
    put_tif(url, data, nodata=-9999)
    ds = read_source(SourceSpec(name="soc", kind="gsocmap", url=url, units="kg/m2"), BOUNDS)
    soc = ds["soc"]
    assert soc.attrs["units"] == "t C/ha"
    assert np.nanmax(soc.values) == pytest.approx(45.0)
    assert np.isnan(soc.values).sum() == 0  # the nodata corner lies outside BOUNDS + margin
    full = read_source(
        SourceSpec(name="soc", kind="gsocmap", url=url, units="kg/m2"), (-64.0, -34.5, -63.5, -34.0)
    )
    assert np.isnan(full["soc"].values[0, 0])


def test_window_reads_only_the_requested_area_with_margin() -> None:
    url = f"{_root()}/soc.tif"
    put_tif(url, np.arange(120 * 120, dtype="float32").reshape(120, 120), tags={"units": "t C/ha"})
    da = read_source(SourceSpec(name="soc", kind="gsocmap", url=url), BOUNDS)["soc"]
    # 0.3° = 36 cells, + 2 margin cells each side
    assert da.shape == (40, 40)
    assert da.latitude.values[0] == pytest.approx(-34.1 + 1.5 * RES)


def test_wrong_crs_is_a_grid_mismatch_naming_url_and_crs() -> None:
    url = f"{_root()}/soc3857.tif"
    put_tif(url, np.ones((10, 10), "float32"), res=1000.0, west=-7e6, north=-4e6, crs="EPSG:3857")
    with pytest.raises(GridMismatchError, match=rf"{url}.*EPSG:3857.*declares EPSG:4326"):
        read_source(SourceSpec(name="soc", kind="gsocmap", url=url), BOUNDS)


def test_missing_file_is_a_source_error_naming_the_url() -> None:
    url = f"{_root()}/absent.tif"
    with pytest.raises(SourceError, match=rf"source 'soc' at {url}: cannot open"):
        read_source(SourceSpec(name="soc", kind="gsocmap", url=url), BOUNDS)


def test_clay_in_g_kg_declared_percent_is_rejected_with_hint() -> None:
    root = _root()
    for depth in ("0-5cm", "5-15cm", "15-30cm"):
        put_tif(f"{root}/clay_{depth}.tif", np.full((60, 60), 250, "int16"), nodata=-32768)
    spec = SourceSpec(name="clay", kind="soilgrids", url=f"{root}/clay_{{depth}}.tif", units="%")
    with pytest.raises(InputValidationError, match=r"clay_0-5cm.tif.*250.*looks like g/kg"):
        read_source(spec, BOUNDS)


def test_clay_depth_weighted_and_converted_from_g_kg() -> None:
    root = _root()
    for depth, value in (("0-5cm", 100), ("5-15cm", 200), ("15-30cm", 400)):
        put_tif(f"{root}/clay_{depth}.tif", np.full((60, 60), value, "int16"), nodata=-32768)
    spec = SourceSpec(name="clay", kind="soilgrids", url=f"{root}/clay_{{depth}}.tif", units="g/kg")
    clay = read_source(spec, BOUNDS)["clay"].values
    # (5·10 + 10·20 + 15·40) / 30 = 28.33 %
    np.testing.assert_allclose(clay, (5 * 10 + 10 * 20 + 15 * 40) / 30)


def test_esa_codes_become_fao_classes() -> None:
    url = f"{_root()}/lc_2015.tif"
    data = np.full((60, 60), 10, "uint8")
    data[:, 30:] = 210
    put_tif(url, data, nodata=0)
    spec = SourceSpec(
        name="land_cover",
        kind="esa_cci",
        url=f"{url[:-9]}_{{year}}.tif",
        period=(2015, 2015),
        resampling="nearest",
    )
    lu = read_source(spec, (-64.0, -34.5, -63.5, -34.0))["land_use"].values
    assert lu.dtype == np.uint8
    assert set(np.unique(lu)) == {2, 11}


def _terraclimate_spec(root: str, first: int, last: int) -> SourceSpec:
    return SourceSpec(
        name="climate",
        kind="terraclimate",
        url=f"{root}/TerraClimate_{{var}}_{{year}}.nc",
        period=(first, last),
    )


def _terraclimate(root: str, years: range, tmax: float = 25.0, tmin: float = 15.0) -> SourceSpec:
    for year in years:
        shape = (12, 12, 12)
        ppt = np.full(shape, 80.0)
        ppt[:, 0, 0] = np.nan
        for var, values, units in (
            ("tmax", np.full(shape, tmax), "degC"),
            ("tmin", np.full(shape, tmin), "degC"),
            ("ppt", ppt, "mm"),
            ("pet", np.full(shape, 100.0), "mm"),
        ):
            put_nc(
                f"{root}/TerraClimate_{var}_{year}.nc", var, values, year, units=units, scale=0.1,
                fill=-32768,
            )
    return _terraclimate_spec(root, years[0], years[-1])


def test_terraclimate_mean_temperature_scale_and_fill() -> None:
    spec = _terraclimate(_root(), range(1990, 1992))
    ds = read_source(spec, (-64.0, -34.5, -63.5, -34.0))
    assert ds["tmp"].shape == (24, 12, 12)
    np.testing.assert_allclose(ds["tmp"].values, 20.0, atol=1e-6)
    assert np.isnan(ds["prec"].values[:, 0, 0]).all()
    np.testing.assert_allclose(ds["prec"].values[:, 1:, 1:], 80.0, atol=1e-4)
    assert ds["time"].values[13] == np.datetime64("1991-02-01")
    assert ds["pet"].attrs["units"] == "mm/month"


def test_missing_climate_year_names_the_file() -> None:
    root = _root()
    spec = _terraclimate(root, range(1990, 1991))
    spec = SourceSpec(**{**spec.__dict__, "period": (1990, 1991)})
    with pytest.raises(SourceError, match=rf"{root}/TerraClimate_tmax_1991.nc"):
        read_source(spec, BOUNDS)


def test_missing_netcdf_variable_is_named() -> None:
    root = _root()
    put_nc(f"{root}/TerraClimate_tmax_1990.nc", "tasmax", np.zeros((12, 4, 4)), 1990, units="degC")
    spec = _terraclimate_spec(root, 1990, 1990)
    with pytest.raises(SourceError, match=r"no variable 'tmax' \(has \['tasmax'\]\)"):
        read_source(spec, BOUNDS)


def test_projected_netcdf_coordinates_are_rejected() -> None:
    root = _root()
    put_nc(
        f"{root}/TerraClimate_tmax_1990.nc",
        "tmax",
        np.zeros((12, 4, 4)),
        1990,
        units="degC",
        lat_units="m",
    )
    spec = _terraclimate_spec(root, 1990, 1990)
    with pytest.raises(GridMismatchError, match="coordinate 'lat' has units 'm'"):
        read_source(spec, BOUNDS)


def test_cru_ts_pet_mm_per_day_to_mm_per_month() -> None:
    root = _root()
    shape = (120, 6, 6)
    for var, value, units in (
        ("tmp", 12.0, "degrees Celsius"),
        ("pre", 50.0, "mm/month"),
        ("pet", 2.0, "mm/day"),
    ):
        put_nc(
            f"{root}/cru_ts4.07.1981.1990.{var}.dat.nc",
            var,
            np.full(shape, value),
            1981,
            units=units,
            res=0.5,
        )
    spec = SourceSpec(
        name="climate",
        kind="cru_ts",
        url=f"{root}/cru_ts4.07.{{first}}.{{last}}.{{var}}.dat.nc",
        period=(1981, 1982),
        layers=("tmp", "pre", "pet"),
    )
    ds = read_source(spec, (-64.0, -35.0, -63.0, -34.0))
    assert ds["pet"].shape[0] == 24
    np.testing.assert_allclose(ds["pet"].values[:3, 0, 0], [62.0, 56.0, 62.0])
    np.testing.assert_allclose(ds["tmp"].values, 12.0)


def test_cover_percent_is_converted_and_out_of_range_rejected() -> None:
    root = _root()
    for month in range(1, 13):
        put_tif(f"{root}/cov_M{month:02d}.tif", np.full((60, 60), 5.0 * month, "float32"))
    spec = SourceSpec(
        name="cover", kind="cover_monthly", url=f"{root}/cov_M{{month:02d}}.tif", units="%"
    )
    cover = read_source(spec, BOUNDS)["cover"]
    np.testing.assert_allclose(cover.values[:, 0, 0], np.arange(1, 13) / 20.0, rtol=1e-6)
    bad = SourceSpec(name="cover", kind="cover_monthly", url=f"{root}/cov_M{{month:02d}}.tif")
    with pytest.raises(
        InputValidationError, match=r"cov_M01.tif: vegetation cover 5…5 outside 0-1"
    ):
        read_source(bad, BOUNDS)


def test_country_lookup_and_unknown_iso3() -> None:
    url = f"{_root()}/admin0.geojson"
    buf = io.BytesIO()
    geoms = np.array([shapely.to_wkb(shapely.box(-64, -35, -63, -34))], dtype=object)
    ogr_write(
        buf,
        geoms,
        [np.array(["DEM"], dtype=object)],
        ["ADM0_A3"],
        driver="GeoJSON",
        geometry_type="Polygon",
        crs="EPSG:4326",
    )
    fsspec.filesystem("memory").pipe(url, buf.getvalue())
    spec = SourceSpec(name="boundaries", kind="natural_earth", url=url, variable="ADM0_A3")
    assert read_country(spec, "dem").equals(shapely.box(-64, -35, -63, -34))
    with pytest.raises(InputValidationError, match=rf"unknown ISO3 'XYZ'.*{url}"):
        read_country(spec, "XYZ")


def test_invalid_features_sharing_a_code_are_repaired_before_their_union() -> None:
    # as in Natural Earth 1:10m: Brazil is two features under ISO_A3_EH, one a bow-tie ring that
    # GEOS refuses to union ("side location conflict") unless repaired
    url = f"{_root()}/admin0-10m.geojson"
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    assert not shapely.is_valid(bowtie)
    geoms = np.array([shapely.to_wkb(g) for g in (bowtie, shapely.box(1, -3, 3, -1))], dtype=object)
    buf = io.BytesIO()
    ogr_write(buf, geoms, [np.array(["-99", "-99"], dtype=object),
                           np.array(["BRA", "BRA"], dtype=object)], ["ISO_A3", "ISO_A3_EH"],
              driver="GeoJSON", geometry_type="Polygon", crs="EPSG:4326")
    fsspec.filesystem("memory").pipe(url, buf.getvalue())
    spec = SourceSpec(name="boundaries", kind="natural_earth", url=url)
    country = read_country(spec, "BRA")
    assert shapely.is_valid(country)
    assert country.area == pytest.approx(2.0 + 4.0)  # both triangles of the bow tie + the box


def test_rasterio_reads_through_fsspec_not_gdal_paths() -> None:
    # the memory:// scheme does not exist for GDAL: success proves the fsspec opener is used
    url = f"{_root()}/soc.tif"
    put_tif(url, np.full((60, 60), 33.0, "float32"))
    with pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(url)
    assert read_source(SourceSpec(name="soc", kind="gsocmap", url=url), BOUNDS)["soc"].mean() == 33


def test_declared_projected_crs_is_warped_to_lat_lon() -> None:
    # SoilGrids 2.0 is published in a projected CRS: declaring it reprojects on read
    url = f"{_root()}/clay_{{depth}}.tif"
    for depth, value in (("0-5cm", 300), ("5-15cm", 300), ("15-30cm", 300)):
        put_tif(
            url.format(depth=depth),
            np.full((80, 80), value, "int16"),
            res=1000.0,
            west=-7_130_000.0,
            north=-4_020_000.0,
            crs="EPSG:3857",
            nodata=-32768,
        )
    spec = SourceSpec(name="clay", kind="soilgrids", url=url, units="g/kg", crs="EPSG:3857")
    clay = read_source(spec, (-63.9, -34.4, -63.6, -34.1))["clay"]
    assert clay.size > 100
    assert -64.0 < float(clay.longitude.min()) and float(clay.latitude.max()) < -34.0
    np.testing.assert_allclose(clay.values[np.isfinite(clay.values)], 30.0)


def test_climate_file_with_dates_of_another_year_is_rejected() -> None:
    root = _root()
    for var in ("tmax", "tmin", "ppt", "pet"):
        put_nc(
            f"{root}/TerraClimate_{var}_1991.nc",
            var,
            np.ones((12, 4, 4)),
            1990,
            units="mm" if var in ("ppt", "pet") else "degC",
        )
    spec = _terraclimate_spec(root, 1991, 1991)
    with pytest.raises(SourceError, match=r"tmax_1991.nc: file for 1991 holds dates of \[1990\]"):
        read_source(spec, BOUNDS)
