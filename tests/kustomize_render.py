"""Render ``infra/k8s`` the way ``kubectl kustomize`` does, offline, for the features it uses.

Supported (kustomize v5 semantics): ``resources`` (files), ``namespace``, ``labels`` (metadata only:
``includeSelectors``/``includeTemplates`` off), ``configMapGenerator`` (``files``, ``literals``) with
``generatorOptions.disableNameSuffixHash``, and ``images`` (every ``containers[]``/``initContainers[]``
image anywhere in a resource, custom resources included). Any other kustomization field is an error,
so a manifest change that needs real kustomize cannot pass unnoticed. Checked against
``kubectl kustomize`` v5.5 on the committed tree when this module was written.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator",
             "generatorOptions", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass"}
_IMAGE = re.compile(r"(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]*))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?")


def _set_images(node: Any, images: list[dict[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    _set_image(container, images)
            _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def _set_image(container: dict[str, Any], images: list[dict[str, str]]) -> None:
    if not isinstance(container.get("image"), str):
        return
    m = _IMAGE.fullmatch(container["image"])
    for entry in images:
        if m and m["name"] == entry["name"]:
            name = entry.get("newName", m["name"])
            if "digest" in entry:
                container["image"] = f"{name}@{entry['digest']}"
            elif "newTag" in entry:
                container["image"] = f"{name}:{entry['newTag']}"
            else:
                container["image"] = name + (f":{m['tag']}" if m["tag"] else "") + (
                    f"@{m['digest']}" if m["digest"] else "")


def build(directory: Path) -> list[dict[str, Any]]:
    """Return the resources ``kubectl kustomize directory`` would print (order not significant)."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(k) - SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}/kustomization.yaml: fields {sorted(unsupported)} not rendered "
                         "by tests/kustomize_render.py")
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        with (directory / res).open() as fh:
            docs += [d for d in yaml.safe_load_all(fh) if d is not None]
    hash_suffix = not k.get("generatorOptions", {}).get("disableNameSuffixHash", False)
    if hash_suffix and k.get("configMapGenerator"):
        raise ValueError("name-suffix hashes are not rendered by tests/kustomize_render.py")
    for gen in k.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for spec in gen.get("files", []):
            key, _, src = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
            data[key] = (directory / src).read_text()
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]},
                     "data": data})
    docs = copy.deepcopy(docs)
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "namespace" in k and doc["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = k["namespace"]
        for spec in k.get("labels", []):
            if spec.get("includeSelectors") or spec.get("includeTemplates"):
                raise ValueError("labels with includeSelectors/includeTemplates are not rendered")
            meta.setdefault("labels", {}).update(spec["pairs"])
        _set_images(doc, k.get("images", []))
    return docs
