"""Offline checks of infra/: Kubernetes manifests, Dask operator resources, helm values, the work
pool's base job template, the deployments file, the Dockerfile and the sizing arithmetic.

Every check uses the ecosystem's own schemas: kubernetes-validate (strict) for built-in kinds, the
CRDs shipped in the dask-kubernetes wheel for DaskCluster/DaskAutoscaler, the Prefect charts'
values.schema.json, Prefect's own templating for the job template, gsocseq's own sources parser.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import functools
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from prefect.utilities.templating import apply_values

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tests" / "data"
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
HELM = INFRA / "helm"
SCHEMAS = SHARED / "k8s-schemas" / "prefect-helm"
# The CRDs the operator's helm chart installs, inside the dask-kubernetes wheel (not imported:
# only its files are needed).
CRDS = (Path(importlib.util.find_spec("dask_kubernetes").submodule_search_locations[0])
        / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds")
NAMESPACE = "gsocseq"
# Oldest Kubernetes the README supports and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
SECRET_EXAMPLE = K8S / "object-store-secret.example.yaml"

# ---------------------------------------------------------------------------------------------
# loading


def _load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
MANIFEST_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
MANIFESTS = [(p.name, d) for p in MANIFEST_FILES for d in _load_all(p)]
APPLIED = [(f, d) for f, d in MANIFESTS if f in KUSTOMIZATION["resources"]]
BUILTIN = [(f, d) for f, d in MANIFESTS if not d["apiVersion"].startswith("kubernetes.dask.org/")]
BASE_JOB_TEMPLATE = json.loads((K8S / "base-job-template.json").read_text())
PREFECT_YAML = yaml.safe_load((INFRA / "prefect" / "prefect.yaml").read_text())
WORKER_VALUES = yaml.safe_load((HELM / "prefect-worker.values.yaml").read_text())
SERVER_VALUES = yaml.safe_load((HELM / "prefect-server.values.yaml").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _sizing() -> Any:
    """Import infra/sizing.py (infra/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gsocseq_infra_sizing", INFRA / "sizing.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sizing = _sizing()


@functools.cache
def _land_tiles() -> Any:
    return sizing.land_tiles()


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in MANIFESTS if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _generated_configmaps() -> list[dict[str, Any]]:
    """Build the ConfigMaps of the kustomization's configMapGenerator, as kustomize does."""
    out = []
    assert KUSTOMIZATION["generatorOptions"]["disableNameSuffixHash"] is True
    for gen in KUSTOMIZATION["configMapGenerator"]:
        data = {}
        for spec in gen["files"]:
            key, _, src = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[key] = (K8S / src).read_text()
        out.append({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": gen["name"], "namespace": KUSTOMIZATION["namespace"]},
                    "data": data})
    return out


def _render_job(variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the Job a Kubernetes worker submits, with Prefect's own templating.

    Defaults of the template's variables, overridden by ``variables``; then what the worker does
    with the two non-manifest-shaped values: ``env`` (dict → list of name/value) and ``command``
    (string → argument list).
    """
    values = {k: v["default"] for k, v in BASE_JOB_TEMPLATE["variables"]["properties"].items()
              if "default" in v}
    values.update(name="gsocseq-flow-run-abc", command="prefect flow-run execute")
    values.update(variables or {})
    config = apply_values(copy.deepcopy(BASE_JOB_TEMPLATE["job_configuration"]), values)
    job = config["job_manifest"]
    for c in job["spec"]["template"]["spec"]["containers"]:
        env = c.get("env", {})
        c["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
        if isinstance(c.get("args"), str):
            c["args"] = shlex.split(c["args"])
    return job


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = _one("DaskCluster")
    yield "dask scheduler", cluster["spec"]["scheduler"]["spec"]
    yield "dask worker", cluster["spec"]["worker"]["spec"]
    yield "flow-run job", _render_job()["spec"]["template"]["spec"]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


# ---------------------------------------------------------------------------------------------
# Kubernetes built-in kinds: kubernetes-validate, strict


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", [d for _, d in BUILTIN],
                         ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in BUILTIN])
def test_manifest_is_valid_kubernetes_strict(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_generated_configmaps_and_rendered_job_are_valid(version: str) -> None:
    for cm in _generated_configmaps():
        kubernetes_validate.validate(cm, version, strict=True)
    kubernetes_validate.validate(_render_job(), version, strict=True)
    kubernetes_validate.validate(
        _render_job({"env": {"GSOCSEQ_EXTRA": "1"}, "labels": {"a": "b"}}), version, strict=True)


def test_strict_validation_rejects_unknown_fields() -> None:
    job = _render_job()
    job["spec"]["template"]["spec"]["parallelism"] = 1  # where Prefect's default template has it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


def test_kustomization_ties_every_manifest() -> None:
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {p.name for p in MANIFEST_FILES}
    # Everything on disk is applied, except the Secret template, which must not be.
    assert listed == on_disk - {SECRET_EXAMPLE.name}
    assert all(d["kind"] != "Secret" for _, d in APPLIED)
    for gen in KUSTOMIZATION["configMapGenerator"]:
        for spec in gen["files"]:
            assert (K8S / spec.rpartition("=")[2]).is_file(), spec
    assert KUSTOMIZATION["namespace"] == NAMESPACE
    for f, d in MANIFESTS:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == NAMESPACE, f
    assert _one("Namespace")["metadata"]["name"] == NAMESPACE


# ---------------------------------------------------------------------------------------------
# Dask operator resources: the CRDs' openAPIV3Schema from the dask-kubernetes wheel


def _strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server's pruning would silently drop them."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


@functools.cache
def _crd_validator(kind: str) -> jsonschema.protocols.Validator:
    crd = yaml.load((CRDS / f"{kind.lower()}.yaml").read_text(),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    assert version["name"] == "v1"
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return jsonschema.Draft7Validator(_strict(spec_schema))


@pytest.mark.parametrize("kind", ["DaskCluster", "DaskAutoscaler"])
def test_dask_resources_match_operator_crds(kind: str) -> None:
    doc = _one(kind)
    assert doc["apiVersion"] == "kubernetes.dask.org/v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    errors = [e.message for e in _crd_validator(kind).iter_errors(doc["spec"])]
    assert errors == []


def test_crd_validation_rejects_misspelled_fields() -> None:
    spec = copy.deepcopy(_one("DaskCluster")["spec"])
    spec["worker"]["replica"] = spec["worker"].pop("replicas")
    assert not _crd_validator("DaskCluster").is_valid(spec)
    assert not _crd_validator("DaskAutoscaler").is_valid({"cluster": "gsocseq", "minimum": 1})


@pytest.mark.parametrize("role", ["scheduler", "worker"])
def test_dask_pod_specs_are_valid_kubernetes_pod_specs(role: str) -> None:
    cluster = _one("DaskCluster")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"gsocseq-{role}", "namespace": NAMESPACE},
           "spec": cluster["spec"][role]["spec"]}
    kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)
    if role == "scheduler":
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "gsocseq-scheduler", "namespace": NAMESPACE},
               "spec": cluster["spec"]["scheduler"]["service"]}
        kubernetes_validate.validate(svc, K8S_VERSIONS[-1], strict=True)


def _quantity_bytes(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "KiB": 2**10, "MiB": 2**20,
             "GiB": 2**30, "K": 1e3, "M": 1e6, "G": 1e9, "": 1}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", q)
    assert m, q
    return float(m.group(1)) * units[m.group(2)]


def test_dask_cluster_sized_for_tiles_and_single_threaded_libraries() -> None:
    cluster, scaler = _one("DaskCluster"), _one("DaskAutoscaler")
    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    args = worker["args"]
    assert args[:2] == ["dask", "worker"]
    nthreads = int(args[args.index("--nthreads") + 1])
    assert nthreads == sizing.THREADS_PER_WORKER
    dask_limit = _quantity_bytes(args[args.index("--memory-limit") + 1])
    res = worker["resources"]
    assert res["requests"] == res["limits"]  # Guaranteed QoS
    assert int(res["limits"]["cpu"]) == nthreads
    pod_limit = _quantity_bytes(res["limits"]["memory"])
    assert dask_limit < pod_limit  # Dask pauses/spills before the OOM killer
    # >= 1.5 GiB per tile in flight plus 1 GiB baseline (README "Sizing").
    assert dask_limit >= nthreads * 1.5 * 2**30 + 2**30
    runtime = _one("ConfigMap", "gsocseq-runtime")["data"]
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert runtime[var] == "1"
    for role in ("scheduler", "worker"):
        for c in cluster["spec"][role]["spec"]["containers"]:
            refs = [e["configMapRef"]["name"] for e in c["envFrom"] if "configMapRef" in e]
            assert refs == ["gsocseq-runtime"]
    assert scaler["spec"]["cluster"] == cluster["metadata"]["name"]
    assert 1 <= scaler["spec"]["minimum"] <= scaler["spec"]["maximum"]
    assert scaler["spec"]["maximum"] == max(sizing.WORKER_COUNTS)
    ports = {p["name"]: p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    assert ports["tcp-comm"] == 8786


# ---------------------------------------------------------------------------------------------
# security: restricted pods, secrets by reference, least-privilege RBAC


@pytest.mark.parametrize("name,pod", list(_pod_specs()), ids=[n for n, _ in _pod_specs()])
def test_pods_meet_restricted_pod_security(name: str, pod: dict[str, Any]) -> None:
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] in {"gsocseq-dask", "gsocseq-flow-run"}
    assert not any("hostPath" in v for v in pod.get("volumes", []))
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    for c in pod["containers"]:
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["capabilities"]["drop"] == ["ALL"]
        assert csc["readOnlyRootFilesystem"] is True
        # A read-only root needs writable /tmp and $HOME (numba cache, Prefect home).
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/home/gsocseq"} <= mounts
        assert "memory" in c["resources"]["limits"]
    labels = _one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


@pytest.mark.parametrize("values,section", [(WORKER_VALUES, "worker"), (SERVER_VALUES, "server")])
def test_prefect_chart_pods_meet_restricted_pod_security(values: dict[str, Any],
                                                          section: str) -> None:
    pod = values[section]["podSecurityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault"
    containers = [values[section]["containerSecurityContext"]]
    if section == "worker":
        containers.append(values["worker"]["initContainer"]["containerSecurityContext"])
    else:
        containers.append(values["migrations"]["securityContext"])
    for csc in containers:
        assert csc["runAsNonRoot"] is True and csc["allowPrivilegeEscalation"] is False
        assert csc["capabilities"]["drop"] == ["ALL"] and csc["readOnlyRootFilesystem"] is True


def test_network_policies_admit_the_namespace_and_the_dask_operator() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for _, d in MANIFESTS if d["kind"] == "NetworkPolicy"}
    everything = policies["same-namespace-only"]
    assert everything["podSelector"] == {} and everything["ingress"] == [{"from": [
        {"podSelector": {}}]}]
    operator = policies["dask-operator-to-scheduler"]
    assert operator["podSelector"]["matchLabels"] == {"dask.org/cluster-name": "gsocseq",
                                                      "dask.org/component": "scheduler"}
    (rule,) = operator["ingress"]
    (peer,) = rule["from"]
    namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    # The namespace the README installs the operator into.
    assert f"--create-namespace -n {namespace} dask-kubernetes-operator" in \
        (INFRA / "README.md").read_text()
    assert {p["port"] for p in rule["ports"]} == {8786, 8787}


def test_credentials_only_through_secret_references() -> None:
    example_names = {d["metadata"]["name"] for d in _load_all(SECRET_EXAMPLE)}
    assert example_names == {"gsocseq-object-store", "prefect-server-database"}
    for d in _load_all(SECRET_EXAMPLE):
        for key, value in d["stringData"].items():
            assert re.search(r"<[A-Z_a-z0-9:/.-]+>", value), f"{key} is not a placeholder"
    documents: list[tuple[str, Any]] = [(f, d) for f, d in MANIFESTS if f != SECRET_EXAMPLE.name]
    documents += [("base-job-template.json", BASE_JOB_TEMPLATE), ("prefect.yaml", PREFECT_YAML),
                  ("worker values", WORKER_VALUES), ("server values", SERVER_VALUES),
                  ("rendered job", _render_job())]
    secret_refs = set()
    for where, doc in documents:
        for path, node in _walk(doc):
            if isinstance(node, str):
                assert not re.search(r"AKIA[0-9A-Z]{16}", node), f"{where}{path}"
            if isinstance(node, dict) and str(node.get("name", "")).startswith("AWS_"):
                assert "value" not in node and "secretKeyRef" in node["valueFrom"], where
            if isinstance(node, dict) and "secretRef" in node:
                secret_refs.add(node["secretRef"]["name"])
            if isinstance(node, dict) and "secretKeyRef" in node:
                secret_refs.add(node["secretKeyRef"]["name"])
    assert "gsocseq-object-store" in secret_refs
    assert SERVER_VALUES["externalDatabase"]["existingSecret"] in example_names
    job_container = _render_job()["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "gsocseq-object-store"}} in job_container["envFrom"]


def test_rbac_is_namespaced_and_least_privilege() -> None:
    kinds = {d["kind"] for _, d in MANIFESTS}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    role, binding = _one("Role", "prefect-worker"), _one("RoleBinding", "prefect-worker")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert all("*" not in t for t in granted)
    assert {r for _, r, _ in granted} <= {"jobs", "pods", "pods/log", "pods/status", "events"}
    writes = {(g, r) for g, r, v in granted if v in ("create", "update", "patch", "delete")}
    assert writes == {("batch", "jobs")}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "prefect-worker"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prefect-worker",
                                    "namespace": NAMESPACE}]
    # The chart runs under this SA and creates no RBAC of its own.
    assert WORKER_VALUES["serviceAccount"] == {"create": False, "name": "prefect-worker"}
    assert WORKER_VALUES["role"]["create"] is False
    assert WORKER_VALUES["rolebinding"]["create"] is False
    assert WORKER_VALUES["worker"]["config"]["jobNamespace"] == NAMESPACE
    assert WORKER_VALUES["worker"]["config"]["observerClusterWide"] is False
    # Only the worker's SA is bound to anything; the others hold no token.
    bound = {s["name"] for _, d in MANIFESTS if d["kind"] == "RoleBinding" for s in d["subjects"]}
    assert bound == {"prefect-worker"}
    for sa in ("gsocseq-flow-run", "gsocseq-dask"):
        assert _one("ServiceAccount", sa)["automountServiceAccountToken"] is False


# ---------------------------------------------------------------------------------------------
# Prefect: helm values, base job template, deployments


@pytest.mark.parametrize("chart,values", [("prefect-worker", WORKER_VALUES),
                                          ("prefect-server", SERVER_VALUES)])
def test_helm_values_match_chart_schema(chart: str, values: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{chart}.values.schema.json").read_text())
    # `$schema` is the undated "http://json-schema.org/schema#"; helm applies draft 7.
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(values)] == []
    broken = copy.deepcopy(values)
    section = "worker" if chart == "prefect-worker" else "server"
    broken[section]["resources"]["limit"] = {"cpu": "1"}  # typo of "limits"
    assert not validator.is_valid(broken)


def test_helm_values_fit_the_manifests() -> None:
    cfg = WORKER_VALUES["worker"]["config"]
    assert cfg["type"] == "kubernetes"
    assert cfg["workPool"] == PREFECT_YAML["definitions"]["work_pool"]["name"]
    generated = {g["name"] for g in KUSTOMIZATION["configMapGenerator"]}
    assert cfg["baseJobTemplate"]["existingConfigMapName"] in generated
    (cm,) = [c for c in _generated_configmaps()
             if c["metadata"]["name"] == cfg["baseJobTemplate"]["existingConfigMapName"]]
    # The chart mounts this key as the worker's --base-job-template file.
    assert json.loads(cm["data"]["baseJobTemplate.json"]) == BASE_JOB_TEMPLATE
    api = WORKER_VALUES["worker"]["selfHostedServerApiConfig"]["apiUrl"]
    assert api == f"http://prefect-server.{NAMESPACE}.svc.cluster.local:4200/api"
    # Dask workers (task runs) reach the same API as the worker's flow runs.
    assert _one("ConfigMap", "gsocseq-runtime")["data"]["PREFECT_API_URL"] == api
    assert SERVER_VALUES["service"]["port"] == 4200
    prefect_version = Version(PREFECT_YAML["prefect-version"])
    for tag in (WORKER_VALUES["worker"]["image"]["prefectTag"],
                SERVER_VALUES["server"]["image"]["prefectTag"]):
        assert tag.startswith(f"{prefect_version}-python3.11")
    assert prefect_version in SpecifierSet(next(
        d.removeprefix("prefect") for d in PYPROJECT["project"]["dependencies"]
        if re.match(r"prefect[><=]", d)))


def test_base_job_template_variables_are_a_valid_schema_with_valid_defaults() -> None:
    variables = BASE_JOB_TEMPLATE["variables"]
    jsonschema.Draft7Validator.check_schema(variables)
    defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
    jsonschema.Draft7Validator(variables).validate(defaults)
    placeholders = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}",
                                  json.dumps(BASE_JOB_TEMPLATE["job_configuration"])))
    assert placeholders <= set(variables["properties"])
    assert {"object_store_secret", "runtime_config_map", "sources_config_map",
            "active_deadline_seconds"} <= placeholders
    configmaps = {d["metadata"]["name"] for _, d in MANIFESTS if d["kind"] == "ConfigMap"}
    configmaps |= {g["name"] for g in KUSTOMIZATION["configMapGenerator"]}
    assert defaults["runtime_config_map"] in configmaps
    assert defaults["sources_config_map"] in configmaps
    assert defaults["namespace"] == NAMESPACE
    assert defaults["service_account_name"] == "gsocseq-flow-run"


def _flow_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse((REPO / "flows" / "gsocseq_flows.py").read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)
            and any(isinstance(d, ast.Call) and getattr(d.func, "id", "") == "flow"
                    for d in n.decorator_list)}


def test_deployments_point_at_real_flows_and_the_work_pool() -> None:
    flows = _flow_functions()
    deployments = {d["name"]: d for d in PREFECT_YAML["deployments"]}
    assert set(deployments) == {"global-rebuild", "country-rerun"}
    pool_vars = BASE_JOB_TEMPLATE["variables"]
    for dep in deployments.values():
        path, func = dep["entrypoint"].split(":")
        assert (REPO / path).is_file() and func in flows
        fn = flows[func]
        args = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        assert set(dep["parameters"]) <= args, set(dep["parameters"]) - args
        assert "cluster_address" not in dep["parameters"]  # from the Prefect variable
        pool = dep["work_pool"]
        assert pool["name"] == WORKER_VALUES["worker"]["config"]["workPool"]
        jsonschema.Draft7Validator(pool_vars).validate(pool["job_variables"])
        assert set(pool["job_variables"]) <= set(pool_vars["properties"])
        job = _render_job(pool["job_variables"])
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)
    assert deployments["global-rebuild"]["schedules"][0]["cron"] == "0 2 1 * *"
    assert deployments["global-rebuild"]["concurrency_limit"] == 1
    (pull,) = PREFECT_YAML["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "/opt/gsocseq"


def test_sources_configmap_is_mounted_where_the_deployments_look() -> None:
    from gsocseq.sources.spec import load_sources, parse_sources

    runtime = _one("ConfigMap", "gsocseq-runtime")["data"]
    path = Path(runtime["GSOCSEQ_SOURCES"])
    sources_param = PREFECT_YAML["definitions"]["parameters"]["sources"]
    assert sources_param == f"file://{path}"
    for name, pod in _pod_specs():
        if name == "dask scheduler":
            continue
        vols = {v["name"]: v for v in pod["volumes"]}
        (c,) = pod["containers"]
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(path.parent)]
        assert mount["readOnly"] is True
        assert vols[mount["name"]]["configMap"]["name"] == "gsocseq-sources"
    (cm,) = [g for g in _generated_configmaps() if g["metadata"]["name"] == "gsocseq-sources"]
    ours = parse_sources(cm["data"][path.name], origin=str(path))
    shipped = load_sources()
    assert {s.name for s in ours.specs} == {s.name for s in shipped.specs}


def test_one_image_reference_everywhere() -> None:
    version = PYPROJECT["project"]["version"]
    image = f"ghcr.io/gsocseq/gsocseq:{version}"
    cluster = _one("DaskCluster")
    refs = [c["image"] for role in ("scheduler", "worker")
            for c in cluster["spec"][role]["spec"]["containers"]]
    refs.append(BASE_JOB_TEMPLATE["variables"]["properties"]["image"]["default"])
    refs.append(PREFECT_YAML["definitions"]["work_pool"]["job_variables"]["image"])
    refs += [d["work_pool"]["job_variables"]["image"] for d in PREFECT_YAML["deployments"]]
    assert set(refs) == {image}
    (kimg,) = KUSTOMIZATION["images"]
    assert f"{kimg['name']}:{kimg['newTag']}" == image
    assert f"-t {image}" in (INFRA / "docker" / "Dockerfile").read_text()


# ---------------------------------------------------------------------------------------------
# Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (INFRA / "docker" / "Dockerfile").read_text()
    logical, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        keyword, _, rest = buf.strip().partition(" ")
        logical.append((keyword.upper(), " ".join(rest.split())))
        buf = ""
    return logical


def _shell_blocks(markdown: str) -> list[str]:
    """Return the fenced code blocks tagged bash/sh/shell/console (fences paired line by line)."""
    blocks, current, lang = [], None, ""
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if lang in ("bash", "sh", "shell", "console"):
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _uv_install_commands(shell: str) -> list[list[str]]:
    """Return the `uv pip install` commands of a shell snippet, options and env prefixes dropped."""
    found = []
    shell = shell.replace("\\\n", " ")  # join backslash continuations
    for part in re.split(r"&&|;|\n|\|\|", shell):
        words = shlex.split(part, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words = words[1:]
        if words[:3] == ["uv", "pip", "install"]:
            found.append([w for w in words[3:] if not w.startswith("-")])
    return found


def test_dockerfile_pinned_nonroot_single_threaded() -> None:
    ins = _dockerfile_instructions()
    froms = [rest.split()[0] for k, rest in ins if k == "FROM"]
    for ref in froms:
        assert "@sha256:" in ref or re.search(r":\d+\.\d+\.\d+", ref), f"unpinned base {ref}"
    final = froms[-1]
    m = re.fullmatch(r"python:(3\.11\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?", final)
    assert m, final
    assert Version(m.group(1)) in SpecifierSet(PYPROJECT["project"]["requires-python"])
    users = [rest for k, rest in ins if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1])  # numeric, non-root
    last_user = max(i for i, (k, _) in enumerate(ins) if k == "USER")
    assert all(k not in ("RUN", "COPY", "ADD") for k, _ in ins[last_user + 1:])
    env = " ".join(rest for k, rest in ins if k == "ENV")
    assert "OMP_NUM_THREADS=1" in env.split()
    cache = re.search(r"NUMBA_CACHE_DIR=(\S+)", env).group(1)
    uid = users[-1].split(":")[0]
    runs = " ".join(rest for k, rest in ins if k == "RUN")
    assert re.search(rf"install -d -o {uid} -g \d+ -m 07\d\d {re.escape(cache)}", runs)
    # The numba cache and $HOME are the emptyDirs the pods mount.
    assert cache.startswith("/home/gsocseq/")
    assert "HOME=/home/gsocseq" in env.split()


def test_dockerfile_installs_like_the_readme() -> None:
    runs = [rest for k, rest in _dockerfile_instructions() if k == "RUN"]
    docker_installs = [c for r in runs for c in _uv_install_commands(r)]
    # Dependencies from pyproject first (cache layer), then the package exactly as the README.
    assert docker_installs[0] == ["pyproject.toml"]
    package_install = docker_installs[-1]
    assert package_install == ["."]
    readme = (REPO / "README.md").read_text()
    blocks = _shell_blocks(readme)
    readme_installs = [c for b in blocks for c in _uv_install_commands(b.replace("$ ", ""))]
    assert package_install in readme_installs, readme_installs
    infra_readme = (INFRA / "README.md").read_text()
    assert "`uv pip install .`" in infra_readme
    copies = [rest for k, rest in _dockerfile_instructions() if k == "COPY"]
    assert "pyproject.toml ./" in copies and ". ." in copies


def test_dockerignore_keeps_the_package_and_drops_the_rest() -> None:
    patterns = [p.strip() for p in (INFRA / "docker" / "Dockerfile.dockerignore").read_text()
                .splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
                   or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for needed in ("pyproject.toml", "README.md", "gsocseq/__init__.py", "flows/gsocseq_flows.py",
                   "gsocseq/sources/sources.toml"):
        assert not ignored(needed), needed
    for dropped in (".git/config", ".venv/bin/python", "tests/unit/test_infra.py",
                    "gsocseq/__pycache__/x.pyc", "prod.env"):
        assert ignored(dropped), dropped


# ---------------------------------------------------------------------------------------------
# sizing


def test_sizing_grid_matches_the_package_grid() -> None:
    from gsocseq.cube import grid

    assert sizing.TILE_DEG * sizing.CELLS_PER_DEG == grid.TILE_SIZE
    assert sizing.CELLS_PER_DEG * grid.RES_DEG == pytest.approx(1.0)
    tiles = _land_tiles()
    assert tiles.n_tiles == (grid.N_ROWS // grid.TILE_SIZE) * (grid.N_COLS // grid.TILE_SIZE)
    # Ice-free land ≈ 134 M km²; 30″ cells ≈ 0.86 km² at the equator, smaller poleward.
    assert 1.6e8 < tiles.land_cells < 2.8e8
    assert 0.25 < tiles.n_land_tiles / tiles.n_tiles < 0.40
    rows = sizing.sizing_rows(tiles)
    per_tile = sizing.AGRICULTURAL_SHARE * tiles.land_cells / tiles.n_land_tiles
    for r in rows:
        assert r.waves * r.cores >= tiles.n_land_tiles > (r.waves - 1) * r.cores
        assert r.wall_s_times_x == pytest.approx(r.waves * per_tile)
    # At any X, more workers never take longer.
    walls = [r.wall_s_times_x for r in rows]
    assert walls == sorted(walls, reverse=True)


def test_readme_sizing_table_is_the_scripts_output() -> None:
    readme = (INFRA / "README.md").read_text()
    block = re.search(r"<!-- sizing:begin -->\n(.*?)<!-- sizing:end -->", readme, re.S).group(1)
    # Either still the placeholder, or filled in with `python infra/sizing.py --x X`.
    shown = re.search(r"X = \*\*(.+?)\*\* pixels/s/core", block).group(1)
    x = None if shown == sizing.X_PLACEHOLDER else float(shown)
    assert block == sizing.markdown(_land_tiles(), x=x)
    evaluated = sizing.markdown(_land_tiles(), x=1000.0)
    assert sizing.X_PLACEHOLDER not in evaluated and "| 200 | 400 |" in evaluated
