"""``gsocseq report`` end to end: runs of both schemes on the local S3, the installed CLI, the page
served by a real HTTP server and opened in headless Chromium (Debian's or Playwright's, driven by
Playwright as in ``test_prefect_ui.py``): no console error, every image displayed, the totals those
of the runs, the exact-vs-fao section present.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import s3fs
from playwright.sync_api import Browser

from gsocseq.config import RunConfig
from gsocseq.pipeline import RunSummary, run

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow, pytest.mark.browser, pytest.mark.s3]

BUCKET = "gsocseq-pipeline-shared"
OUT = f"s3://{BUCKET}/report-runs"  # only this module's runs: the report covers every run under it
VERSION = "report-test"
GSOCSEQ = str(Path(sys.executable).parent / "gsocseq")


def _report(s3: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``gsocseq report`` with the S3 endpoint in the environment."""
    env = {**os.environ, "GSOCSEQ_STORAGE_OPTIONS": json.dumps(s3.storage_options),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([GSOCSEQ, "report", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def runs(s3_server: Any, demo_world_s3: Any) -> dict[str, RunSummary]:
    """The demo world run with both schemes (no bracket runs, tiles of 60, synchronous)."""
    fs = s3fs.S3FileSystem(**s3_server.storage_options)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    out = {}
    for scheme in ("exact", "fao"):
        config = RunConfig(region="demo", out=OUT, sources=demo_world_s3.sources_url,
                           tile_size=60, cluster="synchronous", scheme=scheme, uncertainty=False,
                           map_version=VERSION, storage_options=dict(s3_server.storage_options))
        out[scheme] = run(config, progress=False)
        assert out[scheme].ok and out[scheme].published
    return out


@pytest.fixture(scope="module")
def pages(runs: dict[str, RunSummary], s3_server: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    res = _report(s3_server, OUT, "--output", str(folder))
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
