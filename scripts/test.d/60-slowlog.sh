#!/usr/bin/env bash
# sesame slowlog against the real tools, on real slow logs:
#  - a private MariaDB writes slow logs (slow_query_log on, long_query_time=0)
#    for a varied login-service workload, with and without
#    log_slow_verbosity=query_plan,explain,innodb;
#  - pt-query-digest (Debian's percona-toolkit) must find the same classes
#    (query IDs, fingerprints), counts, and Query_time/Lock_time sum, min,
#    max, 95% and median on each log, on its gzip copy, and on a generated
#    MySQL 8 flavoured log;
#  - MariaDB's mysqldumpslow must print the same statements and totals as
#    `sesame slowlog --mysqldumpslow`;
#  - pt-query-digest's own fingerprint code must agree on random queries.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=crates/sesame-slowlog/bench

missing=()
command -v pt-query-digest >/dev/null 2>&1 || missing+=(percona-toolkit)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mysqldumpslow >/dev/null 2>&1 || missing+=(mariadb-server)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then apt-get update -qq; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build -q -p sesame-cli --bin sesame
cargo build -q -p sesame-slowlog --example fingerprint
target=${CARGO_TARGET_DIR:-target}
sesame=$target/debug/sesame

work=$(mktemp -d)
chown mysql:mysql "$work"
pid=
cleanup() {
  # Stop only the server this script started.
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A private server on a socket: the shared one's settings stay untouched.
mariadb-install-db --no-defaults --user=mysql --datadir="$work/data" \
  --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
/usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$work/data" \
  --socket="$work/sock" --skip-networking --pid-file="$work/pid" \
  --log-error="$work/error.log" --slow-query-log=1 --long-query-time=0 \
  --slow-query-log-file="$work/plain.log" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do mariadb-admin -S "$work/sock" -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
sql() { mariadb --comments --force -S "$work/sock" -uroot "$@"; }

python3 $bench/workload.py --statements 1500 --seed 1 | sql >/dev/null 2>&1 || true
sql -e "SET GLOBAL log_slow_verbosity='query_plan,explain,innodb';
        SET GLOBAL slow_query_log_file='$work/verbose.log'"
python3 $bench/workload.py --statements 1500 --seed 2 | sql >/dev/null 2>&1 || true
sql -e "SET GLOBAL slow_query_log_file='$work/rest.log'"
gzip -c "$work/plain.log" >"$work/plain.log.gz"
python3 $bench/gen_slowlog.py --flavor mysql8 --mb 2 --seed 4 >"$work/mysql8.log"

check() { # log read by pt-query-digest, log read by sesame
  echo "-- $(basename "$2")"
  pt-query-digest --output json --limit 1000000 "$1" >"$work/pt.json" 2>/dev/null
  "$sesame" slowlog --json "$2" >"$work/sesame.json"
  python3 $bench/compare.py "$work/pt.json" "$work/sesame.json"
}
check "$work/plain.log" "$work/plain.log"
check "$work/verbose.log" "$work/verbose.log"
check "$work/plain.log" "$work/plain.log.gz"
check "$work/mysql8.log" "$work/mysql8.log"

echo "-- mysqldumpslow"
for sort in at c t l r; do
  mysqldumpslow -s $sort "$work/plain.log" >"$work/mds.txt" 2>/dev/null
  "$sesame" slowlog --mysqldumpslow -s $sort "$work/plain.log" >"$work/sesame-mds.txt" 2>/dev/null
  python3 $bench/compare.py --mysqldumpslow "$work/mds.txt" "$work/sesame-mds.txt"
done

echo "-- fingerprint code"
python3 $bench/fingerprint_fuzz.py "$target/debug/examples/fingerprint" --queries 30000 --seed "$RANDOM"
echo "slowlog: all agree with pt-query-digest and mysqldumpslow"
