#!/usr/bin/env bash
# Fuzzing suite (issue 9): a short cargo-fuzz run of each target in fuzz/
# (login request parsing through the real router, the event-log parser, the
# slow-log parser), seeded from fuzz/corpus/<target>/. Fails on any crash,
# panic, leak or timeout; the input that did it is left in
# fuzz/artifacts/<target>/ and printed.
#   bash scripts/test.d/60-fuzz.sh              every target, FUZZ_SECONDS each (25)
#   bash scripts/test.d/60-fuzz.sh slow_log     one target
# Only a stable toolchain is needed: cargo-fuzz runs with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "fuzz: $*"; }
SECONDS_PER_TARGET=${FUZZ_SECONDS:-25}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(login_request event_log slow_log)

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
# The fuzz crate is its own workspace with its own target dir.
unset CARGO_TARGET_DIR
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
export CARGO_TARGET_DIR=$FUZZ_TARGET_DIR

say "building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
  cargo fuzz build -O --debug-assertions --fuzz-dir fuzz "$t"
done

STATS=${FUZZ_STATS:-$ROOT/target/fuzz-stats.txt}
mkdir -p "$(dirname "$STATS")"; : > "$STATS"
for t in "${TARGETS[@]}"; do
  work=$(mktemp -d /tmp/sesame-fuzz-$t.XXXXXX)
  say "$t: ${SECONDS_PER_TARGET}s"
  # New inputs go to a scratch dir; the repo corpus is only read.
  set +e
  cargo fuzz run -O --debug-assertions --fuzz-dir fuzz "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=12000 -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 > "$work.log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$work.log" | tail -1 | grep -o '[0-9]*' || echo '?')
  echo "$t execs=$execs cov=$cov rc=$rc" | tee -a "$STATS"
  if [ $rc -ne 0 ]; then
    tail -n 60 "$work.log"
    say "FAIL: $t crashed; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $t fuzz/artifacts/$t/<file>"
    exit 1
  fi
  rm -rf "$work" "$work.log"
done
say "all targets ran clean"
