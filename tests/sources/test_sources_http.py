"""Sources served by a real HTTP server on 127.0.0.1 (Range requests), output on the local S3 server.

The demo world (its files in the real layouts: GeoTIFFs, SoilGrids-style clay in g/kg,
TerraClimate-style netCDF-4 per variable and year) is served over ``http://`` with its
``sources.toml`` (relative entries resolved against the server); the run writes to ``s3://``
with S3 options that must not reach the HTTP source. The products equal the ``file://`` run's
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from rangeserver import RangeServer
from split_sources import soc_in_two_files

from gsocseq.config import RunConfig
from gsocseq.demo import write_demo_world
from gsocseq.pipeline import run
from gsocseq.sources import load_sources

pytestmark = [pytest.mark.s3, pytest.mark.slow]

TILE = 60


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_demo_world(f"file://{root}", {}, tiles_y=1, tiles_x=2, tile_size=TILE, seed=3)
    return root


@pytest.fixture(scope="module")
def http(world: Path) -> Iterator[RangeServer]:
    with RangeServer(world) as server:
        yield server


def _products(fs: Any, root: str) -> dict[str, str]:
    """sha256 of every COG under ``root`` by file name."""
    return {
        p.rsplit("/", 1)[1]: hashlib.sha256(fs.cat_file(p)).hexdigest()
        for p in fs.find(root) if p.endswith(".tif")
    }


def test_sources_file_and_data_over_http_with_output_on_s3_equal_the_file_run(
    world: Path, http: RangeServer, s3_server: Any, s3_bucket: str, tmp_path: Path
) -> None:
    so = dict(s3_server.storage_options)
    local = RunConfig(region="demo", out=f"file://{tmp_path}/a", sources=f"file://{world}/sources.toml",
                      tile_size=TILE, cluster="synchronous")
    remote = RunConfig(region="demo", out=f"{s3_bucket}/b", sources=f"{http.url}/sources.toml",
                       tile_size=TILE, cluster="synchronous", storage_options=so)
    assert "config_kwargs" in remote.storage_options  # S3 retries on the output store …
    cfg = load_sources(remote.sources, storage_options=remote.storage_options, out=remote.out)
    assert cfg["soc"].url.startswith(http.url + "/")  # relative entries resolved against it
    assert all(s.storage_options == {} for s in cfg.specs)  # … never on the HTTP sources
    a = run(local, progress=False)
    b = run(remote, progress=False)
    assert a.ok and b.ok and a.tiles_total == b.tiles_total == 2
    assert sum(http.requests.values()) > 0 and sum(http.bytes_sent.values()) > 0
    got = _products(s3_server.fs(), f"{s3_bucket}/b/gsocseq".removeprefix("s3://"))
    want = _products(fsspec.filesystem("file"), f"{tmp_path}/a/gsocseq")
    assert len(want) >= 29 and got == want
    # each climate file is read by one task: at most a header read more for the first year (the
    # folder itself is listed to key the templated source's files for incremental rebuilds)
    climate = {k: v for k, v in http.requests.items() if "/climate/" in k and k.endswith(".nc")}
    assert len(climate) == 160
    assert {k for k in http.requests if "/climate/" in k} - set(climate) <= {"/climate/"}
    assert max(v for k, v in climate.items() if "_1981" not in k) <= 3


def test_a_source_that_stays_down_fails_every_tile_it_feeds_naming_source_and_url(
    world: Path, tmp_path: Path
) -> None:
    with RangeServer(world, down=("cover_",)) as server:
        config = RunConfig(region="demo", out=f"file://{tmp_path}/c",
                           sources=f"{server.url}/sources.toml", tile_size=TILE,
                           cluster="synchronous")
        summary = run(config, progress=False)
    assert not summary.ok and not summary.published and len(summary.tiles_failed) == 2
    for error in summary.tiles_failed.values():  # cover feeds every tile
        assert re.search(r"source 'cover'.*http://127\.0\.0\.1:\d+/.*cover_", error), error
    # nothing was written for any tile of the product
    done = list(Path(tmp_path, "c").rglob("_done/*.json"))
    assert done == []


def test_a_source_down_for_part_of_the_region_fails_only_its_tiles_and_a_rerun_finishes(
    world: Path, tmp_path: Path
) -> None:
    """The east half of the SOC map answers 503: the east tile fails (named), the west one is kept.

    Through the CLI: exit 1 listing the failed tile; once the file is back, a rerun builds only the
    missing tile and publishes.
    """
    from click.testing import CliRunner

    from gsocseq.cli import main
    from gsocseq.cube.grid import TileKey
    from gsocseq.pipeline import plan_run

    tiles = sorted(plan_run(RunConfig(region="demo", out=f"file://{tmp_path}/p",
                                      sources=f"file://{world}/sources.toml",
                                      tile_size=TILE)).tile_ids,
                   key=lambda t: TileKey.from_id(t).bounds[0])
    west, east = tiles
    soc_in_two_files(world, tmp_path / "w", TileKey.from_id(west).bounds[2])
    out = tmp_path / "out"
    with RangeServer(tmp_path / "w", down=("GSOCmap_east",)) as server:
        args = ["run", "--region", "demo", "--out", f"file://{out}", "--sources",
                f"{server.url}/sources.toml", "--tile-size", str(TILE), "--cluster",
                "synchronous", "--no-progress", "--summary-json", str(tmp_path / "s.json")]
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 1, first.output
        assert f"1 tile(s) failed: {east}" in first.output
        failed = json.loads((tmp_path / "s.json").read_text())["tiles"]["failed"]
        assert list(failed) == [east]
        assert "source 'soc'" in failed[east] and f"{server.url}/soc/GSOCmap_tiles.vrt" in failed[east]
        assert server.requests["/soc/GSOCmap_east.tif"] > 0
        markers = {p.name: p.stat().st_mtime_ns for p in out.rglob("_done/*.json")}
        assert [m.removesuffix(".json") for m in markers] == [west]  # the west tile is kept
        assert not list(out.rglob("*.tif"))  # nothing published

        server.down = ()  # the file is back
        second = CliRunner().invoke(main, args)
        assert second.exit_code == 0, second.output
        again = json.loads((tmp_path / "s.json").read_text())["tiles"]
        assert again["failed"] == {} and again["skipped"] == 1  # the west tile is not redone
        assert {p.name: p.stat().st_mtime_ns for p in out.rglob("_done/*.json")
                if p.name.startswith(west)} == markers
        assert len(list(out.rglob("*.tif"))) >= 29

        # the provider republishes the east file, which then stays down: the east tile cannot be
        # brought up to date, so it fails (named) instead of being run on its old inputs; nothing
        # published is touched; once the file is back, only the east tile is recomputed
        import numpy as np
        import rasterio

        east_tif = tmp_path / "w" / "soc" / "GSOCmap_east.tif"
        with rasterio.open(east_tif, "r+") as dst:
            data = dst.read(1)
            data[10:-10, 10:-10] = np.where(data[10:-10, 10:-10] > 0, data[10:-10, 10:-10] + 5.0,
                                            data[10:-10, 10:-10])
            dst.write(data, 1)
        published = {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")}
        server.down = ("GSOCmap_east",)
        third = CliRunner().invoke(main, args)
        assert third.exit_code == 1, third.output
        failed = json.loads((tmp_path / "s.json").read_text())["tiles"]["failed"]
        assert list(failed) == [east] and "source 'soc'" in failed[east]
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*.tif")} == published

        server.down = ()
        fourth = CliRunner().invoke(main, args)
        assert fourth.exit_code == 0, fourth.output
        last = json.loads((tmp_path / "s.json").read_text())["tiles"]
        assert last["failed"] == {} and last["done"] == 1 and last["skipped"] == 1
