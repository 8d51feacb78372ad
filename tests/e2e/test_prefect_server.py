"""The deployments on a real Prefect server, run by a real serve process, writing to local S3.

``prefect server start`` (SQLite, loopback), ``python -m flows.serve`` (polling every 2 s), the moto
S3 server and the demo world on it are all separate processes (fixtures in ``conftest.py`` and the
root conftest). Flow runs are created exactly as the UI's Run button does:
``POST /api/deployments/{id}/create_flow_run`` with ``{"parameters": …}``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from prefect_procs import COUNTRY, GLOBAL, PrefectServer, ServeProcess

from flows.serve import GLOBAL_CRON

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow, pytest.mark.prefect, pytest.mark.s3]


def test_both_deployments_registered_with_form_schema_and_schedule(
    prefect_server: PrefectServer, prefect_serve: ServeProcess
) -> None:
    with prefect_server.client() as c:
        country = c.get(f"/deployments/name/{COUNTRY[0]}/{COUNTRY[1]}").json()
        rebuild = c.get(f"/deployments/name/{GLOBAL[0]}/{GLOBAL[1]}").json()
    schema = country["parameter_openapi_schema"]
    assert schema["properties"]["iso3"]["pattern"] == "^[A-Z]{3}$"
    assert schema["properties"]["scheme"]["enum"] == ["exact", "fao"]
    assert schema["required"] == ["iso3", "out"]
    assert country["enforce_parameter_schema"] is True
    assert country["parameters"]["out"] == prefect_serve.out
    assert country["parameters"]["sources"] == prefect_serve.sources
    assert country["parameters"]["scenarios"] == ["bau", "ssm_med"]
    assert country["schedules"] == []
    assert [s["schedule"]["cron"] for s in rebuild["schedules"]] == [GLOBAL_CRON]
    assert rebuild["parameters"]["world"] == "demo"


def test_malformed_iso3_is_refused_by_the_server(
    prefect_server: PrefectServer, prefect_serve: ServeProcess
) -> None:
    dep = prefect_server.deployment_id(*COUNTRY)
    r = prefect_server.create_flow_run(dep, {"iso3": "dem"})
    assert r.status_code == 409, r.text
    assert "'dem' does not match '^[A-Z]{3}$'" in r.text


def test_unknown_iso3_run_fails_fast_with_the_message(
    prefect_server: PrefectServer, prefect_serve: ServeProcess
) -> None:
    dep = prefect_server.deployment_id(*COUNTRY)
    r = prefect_server.create_flow_run(dep, {"iso3": "DEX"})
    assert r.status_code == 201, r.text
    run = prefect_server.wait_for_terminal(r.json()["id"], timeout=180)
    assert run["state_type"] == "FAILED"
    assert "DEX" in run["state"]["message"]
    # stopped at planning: no cluster, no subflow, no tile task was ever created
    assert [t["name"] for t in prefect_server.task_runs(run["id"])] == ["plan-DEX"]
    assert prefect_server.flow_runs(parent_flow_run_id={"any_": [run["id"]]}) == []


def _json(fs: Any, url: str) -> dict[str, Any]:
    with fs.open(url, "rb") as fh:
        return dict(json.load(fh))


def test_country_rerun_from_the_api_completes_and_publishes_to_s3(
    prefect_server: PrefectServer, prefect_serve: ServeProcess, s3_server: Any
) -> None:
    dep = prefect_server.deployment_id(*COUNTRY)
    t0 = time.monotonic()
    # the deployment's defaults for the rest (bau and ssm_med, uncertainty off, tiles of 60)
    r = prefect_server.create_flow_run(dep, {"iso3": "DEM"})
    assert r.status_code == 201, r.text
    run = prefect_server.wait_for_terminal(r.json()["id"], timeout=400)
    logs = prefect_server.logs(run["id"])
    assert run["state_type"] == "COMPLETED", (run["state"], logs[-20:])
    assert time.monotonic() - t0 < 400

    # planned in the flow, then one task per tile in the dask subflow, progress logged per tile
    assert any(m.startswith("DEM: 6 tile(s)") for m in logs), logs
    # no address given nor set as a Prefect variable: prefect-dask started a LocalCluster
    assert "computing on LocalCluster (1 worker, one process each)" in logs
    (sub,) = prefect_server.flow_runs(parent_flow_run_id={"any_": [run["id"]]})
    tiles = [t for t in prefect_server.task_runs(sub["id"]) if t["name"].startswith("tile-DEM-")]
    assert len(tiles) == 6 and all(t["state_type"] == "COMPLETED" for t in tiles)
    sub_logs = prefect_server.logs(sub["id"])
    assert sum(bool(re.match(r"tile \d/6 DEM t60_r\d+_c\d+: done", m)) for m in sub_logs) == 6

    # the markdown artifact: totals table and links to the COGs and STAC item on S3
    (artifact,) = [a for a in prefect_server.artifacts(run["id"]) if a["type"] == "markdown"]
    assert artifact["key"] == "gsocseq-country-dem"
    md = str(artifact["data"])
    assert "| DEM | bau |" in md and "| DEM | ssm_med |" in md and "ssm_low" not in md
    links = [url for _label, url in LINK.findall(md)]
    cog_urls = [u for u in links if u.endswith(".tif")]
    item_urls = [u for u in links if u.endswith(".json") and not u.endswith("catalog.json")]
    (catalog_url,) = {u for u in links if u.endswith("/catalog.json")}
    assert len(cog_urls) == 1 + 3 * 2 + 2  # T0, finalSOC/AbsDiff/ASR × 2, RelDiff/RSR of SSM2
    assert all(u.startswith(prefect_serve.out) for u in [*cog_urls, *item_urls, catalog_url])
    assert len(item_urls) == 1

    # the products exist on the local S3 endpoint
    fs = s3_server.fs()
    for url in cog_urls:
        with fs.open(url, "rb") as fh:
            assert fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00")  # TIFF / BigTIFF magic
    item = _json(fs, item_urls[0])
    assert item["type"] == "Feature" and item["id"] == "DEM"
    assert {"T0", "finalSOC_BAU", "finalSOC_SSM2", "RSR_SSM2"} <= set(item["assets"])
    assert _json(fs, catalog_url)["type"] == "Catalog"
