"""Incremental rebuild: a changed source recomputes only the tiles it changed, bytes as a full rebuild.

Real demo runs on file:// (tile 60, synchronous, no brackets): a first run, then the SOC raster is
rewritten with a change inside one tile's window (as a provider republishing a corrected file), the
same ``--out`` is run again, and the result is compared with a from-scratch run on the changed
inputs. File mtimes are the "object timestamps" on this store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import rasterio
from rasterio.windows import from_bounds

from flows.report import RegionReport, render_markdown
from gsocseq.config import RunConfig
from gsocseq.cube.fingerprint import file_key, source_key
from gsocseq.cube.grid import TileKey
from gsocseq.pipeline import run
from gsocseq.pipeline.completeness import check_run, find_manifests
from gsocseq.pipeline.summary import format_summary
from gsocseq.sources.spec import SourceSpec

pytestmark = pytest.mark.slow

SOC = "demo-inputs/soc/GSOCmap_demo.tif"
#: Bookkeeping every run may rewrite (leases) — never data.
LEASES = ".lease"


def _config(out: Path) -> RunConfig:
    return RunConfig(region="demo", out=f"file://{out}", tile_size=60, cluster="synchronous",
                     uncertainty=False)


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(LEASES)}


def _sums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _change_soc(path: Path, tile: TileKey, delta: float = 5.0) -> None:
    """Rewrite the SOC GeoTIFF (same profile) with ``delta`` t C/ha added inside ``tile``.

    Five source cells in from the tile's edges, so no neighbour's window sees the change.
    """
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read(1)
        w = from_bounds(*tile.bounds, transform=src.transform).round_offsets().round_lengths()
    r0, c0 = int(w.row_off) + 5, int(w.col_off) + 5
    r1, c1 = int(w.row_off + w.height) - 5, int(w.col_off + w.width) - 5
    block = data[r0:r1, c0:c1]
    block[block != profile["nodata"]] += delta
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {k for k, v in after.items() if before.get(k) != v}


def test_changed_soc_recomputes_one_tile_and_equals_a_full_rebuild(tmp_path: Path) -> None:
    out = tmp_path / "incremental"
    first = run(_config(out), progress=False)
    assert first.ok and len(first.tiles_done) == 6
    tiles = sorted(first.tiles_done)
    target = TileKey.from_id(tiles[1])

    # a rerun with nothing changed reuses everything and writes nothing
    before = _mtimes(out)
    again = run(_config(out), progress=False)
    assert again.tiles_done == () and len(again.tiles_skipped) == 6
    assert _changed(before, _mtimes(out)) == set()
    assert again.reuse["inputs"]["cube_tiles_rebuilt"] == []

    _change_soc(out / SOC, target)
    before = _mtimes(out)
    second = run(_config(out), progress=False)
    assert second.ok and second.published
    assert second.tiles_done == (target.id,)
    assert sorted(second.tiles_skipped) == [t for t in tiles if t != target.id]
    reuse = second.reuse
    assert reuse["inputs"]["sources_changed"] == ["soc"]
    assert reuse["inputs"]["cube_tiles_rebuilt"] == [target.id]
    # a whole-file key is coarse: every tile's SOC window is re-read and compared, one differs
    assert sorted(reuse["inputs"]["cube_tiles_checked"]) == tiles
    assert reuse["inputs"]["fingerprints"]["soc"] == ["size+mtime"]
    assert reuse["tiles"] == {"computed": [target.id], "reused": sorted(second.tiles_skipped)}
    assert reuse["publication"]["changed_tiles"] == [target.id]
    assert "T0" in reuse["publication"]["layers_rewritten"]
    assert second.t0_stock_mt > first.t0_stock_mt  # +5 t C/ha on one tile's cells
    text = format_summary(second)
    assert f"rebuilt 1: {target.id}" in text and "reused: 5 tile(s)" in text
    md = render_markdown("rerun", "here", [RegionReport.from_pipeline(second)])
    assert "## Reused from earlier runs" in md and "| demo | soc | 6 / 1 | 5 / 1 |" in md

    changed = _changed(before, _mtimes(out))
    assert [check_run(m) for m in find_manifests(f"file://{out}")] == [[]]
    run_dir = next((out / "gsocseq/v1.1/exact/runs").iterdir()).relative_to(out)
    (cube,) = [p for p in (out / "gsocseq/cube").glob("*.zarr") if ".climate." not in p.name]
    cube_dir = cube.relative_to(out)
    i, j = tiles.index(target.id) // 3, tiles.index(target.id) % 3
    touched_chunks = {k for k in changed if k.startswith(f"{cube_dir}/")}
    assert touched_chunks and all(k.split("/c/")[1].startswith(f"{i}/{j}") for k in touched_chunks)
    product = {k for k in changed if k.startswith(f"{run_dir}/product.zarr/")}
    assert product and all(k.endswith(f"/c/{i}/{j}") for k in product)
    assert {k for k in changed if k.startswith(f"{run_dir}/_done/")} == {
        f"{run_dir}/_done/{target.id}.json"}
    item = "gsocseq/v1.1/exact/stac/gsocseq-v1.1-exact/DEM/DEM.json"
    assert item in changed  # the STAC item names the new COG checksums
    unchanged = {"gsocseq/v1.1/exact/stac/catalog.json",
                 "gsocseq/v1.1/exact/stac/gsocseq-v1.1-exact/collection.json"}
    assert not changed & unchanged
    assert not {k for k in changed if "climate" in k}
    assert not {k for k in changed if k.startswith("demo-inputs/")}  # a run never writes inputs
    allowed = (f"{cube_dir}/", f"{str(cube_dir)[:-len('.zarr')]}.tiles/", f"{run_dir}/",
               "gsocseq/v1.1/exact/products/DEM/", item)
    assert all(k.startswith(allowed) for k in changed), sorted(changed)

    # from scratch on the changed inputs: the same bytes
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copytree(out / "demo-inputs", fresh / "demo-inputs")
    full = run(_config(fresh), progress=False)
    assert full.ok and len(full.tiles_done) == 6
    products = "gsocseq/v1.1/exact/products/DEM"
    assert _sums(out / products) == _sums(fresh / products)  # COGs and quick-look PNGs
    chunks = {k: v for k, v in _sums(out / run_dir / "product.zarr").items() if "/c/" in k}
    assert chunks == {k: v for k, v in _sums(fresh / run_dir / "product.zarr").items()
                      if "/c/" in k}
    (fresh_cube,) = [p for p in (fresh / "gsocseq/cube").glob("*.zarr")
                     if ".climate." not in p.name]
    assert ({k: v for k, v in _sums(cube).items() if "/c/" in k}
            == {k: v for k, v in _sums(fresh_cube).items() if "/c/" in k})
    assert full.t0_stock_mt == second.t0_stock_mt

    # a climate file republished with the same values: re-read into the climate store; climate is
    # keyed region-wide (coarse), so every tile is recomputed — to the same bytes, nothing republished
    climate = sorted((out / "demo-inputs/climate").glob("*_2001.nc"))[0]
    os.utime(climate, ns=(climate.stat().st_atime_ns, climate.stat().st_mtime_ns + 10**9))
    before = _mtimes(out)
    third = run(_config(out), progress=False)
    assert [Path(u).name for u in third.reuse["inputs"]["climate_files_changed"]] == [climate.name]
    assert len(third.tiles_done) == 6 and third.reuse["inputs"]["cube_tiles_checked"] == []
    assert third.reuse["publication"]["layers_rewritten"] == []
    assert _sums(out / products) == _sums(fresh / products)
    assert not {k for k in _changed(before, _mtimes(out)) if k.startswith(products)}


def test_file_keys_say_how_each_store_identifies_bytes(tmp_path: Path, s3_bucket: str,
                                                       s3_server: Any) -> None:
    local = tmp_path / "a.tif"
    local.write_bytes(b"one")
    k1 = file_key(f"file://{local}")
    assert k1["method"] == "size+mtime"
    local.write_bytes(b"two")  # same size, new mtime
    assert file_key(f"file://{local}") != k1
    assert file_key(f"file://{tmp_path}/missing.tif") == {"method": "missing", "key": ""}

    so = dict(s3_server.storage_options)
    fs = s3_server.fs()
    fs.pipe(f"{s3_bucket.removeprefix('s3://')}/soc.tif", b"one")
    e1 = file_key(f"{s3_bucket}/soc.tif", so)
    assert e1["method"] == "etag"
    fs.pipe(f"{s3_bucket.removeprefix('s3://')}/soc.tif", b"two")
    assert file_key(f"{s3_bucket}/soc.tif", so)["key"] != e1["key"]

    # a templated source: every file its pattern matches is keyed; a new file changes the digest
    for m in (1, 2):
        (tmp_path / f"cover_M{m:02d}.tif").write_bytes(b"x")
    spec = SourceSpec(name="cover", kind="cover_monthly",
                      url=f"file://{tmp_path}/cover_M{{month:02d}}.tif")
    key = source_key(spec)
    assert sorted(Path(u).name for u in key["files"]) == ["cover_M01.tif", "cover_M02.tif"]
    (tmp_path / "cover_M03.tif").write_bytes(b"x")
    assert source_key(spec)["digest"] != key["digest"]


def test_republish_names_only_the_layers_and_tiles_whose_checksums_changed() -> None:
    from gsocseq.pipeline.incremental import layer_digests, republish, tile_digests_of

    tiles = ["t60_r248_c232", "t60_r248_c233", "t60_r249_c232"]
    markers = [{"tile": t, "checksums": {"T0": f"a{i}", "ASR_BAU": f"b{i}"}}
               for i, t in enumerate(tiles)]
    layers = ("T0", "ASR_BAU")
    first = republish(None, markers, layers)
    assert first.tiles is None and first.layers == set(layers)  # nothing on record: everything
    previous = {"layer_digests": layer_digests(markers, layers),
                "tile_digests": tile_digests_of(markers)}
    assert republish(previous, markers, layers).layers == set()
    markers[1] = {"tile": tiles[1], "checksums": {"T0": "changed", "ASR_BAU": "b1"}}
    again = republish(previous, markers, layers)
    assert again.layers == {"T0"} and again.tiles == {tiles[1]}
    row, col = TileKey.from_id(tiles[1]).row0, TileKey.from_id(tiles[1]).col0
    assert again.touches((row, row + 60), (col, col + 60))
    assert not again.touches((row + 60, row + 120), (col, col + 60))


def test_a_vrt_is_keyed_with_its_members(tmp_path: Path) -> None:
    """A sub-tile rewritten under an unchanged VRT (SoilGrids) changes the source's digest."""
    from gsocseq.cube.fingerprint import vrt_members

    (tmp_path / "tiles").mkdir()
    for name in ("a", "b"):
        (tmp_path / "tiles" / f"{name}.tif").write_bytes(b"tiff " + name.encode())
    def vrt(name: str, members: list[str]) -> str:
        (tmp_path / name).write_text('<VRTDataset><VRTRasterBand band="1">' + "".join(
            f"<SimpleSource>{m}</SimpleSource>" for m in members) + "</VRTRasterBand></VRTDataset>")
        return f"file://{tmp_path}/{name}"

    rel = ['<SourceFilename relativeToVRT="1">tiles/a.tif</SourceFilename>',
           '<SourceFilename relativeToVRT="1">./tiles/b.tif</SourceFilename>']
    mixed = vrt("mixed.vrt", [*rel, "<SourceFilename>/vsicurl/https://x/c.tif</SourceFilename>",
                              "<SourceFilename>/vsizip/d.zip/d.tif</SourceFilename>"])
    members = [f"file://{tmp_path}/tiles/a.tif", f"file://{tmp_path}/tiles/b.tif"]
    assert vrt_members(mixed) == [*members, "https://x/c.tif"]
    url = vrt("layer.vrt", rel)
    assert vrt_members(url) == members
    spec = SourceSpec(name="clay", kind="soilgrids", url=url)
    before = source_key(spec)
    assert set(before["files"]) == {url, *members}
    os.utime(tmp_path / "tiles" / "b.tif", ns=(1, 1))  # the member changes, the VRT does not
    assert source_key(spec)["digest"] != before["digest"]
