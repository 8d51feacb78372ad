"""Sources served by a real HTTP server on 127.0.0.1 (Range requests), output on the local S3 server.

The demo world (its files in the real layouts: GeoTIFFs, SoilGrids-style clay in g/kg,
TerraClimate-style netCDF-4 per variable and year) is served over ``http://`` with its
``sources.toml`` (relative entries resolved against the server); the run writes to ``s3://``
with S3 options that must not reach the HTTP source. The products equal the ``file://`` run's
byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from rangeserver import RangeServer

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
    # each climate file is read by one task: at most a header read more for the first year
    climate = {k: v for k, v in http.requests.items() if "/climate/" in k}
    assert len(climate) == 160
    assert max(v for k, v in climate.items() if "_1981" not in k) <= 3


def test_a_source_that_stays_down_fails_naming_source_and_url(
    world: Path, tmp_path: Path
) -> None:
    with RangeServer(world, down=("cover_",)) as server:
        config = RunConfig(region="demo", out=f"file://{tmp_path}/c",
                           sources=f"{server.url}/sources.toml", tile_size=TILE,
                           cluster="synchronous")
        with pytest.raises(Exception, match=r"(?s)source 'cover'.*http://127\.0\.0\.1:\d+/.*cover_"):
            run(config, progress=False)
    # nothing was written for any tile of the product
    done = list(Path(tmp_path, "c").rglob("_done/*.json"))
    assert done == []
