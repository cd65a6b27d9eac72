#!/usr/bin/env bash
# API fuzzing (issue 9): schemathesis generates requests from /openapi.json
# against a real `sesame serve` (temp SQLite, cheap hashes, no IP limits)
# and checks every answer: no 5xx but documented 503s, every status and
# body as the schema says.
#   bash scripts/test.d/61-schemathesis.sh         SCHEMATHESIS_MAX_EXAMPLES per operation (100)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "schemathesis: $*"; }
die() { echo "schemathesis: FAIL: $*" >&2; exit 1; }

VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/sesame-schemathesis}
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  say "installing schemathesis $VERSION in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SESAME=$TARGET_DIR/debug/sesame
say "building sesame"
cargo build -q -p sesame-cli
[ -x "$SESAME" ] || die "no binary at $SESAME"

TMP=$(mktemp -d /tmp/sesame-schemathesis.XXXXXX)
PID=
cleanup() {
  local rc=$?
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  if [ $rc -ne 0 ]; then
    echo "--- sesame log (tail)"; tail -n 30 "$TMP/sesame.log" 2>/dev/null || true
    echo "(files kept in $TMP)"
  else
    rm -rf "$TMP"
  fi
  exit $rc
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$SESAME" serve --listen "127.0.0.1:$PORT" --database "sqlite:$TMP/sesame.db" \
  --hash-m-cost 256 --hash-t-cost 1 --latency-budget-ms 10000 \
  --ip-rate 1000000 --ip-burst 1000000 --ip-failures-per-min 1000000 --ip-logins-in-flight 1000000 \
  --account-ip-failures-per-min 1000000 --account-failures-per-min 1000000 \
  --cookie-secure false --event-log "$TMP/events.jsonl" > "$TMP/sesame.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$URL/healthz" >/dev/null || die "sesame did not start"

# A user and a live session, so that generated requests also reach the
# authenticated paths and successful logins.
curl -sf -X POST "$URL/v1/users" -H 'content-type: application/json' \
  -d '{"user":"schema-user","password":"schema-password-long-1"}' >/dev/null
TOKEN=$(curl -sf -X POST "$URL/v1/login" -H 'content-type: application/json' \
  -d '{"user":"schema-user","password":"schema-password-long-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["session"])')

# Every check but positive_data_acceptance: whether a user name or password
# is acceptable depends on NFKC normalization and the zxcvbn blocklist,
# which a JSON schema cannot express; such refusals are documented 422s.
say "fuzzing $URL/openapi.json"
REPORT=${SCHEMATHESIS_REPORT:-$ROOT/target/schemathesis}
mkdir -p "$REPORT"
set +e
"$VENV/bin/st" run "$URL/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${SCHEMATHESIS_SEED:-20261126}" \
  --workers 2 \
  --request-timeout 10 \
  --suppress-health-check too_slow \
  --report junit,ndjson --report-dir "$REPORT" \
  -H "Authorization: Bearer $TOKEN" 2>&1 | tee "$TMP/st.log"
rc=${PIPESTATUS[0]}
set -e
# Test cases run, for the book's reliability chapter.
grep -Eo '[0-9]+ test cases? generated|[0-9]+ generated' "$TMP/st.log" | tail -1 > "$REPORT/cases.txt" || true
[ $rc -eq 0 ] || die "schemathesis found failures (see above; report in $REPORT)"
kill -0 "$PID" 2>/dev/null || die "sesame died during the run"
say "passed"
