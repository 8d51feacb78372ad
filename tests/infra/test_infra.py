"""Offline checks of infra/: Kubernetes manifests, Dask operator resources, helm values, the work
pool's base job template, the deployments file, the Dockerfile, the lock file and the sizing arithmetic.

Every check uses the ecosystem's own schemas: kubernetes-validate (strict) for built-in kinds, the
CRDs shipped in the dask-kubernetes wheel for DaskCluster/DaskAutoscaler, the Prefect charts'
values.schema.json and templates (vendored, tests/data/k8s-schemas), Prefect's own templating and
prefect-kubernetes' KubernetesWorkerJobConfiguration for the job template, the operator's own
controller code against a real scheduler for the HTTP API, gsocseq's own sources parser. The
kustomization is rendered offline by tests/kustomize_render.py (the same output as kubectl kustomize).
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
from kustomize_render import build as kustomize_build
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
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
LOCK = tomllib.loads((REPO / "uv.lock").read_text())
RENDERED = kustomize_build(K8S)
OPERATOR_VALUES = yaml.safe_load((HELM / "dask-kubernetes-operator.values.yaml").read_text())
README = (INFRA / "README.md").read_text()
# The prefect-helm release whose values schemas and templates are vendored in tests/data.
PREFECT_CHART_VERSION = "2026.8.18172642"
DIGEST_REF = re.compile(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9._-]+)*@sha256:[0-9a-f]{64}")


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


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_kustomization_is_valid(version: str) -> None:
    """What `kubectl apply -k infra/k8s` sends: built-in kinds strict, custom resources by CRD."""
    kinds = set()
    for doc in RENDERED:
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("kubernetes.dask.org/"):
            assert _crd_validator(doc["kind"]).is_valid(doc["spec"]), doc["kind"]
        else:
            kubernetes_validate.validate(doc, version, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gsocseq"
    assert {"DaskCluster", "DaskAutoscaler", "PodDisruptionBudget", "ResourceQuota", "LimitRange",
            "NetworkPolicy", "ConfigMap", "Namespace"} <= kinds


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
    assert example_names == {"gsocseq-object-store", "prefect-server-database", "prefect-api-auth"}
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
    for values in (SERVER_VALUES["server"], WORKER_VALUES["worker"]["selfHostedServerApiConfig"]):
        assert values["basicAuth"] == {"enabled": True, "existingSecret": "prefect-api-auth"}
    # Static object-store keys are the optional fallback (workload identity is the default): every
    # reference to them is optional, so pods start without the Secret.
    refs = [n["secretRef"] for _, d in MANIFESTS + [("job", _render_job())] for _, n in _walk(d)
            if isinstance(n, dict) and "secretRef" in n]
    assert len(refs) == 2  # Dask workers, flow-run Jobs
    assert all(r == {"name": "gsocseq-object-store", "optional": True} for r in refs)
    (worker,) = _one("DaskCluster")["spec"]["worker"]["spec"]["containers"]
    (auth,) = [e for e in worker["env"] if e["name"] == "PREFECT_API_AUTH_STRING"]
    assert auth["valueFrom"]["secretKeyRef"] == {"name": "prefect-api-auth", "key": "auth-string"}


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
                SERVER_VALUES["global"]["prefect"]["image"]["prefectTag"]):
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


def _image_module() -> Any:
    spec = importlib.util.spec_from_file_location("gsocseq_infra_image", INFRA / "image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _container_images(node: Any) -> list[str]:
    return [n["image"] for _, n in _walk(node) if isinstance(n, dict) and "image" in n
            and isinstance(n["image"], str) and ("name" in n or "args" in n)]


def test_rendered_kustomization_uses_one_image_digest_everywhere() -> None:
    pinned = _image_module().pinned()
    assert DIGEST_REF.fullmatch(pinned), pinned
    rendered_pods = _container_images([d for d in RENDERED if d["kind"] != "ConfigMap"])
    assert len(rendered_pods) == 2  # the Dask scheduler and worker
    # Flow-run Jobs: the work pool template as kustomize ships it (ConfigMap), rendered by Prefect
    # for each deployment's job variables.
    (cm,) = [d for d in RENDERED if d["metadata"]["name"] == "prefect-worker-base-job-template"]
    template = json.loads(cm["data"]["baseJobTemplate.json"])
    assert template == BASE_JOB_TEMPLATE
    jobs = [_render_job(d["work_pool"]["job_variables"]) for d in PREFECT_YAML["deployments"]]
    refs = rendered_pods + [template["variables"]["properties"]["image"]["default"]]
    refs += [i for job in jobs for i in _container_images(job)]
    assert set(refs) == {pinned}, set(refs)
    # No other place may set an image: the manifests name the placeholder, prefect.yaml nothing.
    raw = _container_images([d for _, d in MANIFESTS])
    assert set(raw) == {"gsocseq"}
    assert "image" not in json.dumps(PREFECT_YAML)
    for job in jobs:
        (c,) = job["spec"]["template"]["spec"]["containers"]
        assert c["imagePullPolicy"] == "IfNotPresent"  # safe: a digest cannot change content


def test_image_script_pins_a_digest_in_the_one_place(tmp_path: Path) -> None:
    import shutil
    import subprocess

    copy_root = tmp_path / "infra"
    shutil.copytree(K8S, copy_root / "k8s")
    shutil.copy(INFRA / "image.py", copy_root / "image.py")
    ref = "registry.example.org:5000/team/gsocseq@sha256:" + "ab" * 32
    done = subprocess.run([sys.executable, str(copy_root / "image.py"), "set", ref],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == ref, done.stderr
    docs = kustomize_build(copy_root / "k8s")
    assert set(_container_images([d for d in docs if d["kind"] != "ConfigMap"])) == {ref}
    (cm,) = [d for d in docs if d["metadata"]["name"] == "prefect-worker-base-job-template"]
    assert json.loads(cm["data"]["baseJobTemplate.json"])["variables"]["properties"]["image"][
        "default"] == ref
    # Comments and the rest of the kustomization survive; a tag is refused.
    assert (copy_root / "k8s" / "kustomization.yaml").read_text().count("#") == \
        (K8S / "kustomization.yaml").read_text().count("#")
    tagged = subprocess.run([sys.executable, str(copy_root / "image.py"), "set",
                             "ghcr.io/gsocseq/gsocseq:0.1.0"], capture_output=True, text=True,
                            timeout=60)
    assert tagged.returncode != 0 and "sha256" in tagged.stderr


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
        # By digest (immutable), with the exact version tag saying what the digest is.
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}", ref), ref
    final = froms[-1]
    m = re.fullmatch(r"python:(3\.11\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})", final)
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


def _uv_commands(shell: str, sub: str) -> list[list[str]]:
    """Return the ``uv <sub>`` commands of a shell snippet (env prefixes dropped)."""
    found = []
    for part in re.split(r"&&|;|\n|\|\|", shell.replace("\\\n", " ")):
        words = shlex.split(part, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words = words[1:]
        if words[:2] == ["uv", sub]:
            found.append(words[2:])
    return found


def test_dockerfile_installs_from_the_lock() -> None:
    ins = _dockerfile_instructions()
    runs = [rest for k, rest in ins if k == "RUN"]
    syncs = [c for r in runs for c in _uv_commands(r, "sync")]
    # Dependencies first (cached layer), then the package: both exactly as locked, no test extras.
    assert syncs == [["--locked", "--no-install-project", "--no-editable"],
                     ["--locked", "--no-editable"]]
    assert not [c for r in runs for c in _uv_install_commands(r)]  # no unlocked `uv pip install`
    copies = [rest for k, rest in ins if k == "COPY"]
    assert "pyproject.toml uv.lock ./" in copies and ". ." in copies
    env = " ".join(rest for k, rest in ins if k == "ENV").split()
    assert "UV_PROJECT_ENVIRONMENT=/opt/venv" in env and "UV_PYTHON_DOWNLOADS=never" in env
    # uv in the image reads the lock this uv wrote (the uv stage's version ≥ the lock's revision's).
    uv_stage = next(rest.split()[0] for k, rest in ins if k == "FROM" and "astral-sh/uv" in rest)
    assert LOCK["version"] == 1 and Version(re.search(r":([\d.]+)@", uv_stage).group(1)) >= \
        Version("0.9")
    # make and CI install from the same lock, with the test extras (bytecode compiled once at
    # install: every process the tests start would otherwise recompile its imports).
    makefile = (REPO / "Makefile").read_text()
    assert [["-q", "--locked", "--extra", "test", "--compile-bytecode"]] == \
        _uv_commands(makefile, "sync")


def test_dockerignore_keeps_the_package_and_drops_the_rest() -> None:
    patterns = [p.strip() for p in (INFRA / "docker" / "Dockerfile.dockerignore").read_text()
                .splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
                   or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for needed in ("pyproject.toml", "README.md", "gsocseq/__init__.py", "flows/gsocseq_flows.py",
                   "gsocseq/sources/sources.toml"):
        assert not ignored(needed), needed
    assert not ignored("uv.lock")
    for dropped in (".git/config", ".venv/bin/python", "tests/infra/test_infra.py",
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


# ---------------------------------------------------------------------------------------------
# the lock file


def _lock_mismatches(pyproject: dict[str, Any], lock: dict[str, Any]) -> list[str]:
    """Return how uv.lock's record of gsocseq's requirements differs from ``pyproject``."""
    project = pyproject["project"]
    (root,) = [p for p in lock["package"] if p["name"] == project["name"]]
    wanted = {(canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier), None)
              for r in map(Requirement, project["dependencies"])}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        wanted |= {(canonicalize_name(r.name), tuple(sorted(r.extras)), str(r.specifier),
                    f"extra == '{extra}'") for r in map(Requirement, reqs)}
    locked = {(canonicalize_name(r["name"]), tuple(sorted(r.get("extras", []))),
               str(SpecifierSet(r.get("specifier", ""))), r.get("marker"))
              for r in root["metadata"]["requires-dist"]}
    wanted = {(n, e, str(SpecifierSet(s)), m) for n, e, s, m in wanted}
    problems = [f"pyproject only: {w}" for w in sorted(wanted - locked, key=str)]
    problems += [f"uv.lock only: {w}" for w in sorted(locked - wanted, key=str)]
    if lock["requires-python"].replace(" ", "") != project["requires-python"].replace(" ", ""):
        problems.append(f"requires-python {lock['requires-python']} != {project['requires-python']}")
    if root["version"] != project["version"]:
        problems.append(f"version {root['version']} != {project['version']}")
    versions: dict[str, list[str]] = {}
    for p in lock["package"]:
        versions.setdefault(canonicalize_name(p["name"]), []).append(p["version"])
    for name, _, spec, _ in wanted:
        for v in versions.get(name, ["<not locked>"]):
            if v == "<not locked>" or Version(v) not in SpecifierSet(spec):
                problems.append(f"{name} locked at {v}, outside {spec}")
    return problems


def test_lock_file_matches_pyproject() -> None:
    assert _lock_mismatches(PYPROJECT, LOCK) == []
    # Every third-party artifact is pinned by hash: the image and CI install exactly these bytes.
    for package in LOCK["package"]:
        if "registry" not in package["source"]:
            continue
        artifacts = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert artifacts and all(re.fullmatch(r"sha256:[0-9a-f]{64}", a["hash"]) for a in artifacts)
    # The comparison does notice an edited pyproject.
    edited = copy.deepcopy(PYPROJECT)
    edited["project"]["dependencies"] = [d.replace("numpy>=", "numpy>=9.") if d.startswith("numpy")
                                         else d for d in edited["project"]["dependencies"]]
    edited["project"]["optional-dependencies"]["test"].append("left-pad>=1")
    problems = _lock_mismatches(edited, LOCK)
    assert any(p.startswith("pyproject only: ('numpy'") for p in problems)
    assert any("left-pad" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# Prefect charts: values read by the chart's templates, pinned versions


def _leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaf_paths(v, (*prefix, k))
    else:
        yield prefix


@pytest.mark.parametrize("chart,values", [("prefect-worker", WORKER_VALUES),
                                          ("prefect-server", SERVER_VALUES)])
def test_helm_values_are_read_by_the_chart_templates(chart: str, values: dict[str, Any]) -> None:
    """The values schema is stale (it still has server.image); the templates are the truth."""
    templates = "\n".join(p.read_text() for p in (SCHEMAS / chart / "templates").rglob("*")
                          if p.is_file())
    # Paths a template reads: `.Values.a.b` and, inside `with`/`toYaml` blocks, any prefix.
    read = set(re.findall(r"\.Values((?:\.[A-Za-z0-9_]+)+)", templates))
    unread = []
    for path in _leaf_paths(values):
        prefixes = {"." + ".".join(path[:i]) for i in range(1, len(path) + 1)}
        if not prefixes & read:
            unread.append(".".join(path))
    assert unread == []
    # The image pin sits where the server chart reads it.
    if chart == "prefect-server":
        assert ".server.image" not in read and ".global.prefect.image.prefectTag" in read
        assert "image" not in values["server"]
        assert values["server"]["automountServiceAccountToken"] is False
        assert values["serviceAccount"]["automountServiceAccountToken"] is False
    broken = copy.deepcopy(values)
    broken.setdefault("server", {})["image"] = {"prefectTag": "3-latest"}
    assert any(p.startswith("server.image") for p in [
        ".".join(q) for q in _leaf_paths(broken)
        if not {"." + ".".join(q[:i]) for i in range(1, len(q) + 1)} & read])


def test_chart_versions_are_pinned_in_the_readme() -> None:
    blocks = "\n".join(_shell_blocks(README)).replace("\\\n", " ")
    installs = [c for c in blocks.splitlines() if re.search(r"helm (upgrade --install|install)", c)]
    assert len(installs) == 3
    for line in installs:
        chart = re.search(r"(prefect|dask)/([\w-]+)", line).group(0)
        version = re.search(r"--version (\S+)", line)
        assert version, f"{chart}: no --version"
        if chart.startswith("prefect/"):
            assert version.group(1) == PREFECT_CHART_VERSION
        else:
            assert chart == "dask/dask-kubernetes-operator"
            # The operator chart of the dask-kubernetes release whose CRDs the tests validate.
            import dask_kubernetes

            locked = next(p["version"] for p in LOCK["package"] if p["name"] == "dask-kubernetes")
            assert version.group(1) == locked == dask_kubernetes.__version__
            assert OPERATOR_VALUES["image"]["tag"] == locked
    assert PREFECT_CHART_VERSION in (SHARED / "NOTICE.md").read_text()


def _yaml_keys(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _yaml_keys(v, (*prefix, k))


def test_operator_values_match_its_chart_and_enable_metrics() -> None:
    chart_values = yaml.safe_load((CRDS.parent / "values.yaml").read_text())
    known = set(_yaml_keys(chart_values))
    # Free-form maps of the chart (selectors, security contexts, resources) may hold any key.
    free = {("metrics", r, m, "namespaceSelector") for r, m in (("scheduler", "serviceMonitor"),
                                                                ("worker", "podMonitor"))}
    free |= {("securityContext",), ("podSecurityContext",), ("resources",)}
    unknown = [k for k in _yaml_keys(OPERATOR_VALUES) if k not in known
               and not any(k[:len(f)] == f and len(k) > len(f) for f in free)]
    assert unknown == []
    metrics = OPERATOR_VALUES["metrics"]
    assert metrics["scheduler"]["enabled"] and metrics["scheduler"]["serviceMonitor"]["enabled"]
    assert metrics["worker"]["enabled"] and metrics["worker"]["podMonitor"]["enabled"]
    for monitor in (metrics["scheduler"]["serviceMonitor"], metrics["worker"]["podMonitor"]):
        assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        monitoring_ns = monitor["namespace"]
    # The monitors scrape the port named http-dashboard: the scheduler Service and worker pods
    # have it, and the network policy admits the monitoring namespace on exactly those ports.
    cluster = _one("DaskCluster")
    svc_ports = {p["name"]: p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]}
    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    worker_port = {p["name"]: p["containerPort"] for p in worker["ports"]}["http-dashboard"]
    assert f'"{worker_port}"' in json.dumps(worker["args"])
    policy = _one("NetworkPolicy", "monitoring-to-dask")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"dask.org/cluster-name": "gsocseq"}
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": monitoring_ns}}}]
    assert {p["port"] for p in rule["ports"]} == {svc_ports["http-dashboard"], worker_port}
    assert any(r["name"] == "prometheus-client" for r in LOCK["package"])


# ---------------------------------------------------------------------------------------------
# placement, disruption, egress, quota


SPOT_LABELS = {"karpenter.sh/capacity-type": "spot", "eks.amazonaws.com/capacityType": "SPOT",
               "cloud.google.com/gke-spot": "true", "cloud.google.com/gke-preemptible": "true",
               "kubernetes.azure.com/scalesetpriority": "spot"}
SPOT_TAINTS = [("cloud.google.com/gke-spot", "true"), ("kubernetes.azure.com/scalesetpriority", "spot")]


def _node_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    """Evaluate one nodeSelectorTerm as the Kubernetes scheduler does (matchExpressions ANDed)."""
    for e in term.get("matchExpressions", []):
        value, op = labels.get(e["key"]), e["operator"]
        ok = {"In": value is not None and value in e.get("values", []),
              "NotIn": value is None or value not in e.get("values", []),
              "Exists": value is not None, "DoesNotExist": value is None}[op]
        if not ok:
            return False
    return True


def _schedulable(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    required = pod.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required and not any(_node_matches(t, labels) for t in required["nodeSelectorTerms"]):
        return False
    tolerated = {(t["key"], t.get("value")) for t in pod.get("tolerations", [])
                 if t.get("effect") == "NoSchedule" and t.get("operator") == "Equal"}
    taints = [t for t in SPOT_TAINTS if labels.get(t[0]) == t[1]]
    return all(t in tolerated for t in taints)


def _operator_pods() -> dict[str, dict[str, Any]]:
    """The scheduler and worker pod templates the operator's own code builds from our DaskCluster."""
    from dask_kubernetes.operator.controller import controller

    cluster = _one("DaskCluster")
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    pods = {}
    for role in ("scheduler", "worker"):
        meta = spec[role].get("metadata", {})
        labels = dict(cluster["metadata"].get("labels", {})) | meta.get("labels", {})
        annotations = dict(meta.get("annotations", {}))
        if role == "scheduler":
            built = controller.build_scheduler_deployment_spec(name, spec[role]["spec"], annotations,
                                                               labels)
        else:
            built = controller.build_worker_deployment_spec(f"{name}-default", NAMESPACE, name, "x1",
                                                            spec[role]["spec"], annotations, labels)
        pods[role] = built["spec"]["template"]
    return pods


def test_workers_on_spot_scheduler_and_flow_runs_on_demand() -> None:
    pods = _operator_pods()
    job = _render_job()["spec"]["template"]
    on_demand: dict[str, str] = {}
    for key, value in SPOT_LABELS.items():  # each provider's spot node, one at a time
        spot = {key: value}
        assert _schedulable(pods["worker"]["spec"], spot), key
        assert not _schedulable(pods["scheduler"]["spec"], spot), key
        assert not _schedulable(job["spec"], spot), key
    for pod in (pods["worker"]["spec"], pods["scheduler"]["spec"], job["spec"]):
        assert _schedulable(pod, on_demand)
    # Workers prefer spot capacity (cheaper; a reclaimed worker's tiles are recomputed).
    preferred = pods["worker"]["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert {e["key"] for p in preferred for e in p["preference"]["matchExpressions"]} >= {
        "karpenter.sh/capacity-type", "cloud.google.com/gke-spot"}
    for template in (pods["scheduler"], job):
        assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        assert template["metadata"]["annotations"][
            "cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert pods["worker"]["metadata"]["annotations"][
        "cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_disruption_budgets_cover_scheduler_and_flow_runs_only() -> None:
    pods = _operator_pods()
    flow_run_labels = _render_job()["spec"]["template"]["metadata"]["labels"]
    budgets = {d["metadata"]["name"]: d["spec"] for _, d in MANIFESTS
               if d["kind"] == "PodDisruptionBudget"}
    covered = {role: [n for n, b in budgets.items() if _selects(b["selector"], labels)]
               for role, labels in (("scheduler", pods["scheduler"]["metadata"]["labels"]),
                                    ("worker", pods["worker"]["metadata"]["labels"]),
                                    ("flow-run", flow_run_labels))}
    assert covered == {"scheduler": ["gsocseq-scheduler"], "worker": [],
                       "flow-run": ["gsocseq-flow-run"]}
    assert all(b == {"maxUnavailable": 0, "selector": b["selector"]} for b in budgets.values())


def _allows_egress_to(policy: dict[str, Any], address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    for rule in policy["egress"]:
        if "to" not in rule:
            return True  # a rule without peers allows every destination
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block and ip.version == ipaddress.ip_network(block["cidr"]).version \
                    and ip in ipaddress.ip_network(block["cidr"]) \
                    and not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])
                                if ipaddress.ip_network(e).version == ip.version):
                return True
    return False


def test_egress_policy_denies_the_cloud_metadata_address() -> None:
    policy = _one("NetworkPolicy", "egress-no-cloud-metadata")["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Egress"]
    for metadata_address in ("169.254.169.254", "fd00:ec2::254"):
        assert not _allows_egress_to(policy, metadata_address)
    # Object storage, STS, EKS Pod Identity and the GKE Workload Identity metadata server stay open.
    for allowed in ("52.216.0.10", "2600:1f18::1", "169.254.170.23", "169.254.169.252"):
        assert _allows_egress_to(policy, allowed)
    dns = [r for r in policy["egress"] if any(p.get("podSelector", {}).get("matchLabels", {}).get(
        "k8s-app") == "kube-dns" for p in r.get("to", []))]
    assert dns and {p["port"] for p in dns[0]["ports"]} == {53}
    # The evaluator itself: the same policy without the exception would allow the address.
    opened = copy.deepcopy(policy)
    for rule in opened["egress"]:
        for peer in rule.get("to", []):
            peer.get("ipBlock", {}).pop("except", None)
    assert _allows_egress_to(opened, "169.254.169.254")
    # No other egress policy in the namespace re-opens it (policies are additive).
    others = [d["spec"] for _, d in MANIFESTS if d["kind"] == "NetworkPolicy"
              and "Egress" in d["spec"].get("policyTypes", []) and d is not policy]
    assert all(not _allows_egress_to(p, "169.254.169.254") for p in others)


def _cpu(q: str | int) -> float:
    q = str(q)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def test_resource_quota_fits_the_autoscaler_maximum() -> None:
    quota = _one("ResourceQuota")["spec"]["hard"]
    scaler, cluster = _one("DaskAutoscaler"), _one("DaskCluster")
    (worker,) = cluster["spec"]["worker"]["spec"]["containers"]
    (scheduler,) = cluster["spec"]["scheduler"]["spec"]["containers"]
    flow_runs = WORKER_VALUES["worker"]["config"]["limit"]
    defaults = {k: v["default"] for k, v in BASE_JOB_TEMPLATE["variables"]["properties"].items()
                if "default" in v}
    job_vars = [defaults | d["work_pool"]["job_variables"] for d in PREFECT_YAML["deployments"]]
    job_cpu = max(_cpu(v["cpu_limit"]) for v in job_vars)
    job_mem = max(_quantity_bytes(v["memory_limit"]) for v in job_vars)
    prefect_pods = [SERVER_VALUES["server"]["resources"]["limits"],
                    WORKER_VALUES["worker"]["resources"]["limits"]]
    peak_cpu = (scaler["spec"]["maximum"] * _cpu(worker["resources"]["limits"]["cpu"])
                + _cpu(scheduler["resources"]["limits"]["cpu"]) + flow_runs * job_cpu
                + sum(_cpu(r["cpu"]) for r in prefect_pods))
    peak_mem = (scaler["spec"]["maximum"] * _quantity_bytes(worker["resources"]["limits"]["memory"])
                + _quantity_bytes(scheduler["resources"]["limits"]["memory"]) + flow_runs * job_mem
                + sum(_quantity_bytes(r["memory"]) for r in prefect_pods))
    for key, peak in (("limits.cpu", peak_cpu), ("requests.cpu", peak_cpu)):
        assert peak <= _cpu(quota[key]) <= 1.10 * peak, (key, peak, quota[key])
    for key in ("limits.memory", "requests.memory"):
        assert peak_mem <= _quantity_bytes(quota[key]) <= 1.10 * peak_mem, (key, peak_mem)
    assert int(quota["pods"]) >= scaler["spec"]["maximum"] + 1 + flow_runs + 2
    # Quota on compute needs requests/limits on every container: a LimitRange supplies defaults.
    (limit,) = _one("LimitRange")["spec"]["limits"]
    assert {"cpu", "memory"} <= set(limit["default"]) and {"cpu", "memory"} <= set(
        limit["defaultRequest"])
    # Autoscaler bounds: at least one worker, at most what the sizing table plans.
    assert scaler["spec"]["minimum"] == 1
    assert scaler["spec"]["maximum"] == max(sizing.WORKER_COUNTS)


# ---------------------------------------------------------------------------------------------
# prefect-kubernetes builds the flow-run Job from the base job template


@pytest.mark.parametrize("deployment", [d["name"] for d in PREFECT_YAML["deployments"]])
def test_kubernetes_worker_accepts_the_base_job_template(deployment: str) -> None:
    import asyncio
    import uuid

    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    dep = next(d for d in PREFECT_YAML["deployments"] if d["name"] == deployment)
    api = WORKER_VALUES["worker"]["selfHostedServerApiConfig"]["apiUrl"]
    with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: "admin:s3cret"}):
        config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(
            BASE_JOB_TEMPLATE, dep["work_pool"]["job_variables"]))
        config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="curious-cat",
                                            flow_id=uuid.uuid4()))
        # What the worker does before creating the Job when the chart passes the auth Secret
        # (PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME/_KEY).
        worker = KubernetesWorker(work_pool_name=WORKER_VALUES["worker"]["config"]["workPool"])
        asyncio.run(worker._replace_env_variable_with_secret(
            env_variable_name="PREFECT_API_AUTH_STRING", configuration=config,
            secret_name="prefect-api-auth", secret_key="auth-string"))
    job = config.job_manifest
    kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == _image_module().pinned()
    env = {e["name"]: e for e in container["env"]}
    assert env["PREFECT_API_URL"]["value"] == api
    assert env["PREFECT_API_AUTH_STRING"] == {"name": "PREFECT_API_AUTH_STRING", "valueFrom": {
        "secretKeyRef": {"name": "prefect-api-auth", "key": "auth-string"}}}
    assert "s3cret" not in json.dumps(job)
    assert container["args"] == ["prefect", "flow-run", "execute"]
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "flow-run"
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert template["spec"]["affinity"] == BASE_JOB_TEMPLATE["job_configuration"]["job_manifest"][
        "spec"]["template"]["spec"]["affinity"]
    limits = dep["work_pool"]["job_variables"].get("memory_limit")
    if limits:
        assert container["resources"]["limits"]["memory"] == limits


# ---------------------------------------------------------------------------------------------
# the scheduler HTTP API the operator scales through


def _scheduler_routes_config() -> dict[str, Any]:
    import dask

    (scheduler,) = _one("DaskCluster")["spec"]["scheduler"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in scheduler["env"] if e["name"].startswith("DASK_")}
    # As dask reads DASK_* variables at start-up, flattened to dotted keys for dask.config.set.
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else k)
        else:
            flat[prefix] = node

    walk(dask.config.collect_env(env), "")
    assert flat, env
    return flat


@pytest.mark.timeout(300)
@pytest.mark.parametrize("routes", ["manifest", "dask defaults"])
def test_operator_scales_through_the_scheduler_http_api(routes: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own scaling code against a real scheduler configured as daskcluster.yaml.

    Mocked: only the operator's Kubernetes Service lookup (no API server here): it returns the local
    scheduler's dashboard address for the http-dashboard port and fails for the comm port, so a
    success can only come from the HTTP API path.
    """
    import asyncio
    import logging

    import dask
    from dask_kubernetes.operator.controller import controller
    from distributed import Client, LocalCluster

    config = _scheduler_routes_config() if routes == "manifest" else {}
    with dask.config.set(config), LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                               dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        port = cluster.scheduler.http_server.port

        async def address(service: str, namespace: str, port_name: str = "tcp-comm",
                          allow_external: bool = True) -> str:
            assert (service, namespace) == ("gsocseq-scheduler", NAMESPACE)
            if port_name != "http-dashboard":
                raise ConnectionError("only the HTTP API is reachable in this test")
            return f"http://127.0.0.1:{port}"

        monkeypatch.setattr(controller, "get_scheduler_address", address)
        names = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        if routes == "dask defaults":
            with pytest.raises(controller.SchedulerCommError):
                asyncio.run(controller.get_desired_workers("gsocseq-scheduler", NAMESPACE))
            return
        assert asyncio.run(controller.get_desired_workers("gsocseq-scheduler", NAMESPACE)) >= 0
        assert asyncio.run(controller.check_scheduler_idle(
            "gsocseq-scheduler", NAMESPACE, logging.getLogger("operator"))) > 0
        retired = asyncio.run(controller.retire_workers(
            n_workers=1, scheduler_service_name="gsocseq-scheduler",
            worker_group_name="gsocseq-default", namespace=NAMESPACE,
            logger=logging.getLogger("operator")))
        assert len(retired) == 1 and set(retired) <= names


def test_release_script_and_ci_workflow_build_scan_push_and_pin() -> None:
    import subprocess

    script = INFRA / "scripts" / "release-image.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    text = "\n".join(line for line in script.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    steps = [text.index(s) for s in ("docker buildx build", "trivy image --exit-code 1",
                                     "docker push", "infra/image.py set")]
    assert steps == sorted(steps)  # scanned before pushed, pinned only after the push
    assert "-f infra/docker/Dockerfile" in text and "set -euo pipefail" in text
    workflow = yaml.safe_load((INFRA / "ci" / "release-image.github-actions.yml").read_text())
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any(r.strip().startswith("infra/scripts/release-image.sh") for r in runs)
    assert "infra/scripts/release-image.sh" in README and "infra/image.py" in README


def test_rebuild_figures_follow_the_measured_per_tile_figures() -> None:
    world = _land_tiles()
    country = sizing.land_tiles(country=sizing.LARGE_COUNTRY)
    assert 0 < country.n_land_tiles < world.n_land_tiles and country.land_cells < world.land_cells
    m = sizing.MEASURED
    assert m.px_per_cpu_s > 0 and m.input_bytes_per_cell > 0 and m.product_bytes_per_cell > 0
    for area in (world, country):
        b = sizing.rebuild(area, m)
        assert b.core_hours == pytest.approx(b.pixels / m.px_per_cpu_s / 3600)
        assert b.bytes_read == pytest.approx(area.n_land_tiles * 240**2 * m.input_bytes_per_cell)
        assert b.compute_usd == pytest.approx(b.core_hours * sizing.PRICE_PER_VCPU_HOUR)
    with pytest.raises(ValueError, match="no country named 'Atlantis'"):
        sizing.land_tiles(country="Atlantis")
