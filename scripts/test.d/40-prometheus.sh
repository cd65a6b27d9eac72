#!/usr/bin/env bash
# Prometheus suite (issue 6): the alerting rules, their unit tests and the
# Grafana dashboard, checked with promtool; then the real thing: a running
# sesame scraped by a real Prometheus server, logins made slow, and the
# latency SLI and a short-window burn-rate alert watched through
# Prometheus' HTTP API. Everything listens on 127.0.0.1 only.
#   bash scripts/test.d/40-prometheus.sh          everything
#   bash scripts/test.d/40-prometheus.sh rules    only the offline checks
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "prometheus: $*"; }
die() { echo "prometheus: FAIL: $*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  say "installing Debian's prometheus package (prometheus + promtool)"
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; export SESAME_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package may start its own daemon (systemd or not); we run our own.
fi
for tool in python3 curl; do command -v $tool >/dev/null || die "$tool is needed"; done

# --- offline: rules, unit tests, dashboard ------------------------------------
say "promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
promtool check config deploy/prometheus/prometheus.yml >/dev/null
say "promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml
say "dashboard"
python3 deploy/grafana/check_dashboard.py --promtool deploy/grafana/sesame.json

[ "${1:-}" = rules ] && exit 0

# --- live: sesame + Prometheus ------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SESAME=$TARGET_DIR/debug/sesame
say "building sesame"
cargo build -q -p sesame-cli
[ -x "$SESAME" ] || die "no binary at $SESAME"

TMP=$(mktemp -d /tmp/sesame-prometheus.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    echo "--- sesame log (tail)"; tail -n 20 "$TMP"/sesame-*.log 2>/dev/null || true
    echo "--- prometheus log (tail)"; tail -n 20 "$TMP/prometheus.log" 2>/dev/null || true
    echo "(files kept in $TMP)"
  else
    rm -rf "$TMP"
  fi
  exit $rc
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SPORT=$(free_port); PPORT=$(free_port)
SESAME_URL=http://127.0.0.1:$SPORT
PROM_URL=http://127.0.0.1:$PPORT
SESAME_PID=

wait_http() { # url, what
  for _ in $(seq 1 150); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  die "$2 did not come up at $1"
}

start_sesame() { # phase name, extra flags...
  local name=$1; shift
  # The same port each time, so Prometheus sees one target whose counters reset.
  for _ in $(seq 1 50); do
    "$SESAME" serve --listen "127.0.0.1:$SPORT" --database "sqlite:$TMP/sesame.db" \
      --trusted-proxies 127.0.0.1/32 --cookie-secure false --instance e2e \
      --event-log "$TMP/events.jsonl" --slow-login-log "$TMP/slow.jsonl" \
      --metric-regions eu-west,us-east --metric-platforms web,ios,android \
      --grace-period 2 "$@" >"$TMP/sesame-$name.log" 2>&1 &
    SESAME_PID=$!
    PIDS+=("$SESAME_PID")
    for _ in $(seq 1 100); do
      curl -sf -o /dev/null "$SESAME_URL/readyz" && return 0
      kill -0 "$SESAME_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$SESAME_PID" 2>/dev/null && die "sesame ($name) is not ready"
    grep -qi "in use" "$TMP/sesame-$name.log" || { cat "$TMP/sesame-$name.log"; die "sesame ($name) exited"; }
    sleep 0.2 # the port is still held by the last one: retry
  done
  die "sesame ($name) could not bind 127.0.0.1:$SPORT"
}
stop_sesame() { kill -TERM "$SESAME_PID"; wait "$SESAME_PID" 2>/dev/null || true; }

say "starting sesame (fast: cheap Argon2, 2 workers) on $SESAME_URL"
start_sesame fast --hash-m-cost 256 --hash-t-cost 1 --hash-workers 2 --latency-budget-ms 250

# /metrics: present and lint-clean.
curl -sf "$SESAME_URL/metrics" >"$TMP/metrics-0.txt" || die "GET /metrics failed: is it implemented?"

# The short-window variant of the SLO rules: the real file with every window
# compressed 60x (5m -> 5s, 1h -> 1m, 3d -> 72m; for: 2m -> 2s) and its records
# and alerts renamed (e2e_job:..., E2ESesame...) so they can sit beside the
# real ones, which are loaded too (their 5m SLI is asserted on below).
sed -e 's/\[5m\]/[5s]/g; s/\[30m\]/[30s]/g; s/\[1h\]/[1m]/g; s/\[6h\]/[6m]/g; s/\[3d\]/[72m]/g' \
    -e 's/\b\(job[a-z_]*\):sesame_/e2e_\1:sesame_/g' \
    -e 's/alert: Sesame/alert: E2ESesame/; s/name: sesame-slo$/name: e2e-sesame-slo/' \
    -e 's/for: \([0-9]*\)m$/for: \1s/; s/for: \([0-9]*\)h$/for: \1m/' \
    deploy/prometheus/rules/sesame-slo.yml >"$TMP/e2e-slo.yml"
grep -q 'e2e_job:sesame_login_slow:ratio_rate1h > (14.4 \* 0.01)' "$TMP/e2e-slo.yml" \
  || die "could not derive the short-window rules from sesame-slo.yml"
promtool check rules "$TMP/e2e-slo.yml" >/dev/null

cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/rules/sesame-slo.yml
  - $ROOT/deploy/prometheus/rules/sesame-alerts.yml
  - $TMP/e2e-slo.yml
scrape_configs:
  - job_name: sesame
    static_configs:
      - targets: ["127.0.0.1:$SPORT"]
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null
say "starting Prometheus on $PROM_URL"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http "$PROM_URL/-/ready" Prometheus

# q EXPR: the first sample's value of an instant query ("" when empty).
q() {
  curl -sf "$PROM_URL/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")'
}
# alert_state NAME: firing, pending or "" (inactive).
alert_state() {
  curl -sf "$PROM_URL/api/v1/alerts" | python3 -c '
import json, sys
states = [a["state"] for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"]["alertname"] == sys.argv[1]]
print("firing" if "firing" in states else (states[0] if states else ""))' "$1"
}

# The load: N threads posting logins for D seconds (at most R/s in all when R
# > 0) as users e2e-0..e2e-{U-1} from addresses 10.0.x.y, in two regions and
# three platforms. Prints one line: counts by status and the p50/p99 in ms.
drive() { # duration_s concurrency rate
  python3 - "$SESAME_URL" "$@" <<'EOF'
import http.client, json, random, sys, threading, time
url, duration, conc, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
host, port = url.split("//")[1].split(":")
users = 40
lock, stats, lat = threading.Lock(), {}, []
end = time.monotonic() + duration
interval = conc / rate if rate > 0 else 0.0
def worker(i):
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    rnd = random.Random(i)
    nxt = time.monotonic()
    while True:
        if interval:
            nxt += interval
            d = nxt - time.monotonic()
            if d > 0: time.sleep(d)
        if time.monotonic() >= end: break
        u = rnd.randrange(users)
        body = json.dumps({"timestamp": "2026-01-01 00:00:00", "ip": f"10.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}",
                           "user": f"e2e-{u}", "password": f"prometheus burns {u} budgets",
                           "client": {"region": ["eu-west", "us-east"][u % 2],
                                      "platform": ["web", "ios", "android"][u % 3], "app_version": "1.0.0"}})
        t = time.monotonic()
        try:
            c.request("POST", "/v1/login", body, {"content-type": "application/json"})
            r = c.getresponse(); r.read(); s = r.status
        except Exception as e:
            s = type(e).__name__; c.close(); c = http.client.HTTPConnection(host, int(port), timeout=30)
        with lock:
            stats[s] = stats.get(s, 0) + 1
            lat.append(time.monotonic() - t)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
pct = lambda p: f"{1000 * lat[min(len(lat) - 1, int(p * len(lat)))]:.0f}" if lat else "-"
print(f"{sum(stats.values())} logins {dict(sorted(stats.items(), key=str))} p50 {pct(0.5)} ms p99 {pct(0.99)} ms")
EOF
}

say "registering users"
for u in $(seq 0 39); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$SESAME_URL/v1/users" -H 'content-type: application/json' \
    -d "{\"user\":\"e2e-$u\",\"password\":\"prometheus burns $u budgets\"}")
  [ "$code" = 201 ] || die "registering e2e-$u: HTTP $code"
done

say "phase 1: healthy logins (20/s for 15s)"
say "  $(drive 15 4 20)"
# A few answers of other kinds, so their series exist: rate-limited (one
# address past its burst) and a bad request.
for _ in $(seq 1 30); do
  curl -s -o /dev/null -X POST "$SESAME_URL/v1/login" -H 'content-type: application/json' \
    -d '{"timestamp":"2026-01-01 00:00:00","ip":"192.0.2.1","user":"e2e-0","password":"wrong password here"}'
done
curl -s -o /dev/null -X POST "$SESAME_URL/v1/login" -H 'content-type: application/json' -d '{"user":'
sleep 2

curl -sf "$SESAME_URL/metrics" >"$TMP/metrics-1.txt"
say "promtool check metrics (live /metrics)"
lint=$(promtool check metrics <"$TMP/metrics-1.txt" 2>&1) || { echo "$lint"; die "promtool check metrics failed"; }
[ -z "$lint" ] || { echo "$lint"; die "promtool check metrics reports problems"; }

# The metrics contract the rules and the dashboard are written against.
python3 - "$TMP/metrics-1.txt" <<'EOF' || die "/metrics does not match the contract the rules use"
import re, sys
text = open(sys.argv[1]).read()
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
want = {
    "sesame_login_duration_seconds": "histogram", "sesame_login_stage_duration_seconds": "histogram",
    "sesame_hash_queue_depth": "gauge", "sesame_hash_workers": "gauge", "sesame_hash_workers_busy": "gauge",
    "sesame_login_shed_total": "counter", "sesame_rate_limited_total": "counter",
    "sesame_db_query_duration_seconds": "histogram", "sesame_http_requests_total": "counter",
    "sesame_http_request_duration_seconds": "histogram", "sesame_build_info": "gauge",
    "sesame_event_log_dropped_total": "counter",
}
bad = [f"{m}: {types.get(m, 'missing')}, want {t}" for m, t in want.items() if types.get(m) != t]
def has(pattern):
    return re.search(pattern, text, re.M) is not None
checks = {
    'login histogram has the SLO bucket le="0.25"': r'^sesame_login_duration_seconds_bucket\{[^}]*le="0\.25"',
    "login histogram has outcome, region and platform labels": r'^sesame_login_duration_seconds_count\{(?=[^}]*outcome=")(?=[^}]*region=")(?=[^}]*platform=")',
    "every stage is recorded": None,
    "shed counter by reason": r'^sesame_login_shed_total\{[^}]*reason="overloaded"',
    "rate-limited counter by scope": r'^sesame_rate_limited_total\{[^}]*scope="(ip|user)',
    "build info has version and revision": r'^sesame_build_info\{(?=[^}]*version=")(?=[^}]*revision=")[^}]*\} 1$',
    "HTTP requests by route template": r'^sesame_http_requests_total\{[^}]*route="/v1/login"',
    "database queries by query and role": r'^sesame_db_query_duration_seconds_count\{(?=[^}]*query=")(?=[^}]*role=")',
}
for what, pattern in checks.items():
    if pattern is None:
        missing = [s for s in ("queue", "hash", "db", "session")
                   if not has(rf'^sesame_login_stage_duration_seconds_count\{{[^}}]*stage="{s}"')]
        if missing: bad.append(f"{what}: missing {missing}")
    elif not has(pattern):
        bad.append(what)
if not has(r"^# TYPE sesame_replica_lag_seconds gauge$"):
    print("prometheus: note: no sesame_replica_lag_seconds (no replicas configured: SQLite)")
for b in bad: print(f"prometheus: contract: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

SLI='1 - e2e_job:sesame_login_slow:ratio_rate1h'   # the 1m window, compressed from 1h
healthy_sli=$(q "$SLI")
say "healthy: latency SLI over the last 1m (compressed 1h) = ${healthy_sli:-none}"
[ -n "$healthy_sli" ] || die "Prometheus has no latency SLI: are logins scraped?"
python3 -c "import sys; sys.exit(0 if float('$healthy_sli') >= 0.99 else 1)" \
  || die "latency SLI is $healthy_sli while logins are fast (want >= 0.99)"
state=$(alert_state E2ESesameLoginLatencyFastBurn)
[ -z "$state" ] || die "the short-window fast-burn alert is $state while logins are fast"
say "healthy: E2ESesameLoginLatencyFastBurn quiet"

say "phase 2: restarting sesame with 1 hash worker, Argon2 m=64MiB t=3, latency budget 5s"
stop_sesame
start_sesame slow --hash-m-cost 65536 --hash-t-cost 3 --hash-workers 1 --latency-budget-ms 5000
drive 75 8 0 >"$TMP/drive.out" 2>&1 &
DRIVE_PID=$!
PIDS+=("$DRIVE_PID")
fired=
for i in $(seq 1 70); do
  sleep 1
  state=$(alert_state E2ESesameLoginLatencyFastBurn)
  if [ $((i % 5)) = 0 ] || [ "$state" = firing ]; then
    say "  t+${i}s: SLI(1m) $(q "$SLI" | cut -c1-6), slow share 5s $(q 'e2e_job:sesame_login_slow:ratio_rate5m' | cut -c1-6), queue $(q 'sum(sesame_hash_queue_depth)'), alert ${state:-inactive}"
  fi
  if [ "$state" = firing ]; then fired=$i; break; fi
done
kill "$DRIVE_PID" 2>/dev/null || true; wait "$DRIVE_PID" 2>/dev/null || true
[ -n "$fired" ] || die "E2ESesameLoginLatencyFastBurn did not fire within 70s of logins turning slow"
say "E2ESesameLoginLatencyFastBurn fired ${fired}s after logins turned slow"

slow_sli=$(q "$SLI")
real_sli=$(q '1 - job:sesame_login_slow:ratio_rate5m')
p99=$(q 'job:sesame_login_duration_seconds:p99_rate5m')
say "slow: latency SLI over 1m = $slow_sli; real rule (5m window) = $real_sli; p99 (5m) = ${p99}s"
python3 -c "import sys; sys.exit(0 if float('$slow_sli') < 0.99 and float('$real_sli') < float('$healthy_sli') else 1)" \
  || die "the latency SLI did not drop (1m: $healthy_sli -> $slow_sli, 5m: $real_sli)"
# The alert as Prometheus reports it, annotations and all.
curl -sf "$PROM_URL/api/v1/alerts" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["data"]["alerts"]:
    if a["labels"]["alertname"] == "E2ESesameLoginLatencyFastBurn":
        print("prometheus:   " + a["state"] + " " + json.dumps(a["labels"]) + "\nprometheus:   " + a["annotations"]["description"][:160] + "...")'

say "dashboard queries against the live Prometheus"
python3 deploy/grafana/check_dashboard.py deploy/grafana/sesame.json --prometheus "$PROM_URL" \
  --require-data "Login latency heatmap" "Stage breakdown: mean time per login" "Hash queue depth" \
    "Login p99 by region" "Login p99 by platform" "Login p99 by version" "Latency SLI (5m)" \
    job instance region platform version

# The runbook's first command, on this incident's event log.
if "$SESAME" triage --help >/dev/null 2>&1; then
  say "runbook: sesame triage (first lines)"
  "$SESAME" triage "$TMP/events.jsonl" --since "$(date -u -d -1hour +%FT%TZ)" --threshold-ms 250 >"$TMP/triage.txt" \
    || die "sesame triage failed on the event log"
  head -n 15 "$TMP/triage.txt" | sed 's/^/prometheus:   /'
fi
say "OK"
