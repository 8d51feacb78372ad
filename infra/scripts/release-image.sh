#!/usr/bin/env bash
# Build, scan and push the gsocseq image, then pin its digest in infra/ (one reference for every pod).
#
#   infra/scripts/release-image.sh REGISTRY/NAME        e.g. ghcr.io/my-org/gsocseq
#
# Run from a clean checkout of the commit to release (`docker login` to the registry first). Needs
# docker (with buildx) and trivy. Steps:
#   1. build infra/docker/Dockerfile (base images by digest, packages from uv.lock) for linux/amd64,
#      tagged with the commit (a label for people; pods use the digest);
#   2. scan it with trivy: any fixable HIGH/CRITICAL vulnerability stops the release;
#   3. push it and read back the registry's digest of what was pushed;
#   4. `python infra/image.py set NAME@sha256:...` writes that digest into infra/k8s/kustomization.yaml
#      (Dask scheduler and workers) and infra/k8s/base-job-template.json (flow-run Jobs).
# Then commit infra/, `kubectl apply -k infra/k8s`, and restart the prefect-worker (it re-syncs the
# work pool's base job template from the ConfigMap at start).
set -euo pipefail

name="${1:?usage: infra/scripts/release-image.sh REGISTRY/NAME}"
root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cd "$root"
if [ -n "$(git status --porcelain)" ]; then
  echo "release-image.sh: the working tree has uncommitted changes; release a commit" >&2
  exit 1
fi
tag="$(git rev-parse --short=12 HEAD)"
image="$name:$tag"
python="${PYTHON:-python3}"

echo "== 1. build $image"
docker buildx build --platform linux/amd64 --load \
  --label "org.opencontainers.image.revision=$(git rev-parse HEAD)" \
  --label "org.opencontainers.image.source=$(git config --get remote.origin.url || echo unknown)" \
  -f infra/docker/Dockerfile -t "$image" .

echo "== 2. scan $image"
trivy image --exit-code 1 --ignore-unfixed --severity HIGH,CRITICAL --scanners vuln "$image"

echo "== 3. push $image"
docker push "$image"
reference="$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" \
  | grep -m1 "^$name@sha256:")"
echo "pushed: $reference"

echo "== 4. pin $reference"
"$python" infra/image.py set "$reference"
git --no-pager diff --stat -- infra/
