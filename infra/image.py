"""The one gsocseq image reference of the deployment: read it, or pin a new digest everywhere.

The reference lives in ``k8s/kustomization.yaml`` (``images:`` entry ``gsocseq``: registry/name and
``digest``), which kustomize writes into the Dask scheduler and worker pods. Flow-run Jobs are
created by the Prefect worker from the work pool's base job template, which kustomize cannot
rewrite (it is JSON inside a ConfigMap), so ``set`` writes the same reference into its ``image``
default. ``infra/prefect/prefect.yaml`` sets no image: deployments inherit the pool's.

    python infra/image.py                                  # print the pinned reference
    python infra/image.py set ghcr.io/org/gsocseq@sha256:<64 hex>
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

INFRA = Path(__file__).resolve().parent
KUSTOMIZATION = INFRA / "k8s" / "kustomization.yaml"
BASE_JOB_TEMPLATE = INFRA / "k8s" / "base-job-template.json"
PLACEHOLDER = "gsocseq"
"""Image name used in the manifests; kustomize replaces it by the pinned reference."""
REFERENCE = re.compile(r"(?P<name>[a-z0-9]+(?:[._/:-][a-z0-9]+)*)@(?P<digest>sha256:[0-9a-f]{64})")
"""``registry/name@sha256:…``: a digest, never a tag (tags can be moved to other content)."""


def pinned() -> str:
    """Return ``name@sha256:…`` from the kustomization's ``images:`` entry ``gsocseq``."""
    images = yaml.safe_load(KUSTOMIZATION.read_text())["images"]
    (entry,) = [i for i in images if i["name"] == PLACEHOLDER]
    return f"{entry['newName']}@{entry['digest']}"


def set_image(reference: str) -> None:
    """Pin ``reference`` (``registry/name@sha256:<64 hex>``) in the kustomization and the template."""
    match = REFERENCE.fullmatch(reference)
    if match is None:
        raise SystemExit(f"image reference {reference!r} is not registry/name@sha256:<64 hex digits>")
    text = KUSTOMIZATION.read_text()
    entry = re.compile(rf"(- name: {PLACEHOLDER}\n\s+newName: )\S+(\n\s+digest: )\S+")
    text, n = entry.subn(rf"\g<1>{match['name']}\g<2>{match['digest']}", text)
    if n != 1:
        raise SystemExit(f"{KUSTOMIZATION}: no images entry `name: {PLACEHOLDER}` / newName / digest")
    KUSTOMIZATION.write_text(text)
    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    image = template["variables"]["properties"]["image"]
    image["default"] = image["example"] = reference
    BASE_JOB_TEMPLATE.write_text(json.dumps(template, indent=2, ensure_ascii=False) + "\n")
    assert pinned() == reference


if __name__ == "__main__":
    if sys.argv[1:2] == ["set"] and len(sys.argv) == 3:
        set_image(sys.argv[2])
    elif len(sys.argv) != 1:
        raise SystemExit(__doc__)
    print(pinned())
