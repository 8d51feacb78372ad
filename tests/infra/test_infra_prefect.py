"""Register infra/'s Kubernetes work pool and deployments on a real local Prefect server.

The commands are the ones infra/README.md gives (``prefect work-pool create --type kubernetes
--base-job-template …``, ``prefect variable set …``, ``prefect deploy --all --prefect-file …``), run
from the repository root against ``prefect server start`` on 127.0.0.1 with a temporary
PREFECT_HOME; the server validates the deployments' job variables against the pool's schema. The
server is stopped at the end of the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from servers import prefect_server_process

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
PREFECT = Path(sys.executable).with_name("prefect")
POOL = "gsocseq-kubernetes"
ADDRESS = "tcp://gsocseq-scheduler.gsocseq.svc.cluster.local:8786"

pytestmark = [pytest.mark.slow, pytest.mark.prefect, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start ``prefect server start`` (SQLite, temporary home); yield the CLI environment."""
    home = tmp_path_factory.mktemp("infra-prefect-home")
    # Services this test does not need (the scheduler would create runs of the cron deployment).
    services = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "DB_VACUUM",
                "PAUSE_EXPIRATIONS", "REPOSSESSOR", "TRIGGERS", "EVENT_LOGGER")
    with prefect_server_process(home, ui=False, disabled_services=services) as prefect:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=str(home), PREFECT_API_URL=prefect.api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_CLI_PROMPT="false")
        yield env


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(PREFECT), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done.stdout


def _api(env: dict[str, str], method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, env["PREFECT_API_URL"] + path, json=body, timeout=10)


@pytest.fixture(scope="module")
def registered(server: dict[str, str]) -> dict[str, str]:
    """Run the README's step 5 against the server.

    ``prefect work-pool create … --base-job-template`` and ``prefect variable set`` are the same
    POSTs the CLI sends, made directly to spare two CLI start-ups; the deployments are registered
    by the real ``prefect deploy --all``, which loads the flows from their entrypoints.
    """
    template = json.loads((INFRA / "k8s" / "base-job-template.json").read_text())
    created = _api(server, "POST", "/work_pools/",
                   {"name": POOL, "type": "kubernetes", "base_job_template": template})
    assert created.status_code == 201, created.text
    variable = _api(server, "POST", "/variables/",
                    {"name": "gsocseq-dask-address", "value": ADDRESS})
    assert variable.status_code == 201, variable.text
    _prefect(server, "--no-prompt", "deploy", "--all",
             "--prefect-file", "infra/prefect/prefect.yaml")
    return server


def test_base_job_template_extends_prefects_default(server: dict[str, str]) -> None:
    # What `prefect work-pool get-default-base-job-template --type kubernetes` prints.
    workers = _api(server, "GET", "/collections/views/aggregate-worker-metadata").json()
    default = workers["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]
    ours = json.loads((INFRA / "k8s" / "base-job-template.json").read_text())
    # Every variable and job-configuration key the Kubernetes worker knows is still there.
    assert set(default["job_configuration"]) == set(ours["job_configuration"])
    for name, spec in default["variables"]["properties"].items():
        assert name in ours["variables"]["properties"], name
        assert ours["variables"]["properties"][name].get("type") == spec.get("type"), name
    default_container = default["job_configuration"]["job_manifest"]["spec"]["template"][
        "spec"]["containers"][0]
    our_container = ours["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"][0]
    for key in ("env", "image", "imagePullPolicy", "args"):
        assert our_container[key] == default_container[key], key


def test_work_pool_holds_the_template(registered: dict[str, str]) -> None:
    pool = _api(registered, "GET", f"/work_pools/{POOL}").json()
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == json.loads(
        (INFRA / "k8s" / "base-job-template.json").read_text())
    variable = _api(registered, "GET", "/variables/name/gsocseq-dask-address").json()
    assert variable["value"] == ADDRESS


def test_deployments_registered_on_the_pool(registered: dict[str, str]) -> None:
    spec = yaml.safe_load((INFRA / "prefect" / "prefect.yaml").read_text())
    wanted = {d["name"]: d for d in spec["deployments"]}
    got = {d["name"]: d for d in _api(registered, "POST", "/deployments/filter", {}).json()}
    assert set(got) == set(wanted)
    for name, dep in got.items():
        assert dep["work_pool_name"] == POOL
        assert dep["entrypoint"] == wanted[name]["entrypoint"]
        assert dep["job_variables"] == wanted[name]["work_pool"]["job_variables"]
        assert dep["pull_steps"] == spec["pull"]
        assert dep["parameters"] == wanted[name]["parameters"]
        assert dep["enforce_parameter_schema"] is True
        # The flows' own signatures became the parameter schema.
        assert {"out", "cluster_address", "sources"} <= set(
            dep["parameter_openapi_schema"]["properties"])
    rebuild = got["global-rebuild"]
    assert [s["schedule"]["cron"] for s in rebuild["schedules"]] == ["0 2 1 * *"]
    assert rebuild["global_concurrency_limit"]["limit"] == 1
    assert got["country-rerun"]["schedules"] == []
    flows = {f["id"]: f["name"] for f in _api(registered, "POST", "/flows/filter", {}).json()}
    assert {flows[d["flow_id"]] for d in got.values()} == {"gsocseq-global-rebuild",
                                                          "gsocseq-country-rerun"}


def test_server_rejects_invalid_templates_and_job_variables(registered: dict[str, str]) -> None:
    # A template whose job configuration uses an undeclared variable is refused.
    template = json.loads((INFRA / "k8s" / "base-job-template.json").read_text())
    del template["variables"]["properties"]["object_store_secret"]
    bad_pool = _api(registered, "POST", "/work_pools/",
                    {"name": "bad-pool", "type": "kubernetes", "base_job_template": template})
    assert bad_pool.status_code == 422 and "object_store_secret" in bad_pool.text, bad_pool.text
    dep = next(d for d in _api(registered, "POST", "/deployments/filter", {}).json()
               if d["name"] == "country-rerun")
    body = {"name": "bad-job-variables", "flow_id": dep["flow_id"], "work_pool_name": POOL,
            "entrypoint": dep["entrypoint"],
            "job_variables": {"active_deadline_seconds": "two days"}}
    response = _api(registered, "POST", "/deployments/", body)
    assert response.status_code in (409, 422), response.text
    assert "active_deadline_seconds" in response.text or "integer" in response.text


def test_automations_installed_with_a_real_notification_block(registered: dict[str, str]) -> None:
    """infra/prefect/automations.py against the server, twice (a rerun replaces, never duplicates)."""
    block = ("from prefect.blocks.notifications import CustomWebhookNotificationBlock as B; "
             "B(name='gsocseq-alerts', url='https://alerts.example.org/hook').save('gsocseq-alerts')")
    done = subprocess.run([sys.executable, "-c", block], cwd=REPO, env=registered,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for _ in range(2):
        done = subprocess.run([sys.executable, "infra/prefect/automations.py",
                               "custom-webhook/gsocseq-alerts"], cwd=REPO, env=registered,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    automations = _api(registered, "POST", "/automations/filter", {}).json()
    (automation,) = [a for a in automations if a["name"] == "gsocseq-run-failed"]
    assert automation["enabled"] is True
    trigger = automation["trigger"]
    assert set(trigger["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed",
                                      "prefect.flow-run.TimedOut"}
    # Scoped to the two deployed flows, by the names the server registered for them.
    flows = {f["name"] for f in _api(registered, "POST", "/flows/filter", {}).json()}
    assert set(trigger["match_related"]["prefect.resource.name"]) == flows
    (action,) = automation["actions"]
    block_doc = _api(registered, "GET", "/block_types/slug/custom-webhook/block_documents/name/"
                     "gsocseq-alerts").json()
    assert action["type"] == "send-notification" and action["block_document_id"] == block_doc["id"]
    # An unknown block is a clear failure, not an automation that notifies nobody.
    bad = subprocess.run([sys.executable, "infra/prefect/automations.py", "custom-webhook/nope"],
                         cwd=REPO, env=registered, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "nope" in bad.stderr
