#!/usr/bin/env bash
# Fleet suite (issue 14): the fleet tool's own unit tests, then the fleet's
# promises proved on a fleet of its own (scripts/fleet-proofs, short
# variant): a rolling deploy under load, shared state across instances,
# overload at the balancer, observability as one. Installs HAProxy,
# Prometheus, Alertmanager and iptables from Debian's packages when missing.
# Traffic stays on loopback and inside the namespaces the fleet makes; the
# fleet is taken down at the end, also on failure.
#   bash scripts/test.d/75-fleet.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "fleet: $*"; }
die() { echo "fleet: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, cgroups)"
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; export SESAME_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "unit tests of the fleet tool"
python3 -m unittest discover -s scripts/lib -p 'test_*.py'

cargo build -q -p sesame-cli
export SESAME_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/sesame

say "proofs (short)"
mkdir -p test-artifacts
scripts/fleet-proofs --json test-artifacts/fleet-proofs.json >/dev/null
say "passed; figures in test-artifacts/fleet-proofs.json"
