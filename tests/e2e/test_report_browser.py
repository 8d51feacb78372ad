"""``gsocseq report`` end to end: runs of both schemes, the installed CLI, the page served by a real
HTTP server and opened in headless Chromium (Debian's or Playwright's, driven by Playwright as in
``test_prefect_ui.py``): no console error, every image displayed, the totals those of the runs, the
exact-vs-fao section present.

The runs and the report are on ``file://`` (the session's demo world on disk): the page is what is
tested here, and the two runs on the moto server were ≈ 4 of the suite's 45 minutes. Reading and
writing runs on S3 is tested by the CLI, pipeline and reliability tests.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from gsocseq.config import RunConfig
from gsocseq.pipeline import RunSummary, run

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow, pytest.mark.browser]

VERSION = "report-test"
GSOCSEQ = str(Path(sys.executable).parent / "gsocseq")


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gsocseq report``."""
    return subprocess.run([GSOCSEQ, "report", *args], capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This module's output folder (only its runs: the report covers every run under it)."""
    return f"file://{tmp_path_factory.mktemp('report-runs')}"


@pytest.fixture(scope="module")
def runs(out: str, demo_world: Any) -> dict[str, RunSummary]:
    """The demo world run with both schemes (no bracket runs, tiles of 60, synchronous)."""
    world = demo_world("file")
    summaries = {}
    for scheme in ("exact", "fao"):
        config = RunConfig(region="demo", out=out, sources=world.sources_url,
                           tile_size=60, cluster="synchronous", scheme=scheme, uncertainty=False,
                           map_version=VERSION)
        summaries[scheme] = run(config, progress=False)
        assert summaries[scheme].ok and summaries[scheme].published
    return summaries


@pytest.fixture(scope="module")
def pages(runs: dict[str, RunSummary], out: str,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    res = _report(out, "--output", str(folder))
    assert res.returncode == 0, res.stderr
    for summary in runs.values():  # written beside each run, and copied
        assert f"report: {summary.urls['run']}/report.html" in res.stdout
    return folder


@pytest.fixture(scope="module")
def http_root(pages: Path) -> Iterator[str]:
    """Serve the report folder over HTTP on a free loopback port."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(pages))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("scheme", ["exact", "fao"])
def test_report_page_loads_without_errors_and_shows_every_image(
    scheme: str, runs: dict[str, RunSummary], pages: Path, http_root: str, browser: Browser
) -> None:
    run_name = runs[scheme].urls["run"].rstrip("/").rsplit("/", 1)[-1]
    name = f"{run_name}-{scheme}.html"
    assert (pages / name).exists(), sorted(p.name for p in pages.iterdir())
    html = (pages / name).read_text()
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing fetched: self-contained
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        response = page.goto(f"{http_root}/{name}", wait_until="load")
        assert response is not None and response.ok
        images = page.evaluate(
            "() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
            " i.getBoundingClientRect().width])"
        )
        text = page.inner_text("body")
        page.screenshot(path=str(pages / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert errors == []
    assert requests == [f"{http_root}/{name}"]  # every picture is inside the page
    # maps: T0 + 4 final SOC + 4 ASR; 2 histograms; reasons; T0 fao − exact
    alts = [a for a, *_ in images]
    assert len(images) == 13, alts
    assert "map of T0 fao minus exact" in alts and "histogram of ASR" in alts
    for alt, complete, natural_width, shown_width in images:
        assert complete and natural_width > 100 and shown_width > 100, alt
    summary = runs[scheme]
    assert f"{summary.t0_stock_mt:.5f}" in text
    for s in summary.scenarios:
        assert f"{s.final_stock_mt:.5f}" in text and f"{s.rate_mt_per_yr:.5f}" in text
    assert "exact vs fao" in text and "T0: fao − exact" not in text  # figure title is in the PNG
    assert re.search(r"2 cropland\s+\d", text)  # per-land-use table
    assert f"{summary.modelled:,} modelled" in text
