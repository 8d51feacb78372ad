"""Two country reruns of one country queue; a rebuild of another region runs beside them.

A real ``prefect server`` and ``python -m flows.serve`` (fixtures in ``conftest.py``) run the flows,
writing to the moto S3 server. Runs are created as the UI does (``POST
/api/deployments/{id}/create_flow_run``), with a map version of their own so every tile is computed.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import pytest
from prefect_procs import COUNTRY, GLOBAL, PrefectServer, ServeProcess

from flows.serve import COUNTRY_CONCURRENCY, REBUILD_CONCURRENCY

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow, pytest.mark.prefect, pytest.mark.s3]

VERSION = "conc-e2e"
BBOX = "-63.9,-34.4,-63.6,-34.1"
"""One tile of the demo world, as a region of its own (another product set than DEM)."""


def _t(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _tiles_subflow(server: PrefectServer, run_id: str) -> dict[str, Any]:
    (sub,) = server.flow_runs(parent_flow_run_id={"any_": [run_id]})
    return sub


def _limits(server: PrefectServer) -> dict[str, dict[str, Any]]:
    with server.client() as c:
        r = c.post("/v2/concurrency_limits/filter", json={})
        r.raise_for_status()
        return {lim["name"]: lim for lim in r.json()}


def test_reruns_of_one_country_queue_and_another_region_runs_beside(
    prefect_server: PrefectServer, prefect_serve: ServeProcess
) -> None:
    country = prefect_server.deployment(*COUNTRY)
    rebuild = prefect_server.deployment(*GLOBAL)
    for dep, limit in ((country, COUNTRY_CONCURRENCY), (rebuild, REBUILD_CONCURRENCY)):
        assert dep["global_concurrency_limit"]["limit"] == limit
        assert dep["concurrency_options"]["collision_strategy"] == "ENQUEUE"

    params = {"iso3": "DEM", "map_version": VERSION}
    runs = [prefect_server.create_flow_run(country["id"], params) for _ in range(2)]
    runs.append(prefect_server.create_flow_run(rebuild["id"], {"world": BBOX, "map_version": VERSION}))
    assert all(r.status_code == 201 for r in runs), [r.text for r in runs]
    *dem_ids, other_id = [r.json()["id"] for r in runs]

    # while one rerun computes, DEM's region slot (one slot) is held and the other rerun waits
    deadline = time.monotonic() + 300
    while True:
        held = {n: lim for n, lim in _limits(prefect_server).items()
                if n.startswith(f"gsocseq:DEM:{VERSION}:exact:") and lim["active_slots"] == 1}
        if held:
            break
        assert time.monotonic() < deadline, "no rerun ever took DEM's region slot"
        time.sleep(0.5)
    ((dem_limit, lim),) = held.items()
    assert lim["limit"] == 1

    finished = {i: prefect_server.wait_for_terminal(i, timeout=600) for i in [*dem_ids, other_id]}
    for i, run in finished.items():
        assert run["state_type"] == "COMPLETED", (run["state"], prefect_server.logs(i)[-20:])

    # the two DEM reruns did not overlap: the second started its tiles after the first published
    subs = sorted((_tiles_subflow(prefect_server, i) for i in dem_ids),
                  key=lambda s: _t(s["start_time"]))
    first, second = subs
    assert _t(first["end_time"]) <= _t(second["start_time"]), (first, second)
    first_logs, second_logs = (prefect_server.logs(s["id"]) for s in subs)
    done = [m for m in first_logs if re.match(r"tile \d/6 DEM t60_r\d+_c\d+: ", m)]
    skipped = [m for m in second_logs if re.match(r"tile \d/6 DEM t60_r\d+_c\d+: ", m)]
    assert len(done) == 6 and all(": done" in m for m in done), done
    assert len(skipped) == 6 and all(": skipped" in m for m in skipped), skipped
    waits = sorted(
        float(m.group(1)) for i in dem_ids for line in prefect_server.logs(i)
        if (m := re.search(rf"region slot\(s\) {re.escape(dem_limit)} held after (\d+) s", line)))
    assert len(waits) == 2 and waits[0] < 10 and waits[1] > 0, waits

    # the rebuild of the other region did not queue behind the reruns: it ran beside the first
    other = _tiles_subflow(prefect_server, other_id)
    assert _t(other["start_time"]) < _t(first["end_time"]), (other, first)
    assert _t(first["start_time"]) < _t(other["end_time"]), (other, first)
    other_logs = prefect_server.logs(other_id)
    slot = [m for m in other_logs if "region slot(s) gsocseq:bbox_" in m and "held after" in m]
    assert slot and int(re.search(r"held after (\d+) s", slot[0]).group(1)) < 10, other_logs  # type: ignore[union-attr]
    assert all(lim["active_slots"] == 0 for n, lim in _limits(prefect_server).items()
               if n.startswith("gsocseq:"))
