"""COG writer: valid (strict) Cloud-Optimised GeoTIFFs on the global grid, written atomically."""

import hashlib
import os

import dask.array
import fsspec
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from fsspec.implementations.memory import MemoryFileSystem
from rio_cogeo.cogeo import cog_validate

from gsocseq.cube.grid import RES_DEG, cell_latitudes, cell_longitudes
from gsocseq.errors import GridMismatchError, InputValidationError, ProductValidationError
from gsocseq.products import cog
from gsocseq.products.cog import (
    check_cog,
    cog_url,
    grid_transform,
    layer_description,
    write_cog,
    write_region_cogs,
)
from gsocseq.vocabulary import LAYERS, fao_file_name

ROW0, COL0 = 12000, 14400  # global cell offsets: north edge 10°S, west edge 60°W


def layer(name="T0", rows=120, cols=240, row0=ROW0, col0=COL0, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.uniform(10, 90, size=(rows, cols)).astype(np.float32)
    values[:7, :11] = np.nan
    return xr.DataArray(
        values,
        dims=("latitude", "longitude"),
        coords={
            "latitude": cell_latitudes(row0, row0 + rows),
            "longitude": cell_longitudes(col0, col0 + cols),
        },
        name=name,
    )


def region_dataset(rows=120, cols=240):
    return xr.Dataset(
        {name: layer(name, rows, cols, seed=i) for i, name in enumerate(LAYERS)}
        | {"reason": xr.zeros_like(layer("T0", rows, cols), dtype=np.uint8).rename("reason")}
    )


def described(a):
    return (a.layer, a.href, a.size, a.checksum, a.shape, a.transform, a.units, a.description)


@pytest.fixture
def memfs():
    fs = MemoryFileSystem()
    root = f"/cogtest-{os.getpid()}-{id(fs)}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_write_cog_is_a_strict_cog_with_overviews_nodata_and_aligned_grid(tmp_path):
    data = layer("ASR_SSM2", rows=700, cols=1300)
    url = f"file://{tmp_path}/ARG_GSOCseq_ASR_SSM2_Map030.tif"
    asset = write_cog(data, url, tags={"GSOCSEQ_REGION": "ARG"})
    path = tmp_path / "ARG_GSOCseq_ASR_SSM2_Map030.tif"
    valid, errors, warnings = cog_validate(str(path), strict=True, quiet=True)
    assert (valid, errors, warnings) == (True, [], [])
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
        assert src.block_shapes[0] == (512, 512)
        assert src.compression.name.upper() == "DEFLATE"
        assert src.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
        assert src.crs.to_epsg() == 4326
        t = src.transform
        assert t.a == RES_DEG and t.e == -RES_DEG
        assert (t.c + 180) / RES_DEG == pytest.approx(COL0, abs=1e-9)
        assert (90 - t.f) / RES_DEG == pytest.approx(ROW0, abs=1e-9)
        assert src.units == ("t C/ha/yr",)
        assert src.tags()["GSOCSEQ_LAYER"] == "ASR_SSM2"
        assert src.tags()["GSOCSEQ_REGION"] == "ARG"
        np.testing.assert_array_equal(src.read(1), data.values)  # NaN == NaN here
        overview = src.read(1, out_shape=(350, 650))
    expected_ov = data.values[:700, :1300].reshape(350, 2, 650, 2)
    np.testing.assert_allclose(overview[4:, 6:], expected_ov.mean(axis=(1, 3))[4:, 6:], rtol=1e-5)
    assert np.isnan(overview[0, 0])
    raw = path.read_bytes()
    assert asset.size == len(raw)
    assert asset.checksum == "1220" + hashlib.sha256(raw).hexdigest()
    assert asset.shape == (700, 1300) and asset.units == LAYERS["ASR_SSM2"]
    assert asset.transform == tuple(t)[:6]
    assert asset.bbox == pytest.approx((-60.0, -10 - 700 * RES_DEG, -60 + 1300 * RES_DEG, -10.0))
    assert np.isnan(asset.nodata) and asset.description == layer_description("ASR_SSM2")
    assert sorted(os.listdir(tmp_path)) == ["ARG_GSOCseq_ASR_SSM2_Map030.tif"]


def test_same_data_gives_byte_identical_files(memfs):
    fs, root = memfs
    a = write_cog(layer(), f"memory://{root}/a.tif")
    b = write_cog(layer(), f"memory://{root}/b.tif")
    assert a.checksum == b.checksum and a.size == b.size
    assert fs.cat(f"{root}/a.tif") == fs.cat(f"{root}/b.tif")


def test_ascending_latitudes_and_dask_strips_give_the_same_file(memfs, monkeypatch):
    fs, root = memfs
    ref = write_cog(layer(), f"memory://{root}/ref.tif")
    monkeypatch.setattr(cog, "STRIP_ROWS", 16)
    flipped = layer().isel(latitude=slice(None, None, -1))
    lazy = flipped.copy(data=dask.array.from_array(flipped.values, chunks=(25, 100)))
    got = write_cog(lazy, f"memory://{root}/lazy.tif")
    assert got.checksum == ref.checksum


def test_upload_goes_through_a_temporary_key_then_a_move(memfs, monkeypatch):
    fs, root = memfs
    url = f"memory://{root}/out/T0.tif"
    moves = []
    original_mv = MemoryFileSystem.mv

    def spy_mv(self, path1, path2, **kwargs):
        moves.append((path1, path2, self.exists(path1), self.exists(path2)))
        return original_mv(self, path1, path2, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "mv", spy_mv)
    write_cog(layer(), url)
    [(src, dst, src_existed, dst_existed)] = moves
    assert dst == f"{root}/out/T0.tif"
    assert src.startswith(f"{dst}.tmp-") and src_existed and not dst_existed
    assert fs.ls(f"{root}/out", detail=False) == [f"{root}/out/T0.tif"]


def test_failed_validation_uploads_nothing_and_lists_every_problem(memfs, monkeypatch):
    fs, root = memfs
    monkeypatch.setattr(cog, "check_cog", lambda *a, **k: ["problem one", "problem two"])
    with pytest.raises(ProductValidationError, match="problem one\n- problem two"):
        write_cog(layer(), f"memory://{root}/x/T0.tif")
    assert not fs.exists(f"{root}/x")


def test_check_cog_reports_a_plain_striped_geotiff(tmp_path):
    path = tmp_path / "plain.tif"
    data = np.zeros((600, 700), dtype=np.float64)
    transform = Affine(RES_DEG, 0.0, -60.001, 0.0, -RES_DEG, -10.0)
    with rasterio.open(
        path, "w", driver="GTiff", height=600, width=700, count=1, dtype="float64",
        crs="EPSG:3857", transform=transform, nodata=-9999,
    ) as dst:
        dst.write(data, 1)
    problems = "\n".join(check_cog(path, profile=cog.get_profile("gsocseq")))
    for expected in ("not tiled", "overviews", "float64", "nodata is -9999", "EPSG:4326",
                     "west edge is not on the global", "compression is NONE"):
        assert expected in problems
    assert check_cog(tmp_path / "missing.tif")[0].startswith("cannot be read")


@pytest.mark.parametrize(
    ("shift_lat", "shift_lon", "match"),
    [(0.0, RES_DEG / 2, "longitude is not a cell centre"),
     (RES_DEG / 3, 0.0, "latitude is not a cell centre")],
)
def test_misaligned_layers_are_refused(shift_lat, shift_lon, match):
    data = layer()
    data = data.assign_coords(
        latitude=data.latitude + shift_lat, longitude=data.longitude + shift_lon
    )
    with pytest.raises(GridMismatchError, match=match):
        grid_transform(data)


def test_irregular_spacing_and_bad_inputs_are_refused(memfs):
    fs, root = memfs
    data = layer()
    lon = data.longitude.values.copy()
    lon[5:] += RES_DEG
    with pytest.raises(GridMismatchError, match="must step by"):
        grid_transform(data.assign_coords(longitude=lon))
    with pytest.raises(InputValidationError, match="product layer name"):
        write_cog(data.rename("soc"), f"memory://{root}/a.tif")
    with pytest.raises(InputValidationError, match="floating point"):
        write_cog(data.fillna(0).astype(np.int16), f"memory://{root}/a.tif")
    with pytest.raises(InputValidationError, match="dims"):
        write_cog(data.expand_dims(time=1), f"memory://{root}/a.tif")
    with pytest.raises(InputValidationError, match="region"):
        cog_url("memory://x", "../ARG", "T0")
    assert not fs.exists(root)


def test_region_cogs_use_fao_names_and_rerun_rewrites_nothing(tmp_path):
    ds = region_dataset()
    prefix = f"file://{tmp_path}/products"
    assets = write_region_cogs(ds, "ARG", prefix)
    assert [a.layer for a in assets] == list(LAYERS)
    files = sorted(p.name for p in (tmp_path / "products" / "ARG").iterdir())
    assert files == sorted(fao_file_name("ARG", name) for name in LAYERS)
    assert "ARG_GSOCseq_T0_UncertaintyMap030.tif" in files
    for a in assets:
        assert a.href == f"{prefix}/ARG/{fao_file_name('ARG', a.layer)}"
        assert check_cog(a.href.removeprefix("file://")) == []
        with rasterio.open(a.href.removeprefix("file://")) as src:
            np.testing.assert_array_equal(src.read(1), ds[a.layer].values)
    mtimes = {p: os.stat(p).st_mtime_ns for p in (tmp_path / "products" / "ARG").iterdir()}
    again = write_region_cogs(ds, "ARG", prefix)
    assert [described(a) for a in again] == [described(a) for a in assets]
    assert {p: os.stat(p).st_mtime_ns for p in mtimes} == mtimes
    write_region_cogs(ds[["T0"]], "ARG", prefix, skip_existing=False)
    t0 = tmp_path / "products" / "ARG" / fao_file_name("ARG", "T0")
    assert os.stat(t0).st_mtime_ns != mtimes[t0]


def test_an_invalid_existing_file_is_rewritten(memfs):
    fs, root = memfs
    ds = region_dataset()[["T0", "RSR_SSM1"]]
    prefix = f"memory://{root}/products"
    first = write_region_cogs(ds, "BRA", prefix)
    fs.pipe(f"{root}/products/BRA/{fao_file_name('BRA', 'T0')}", b"not a tiff")
    second = write_region_cogs(ds, "BRA", prefix)
    assert [a.checksum for a in second] == [a.checksum for a in first]
    assert fs.cat(f"{root}/products/BRA/{fao_file_name('BRA', 'T0')}")[:2] in (b"II", b"MM")
    assert len(fsspec.filesystem("memory").ls(f"{root}/products/BRA")) == 2


@pytest.mark.parametrize(
    ("profile", "codec"), [("gsocseq-zstd", "ZSTD"), ("gsocseq-fast", "DEFLATE")]
)
def test_every_registered_profile_writes_a_valid_cog(tmp_path, profile, codec):
    data = layer("AbsDiff_SSM1", rows=600, cols=700)
    asset = write_cog(data, str(tmp_path / "x.tif"), profile=profile)
    assert check_cog(tmp_path / "x.tif", profile=cog.get_profile(profile)) == []
    with rasterio.open(tmp_path / "x.tif") as src:
        assert src.compression.name.upper() == codec and src.overviews(1) == [2]
        np.testing.assert_array_equal(src.read(1), data.values)
    assert asset.href == str(tmp_path / "x.tif")
