"""Inputs declared as data: the shipped sources.toml, parsing, overrides and their errors."""

from __future__ import annotations

from importlib import resources

import pytest

from gsocseq.errors import InputValidationError, SourceError
from gsocseq.sources import DATASETS, load_sources, parse_sources
from gsocseq.sources.spec import SourceSpec, apply_overrides

MINIMAL = """
[regions]
demo = "DEM"
[sources.boundaries]
kind = "natural_earth"
url = "b/admin0.geojson"
[sources.soc]
kind = "gsocmap"
url = "soc.tif"
units = "t C/ha"
[sources.clay]
kind = "soilgrids"
url = "s3://bucket/clay_{depth}.tif"
layers = ["0-5cm", "5-15cm", "15-30cm"]
[sources.land_cover]
kind = "esa_cci"
url = "lc_{year}.tif"
period = [2015, 2015]
resampling = "nearest"
[sources.climate]
kind = "terraclimate"
url = "TerraClimate_{var}_{year}.nc"
period = [1981, 2020]
[sources.cover]
kind = "cover_monthly"
url = "cover_M{month:02d}.tif"
"""


def test_shipped_sources_are_real_public_datasets() -> None:
    cfg = load_sources()
    assert {s.name for s in cfg.specs} == set(DATASETS)
    assert cfg["climate"].url.startswith("https://climate.northwestknowledge.net/")
    assert cfg["climate"].format_url(var="ppt", year=1990).endswith("TerraClimate_ppt_1990.nc")
    assert cfg["clay"].units == "g/kg" and cfg["clay"].layers == ("0-5cm", "5-15cm", "15-30cm")
    assert cfg["land_cover"].resampling == "nearest"
    assert cfg["boundaries"].variable == ""  # ISO_A3, ISO_A3_EH, ADM0_A3 in turn
    assert cfg["soc"].url.endswith("fao-maps-catalog-data/geonetwork/gsoc/GSOCmap/GSOCmap1.5.0.tif")
    assert cfg["soc"].version == "1.5.0" and cfg["climate"].version == "1.1"
    assert cfg["land_cover"].kind == "stac"  # the band-per-year file is the documented alternative


def test_relative_urls_resolve_against_the_toml_directory() -> None:
    cfg = parse_sources(MINIMAL, "s3://b/world/sources.toml", base="s3://b/world")
    assert cfg["soc"].url == "s3://b/world/soc.tif"
    assert cfg["clay"].url == "s3://bucket/clay_{depth}.tif"  # absolute stays
    assert cfg["land_cover"].period == (2015, 2015)
    assert cfg.region_alias("demo") == "DEM"
    assert cfg.region_alias("nope") is None


def test_overrides_by_url_and_by_fields() -> None:
    cfg = load_sources(
        overrides={
            "soc": "s3://mine/soc.tif",
            "clay": {"url": "memory://c_{depth}.tif", "units": "%"},
        }
    )
    assert cfg["soc"].url == "s3://mine/soc.tif"
    assert cfg["soc"].units == "t C/ha"  # untouched fields kept
    assert cfg["clay"].units == "%" and cfg["clay"].url == "memory://c_{depth}.tif"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [({"sooc": "x.tif"}, "unknown dataset 'sooc'"), ({"soc": {"unit": "kg"}}, "unknown key")],
)
def test_bad_overrides_name_the_problem(overrides, needle) -> None:
    with pytest.raises(InputValidationError, match=needle):
        load_sources(overrides=overrides)


def test_missing_dataset_is_named() -> None:
    text = MINIMAL.replace(
        '[sources.cover]\nkind = "cover_monthly"\nurl = "cover_M{month:02d}.tif"', ""
    )
    with pytest.raises(InputValidationError, match=r"missing dataset\(s\) \['cover'\]"):
        parse_sources(text, "x/sources.toml")


def test_unknown_kind_and_resampling_are_rejected() -> None:
    with pytest.raises(InputValidationError, match="unknown kind 'geotiff'"):
        SourceSpec(name="soc", kind="geotiff", url="a.tif")
    with pytest.raises(InputValidationError, match="unknown resampling 'cubic'"):
        SourceSpec(name="soc", kind="gsocmap", url="a.tif", resampling="cubic")


def test_template_with_missing_field_names_the_template() -> None:
    spec = SourceSpec(name="climate", kind="terraclimate", url="T_{var}_{year}.nc")
    with pytest.raises(InputValidationError, match=r"T_\{var\}_\{year\}\.nc"):
        spec.format_url(var="ppt")


def test_missing_sources_file_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="memory://nowhere/sources.toml"):
        load_sources("memory://nowhere/sources.toml")


def test_invalid_toml_is_named() -> None:
    with pytest.raises(InputValidationError, match="bad.toml: invalid TOML"):
        parse_sources("[sources.soc\nkind=", "bad.toml")


def test_optional_soc_uncertainty_is_declared_or_added_by_override() -> None:
    cfg = parse_sources(MINIMAL, "s3://b/world/sources.toml", base="s3://b/world")
    assert "soc_uncertainty" not in cfg and cfg.optional() == ()
    text = MINIMAL + ('[sources.soc_uncertainty]\nkind = "gsocmap_uncertainty"\n'
                      'url = "soc_unc.tif"\nunits = "%"\n')
    declared = parse_sources(text, "s3://b/world/sources.toml", base="s3://b/world")
    assert declared.optional() == ("soc_uncertainty",)
    assert declared["soc_uncertainty"].url == "s3://b/world/soc_unc.tif"
    assert "gsocmap_uncertainty" in declared.versions()["soc_uncertainty"]
    added = apply_overrides(cfg, {"soc_uncertainty": {
        "kind": "gsocmap_uncertainty", "url": "s3://b/u.tif", "units": "t C/ha"}})
    assert added["soc_uncertainty"].units == "t C/ha" and added.optional() == ("soc_uncertainty",)
    assert apply_overrides(declared, {"soc_uncertainty": "s3://b/v.tif"})[
        "soc_uncertainty"].url == "s3://b/v.tif"
    with pytest.raises(InputValidationError, match="optional"):  # a bare URL has no kind/units
        apply_overrides(cfg, {"soc_uncertainty": "s3://b/u.tif"})
    with pytest.raises(InputValidationError, match="expected kind = 'gsocmap_uncertainty'"):
        apply_overrides(cfg, {"soc_uncertainty": {"kind": "gsocmap", "url": "s3://b/u.tif"}})
    # the shipped file documents the entry, commented out: nothing changes without it
    assert "# [sources.soc_uncertainty]" in (
        resources.files("gsocseq.sources").joinpath("sources.toml").read_text())
