#!/usr/bin/env bash
# sesame triage (issue 7): the end-to-end command on a small generated log,
# its JSON and HTML reports, and the short throughput check (printed, never
# failing on timing).
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "triage: $*"; }
die() { echo "triage: FAIL: $*" >&2; exit 1; }

cargo build -q --release -p sesame-cli --bin sesame
cargo build -q --release -p sesame-triage --example gen-eventlog
target=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say "a replica-lag incident, one log per pod, two of them gzipped"
"$target/examples/gen-eventlog" --incident replica-lag --rate 100 --seconds 900 --files 4 --out "$work/events.log" 2>/dev/null
gzip "$work/events.log.0" "$work/events.log.2"
"$target/sesame" triage --html "$work/report.html" "$work"/events.log.* >"$work/report.txt"
cat "$work/report.txt"
grep -q '^- \[replica_lag\]' "$work/report.txt" || die "replica lag not recognized"
grep -q 'shard=-40' "$work/report.txt" || die "shard -40 not named"
grep -q '<svg' "$work/report.html" || die "no chart in the HTML report"
! grep -Eq 'https?://|<script|<link' "$work/report.html" || die "the HTML report loads something external"
SESAME_TRIAGE_JSON=1 "$target/sesame" triage "$work"/events.log.* | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert any(c["kind"] == "replica_lag" for c in r["causes"]), r["causes"]
assert r["bad_lines"] == 0 and len(r["files"]) == 4
'
say "throughput (short)"
scripts/bench-triage --ci
say "ok"
