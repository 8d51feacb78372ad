"""A COG assembled from parts encoded apart equals the one-piece writer's, pixel for pixel, at every level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from gsocseq.cube.grid import cell_latitudes, cell_longitudes
from gsocseq.errors import ProductValidationError
from gsocseq.products.cog import check_cog, read_levels, write_cog
from gsocseq.products.cog_parts import part_layout, write_cog_from_parts, write_part
from gsocseq.products.profiles import get_profile
from gsocseq.products.tiff_layout import read_ifds

PROFILE = get_profile("gsocseq")


def _layer(rows: int, cols: int, name: str = "T0", seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    if name == "EulerUnstableMonths":
        values = rng.integers(0, 6, (rows, cols)).astype(np.uint8)
        values[:, :70] = 255
    else:
        values = (rng.random((rows, cols)) * 80).astype(np.float32)
        values[rng.random((rows, cols)) < 0.3] = np.nan
        values[:, :70] = np.nan
    return xr.DataArray(values, name=name, dims=("latitude", "longitude"),
                        coords={"latitude": cell_latitudes(1200, 1200 + rows),
                                "longitude": cell_longitudes(3000, 3000 + cols)})


def _in_parts(data: xr.DataArray, root: Path, part_rows: int, only: set[int] | None = None,
              ) -> tuple[Path, list[str]]:
    layout = part_layout(data.shape[0], data.shape[1], PROFILE, part_rows)
    urls = [f"file://{root}/parts/part-{i:04d}.tif" for i in range(layout.n_parts)]
    for i, url in enumerate(urls):
        if only is None or i in only:
            write_part(data, layout, i, url, None, region="world", strip_rows=300)
    asset = write_cog_from_parts(data, layout, urls, f"file://{root}/asm", None, region="world")
    return Path(asset.href.removeprefix("file://")), urls


@pytest.mark.parametrize(("rows", "cols", "part_rows", "name", "levels", "parts"), [
    (1540, 600, 1024, "T0", 1, 2),                   # parts hold level 1; level 2 at assembly
    (700, 900, 512, "T0", 0, 2),                     # odd layout: every overview at assembly
    (1100, 560, 512, "EulerUnstableMonths", 0, 3),   # uint8 quality layer (predictor 2)
])
def test_parts_assemble_to_the_one_piece_cog(tmp_path: Path, rows: int, cols: int,
                                             part_rows: int, name: str, levels: int,
                                             parts: int) -> None:
    data = _layer(rows, cols, name)
    layout = part_layout(rows, cols, PROFILE, part_rows)
    assert (layout.levels, layout.n_parts) == (levels, parts)
    one = write_cog(data, str(tmp_path / "one.tif"), tags={"GSOCSEQ_REGION": "world"})
    assembled, _ = _in_parts(data, tmp_path, part_rows)
    dtype = "uint8" if name == "EulerUnstableMonths" else "float32"
    assert check_cog(assembled, profile=PROFILE, expected_shape=(rows, cols), dtype=dtype) == []
    ref, got = read_levels(one.href), read_levels(assembled)
    assert len(ref) == len(got) >= 2
    for k, (a, b) in enumerate(zip(ref, got, strict=True)):
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), f"level {k}"
    with rasterio.open(one.href) as a, rasterio.open(assembled) as b:
        assert (a.transform, a.crs, a.tags(), a.descriptions, a.units, a.block_shapes) == \
               (b.transform, b.crs, b.tags(), b.descriptions, b.units, b.block_shapes)


def test_world_layer_layout() -> None:
    layout = part_layout(21_600, 43_200, PROFILE)
    assert (layout.levels, layout.part_rows, layout.n_parts) == (2, 2048, 11)
    assert layout.rows_of(10) == (20_480, 21_600)
    odd = part_layout(21_599, 43_200, PROFILE)  # no level divides: parts of 2 048 rows, L = 0
    assert (odd.levels, odd.n_parts) == (0, 11)


def test_a_changed_part_is_the_only_one_reencoded(tmp_path: Path) -> None:
    data = _layer(1540, 600)
    first, urls = _in_parts(data, tmp_path, 1024)
    old_bytes = first.read_bytes()
    kept = Path(urls[0].removeprefix("file://")).stat().st_mtime_ns
    changed = data.copy(data=data.values.copy())
    changed.values[1100:1200, 100:300] = 7.5  # rows of part 1 only
    second, _ = _in_parts(changed, tmp_path, 1024, only={1})
    assert Path(urls[0].removeprefix("file://")).stat().st_mtime_ns == kept
    one = write_cog(changed, str(tmp_path / "one.tif"))
    for k, (a, b) in enumerate(zip(read_levels(one.href), read_levels(second), strict=True)):
        assert np.array_equal(a, b, equal_nan=True), f"level {k}"
    with open(tmp_path / "old.tif", "wb") as f:
        f.write(old_bytes)
    with open(tmp_path / "old.tif", "rb") as f, open(second, "rb") as g:
        old, new = read_ifds(f), read_ifds(g)
        same = different = 0
        for k in range(2):  # levels 0 and 1 come from the parts
            per_part = 2 if k == 0 else 1  # block rows of part 0 at this level
            blocks = per_part * -(-600 // 2**k // 512)
            for n, ((o0, n0), (o1, n1)) in enumerate(zip(old[k].tiles(), new[k].tiles(),
                                                         strict=True)):
                f.seek(o0)
                g.seek(o1)
                equal = f.read(n0) == g.read(n1)
                if n < blocks:
                    assert equal, f"level {k} block {n} of the unchanged part differs"
                    same += 1
                else:
                    different += not equal
        assert same > 0 and different > 0


def test_a_missing_part_is_named(tmp_path: Path) -> None:
    data = _layer(1540, 600)
    layout = part_layout(1540, 600, PROFILE, 1024)
    url = f"file://{tmp_path}/p0.tif"
    write_part(data, layout, 0, url, None, region="world")
    with pytest.raises(ProductValidationError, match="1 parts given, the layout has 2"):
        write_cog_from_parts(data, layout, [url], f"file://{tmp_path}/out", None, region="world")


def test_an_assembly_beyond_32_bit_offsets_is_a_bigtiff(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from gsocseq.products import tiff_layout

    monkeypatch.setattr(tiff_layout, "_CLASSIC_LIMIT", 0)  # as if the tiles needed > 4 GB
    data = _layer(1540, 600)
    one = write_cog(data, str(tmp_path / "one.tif"))
    assembled, _ = _in_parts(data, tmp_path, 1024)
    assert assembled.read_bytes()[2:4] == b"\x2b\x00"  # BigTIFF magic 43
    assert check_cog(assembled, profile=PROFILE, expected_shape=(1540, 600)) == []
    for a, b in zip(read_levels(one.href), read_levels(assembled), strict=True):
        assert np.array_equal(a, b, equal_nan=True)
