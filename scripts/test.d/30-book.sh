#!/usr/bin/env bash
# The book (docs/): builds it with mdBook and fails on a broken internal
# link or anchor (scripts/lib/booklinks reads the rendered pages). Installs
# mdBook with cargo when missing (a few minutes, once per machine).
#   bash scripts/test.d/30-book.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "book: $*"; }

MDBOOK_VERSION=0.5.4
if ! command -v mdbook >/dev/null || [ "$(mdbook --version | awk '{print $2}')" != "v$MDBOOK_VERSION" ]; then
  say "installing mdbook $MDBOOK_VERSION"
  cargo install mdbook --locked --no-default-features --version "$MDBOOK_VERSION" -q
fi

say "link checker's own tests"
python3 -m unittest discover -s scripts/lib/booklinks -t scripts/lib -p 'test_*.py'
say "mdbook build docs"
rm -rf docs/book
mdbook build docs 2>&1 | grep -v '^ INFO' || true
[ -f docs/book/index.html ] || { echo "book: FAIL: mdbook built nothing" >&2; exit 1; }
PYTHONPATH=scripts/lib python3 -m booklinks docs/book
say "built, every internal link and anchor resolves ($(find docs/book -name '*.html' | wc -l) pages)"
