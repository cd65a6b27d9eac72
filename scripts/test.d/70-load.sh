#!/usr/bin/env bash
# sesame load through the binary, as an operator runs it: seed users by
# direct import, serve with an event log, drive a mix with an attacker, then
# replay the recorded event log at double speed. Loopback only, bounded runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "load: $*"; }
die() { echo "load: FAIL: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed"

# SESAME_BIN: a sesame binary already built (skips the build).
sesame="${SESAME_BIN:-${CARGO_TARGET_DIR:-target}/debug/sesame}"
[ -n "${SESAME_BIN:-}" ] || cargo build -q -p sesame-cli --bin sesame

tmp=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
export SESAME_HASH_M_COST=64 SESAME_HASH_T_COST=1 SESAME_LOAD_NO_PROGRESS=true
db="sqlite:$tmp/sesame.db"

say "seed 20000 users by direct import"
start=$(date +%s%N)
"$sesame" load seed --database "$db" --users 20000
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -lt 20000 ] || die "seeding 20000 users took ${elapsed_ms} ms"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target="http://127.0.0.1:$port"
# The load's `ip` fields are believed only from a trusted proxy: here, loopback.
"$sesame" serve --database "$db" --listen "127.0.0.1:$port" --event-log "$tmp/events.jsonl" \
  --trusted-proxies 127.0.0.0/8 --cookie-secure false --log warn &
server=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$target/healthz')" 2>/dev/null && break
  sleep 0.1
done

say "seed 3 users of another prefix through the API"
"$sesame" load seed --target "$target" --users 3 --user-prefix api- 2>&1 | tee "$tmp/seed.txt"
grep -q "3 created, 0 already there" "$tmp/seed.txt" || die "API seeding"

say "mix with an attacker, 3 s"
"$sesame" load --target "$target" --rate 60 --arrival poisson --duration 3s --users 20000 \
  --mix login=60,wrong-password=20,unknown-user=10,session=10 \
  --attack-rate 40 --attack-ips 2 --json "$tmp/run.json" --html "$tmp/run.html"
python3 - "$tmp/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops = {o["name"]: o for o in r["operations"]}
assert set(ops) == {"login", "wrong-password", "unknown-user", "session", "attack"}, ops.keys()
for name, o in ops.items():
    assert o["count"] > 0 and o["errors"] == 0, (name, o["outcomes"])
assert r["errors"] == 0, r["errors_by_kind"]
assert r["intended"]["requests"] == r["sent"]["requests"], (r["intended"], r["sent"])
PY
grep -q "<svg" "$tmp/run.html" || die "HTML report has no chart"

say "replay the recorded event log at speed 2"
sleep 1  # the event log is written in the background
recorded=$(wc -l < "$tmp/events.jsonl")
"$sesame" load --target "$target" --replay "$tmp/events.jsonl" --speed 2 --users 20000 \
  --json "$tmp/replay.json"
python3 - "$tmp/replay.json" "$recorded" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
recorded = int(sys.argv[2])
assert r["sent"]["requests"] == recorded, (r["sent"], recorded)
ops = {o["name"] for o in r["operations"]}
assert {"login", "wrong-password"} <= ops, ops
# Recorded at ~100/s for 3 s, replayed twice as fast.
assert r["elapsed_s"] < 2.5, r["elapsed_s"]
PY
say "ok"
