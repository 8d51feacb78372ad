"""FAO raw-input folders: file discovery, unit conversions, clay weighting, CCI → FAO classes.

Every expectation is computed by hand from the values written into tiny synthetic GeoTIFFs.
"""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyogrio.raw import write as ogr_write

from gsocseq.cube.region import resolve_region
from gsocseq.errors import GridMismatchError, InputValidationError, SourceError
from gsocseq.pipeline import run_fao_inputs
from gsocseq.sources.adapters import read_source
from gsocseq.sources.fao_raw import (
    LAND_USE_YEAR,
    Raster,
    band_months,
    clay_0_30,
    fao_raw_sources,
    find_fao_raw,
    land_use_band,
    prepare_fao_inputs,
)

RES = 1 / 120  # 30″
WEST, NORTH = -61.0, -33.5
BOUNDS = (WEST, NORTH - 6 * RES, WEST + 6 * RES, NORTH)
CLAY_LAYERS = (10.0, 20.0, 30.0, 40.0)  # sl1…sl4, %
ESA_CODES = (10, 130, 190, 210, 12, 20)  # → FAO 2, 3, 1, 11, 12, 13


def _tif(path: Path, bands: np.ndarray, res: float, nodata=None, names=None, crs="EPSG:4326"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
        count=bands.shape[0], dtype=bands.dtype, crs=crs, nodata=nodata,
        transform=Affine(res, 0, WEST, 0, -res, NORTH),
    ) as dst:
        dst.write(bands)
        for i, name in enumerate(names or [], start=1):
            dst.set_band_description(i, name)


def _climate_raw(year: int, month: int) -> float:
    """Raw GEE value of a month: tens = year index, units = month (e.g. 1990-07 → 97)."""
    return 10.0 * (year - 1981) + month


def write_raw_folder(root: Path, *, name: str = "XYZ_AB", last_year: int = 2020) -> Path:
    """Write a tiny FAO raw folder: 6×6 cells of 30″, climate on 2×2 cells of 0.05°."""
    aoi = root / "AOI_POLYGON" / f"{name}.shp"
    aoi.parent.mkdir(parents=True)
    poly = shapely.box(WEST + RES, NORTH - 5 * RES, WEST + 5 * RES, NORTH - RES)
    ogr_write(str(aoi), np.array([shapely.to_wkb(poly)], dtype=object), [np.array([name], object)],
              ["NAME"], driver="ESRI Shapefile", geometry_type="Polygon", crs="EPSG:4326")
    _tif(root / "SOC_MAP" / "GSOCmap_1.6.1.tif", np.full((1, 6, 6), 55.0, "float32"), RES)
    for i, value in enumerate(CLAY_LAYERS, start=1):
        layer = np.full((1, 6, 6), value, "int16")
        layer[0, 0, 0] = 255 if i == 3 else value  # nodata in sl3 only → NaN in the 0-30 cm clay
        _tif(root / "CLAY" / f"CLYPPT_M_sl{i}_250m_ll.tif", layer, RES, nodata=255)
    for prefix, var, dtype in (("AverageTemperature", "tmmx", "float32"),
                               ("Precipitation", "pr", "int16"), ("PET", "pet", "int16")):
        for first, last in ((1981, 2000), (2001, last_year)):
            months = [(y, m) for y in range(first, last + 1) for m in range(1, 13)]
            bands = np.array([np.full((2, 2), _climate_raw(y, m)) for y, m in months], dtype)
            names = [f"{y}{m:02d}_{var}" for y, m in months]
            end = last + 1 if first == 1981 else last
            _tif(root / "TERRA_CLIMATE" / f"{prefix}_{first}-{end}.tif", bands, 0.05, names=names)
    for month in range(1, 13):
        cov = np.full((1, 6, 6), month / 20.0, "float32")
        _tif(root / "COV" / f"{name}_NDVI_2015-2020_prop_gt04_M{month:02d}.tif", cov, RES,
             nodata=float("nan"))
    years = range(2016, 2021)
    lc = np.zeros((5, 6, 6), "uint8")
    lc[-1, 0, :] = ESA_CODES  # 2020: the row of test codes
    lc[:-1] = 50  # earlier years: trees, must not be used
    _tif(root / "LAND_USE" / "Raw CCI Land cover" / f"{name}_C3S-LC-L4-LCCS-Map-300m_2016-2020.tif",
         lc, RES, names=[f"lccs_class_{y}" for y in years])
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The synthetic folder and the URL of its converted sources.toml."""
    base = tmp_path_factory.mktemp("fao_raw")
    raw = write_raw_folder(base / "raw")
    return raw, prepare_fao_inputs(str(raw), str(base / "inputs"))


def test_clay_weights_are_the_fao_script_weights() -> None:
    # (1·10 + 4·20 + 10·30 + 15·40) / 30 = 990 / 30 = 33 %
    out = clay_0_30([np.array([10.0, 10.0]), np.array([20.0, 20.0]), np.array([30.0, 255.0]),
                     np.array([40.0, 40.0])], nodata=255)
    assert out[0] == pytest.approx(33.0)
    assert np.isnan(out[1])
    with pytest.raises(InputValidationError, match="expected 4 layers"):
        clay_0_30([np.ones(2)] * 3)


def test_find_names_the_aoi_and_iso3(prepared: tuple[Path, str]) -> None:
    raw = find_fao_raw(str(prepared[0]))
    assert raw.name == "XYZ_AB" and raw.iso3 == "XYZ"
    assert [Path(u).name for u in raw.climate["PET"]] == ["PET_1981-2001.tif", "PET_2001-2020.tif"]
    assert Path(raw.cover[6]).name.endswith("_M07.tif")


def test_climate_converted_to_degc_and_mm(prepared: tuple[Path, str]) -> None:
    sources, region = fao_raw_sources(str(prepared[0]), str(Path(prepared[1]).parent))
    assert region == "XYZ"
    clim = read_source(sources["climate"], BOUNDS, sources.storage_options)
    assert clim["tmp"].shape == (480, 2, 2)
    # 1990-07: raw 97 → 9.7 °C (×0.1), 97 mm precipitation (×1), 9.7 mm PET (×0.1)
    idx = (1990 - 1981) * 12 + 6
    assert str(clim["time"].values[idx])[:7] == "1990-07"
    np.testing.assert_allclose(clim["tmp"].values[idx], 9.7, rtol=1e-6)
    np.testing.assert_allclose(clim["prec"].values[idx], 97.0, rtol=1e-6)
    np.testing.assert_allclose(clim["pet"].values[idx], 9.7, rtol=1e-6)
    # 2020-12 comes from the second file: raw 10·39 + 12 = 402 → 40.2 °C
    np.testing.assert_allclose(clim["tmp"].values[-1], 40.2, rtol=1e-6)
    assert clim["pet"].attrs["units"] == "mm/month"


def test_clay_soc_cover_and_land_use(prepared: tuple[Path, str]) -> None:
    sources, _ = fao_raw_sources(str(prepared[0]), str(Path(prepared[1]).parent))
    so = sources.storage_options
    clay = read_source(sources["clay"], BOUNDS, so)["clay"].values
    assert clay[1, 1] == pytest.approx(33.0) and np.isnan(clay[0, 0])
    soc = read_source(sources["soc"], BOUNDS, so)["soc"].values
    np.testing.assert_allclose(soc, 55.0)
    cover = read_source(sources["cover"], BOUNDS, so)["cover"].values
    np.testing.assert_allclose(cover[:, 2, 2], np.arange(1, 13) / 20.0, rtol=1e-6)
    lu = read_source(sources["land_cover"], BOUNDS, so)["land_use"].values
    np.testing.assert_array_equal(lu[0], [2, 3, 1, 11, 12, 13])
    assert set(np.unique(lu[1:])) == {0}  # 2020 band read: no ESA 50 (FAO 4) of 2016-2019


def test_region_is_the_aoi_polygon(prepared: tuple[Path, str]) -> None:
    sources, iso3 = fao_raw_sources(str(prepared[0]), str(Path(prepared[1]).parent))
    region = resolve_region(iso3, sources, tile_size=60)
    np.testing.assert_allclose(region.bbox, (WEST + RES, NORTH - 5 * RES, WEST + 5 * RES,
                                             NORTH - RES))
    assert resolve_region("XYZ_AB", sources, tile_size=60).name == "XYZ"
    mask = region.mask(region.tiles[0])
    assert mask.sum() == 16  # the 4 × 4 cells inside the box


def test_missing_climate_years_are_named(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw", last_year=2018)
    with pytest.raises(InputValidationError, match=r"year\(s\) \[2019, 2020\]") as info:
        prepare_fao_inputs(str(raw), str(tmp_path / "inputs"))
    assert "AverageTemperature_2001-2018.tif" in str(info.value)


def test_missing_dataset_names_folder_and_pattern(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw")
    (raw / "CLAY" / "CLYPPT_M_sl2_250m_ll.tif").unlink()
    with pytest.raises(SourceError, match=r"no clay sl2 file matching 'CLAY/CLYPPT_M_sl2_\*\.tif'"):
        find_fao_raw(str(raw))


def test_aoi_name_must_start_with_iso3(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw", name="12_AB")
    with pytest.raises(InputValidationError, match="'12_AB' does not start with an ISO3"):
        _ = find_fao_raw(str(raw)).iso3


def test_band_months_from_names_or_file_name() -> None:
    named = Raster(np.zeros((2, 1, 1)), Affine.identity(), None, ("198112_pr", "198201_pr"))
    assert band_months(named, "x/P.tif") == [(1981, 12), (1982, 1)]
    unnamed = Raster(np.zeros((13, 1, 1)), Affine.identity(), None, (None,) * 13)
    assert band_months(unnamed, "x/PET_2001-2020.tif")[-1] == (2002, 1)
    with pytest.raises(InputValidationError, match="no years"):
        band_months(unnamed, "x/PET.tif")


def test_land_use_year_missing_is_an_error() -> None:
    stack = Raster(np.zeros((2, 1, 1)), Affine.identity(), None,
                   ("lccs_class_2015", "lccs_class_2016"))
    with pytest.raises(InputValidationError, match=f"no band for year {LAND_USE_YEAR}"):
        land_use_band(stack, "lc.tif")


def test_other_crs_rejected(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw")
    clay = raw / "CLAY" / "CLYPPT_M_sl4_250m_ll.tif"
    _tif(clay, np.full((1, 6, 6), 40, "int16"), RES, crs="EPSG:3857")
    with pytest.raises(GridMismatchError, match=r"CLYPPT_M_sl4_250m_ll.tif: CRS is EPSG:3857"):
        prepare_fao_inputs(str(raw), str(tmp_path / "inputs"))


def test_climate_on_another_grid_rejected(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw")
    pet = raw / "TERRA_CLIMATE" / "PET_2001-2020.tif"
    months = [(y, m) for y in range(2001, 2021) for m in range(1, 13)]
    _tif(pet, np.zeros((240, 3, 3), "int16"), 0.05, names=[f"{y}{m:02d}_pet" for y, m in months])
    with pytest.raises(GridMismatchError, match="PET_2001-2020.tif is on another grid"):
        prepare_fao_inputs(str(raw), str(tmp_path / "inputs"))


def test_two_soc_maps_are_ambiguous(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw")
    _tif(raw / "SOC_MAP" / "national_soc.tif", np.full((1, 6, 6), 50.0, "float32"), RES)
    with pytest.raises(InputValidationError, match=r"2 SOC map files match 'SOC_MAP/\*\.tif'"):
        find_fao_raw(str(raw))


def test_run_rejects_fixed_fields(prepared: tuple[Path, str], tmp_path: Path) -> None:
    with pytest.raises(InputValidationError, match=r"\['scheme'\] cannot be given"):
        run_fao_inputs(str(prepared[0]), str(tmp_path), scheme="exact")


def test_folder_and_inputs_on_an_object_store(prepared: tuple[Path, str]) -> None:
    fs = fsspec.filesystem("memory")
    for path in Path(prepared[0]).rglob("*"):
        if path.is_file():
            fs.pipe(f"/fao/raw/{path.relative_to(prepared[0])}", path.read_bytes())
    sources, iso3 = fao_raw_sources("memory://fao/raw", "memory://fao/inputs")
    assert iso3 == "XYZ" and sources["soc"].url.startswith("memory://")
    clim = read_source(sources["climate"], BOUNDS, sources.storage_options)
    np.testing.assert_allclose(clim["pet"].values[0], 0.1, rtol=1e-6)  # 1981-01: raw 1 × 0.1 mm
    lu = read_source(sources["land_cover"], BOUNDS, sources.storage_options)["land_use"].values
    np.testing.assert_array_equal(lu[0], [2, 3, 1, 11, 12, 13])


def test_clay_in_g_per_kg_is_rejected(tmp_path: Path) -> None:
    raw = write_raw_folder(tmp_path / "raw")
    for i in range(1, 5):  # g/kg instead of %: 300 in every layer → 300 "%"
        _tif(raw / "CLAY" / f"CLYPPT_M_sl{i}_250m_ll.tif", np.full((1, 6, 6), 300, "int16"), RES,
             nodata=255)
    with pytest.raises(InputValidationError, match=r"CLYPPT_M_sl1_250m_ll.tif.*300…300 % is outside"):
        prepare_fao_inputs(str(raw), str(tmp_path / "inputs"))
