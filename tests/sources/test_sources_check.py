"""``gsocseq sources check`` on a world served by a real local HTTP server, as declared and not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rangeserver import RangeServer

from gsocseq.cli import main
from gsocseq.demo import write_demo_world


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("world")
    write_demo_world(f"file://{root}", {}, tiles_y=1, tiles_x=2, tile_size=60, seed=1)
    with RangeServer(root) as http:
        yield root, http.url


def test_check_reports_every_source_and_exits_0(served: tuple[Path, str]) -> None:
    _, url = served
    res = CliRunner().invoke(main, ["sources", "check", "--sources", f"{url}/sources.toml",
                                    "--region", "demo"])
    assert res.exit_code == 0, res.output
    for name in ("boundaries", "soc", "clay", "land_cover", "climate", "cover"):
        assert f"{name}: " in res.output
    assert "160/160 file(s) reachable" in res.output
    assert "int16 × 0.10000000149011612" in res.output  # TerraClimate packing reported
    assert "ok: 6 source(s) as declared" in res.output


def test_check_names_source_url_expected_and_found(served: tuple[Path, str]) -> None:
    root, url = served
    text = (root / "sources.toml").read_text()
    bad = text.replace('[sources.clay]\n', '[sources.clay]\ncrs = "EPSG:3857"\n')
    bad = bad.replace('[sources.land_cover]\n', '[sources.land_cover]\nbands = 24\n')
    bad = bad.replace("period = [1981, 2020]", "period = [1990, 2020]")
    (root / "bad.toml").write_text(bad)
    (root / "soc" / "GSOCmap_demo.tif").rename(root / "soc" / "gone.tif")
    try:
        res = CliRunner().invoke(main, ["sources", "check", "--sources", f"{url}/bad.toml"])
    finally:
        (root / "soc" / "gone.tif").rename(root / "soc" / "GSOCmap_demo.tif")
    assert res.exit_code == 1
    out = res.output
    assert f"source 'soc' at {url}/soc/GSOCmap_demo.tif: not reachable" in out
    assert "source 'clay' at" in out and "declares EPSG:3857" in out
    assert "source 'land_cover' at" in out and "1 band(s), expected 24" in out
    assert "source 'climate' at" in out and "period (1990, 2020) does not cover 1981-2020" in out
