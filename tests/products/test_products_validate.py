"""Product validation: every broken product (schema, checksum, file, completeness) is reported."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gsocseq.cube.grid import cell_latitudes, cell_longitudes
from gsocseq.errors import ProductValidationError
from gsocseq.products.cog import write_region_cogs
from gsocseq.products.stac import Provenance, build_item, read_catalog, write_catalog
from gsocseq.products.validate import resolve_href, validate_products, validate_stac
from gsocseq.vocabulary import LAYERS, fao_file_name

SCHEMAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "stac-schemas"
PROV = Provenance("0.1.0", "fao", "cafe01", {"soc": "file:///inputs/soc.zarr"})
ITEM = Path("gsocseq-v1.1-fao") / "KEN" / "KEN.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    rng = np.random.default_rng(7)
    coords = {"latitude": cell_latitudes(10800, 10920), "longitude": cell_longitudes(25200, 25440)}
    ds = xr.Dataset(
        {n: (("latitude", "longitude"), rng.random((120, 240), dtype=np.float32)) for n in LAYERS},
        coords=coords,
    )
    assets = write_region_cogs(ds, "KEN", str(root / "cogs"))
    item = build_item("KEN", assets, bbox=None, provenance=PROV)
    write_catalog([item], str(root / "stac"), provenance=PROV, schemas_dir=SCHEMAS)
    return root


@pytest.fixture
def products(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "p")
    return tmp_path / "p"


def edit_item(root, change):
    path = root / "stac" / ITEM
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def check(root, **kwargs):
    return validate_products(str(root / "stac"), schemas_dir=SCHEMAS, **kwargs)


def test_valid_products_pass_and_report_what_was_checked(products):
    report = check(products, regions=["KEN"])
    assert report.ok, report.summary()
    assert (report.n_documents, report.n_items, report.n_assets) == (3, 1, 29)
    assert "valid" in report.summary()
    report.raise_for_problems()
    assert validate_stac(str(products / "stac" / "catalog.json"), schemas_dir=SCHEMAS) == []
    cat = read_catalog(str(products / "stac" / "catalog.json"))
    assert validate_stac(cat, schemas_dir=SCHEMAS) == []


def test_missing_proj_code_is_reported(products):
    edit_item(products, lambda d: d["properties"].pop("proj:code"))
    report = check(products)
    assert [p for p in report.problems if "proj:code" in p] == [
        f"{products / 'stac' / ITEM}: proj:code is None, expected 'EPSG:4326'"
    ]
    with pytest.raises(ProductValidationError, match="proj:code"):
        report.raise_for_problems()


def test_wrong_checksum_and_size_are_reported(products):
    def change(d):
        d["assets"]["ASR_BAU"]["file:checksum"] = "1220" + "0" * 64
        d["assets"]["RSR_SSM2"]["file:size"] += 1

    edit_item(products, change)
    problems = check(products).problems
    assert len(problems) == 2
    assert "asset ASR_BAU" in problems[0] and "checksum is 1220" in problems[0]
    assert "asset RSR_SSM2" in problems[1] and "size is" in problems[1]


def test_schema_violations_are_reported_with_their_path(products):
    def change(d):
        d["properties"]["proj:shape"] = [120.5, 240]
        d["assets"]["T0"]["raster:bands"][0]["data_type"] = "float33"

    edit_item(products, change)
    problems = "\n".join(check(products).problems)
    assert "properties/proj:shape/0: 120.5 is not of type 'integer'" in problems
    assert "assets/T0/raster:bands/0/data_type: 'float33' is not one of" in problems
    doc = json.loads((products / "stac" / ITEM).read_text())
    assert len(validate_stac(doc, schemas_dir=SCHEMAS)) == 2


def test_missing_corrupt_and_incomplete_products_are_reported(products):
    cogs = products / "cogs" / "KEN"
    (cogs / fao_file_name("KEN", "T0")).unlink()
    (cogs / fao_file_name("KEN", "RSR_SSM1")).write_bytes(b"not a tiff at all")
    edit_item(products, lambda d: d["assets"].pop("ASR_SSM3_Uncertainty"))
    report = check(products, regions=["KEN", "TZA"])
    text = "\n".join(report.problems)
    assert "asset T0" in text and "file does not exist" in text
    assert "asset RSR_SSM1" in text and "cannot be read as a GeoTIFF" in text
    assert "missing layer assets ['ASR_SSM3_Uncertainty']" in text
    assert "no item for region(s) ['TZA']" in text
    assert report.n_assets == 28


def test_leftover_temporary_files_are_reported(products):
    stale = products / "cogs" / "KEN" / f"{fao_file_name('KEN', 'T0')}.tmp-0123abcd"
    stale.write_bytes(b"half a file")
    (products / "stac" / "catalog.json.tmp-77").write_text("{")
    problems = check(products).problems
    assert len(problems) == 2
    assert f"cogs/KEN: leftover temporary file {stale.name}" in problems[0]
    assert "stac: leftover temporary file catalog.json.tmp-77" in problems[1]


def test_missing_catalog_and_broken_links_are_reported(products, tmp_path):
    missing = f"{tmp_path / 'nothing' / 'stac'}/catalog.json"
    assert check(tmp_path / "nothing").problems == (f"{missing}: no catalog",)
    (products / "stac" / ITEM).unlink()
    problems = check(products).problems
    assert len(problems) == 1 and "KEN.json: cannot be read" in problems[0]


def test_resolve_href_on_urls_and_paths():
    assert resolve_href("s3://b/stac/c/i/i.json", "../../../cogs/a.tif") == "s3://b/cogs/a.tif"
    assert resolve_href("memory://x/stac/catalog.json", "./c/collection.json") == (
        "memory://x/stac/c/collection.json"
    )
    local = resolve_href("/data/stac/catalog.json", "c/collection.json")
    assert local == "/data/stac/c/collection.json"
    assert resolve_href("/data/stac/catalog.json", "s3://other/x.tif") == "s3://other/x.tif"
