#!/usr/bin/env bash
# The soak test's CI variant: 60 s at a fixed 150 requests/s with cheap
# hashes (m=2048 t=1, debug build); no errors, resident memory flat. That is
# NOT 70% of capacity: cheap hashes make the capacity 1,900-3,200 hashes/s
# on a 2-core machine (measured here; it varies with the other load), so
# 150/s is 5-8% of it (the summary line prints the share measured). Capped
# (SOAK_MAX_RATE) because 70% of the cheap capacity, 1,300-2,200 requests/s,
# would load the debug build's HTTP path and the load generator sharing the
# cores rather than hashing, and cost CI far more CPU for a minute; the cheap
# parameters and 60 s are there for CI time.
# What this run watches is leaks per request, not behaviour near capacity:
# the full soak, 10 minutes at 70% of capacity with production parameters,
# is `scripts/soak`.
# The mix is failure-heavy: each successful login adds a session to the
# in-process session cache, which by design keeps filling for 15 minutes
# (see scripts/soak), longer than this run; failures, session checks and
# the hash path are what this short run watches for leaks.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOAK_SECONDS=${SOAK_SECONDS:-60} SOAK_CHEAP=1 \
  SOAK_MIX=${SOAK_MIX:-login=10,wrong-password=40,unknown-user=30,session=20} exec scripts/soak
