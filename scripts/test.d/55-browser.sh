#!/usr/bin/env bash
# Browser suite (issue 8): sesame's pages end to end in headless Chromium,
# and axe-core's WCAG 2.1 A/AA and best-practice rules on them.
# Installs what is missing: Debian's chromium (apt) and the pinned
# playwright-core and axe-core (npm ci from tests/browser/package-lock.json).
# No tool ever downloads a browser. Builds the sesame binary; the tests start their own
# `sesame serve` instances (127.0.0.1, free ports, temporary SQLite databases,
# cheap hash parameters, --cookie-secure false) and drive Chromium through
# them. Screenshots, server logs and event logs land in test-artifacts/browser/.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { echo "browser: $*"; }
die() { echo "browser: FAIL: $*" >&2; exit 1; }
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

apt_install() {
  if [ -z "${SESAME_APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; export SESAME_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  say "installing Debian's chromium"
  apt_install chromium
fi
[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing node and npm"
  apt_install nodejs npm
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || die "node >= 20 is needed (found $(node --version))"

cd "$ROOT/tests/browser"
# Every pinned dependency (playwright-core, axe-core) at its version, or npm ci.
want=$(node -p 'Object.entries(require("./package.json").dependencies).map(([n, v]) => `${n} ${v}`).join(", ")')
have=$(node -p 'Object.keys(require("./package.json").dependencies).map((n) => {
  let v = ""; try { v = require(`./node_modules/${n}/package.json`).version } catch {}
  return `${n} ${v}`; }).join(", ")')
if [ "$have" != "$want" ]; then
  say "npm ci ($want)"
  npm ci --no-audit --no-fund --ignore-scripts >/dev/null
fi

cd "$ROOT"
say "building sesame"
cargo build -q -p sesame-cli
export SESAME_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/sesame
[ -x "$SESAME_BIN" ] || die "no binary at $SESAME_BIN"
export ARTIFACTS=$ROOT/test-artifacts/browser
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"

say "$("$CHROMIUM" --version 2>/dev/null | head -1); running tests/browser"
cd "$ROOT/tests/browser"
node --test --test-concurrency=1 --test-reporter=spec pages.test.mjs
say "passed; screenshots in test-artifacts/browser/"
