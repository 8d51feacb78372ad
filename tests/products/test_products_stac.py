"""STAC items, collection and catalog: schema-valid, deterministic, merged, odc-loadable."""

import json
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import pytest
import xarray as xr
from odc.geo.geobox import GeoBox

from gsocseq.cube.grid import RES_DEG, TileKey, cell_latitudes, cell_longitudes
from gsocseq.errors import InputValidationError, ProductValidationError
from gsocseq.products import stac
from gsocseq.products.cog import write_region_cogs
from gsocseq.products.stac import (
    END_DATETIME,
    START_DATETIME,
    Provenance,
    build_item,
    collection_id,
    read_catalog,
    write_catalog,
)
from gsocseq.products.stac_schemas import offline_validator, schema_problems
from gsocseq.vocabulary import LAYERS, MONTECARLO_LAYERS

SCHEMAS = Path(__file__).resolve().parents[2] / "tests" / "data" / "stac-schemas"
PROV = Provenance(
    code_version="0.1.0",
    scheme="exact",
    config_hash="3f2a9c",
    inputs={"soc": "s3://inputs/gsocmap/v1.6.1", "climate": "s3://inputs/terraclimate/2024"},
)


def region_dataset(row0, col0, rows=120, cols=240, seed=0):
    rng = np.random.default_rng(seed)
    coords = {
        "latitude": cell_latitudes(row0, row0 + rows),
        "longitude": cell_longitudes(col0, col0 + cols),
    }
    layers = {}
    for i, name in enumerate(LAYERS):
        values = rng.uniform(-5, 80, size=(rows, cols)).astype(np.float32) + i
        values[rows // 2 :, : cols // 3] = np.nan
        layers[name] = (("latitude", "longitude"), values)
    return xr.Dataset(layers, coords=coords)


def bbox_of(ds):
    return [
        float(ds.longitude[0]) - RES_DEG / 2,
        float(ds.latitude[-1]) - RES_DEG / 2,
        float(ds.longitude[-1]) + RES_DEG / 2,
        float(ds.latitude[0]) + RES_DEG / 2,
    ]


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("products")
    ds = {"ARG": region_dataset(12000, 14400), "URY": region_dataset(14000, 14640, seed=1)}
    assets = {r: write_region_cogs(d, r, str(root / "cogs")) for r, d in ds.items()}
    return root, ds, assets


@pytest.fixture(scope="module")
def validator():
    return offline_validator(SCHEMAS)


def test_item_is_schema_valid_with_projection_raster_file_and_provenance(products, validator):
    _, ds, assets = products
    item = build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)
    d = item.to_dict()
    assert schema_problems(d, validator) == []
    assert sorted(d["stac_extensions"]) == sorted(
        [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        ]
    )
    props = d["properties"]
    assert props["datetime"] is None
    assert props["start_datetime"] == "2021-01-01T00:00:00Z"
    assert props["end_datetime"] == "2040-12-31T23:59:59Z"
    assert props["proj:code"] == "EPSG:4326"
    assert props["proj:shape"] == [120, 240]
    assert props["proj:transform"] == [RES_DEG, 0.0, -60.0, 0.0, -RES_DEG, -10.0]
    assert props["proj:bbox"] == pytest.approx([-60.0, -11.0, -58.0, -10.0])
    assert props["gsocseq:scheme"] == "exact" and props["gsocseq:config_hash"] == "3f2a9c"
    assert props["gsocseq:inputs"]["soc"] == "s3://inputs/gsocmap/v1.6.1"
    assert props["gsocseq:code_version"] == "0.1.0"
    assert list(d["assets"]) == list(LAYERS)
    t0 = d["assets"]["T0"]
    assert t0["type"] == pystac.MediaType.COG and t0["roles"] == ["data"]
    assert t0["raster:bands"][0]["nodata"] == "nan"
    assert t0["raster:bands"][0]["data_type"] == "float32"
    assert t0["raster:bands"][0]["unit"] == "t C/ha"
    assert d["assets"]["RSR_SSM1_Uncertainty"]["raster:bands"][0]["unit"] == "%"
    a0 = assets["ARG"][0]
    assert (t0["file:size"], t0["file:checksum"]) == (a0.size, a0.checksum)
    json.dumps(d, allow_nan=False)  # strict JSON: no NaN anywhere


def test_items_are_deterministic_and_tile_items_are_named_by_tile(products):
    _, ds, assets = products
    a = build_item("ARG", assets["ARG"], bbox=None, provenance=PROV).to_dict()
    b = build_item("ARG", assets["ARG"], bbox=None, provenance=PROV).to_dict()
    assert a == b
    assert a["bbox"] == pytest.approx(bbox_of(ds["ARG"]))
    tile = TileKey(50, 60)
    item = build_item("GLB", assets["ARG"][:3], bbox=tile.bounds, provenance=PROV, tile=tile)
    assert item.id == "GLB-t240_r050_c060" and item.properties["gsocseq:tile"] == tile.id
    assert item.geometry["coordinates"][0][0] == [tile.bounds[0], tile.bounds[1]]


def test_bad_item_arguments_are_refused(products):
    _, _, assets = products
    with pytest.raises(InputValidationError, match="no assets"):
        build_item("ARG", [], bbox=None, provenance=PROV)
    with pytest.raises(InputValidationError, match="duplicate"):
        build_item("ARG", assets["ARG"][:1] * 2, bbox=None, provenance=PROV)
    with pytest.raises(InputValidationError, match="bbox"):
        build_item("ARG", assets["ARG"], bbox=[0, 0, -1, 1], provenance=PROV)
    with pytest.raises(InputValidationError, match="scheme"):
        Provenance("0.1.0", "exact scheme", "h")
    with pytest.raises(InputValidationError, match="config_hash"):
        Provenance("0.1.0", "fao", "")


def test_catalog_is_valid_merged_on_rerun_and_written_last(products, validator, monkeypatch):
    root, ds, assets = products
    out = str(root / "stac")
    order = []
    original = stac.put_bytes
    monkeypatch.setattr(
        stac, "put_bytes", lambda url, *a: (order.append(url), original(url, *a))
    )
    items = [build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)]
    url = write_catalog(items, out, provenance=PROV, schemas_dir=SCHEMAS)
    assert url == f"{out}/catalog.json"
    assert items[0].get_self_href() == f"{out}/gsocseq-v1.1-exact/ARG/ARG.json"
    assert items[0].assets["T0"].get_absolute_href() == assets["ARG"][0].href
    assert [Path(u).name for u in order] == ["ARG.json", "collection.json", "catalog.json"]
    order.clear()
    uy = build_item("URY", assets["URY"], bbox=bbox_of(ds["URY"]), provenance=PROV)
    write_catalog([uy], out, provenance=PROV, schemas_dir=SCHEMAS)
    # the root catalog's bytes do not change when an item joins the collection: not rewritten
    assert [Path(u).name for u in order] == ["URY.json", "collection.json"]
    arg_again = build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)
    write_catalog([arg_again], out, provenance=PROV, schemas_dir=SCHEMAS)

    cat = read_catalog(url)
    coll = cat.get_child(collection_id(PROV))
    assert isinstance(coll, pystac.Collection) and coll.id == "gsocseq-v1.1-exact"
    assert sorted(i.id for i in coll.get_items()) == ["ARG", "URY"]
    assert coll.license == "CC-BY-4.0"
    assert coll.extent.temporal.intervals == [[START_DATETIME, END_DATETIME]]
    west, south, east, north = coll.extent.spatial.bboxes[0]
    assert (west, north) == pytest.approx((-60.0, -10.0))
    assert (south, east) == pytest.approx((90 - 14120 * RES_DEG, -180 + 14880 * RES_DEG))
    assert coll.summaries.get_list("gsocseq:region") == ["ARG", "URY"]
    assert set(coll.item_assets) == set(LAYERS)
    assert [p.name for p in coll.providers] == ["FAO Global Soil Partnership", "gsocseq"]
    for path in Path(out).rglob("*.json"):
        doc = json.loads(path.read_text())
        assert schema_problems(doc, validator, str(path)) == []
        assert not any(link["rel"] == "self" for link in doc["links"])
    assert not list(Path(out).rglob("*.tmp-*"))
    arg = json.loads((Path(out) / "gsocseq-v1.1-exact" / "ARG" / "ARG.json").read_text())
    assert arg["assets"]["T0"]["href"] == "../../../cogs/ARG/ARG_GSOCseq_T0_Map030.tif"


def test_monte_carlo_layers_join_the_collection_item_assets(products, validator, tmp_path):
    """A Monte Carlo run's collection describes its 36 extra layers; one joining a collection made
    by a brackets run adds them; both stay valid against the offline schemas."""
    _, ds, assets = products
    mc_prov = Provenance(code_version="0.1.0", scheme="exact", config_hash="77aa01",
                         uncertainty={"method": "montecarlo", "draws": 100, "seed": 0})
    coll = stac.build_collection(mc_prov, bbox_of(ds["ARG"]))
    assert list(coll.item_assets) == [*LAYERS, *MONTECARLO_LAYERS]
    sd = coll.item_assets["ASR_BAU_MCsd"].to_dict()
    assert sd["raster:bands"][0]["unit"] == MONTECARLO_LAYERS["ASR_BAU_MCsd"].units
    assert sd["raster:bands"][0]["data_type"] == "float32" and sd["description"]
    out = str(tmp_path / "stac")
    write_catalog([build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)],
                  out, provenance=PROV, schemas_dir=SCHEMAS)
    path = Path(out) / "gsocseq-v1.1-exact" / "collection.json"
    assert set(json.loads(path.read_text())["item_assets"]) == set(LAYERS)
    write_catalog([build_item("URY", assets["URY"], bbox=bbox_of(ds["URY"]),
                              provenance=mc_prov)], out, provenance=mc_prov, schemas_dir=SCHEMAS)
    doc = json.loads(path.read_text())
    assert list(doc["item_assets"]) == [*LAYERS, *MONTECARLO_LAYERS]
    assert schema_problems(doc, validator, str(path)) == []
    write_catalog([build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)],
                  out, provenance=PROV, schemas_dir=SCHEMAS)  # a brackets rerun keeps them
    assert json.loads(path.read_text())["item_assets"] == doc["item_assets"]


def test_catalog_rewrite_is_byte_identical(products, tmp_path):
    _, ds, assets = products
    outs = []
    for name in ("a", "b"):
        item = build_item("ARG", assets["ARG"], bbox=bbox_of(ds["ARG"]), provenance=PROV)
        write_catalog([item], str(tmp_path / name), provenance=PROV, schemas_dir=SCHEMAS)
        outs.append((tmp_path / name / "gsocseq-v1.1-exact" / "collection.json").read_text())
    assert outs[0] == outs[1]


def test_invalid_item_is_refused_before_anything_is_written(products, tmp_path):
    _, _, assets = products
    item = build_item("ARG", assets["ARG"], bbox=None, provenance=PROV)
    item.assets["T0"].extra_fields["file:checksum"] = "not-hex!"
    with pytest.raises(ProductValidationError, match="file:checksum"):
        write_catalog([item], str(tmp_path / "stac"), provenance=PROV, schemas_dir=SCHEMAS)
    assert not (tmp_path / "stac").exists()


def test_odc_stac_loads_the_values_back_on_the_exact_grid(products):
    root, ds, assets = products
    out = str(root / "stac-odc")
    items = [
        build_item(r, assets[r], bbox=bbox_of(ds[r]), provenance=PROV) for r in ("ARG", "URY")
    ]
    url = write_catalog(items, out, provenance=PROV, schemas_dir=SCHEMAS)
    loaded = list(read_catalog(url).get_items(recursive=True))
    by_id = {i.id: i for i in loaded}
    for region in ("ARG", "URY"):
        src = ds[region]
        a = assets[region][0]
        geobox = GeoBox(a.shape, stac_affine(a.transform), "EPSG:4326")
        got = odc.stac.load([by_id[region]], bands=["T0", "RSR_SSM3_Uncertainty"], geobox=geobox)
        assert got.sizes == {"time": 1, "latitude": 120, "longitude": 240}
        assert str(got.time.values[0])[:10] == "2021-01-01"
        for band in ("T0", "RSR_SSM3_Uncertainty"):
            np.testing.assert_array_equal(got[band].isel(time=0).values, src[band].values)
        np.testing.assert_allclose(got.latitude.values, src.latitude.values, atol=1e-9)


def stac_affine(t):
    from affine import Affine

    return Affine(*t)
