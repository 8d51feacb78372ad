"""The SOC map's own uncertainty layer as an optional source, end to end on the demo world.

Real files in the real layout: the demo world's GeoTIFFs and netCDFs, plus an uncertainty GeoTIFF
on the SOC map's grid written beside a copy of its ``sources.toml`` that declares
``[sources.soc_uncertainty]``. Checks: the cube holds ``soc_uncertainty`` (percent of SOC, also
when declared absolute in kg/m2); the Monte Carlo spread of T0 follows it (40 % doubles it, as
SOC drives T0; 20 % gives the bytes of the default ±20 % run); the STAC provenance names the
layer; bad values mask pixels; a changed uncertainty file is seen by the incremental rebuild's
fingerprints; a cube built without the layer is not reused with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.windows import from_bounds

from gsocseq.config import RunConfig
from gsocseq.cube.build import build_cube, tile_arrays
from gsocseq.cube.fingerprint import source_keys, tile_sources
from gsocseq.cube.product_cube import read_product_tile
from gsocseq.cube.store import open_cube, read_tile
from gsocseq.errors import GridMismatchError, InputValidationError
from gsocseq.pipeline import plan_run, run
from gsocseq.pipeline.plan import resolve
from gsocseq.pipeline.tile import compute_tile, phase_config
from gsocseq.sources.readers import RASTERS
from gsocseq.sources.spec import load_sources, parse_sources
from gsocseq.vocabulary import Reason

pytestmark = pytest.mark.slow

TILE = 60
NODATA = -9999.0


def _world_root(world: Any) -> Path:
    return Path(world.sources_url.removeprefix("file://")).parent


def _write_uncertainty(world: Any, folder: Path, values: Any, units: str, name: str) -> str:
    """Write ``values(soc)`` on the demo SOC map's grid as ``folder/name``; return sources.toml URL.

    The copy of the demo ``sources.toml`` points at the world's files (absolute URLs) and declares
    the uncertainty file (relative URL, as a national submission shipped beside it would be).
    """
    root = _world_root(world)
    with rasterio.open(root / "soc" / "GSOCmap_demo.tif") as src:
        soc = src.read(1, masked=True)
        profile = {k: src.profile[k] for k in ("width", "height", "crs", "transform")}
    unc = np.where(soc.mask, NODATA, values(np.asarray(soc.filled(np.nan)))).astype("float32")
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(folder / name, "w", driver="GTiff", count=1, dtype="float32",
                       nodata=NODATA, **profile) as dst:
        dst.write(unc, 1)
    text = (root / "sources.toml").read_text()
    text = re.sub(r'^url = "', f'url = "file://{root}/', text, flags=re.MULTILINE)
    text += (f'\n[sources.soc_uncertainty]\nkind = "gsocmap_uncertainty"\nurl = "{name}"\n'
             f'units = "{units}"\nversion = "demo"\n')
    (folder / "sources.toml").write_text(text)
    return f"file://{folder}/sources.toml"


def _config(sources: str, out: Path) -> RunConfig:
    return RunConfig(region="demo", out=f"file://{out}", sources=sources, tile_size=TILE,
                     cluster="synchronous", scenarios=("bau",), uncertainty="montecarlo", draws=4,
                     seed=9)


def _t0_sd(config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    plan = plan_run(config)
    tiles = [read_product_tile(plan.product_cube_url, t) for t in plan.tiles]
    ok = np.concatenate([(t["reason"] == 0).ravel() for t in tiles])
    return ok, np.concatenate([t["T0_MCsd"].ravel() for t in tiles])


@pytest.fixture(scope="module")
def runs(demo_world: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunConfig]:
    """The default run (±20 %) and one with a 40 % uncertainty layer, both finished."""
    world = demo_world("file")
    tmp = tmp_path_factory.mktemp("socunc")
    forty = _write_uncertainty(world, tmp / "u40", lambda soc: np.full_like(soc, 40.0), "%",
                               "GSOCmap_demo_uncertainty.tif")
    configs = {"default": _config(world.sources_url, tmp / "out-default"),
               "forty": _config(forty, tmp / "out-forty")}
    for config in configs.values():
        assert run(config, progress=False).ok
    return configs


def test_layer_widens_the_spread_and_is_recorded(runs: dict[str, RunConfig]) -> None:
    plan = plan_run(runs["forty"])
    cube = open_cube(plan.cube_url, {})
    assert cube["soc_uncertainty"].attrs["units"] == "%"
    arrays = read_tile(cube, plan.tiles[1])
    ok = arrays["reason"] == Reason.OK
    assert ok.any() and np.allclose(arrays["soc_uncertainty"][ok], 40.0)
    assert "soc_uncertainty" not in open_cube(plan_run(runs["default"]).cube_url, {})
    ok_d, sd_d = _t0_sd(runs["default"])
    ok_f, sd_f = _t0_sd(runs["forty"])
    assert np.array_equal(ok_d, ok_f) and ok_d.sum() > 100
    ratio = sd_f[ok_f] / sd_d[ok_d]
    # SOC's half-width doubled: the spread of T0 (driven by SOC) doubles; 4 draws of the other
    # inputs' spread leave a sampling scatter around 2, below 1.5 at < 1 % of the pixels
    assert (ratio > 1.5).mean() > 0.99, np.percentile(ratio, [0, 1, 50])
    assert 1.9 < float(np.median(ratio)) < 2.05, np.median(ratio)
    item = next(Path(plan.stac_url.removeprefix("file://")).parent.rglob("DEM.json"))
    unc = json.loads(item.read_text())["properties"]["gsocseq:uncertainty"]
    assert "soc_uncertainty" in unc["soc_half_width"]["from"]
    assert "GSOCmap_demo_uncertainty.tif" in unc["soc_half_width"]["source"]
    default_item = next(Path(plan_run(runs["default"]).stac_url.removeprefix("file://"))
                        .parent.rglob("DEM.json"))
    assert "soc_half_width" not in json.loads(default_item.read_text())["properties"][
        "gsocseq:uncertainty"]


def test_twenty_percent_layer_gives_the_default_bytes(runs: dict[str, RunConfig]) -> None:
    """The layer replaces ±20 % exactly: 20 % everywhere is the default run, byte for byte."""
    config = runs["forty"]
    plan = plan_run(config)
    tile = plan.tiles[1]
    arrays = read_tile(open_cube(plan.cube_url, {}), tile)
    default = read_product_tile(plan_run(runs["default"]).product_cube_url, tile)
    mc = (config.draws, config.seed)
    pc = phase_config(config)
    twenty, _ = compute_tile({**arrays, "soc_uncertainty": np.full_like(arrays["soc"], 20.0)},
                             pc, montecarlo=mc, origin=(tile.row0, tile.col0))
    forty, _ = compute_tile(arrays, pc, montecarlo=mc, origin=(tile.row0, tile.col0))
    for name in ("T0_MCsd", "T0_MCmean", "finalSOC_BAU_MCsd", "ASR_BAU_MCp95"):
        assert twenty[name].tobytes() == default[name].tobytes(), name
        assert forty[name].tobytes() != default[name].tobytes(), name


def test_changed_layer_rebuilds_only_its_tile(runs: dict[str, RunConfig]) -> None:
    """The incremental rebuild sees the uncertainty file: one tile's change reruns that tile only."""
    config = runs["forty"]
    plan = plan_run(config)
    target = plan.tiles[4]
    before = read_product_tile(plan.product_cube_url, target)["T0_MCsd"]
    path = Path(config.sources.removeprefix("file://")).parent / "GSOCmap_demo_uncertainty.tif"
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read(1)
        w = from_bounds(*target.bounds, transform=src.transform).round_offsets().round_lengths()
    r0, c0 = int(w.row_off) + 5, int(w.col_off) + 5  # inside: no neighbour's window sees it
    r1, c1 = int(w.row_off + w.height) - 5, int(w.col_off + w.width) - 5
    block = data[r0:r1, c0:c1]
    block[block != NODATA] = 60.0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    again = run(config, progress=False)
    assert again.ok and again.tiles_done == (target.id,)
    assert again.reuse["inputs"]["sources_changed"] == ["soc_uncertainty"]
    assert again.reuse["inputs"]["cube_tiles_rebuilt"] == [target.id]
    arrays = read_tile(open_cube(plan.cube_url, {}), target)
    ok = arrays["reason"] == Reason.OK
    assert np.isclose(arrays["soc_uncertainty"][ok], 60.0).any()
    after = read_product_tile(plan.product_cube_url, target)["T0_MCsd"]
    widened = np.isclose(arrays["soc_uncertainty"], 60.0) & ok
    assert widened.sum() > 100 and np.isfinite(before[widened]).all()
    # at ±60 % a draw with z < −3.1 would scale SOC below 5 %: kept at montecarlo.MIN_FACTOR,
    # so no pixel's statistics are NaN
    assert np.isfinite(after[widened]).all()
    assert 1.35 < float(np.median(after[widened] / before[widened])) < 1.6  # 60 % / 40 %


def test_absolute_units_bad_values_and_fingerprints(
    demo_world: Any, tmp_path: Path
) -> None:
    """kg/m2 half-widths become % of SOC; negative / nodata values mask; the file is fingerprinted."""
    world = demo_world("file")
    # 0.04 kg/m2 per t C/ha of SOC = 40 % of the stock; negative in the western third
    url = _write_uncertainty(world, tmp_path / "abs", lambda soc: 0.04 * soc, "kg/m2", "u.tif")
    config = _config(url, tmp_path / "out")
    sources, region = resolve(config)
    assert "soc_uncertainty" in tile_sources(sources)
    keys = source_keys(sources)
    assert "u.tif" in next(iter(keys["soc_uncertainty"]["files"]))
    tile = region.tiles[1]
    arrays = tile_arrays(region, sources, tile)
    ok = arrays["reason"] == Reason.OK
    assert ok.sum() > 100
    np.testing.assert_allclose(arrays["soc_uncertainty"][ok], 40.0, rtol=1e-4)
    # the same file rewritten: negative in every 7th column, nodata in every 11th row
    path = tmp_path / "abs" / "u.tif"
    with rasterio.open(path, "r+") as dst:
        data = dst.read(1)
        data[:, ::7] = np.where(data[:, ::7] != NODATA, -1.0, NODATA)
        data[::11, :] = NODATA
        dst.write(data, 1)
    RASTERS.clear()  # the open handle of the old bytes
    assert source_keys(sources)["soc_uncertainty"]["digest"] != keys["soc_uncertainty"]["digest"]
    bad = tile_arrays(region, sources, tile)
    np.testing.assert_array_equal(bad["soc"], arrays["soc"])
    newly = (bad["reason"] != Reason.OK) & ok
    assert set(np.unique(bad["reason"][newly]).tolist()) == {Reason.INPUT_OUT_OF_RANGE,
                                                             Reason.MISSING_INPUT}
    assert np.all(bad["soc_uncertainty"][bad["reason"] == Reason.OK] >= 0.0)
    # a cube built without the layer is not silently reused with it
    plain = load_sources(world.sources_url)
    cube_url = f"file://{tmp_path}/plain.zarr"
    build_cube(region, plain, cube_url, tiles=[tile])
    with pytest.raises(GridMismatchError, match="soc_uncertainty"):
        build_cube(region, sources, cube_url, tiles=[tile])


def test_declaration_is_checked(demo_world: Any, tmp_path: Path) -> None:
    world = demo_world("file")
    url = _write_uncertainty(world, tmp_path / "u", lambda soc: np.full_like(soc, 10.0), "g/kg",
                             "u.tif")
    sources, region = resolve(_config(url, tmp_path / "out"))
    with pytest.raises(InputValidationError, match=r"soc_uncertainty.*u\.tif.*units 'g/kg'"):
        tile_arrays(region, sources, region.tiles[0])
    text = Path(url.removeprefix("file://")).read_text().replace(
        'kind = "gsocmap_uncertainty"', 'kind = "gsocmap"')
    with pytest.raises(InputValidationError, match="gsocmap_uncertainty"):
        parse_sources(text, "x")
