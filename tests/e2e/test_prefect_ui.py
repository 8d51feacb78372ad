"""The Prefect UI in a real headless Chromium: deployments listed, the form, a run from the form.

Debian's ``chromium`` driven by Playwright (python) against the UI that ``prefect server start``
serves; the deployments are served by the real ``flows.serve`` process writing to the local S3.
Screenshots go to ``$PYTEST_ARTIFACTS`` (default ``tests/artifacts/``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from prefect_procs import COUNTRY, REPO, PrefectServer, ServeProcess

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow, pytest.mark.prefect,
              pytest.mark.browser, pytest.mark.s3]

ARTIFACTS = Path(os.environ.get("PYTEST_ARTIFACTS", REPO / "tests" / "artifacts"))
FORM_FIELDS = ("iso3", "out", "scenarios", "scheme", "map_version", "cluster_address", "sources",
               "tile_size", "uncertainty")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _field(page: Page, name: str) -> Locator:
    """Return the form property whose label is ``name`` (``name (Optional)`` for optional ones)."""
    label = page.locator(".schema-form-property__label", has_text=re.compile(rf"^{name}\b"))
    return page.locator("div.schema-form-property").filter(has=label)


def test_country_rerun_from_the_ui_form(
    prefect_server: PrefectServer, prefect_serve: ServeProcess, page: Page
) -> None:
    # the two deployments are listed
    page.goto(f"{prefect_server.url}/deployments")
    expect(page.get_by_text("country-rerun", exact=True)).to_be_visible()
    expect(page.get_by_text("global-rebuild", exact=True)).to_be_visible()
    _shot(page, "prefect-deployments.png")

    # the country-rerun form shows the typed parameters, with their help texts
    dep = prefect_server.deployment(*COUNTRY)
    page.goto(f"{prefect_server.url}/deployments/deployment/{dep['id']}/run")
    for name in FORM_FIELDS:
        expect(_field(page, name)).to_have_count(1)
    expect(page.get_by_text("ISO 3166-1 alpha-3 code in upper case")).to_be_visible()
    expect(_field(page, "scheme").get_by_role("button", name="exact")).to_be_visible()
    iso3 = _field(page, "iso3").locator("textarea")

    # a malformed code is refused by the server's schema check; the form stays open
    iso3.fill("dem")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_text("does not match '^[A-Z]{3}$'").first).to_be_visible()
    assert page.url.endswith("/run")
    before = {r["id"] for r in prefect_server.flow_runs(deployment_id={"any_": [dep["id"]]})}

    # a valid one starts a run
    iso3.fill("DEM")
    _shot(page, "prefect-country-form.png")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(re.compile(rf".*/deployments/deployment/{dep['id']}(\?.*)?$"))
    deadline = time.monotonic() + 30
    while not (new := [r for r in prefect_server.flow_runs(deployment_id={"any_": [dep["id"]]})
                       if r["id"] not in before]):
        assert time.monotonic() < deadline, "no flow run created by the form"
        time.sleep(0.5)
    (run,) = new
    assert run["parameters"]["iso3"] == "DEM"
    assert run["parameters"]["out"] == prefect_serve.out  # deployment default kept by the form

    # it completes, and the run page says so
    done = prefect_server.wait_for_terminal(run["id"], timeout=400)
    assert done["state_type"] == "COMPLETED", prefect_server.logs(run["id"])[-20:]
    page.goto(f"{prefect_server.url}/runs/flow-run/{run['id']}")
    expect(page.get_by_text(done["name"]).first).to_be_visible()
    expect(page.get_by_text("Completed").first).to_be_visible()
    expect(page.get_by_text("DEM: 6 tile(s) of 60 cells")).to_be_visible()  # the run's logs
    shot = _shot(page, "prefect-country-run-completed.png")
    assert shot.stat().st_size > 10_000
    # the run's report artifact is reachable from the run page
    page.get_by_text("Artifacts", exact=True).first.click()
    card = page.get_by_role("link", name=re.compile(r"gsocseq-country-dem"))
    expect(card).to_be_visible()
    card.click()
    page.wait_for_url(re.compile(r".*/artifacts/artifact/.*"))
    # the report renders: totals table and product links
    expect(page.get_by_role("heading", name="Totals (SOC 0–30 cm)")).to_be_visible()
    expect(page.get_by_role("cell", name="ssm_med").first).to_be_visible()
    expect(page.get_by_role("link", name="DEM_GSOCseq_T0_Map030.tif")).to_be_visible()
    # and shows the quick looks (embedded PNGs): T0, final SOC and ASR of the requested scenarios
    t0 = page.get_by_role("img", name="DEM T0")
    expect(t0).to_be_visible()
    shown = page.evaluate("() => Array.from(document.images).filter(i => i.alt.startsWith('DEM '))"
                          ".map(i => [i.alt, i.complete && i.naturalWidth > 100])")
    assert len(shown) >= 3 and all(ok for _, ok in shown), shown
    _shot(page, "prefect-country-run-report.png")
