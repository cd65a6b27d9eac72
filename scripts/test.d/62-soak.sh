#!/usr/bin/env bash
# The soak test's CI variant: 60 s at 70% of capacity with cheap hashes
# (m=2048 t=1, rate capped at 150/s); no errors, resident memory flat.
# The full 10-minute soak at production parameters is `scripts/soak`.
set -euo pipefail
cd "$(dirname "$0")/../.."
SOAK_SECONDS=${SOAK_SECONDS:-60} SOAK_CHEAP=1 exec scripts/soak
