"""The Prefect flows under ``prefect_test_harness``: parameter schema, validation, runtime, runs.

Real components: Prefect's temporary server (``prefect_test_harness``), a real dask LocalCluster
(one worker process, reached by address as a remote cluster would be), the real pipeline on the
demo world written to a local ``file://`` store. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from distributed import LocalCluster
from prefect import flow, task
from prefect.artifacts import Artifact
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed
from prefect.testing.utilities import prefect_test_harness
from prefect.variables import Variable

from flows.cluster import (
    ADDRESS_VARIABLE,
    ClusterUnavailableError,
    DaskRuntime,
    check_cluster,
    resolve_address,
    resolve_runtime,
)
from flows.gsocseq_flows import (
    STORAGE_TASK_OPTIONS,
    country_rerun,
    global_rebuild,
    is_transient,
    publish_task,
    retry_transient,
    tile_task,
)
from flows.report import RegionReport, ScenarioRow, render_markdown
from flows.serve import COUNTRY_DEPLOYMENT, GLOBAL_CRON, GLOBAL_DEPLOYMENT, build_deployments
from gsocseq.errors import InputValidationError, PipelineError

TILE = 60


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's temporary server and SQLite database, heartbeat off (stack-notes: 0.12 s/run)."""
    home = tmp_path_factory.mktemp("prefect-home")
    old = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    try:
        with (
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
            prefect_test_harness(server_startup_timeout=120),
        ):
            yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A real dask cluster (one worker process) the flows reach by its address."""
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                      dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def demo_sources(demo_world: Any) -> str:
    """The demo world (2 × 3 tiles of 60 cells) on a local file:// store; its sources.toml URL."""
    return demo_world("file", tile_size=TILE).sources_url


# ------------------------------------------------------------------------- parameters and form


def test_country_form_schema_has_types_constraints_and_help() -> None:
    schema = country_rerun.parameters.model_dump()
    props = schema["properties"]
    assert schema["required"] == ["iso3", "out"]
    assert props["iso3"]["pattern"] == "^[A-Z]{3}$"
    assert "ISO 3166-1 alpha-3" in props["iso3"]["description"]
    assert props["scenarios"]["items"]["enum"] == ["bau", "ssm_low", "ssm_med", "ssm_high"]
    assert props["scenarios"]["minItems"] == 1
    assert props["scheme"]["enum"] == ["exact", "fao"]
    assert props["tile_size"]["minimum"] == 8
    assert {"brackets", "montecarlo", "none"} <= {
        v for alt in props["uncertainty"]["anyOf"] for v in alt.get("enum", ())}
    assert props["draws"]["anyOf"][0]["minimum"] == 1 and props["seed"]["minimum"] == 0
    assert {"cluster_address", "map_version", "out", "sources"} <= set(props)
    assert all(p.get("description") for p in props.values()), "every field has a help text"


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"iso3": "KEN", "out": "s3://b/x"}, True),
        ({"iso3": "ken", "out": "s3://b/x"}, False),
        ({"iso3": "KENY", "out": "s3://b/x"}, False),
        ({"iso3": "KEN", "out": "/tmp/x"}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "scenarios": []}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "scenarios": ["bau", "foo"]}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "scheme": "rk4"}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "cluster_address": "scheduler:8786"}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "uncertainty": "montecarlo", "draws": 100,
          "seed": 3}, True),
        ({"iso3": "KEN", "out": "s3://b/x", "uncertainty": False}, True),
        ({"iso3": "KEN", "out": "s3://b/x", "uncertainty": "mc"}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "uncertainty": "montecarlo", "draws": 0}, False),
        ({"iso3": "KEN", "out": "s3://b/x", "seed": -1}, False),
    ],
)
def test_form_schema_accepts_and_rejects(params: dict[str, Any], ok: bool) -> None:
    """The JSON schema the server enforces on ``create_flow_run`` (the UI form's validation)."""
    schema = country_rerun.parameters.model_dump()
    if ok:
        jsonschema.validate(params, schema)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(params, schema)


def test_global_rebuild_schema_lists_countries() -> None:
    props = global_rebuild.parameters.model_dump()["properties"]
    assert props["countries"]["anyOf"][0]["items"]["pattern"] == "^[A-Z]{3}$"
    assert props["world"]["default"] == "world"


def test_deployments_schedule_and_defaults() -> None:
    rebuild, country = build_deployments(out="s3://bucket/runs", sources="s3://bucket/s.toml",
                                         tile_size=120, world="demo", scenarios=["bau"])
    assert rebuild.name == GLOBAL_DEPLOYMENT and country.name == COUNTRY_DEPLOYMENT
    assert [s.schedule.cron for s in rebuild.schedules] == [GLOBAL_CRON] == ["0 2 1 * *"]
    assert country.schedules == [] or country.schedules is None
    assert rebuild.entrypoint == "flows.gsocseq_flows.global_rebuild"
    assert country.entrypoint == "flows.gsocseq_flows.country_rerun"
    assert country.enforce_parameter_schema and rebuild.enforce_parameter_schema
    assert country.parameters["out"] == "s3://bucket/runs"
    assert country.parameters["tile_size"] == 120 and "world" not in country.parameters
    assert rebuild.parameters["world"] == "demo"
    assert rebuild.parameters["scenarios"] == country.parameters["scenarios"] == ["bau"]


# ---------------------------------------------------------------------------- retries, report


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError("read timed out"), True),
        (OSError("SlowDown: please reduce your request rate"), True),
        (FileNotFoundError("s3://b/missing"), False),
        (PermissionError("denied"), False),
        (InputValidationError("unknown ISO3 'DEX'"), False),
        (ValueError("bad"), False),
    ],
)
def test_transient_errors_classified(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient
    wrapped = PipelineError(f"tile t60_r000_c000 failed: {exc}")
    wrapped.__cause__ = exc  # run_tile(raise_errors=True) raises ``from`` the storage error
    assert is_transient(wrapped) is transient


def test_retry_condition_reads_the_failed_state() -> None:
    assert retry_transient(None, None, Failed(data=ConnectionResetError("reset")))
    assert not retry_transient(None, None, Failed(data=FileNotFoundError("gone")))
    assert not retry_transient(None, None, Completed(data=1))


def test_storage_tasks_retry_transient_errors_only(harness: None) -> None:
    """The retry policy of the tile/publish tasks, run by Prefect's real task engine."""
    assert tile_task.retries == publish_task.retries == 2
    assert tile_task.retry_condition_fn is retry_transient
    calls: list[str] = []
    errors = {"reset": ConnectionResetError("connection reset by peer"),
              "missing": FileNotFoundError("s3://bucket/missing.zarr")}

    @task(**{**STORAGE_TASK_OPTIONS, "retry_delay_seconds": 0})
    def flaky(kind: str) -> str:
        calls.append(kind)
        if len(calls) < 3:
            raise errors[kind]
        return "ok"

    @flow
    def storage_flow(kind: str) -> str:
        return flaky(kind)

    assert storage_flow("reset") == "ok" and calls == ["reset"] * 3
    calls.clear()
    with pytest.raises(FileNotFoundError):
        storage_flow("missing")
    assert calls == ["missing"]  # not retried


def test_markdown_report_tables_and_links() -> None:
    ok = RegionReport(
        region="DEM", tiles_done=4, tiles_skipped=2, tiles_failed={}, modelled_pixels=12345,
        t0_stock_mt=1.25, scenarios=(ScenarioRow("bau", 1.2, -0.05, -0.0025),),
        cogs={"T0": "s3://b/p/DEM/DEM_GSOCseq_T0_Map030.tif"},
        stac_catalog="s3://b/stac/catalog.json", stac_items=("s3://b/stac/c/DEM/DEM.json",),
    )
    bad = RegionReport(region="DMX", tiles_done=1, tiles_skipped=0,
                       tiles_failed={"t60_r000_c001": "boom"}, modelled_pixels=10,
                       t0_stock_mt=0.1, scenarios=())
    md = render_markdown("GSOCseq v1.1 global rebuild", "LocalCluster (2 workers, one process each)",
                         [ok, bad])
    assert "Computed on LocalCluster (2 workers, one process each)." in md
    assert "| DEM | 4 | 2 | 0 | 12,345 | yes |" in md
    assert "| DMX | 1 | 0 | 1 | 10 | **no** |" in md
    assert "| DEM | bau | 1.2500 | 1.2000 | -0.0500 | -0.00250 |" in md
    assert "| T0 | [DEM_GSOCseq_T0_Map030.tif](s3://b/p/DEM/DEM_GSOCseq_T0_Map030.tif) |" in md
    assert "[DEM.json](s3://b/stac/c/DEM/DEM.json)" in md
    assert "Not published: failed tiles t60_r000_c001" in md
    assert ok.as_dict()["published"] and not bad.as_dict()["published"]


def test_markdown_report_per_country_totals() -> None:
    world = RegionReport(
        region="world", tiles_done=5, tiles_skipped=0, tiles_failed={}, modelled_pixels=100,
        t0_stock_mt=3.0, scenarios=(ScenarioRow("bau", 3.1, 0.1, 0.005),),
        countries={"DMX": {"T0_MtC": 1.0, "bau_rate_MtC_per_yr": 0.002},
                   "DEM": {"T0_MtC": 2.0, "bau_rate_MtC_per_yr": 0.003}},
    )
    md = render_markdown("GSOCseq v1.1 global rebuild", "here", [world])
    assert "## Totals per country: world" in md
    assert md.index("| DEM | 2.0000 | +0.00300 |") < md.index("| DMX | 1.0000 | +0.00200 |")
    assert world.as_dict()["countries"]["DEM"]["T0_MtC"] == 2.0


# ------------------------------------------------------------------------------- dask runtime


def test_cluster_address_checked_for_workers(cluster: LocalCluster) -> None:
    assert check_cluster(cluster.scheduler_address, wait_s=10) == 1
    runtime = resolve_runtime(cluster.scheduler_address, local_workers=3, wait_s=10)
    assert runtime == DaskRuntime(address=cluster.scheduler_address, n_workers=1)
    assert runtime.task_runner().address == cluster.scheduler_address


def test_scheduler_without_workers_fails_fast() -> None:
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        t0 = time.monotonic()
        with pytest.raises(ClusterUnavailableError, match="has no workers after 1 s"):
            check_cluster(empty.scheduler_address, wait_s=1)
        assert time.monotonic() - t0 < 15


def test_unreachable_scheduler_fails_fast() -> None:
    with pytest.raises(ClusterUnavailableError, match="unreachable"):
        check_cluster("tcp://127.0.0.1:9", connect_s=2)


def test_address_from_prefect_variable(harness: None, cluster: LocalCluster) -> None:
    assert resolve_address(None) is None
    Variable.set(ADDRESS_VARIABLE, cluster.scheduler_address, overwrite=True)
    try:
        assert resolve_address(None) == cluster.scheduler_address
        assert resolve_address("tcp://elsewhere:8786") == "tcp://elsewhere:8786"  # parameter wins
        assert resolve_runtime(None, local_workers=2).address == cluster.scheduler_address
    finally:
        Variable.unset(ADDRESS_VARIABLE)
    runtime = resolve_runtime(None, local_workers=2)
    assert runtime.address is None and runtime.n_workers == 2
    assert runtime.description == "LocalCluster (2 workers, one process each)"
    assert runtime.task_runner().cluster_kwargs["n_workers"] == 2


# -------------------------------------------------------------------------------------- runs


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_malformed_iso3_rejected_by_flow_validation(harness: None, tmp_path: Path) -> None:
    with pytest.raises(ParameterTypeError, match="iso3"):
        country_rerun(iso3="dem", out=f"file://{tmp_path}")
    assert _files(tmp_path) == []


def test_unknown_iso3_fails_before_any_compute(
    harness: None, tmp_path: Path, demo_sources: str
) -> None:
    state = country_rerun(iso3="DEX", out=f"file://{tmp_path}/out", sources=demo_sources,
                          tile_size=TILE, cluster_address="tcp://127.0.0.1:9", return_state=True)
    assert state.is_failed()
    assert "DEX" in state.message
    with pytest.raises(InputValidationError, match="DEX"):
        state.result()
    # nothing written and the (unreachable) cluster never contacted: the run stopped at planning
    assert _files(tmp_path) == []


@pytest.mark.timeout(300)  # a lost worker would otherwise hang dask forever
def test_country_rerun_then_resume(
    harness: None, tmp_path: Path, demo_sources: str, cluster: LocalCluster
) -> None:
    out = tmp_path / "out"
    kwargs: dict[str, Any] = {
        "iso3": "DEM", "out": f"file://{out}", "scenarios": ["bau", "ssm_med"],
        "sources": demo_sources, "tile_size": TILE, "uncertainty": False,
        "cluster_address": cluster.scheduler_address,
    }
    first = country_rerun(**kwargs)
    (region,) = first["regions"]
    assert first["runtime"] == f"dask cluster {cluster.scheduler_address} (1 worker)"
    assert region["region"] == "DEM" and region["published"]
    assert region["tiles"]["done"] >= 1 and region["tiles"]["skipped"] == 0
    assert not region["tiles"]["failed"]
    assert 0 < region["t0_stock_MtC"] and set(region["scenarios"]) == {"bau", "ssm_med"}
    # products exist where the report says
    assert "T0" in region["cogs"] and "finalSOC_SSM2" in region["cogs"]
    assert all(Path(u.removeprefix("file://")).stat().st_size > 0 for u in region["cogs"].values())
    (item_url,) = region["stac_items"]
    item = json.loads(Path(item_url.removeprefix("file://")).read_text())
    assert item["type"] == "Feature" and item["id"] == "DEM"
    assert Path(region["stac_catalog"].removeprefix("file://")).exists()
    # the markdown artifact
    artifact = Artifact.get("gsocseq-country-dem")
    assert artifact is not None and artifact.type == "markdown"
    assert f"| DEM | {region['tiles']['done']} | 0 | 0 |" in str(artifact.data)
    assert "| DEM | ssm_med |" in str(artifact.data) and "catalog.json" in str(artifact.data)

    # a rerun resumes: every tile is found complete, the products are already current
    second = country_rerun(**kwargs)["regions"][0]
    assert second["tiles"]["skipped"] == region["tiles"]["done"]
    assert second["tiles"]["done"] == 0
    assert second["t0_stock_MtC"] == pytest.approx(region["t0_stock_MtC"], rel=1e-12)


@pytest.mark.timeout(300)  # a lost worker would otherwise hang dask forever
def test_global_rebuild_of_two_countries(
    harness: None, tmp_path: Path, demo_sources: str, cluster: LocalCluster
) -> None:
    """Two regions in one run; the flows' own-LocalCluster path runs in the e2e serve tests."""
    out = tmp_path / "out"
    result = global_rebuild(out=f"file://{out}", countries=["DEM", "DMX"], scenarios=["bau"],
                            sources=demo_sources, tile_size=TILE, uncertainty=False,
                            cluster_address=cluster.scheduler_address)
    assert [r["region"] for r in result["regions"]] == ["DEM", "DMX"]
    assert all(r["published"] for r in result["regions"])
    catalog_url = result["regions"][-1]["stac_catalog"]
    assert catalog_url == result["regions"][0]["stac_catalog"]
    # both items are in the one catalog (published one after the other: no lost update)
    items = sorted(p.name for p in out.rglob("*.json")
                   if json.loads(p.read_text()).get("type") == "Feature")
    assert items == ["DEM.json", "DMX.json"]
    artifact = Artifact.get("gsocseq-global-rebuild")
    assert artifact is not None
    assert "| DEM | bau |" in str(artifact.data) and "| DMX | bau |" in str(artifact.data)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_global_rebuild_defaults_to_the_world_of_the_boundaries(
    harness: None, tmp_path: Path, demo_sources: str, cluster: LocalCluster
) -> None:
    """No countries, default world: the demo world's two countries, published from one run."""
    out = tmp_path / "out"
    result = global_rebuild(out=f"file://{out}", scenarios=["bau"], sources=demo_sources,
                            tile_size=TILE, uncertainty=False,
                            cluster_address=cluster.scheduler_address)
    (region,) = result["regions"]
    assert region["region"] == "world" and region["published"]
    assert set(region["countries"]) == {"DEM", "DMX"}
    assert sum(c["T0_MtC"] for c in region["countries"].values()) == pytest.approx(
        region["t0_stock_MtC"], rel=1e-9)
    items = sorted(p.name for p in out.rglob("*.json")
                   if json.loads(p.read_text()).get("type") == "Feature")
    assert items == ["DEM.json", "DMX.json", "world.json"]
    assert (out / "gsocseq" / "v1.1" / "exact" / "products" / "world" / "GSOCseq_T0_Map030.tif"
            ).exists()
    artifact = Artifact.get("gsocseq-global-rebuild")
    assert artifact is not None and "## Totals per country: world" in str(artifact.data)


@pytest.mark.parametrize("argv", [["flows/serve.py"], ["-m", "flows.serve"]], ids=["file", "module"])
def test_serve_runs_as_a_file_and_as_a_module(argv: list[str], tmp_path: Path) -> None:
    """Prefect users run deployment scripts as files: `python flows/serve.py` must import `flows`."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, *argv, "--help"], cwd=repo, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PREFECT_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "--out" in proc.stdout and "--sources" in proc.stdout


@pytest.mark.timeout(300)  # a lost worker would otherwise hang dask forever
def test_a_source_down_fails_only_its_tiles_in_the_flow(
    harness: None, tmp_path: Path, cluster: LocalCluster
) -> None:
    """The east part of the SOC map answers 503 (a real HTTP server): the flow builds and runs the
    west tile, fails the east one naming the source and URL, does not publish, and says so."""
    from rangeserver import RangeServer
    from split_sources import soc_in_two_files

    from gsocseq.cube.grid import TileKey
    from gsocseq.demo import write_demo_world

    world = tmp_path / "world"
    write_demo_world(f"file://{world}", {}, tiles_y=1, tiles_x=2, tile_size=TILE, seed=3)
    west, east = "t60_r248_c232", "t60_r248_c233"  # DEM's two tiles in this world
    soc_in_two_files(world, tmp_path / "w", TileKey.from_id(west).bounds[2])
    out = tmp_path / "out"
    with RangeServer(tmp_path / "w", down=("GSOCmap_east",)) as server:
        state = country_rerun(iso3="DEM", out=f"file://{out}", sources=f"{server.url}/sources.toml",
                              tile_size=TILE, scenarios=["bau"], uncertainty=False,
                              cluster_address=cluster.scheduler_address, return_state=True)
    assert state.is_failed() and "DEM" in state.message
    markers = sorted(p.name.removesuffix(".json") for p in out.rglob("_done/*.json"))
    assert markers == [west]  # the west tile was built and computed
    assert not list(out.rglob("*.tif"))  # nothing published
    artifact = str(Artifact.get("gsocseq-country-dem").data)
    assert "| DEM | 1 | 0 | 1 |" in artifact and east in artifact
