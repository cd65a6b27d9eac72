#!/usr/bin/env bash
# Fleet suite (issue 14): the fleet tool's own unit tests, then the fleet's
# promises proved on a fleet of its own (scripts/fleet-proofs, short
# variant): a rolling deploy under load, shared state across instances,
# a revocation refused by every instance within 50 ms (their session
# caches), overload at the balancer, observability as one; then the shortest
# incident drill (issue 15, primary-crash) on a fleet of its own. The others
# run on demand (`scripts/fleet drill all`); the overload proof covers what
# the surge drill sheds. Installs HAProxy,
# Prometheus, Alertmanager, iptables and Redis Sentinel from Debian's
# packages when missing.
# Traffic stays on loopback and inside the namespaces the fleet makes; the
# fleet is taken down at the end, also on failure.
#   bash scripts/test.d/75-fleet.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "fleet: $*"; }
die() { echo "fleet: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, cgroups)"
. scripts/lib/fleet-packages.sh
fleet_packages

say "unit tests of the fleet tool"
python3 -m unittest discover -s scripts/lib -p 'test_*.py'

cargo build -q -p sesame-cli
export SESAME_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/sesame

say "proofs (short)"
mkdir -p test-artifacts
scripts/fleet-proofs --json test-artifacts/fleet-proofs.json >/dev/null
say "passed; figures in test-artifacts/fleet-proofs.json"

DRILL_DIR=$(mktemp -d /tmp/sesame-fleet-drill-XXXXXX)
trap 'scripts/fleet down --dir "$DRILL_DIR" >/dev/null 2>&1 || true; rm -rf "$DRILL_DIR"' EXIT
scripts/fleet up --dir "$DRILL_DIR" >/dev/null
for drill in primary-crash; do
  say "drill: $drill"
  scripts/fleet drill $drill --dir "$DRILL_DIR" --json test-artifacts/drill-$drill.json --html test-artifacts/drill-$drill.html >/dev/null \
    || die "the $drill drill missed a limit: $(python3 -c 'import json,sys; print([l for l in json.load(open(sys.argv[1]))["limits"] if not l["passed"]])' test-artifacts/drill-$drill.json 2>/dev/null)"
  say "drill passed; report in test-artifacts/drill-$drill.json, timeline in test-artifacts/drill-$drill.html"
done
scripts/fleet down --dir "$DRILL_DIR" >/dev/null
