#!/usr/bin/env bash
# Failover suite (issue 16): the failover checker's short run on a fleet of
# its own (scripts/nemesis without --minutes): clients record every
# operation while each fault happens once (a primary promotion, a Redis
# failover, each partition both ways and one way, a frozen instance); the
# history must break none of the four promises. The long run and the
# control run (--unsafe) are on demand. Traffic stays on loopback and inside
# the fleet's namespaces; the fleet is taken down at the end, also on
# failure.
#   bash scripts/test.d/76-nemesis.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "nemesis: $*"; }
die() { echo "nemesis: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, cgroups, iptables)"
. scripts/lib/fleet-packages.sh
fleet_packages

cargo build -q -p sesame-cli
export SESAME_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/sesame
mkdir -p test-artifacts
DIR=$(mktemp -d /tmp/sesame-nemesis-XXXXXX)
trap 'scripts/fleet down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
say "short run: every fault once"
scripts/nemesis --dir "$DIR" --seed "${NEMESIS_SEED:-1}" --json test-artifacts/nemesis.json --history test-artifacts/nemesis-history.json \
  || die "the history broke a promise, or the run failed; see test-artifacts/nemesis.json"
python3 - test-artifacts/nemesis.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
faults = r["faults_run"]
assert r["operations"] >= 300, f"only {r['operations']} operations"
for kind in ("promote", "redis-failover", "pause"):
    assert any(f.startswith(kind) for f in faults), f"{kind} did not run: {faults}"
assert sum(f.startswith("partition") for f in faults) == 8, faults
assert not r["client_errors"], r["client_errors"]
print(f"nemesis: {r['operations']} operations, {len(faults)} faults, 0 violations")
PY
# The choice when no replica acknowledges: 503, never an acknowledged write.
# Writes that start once the primary is cut off from its replicas (a second
# after, for the ones already in flight) must all be refused.
python3 - test-artifacts/nemesis-history.json <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
cut = [(f["start"], f["end"]) for f in h["faults"] if f["name"] == "partition" and f["args"][:2] == ["primary", "replicas"]]
cut += [tuple(f["cut_off"]) for f in h["faults"] if f["name"] == "promote"]
writes = [o for o in h["operations"] if o["op"] in ("register", "change_password")
          and any(start + 1 <= o["start"] and o["end"] <= end for start, end in cut)]
acked = [o for o in writes if o["status"] in (201, 204)]
refused = [o for o in writes if o["status"] == 503 and o["error"] == "unavailable"]
assert writes, "no write fell while the primary was cut off from its replicas"
assert not acked, f"writes acknowledged with no replica to acknowledge them: {acked[:3]}"
print(f"nemesis: primary cut off from its replicas: {len(writes)} writes, {len(refused)} answered 503 unavailable, 0 acknowledged")
PY
