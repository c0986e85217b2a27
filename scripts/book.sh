#!/usr/bin/env bash
# Builds the documentation book (docs/, an mdBook) and checks it: every internal link and
# anchor resolves, nothing is loaded from outside the book, and every configuration example
# of the guides is one `paastis check` accepts. Installs mdbook (pinned, from crates.io) and
# PyYAML when missing. Usage: scripts/book.sh [PAASTIS_BINARY] (default: target/debug/paastis,
# built when missing). The book lands in docs/book/.
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.5.4
mdbook=$(command -v mdbook || true)
if [ -z "$mdbook" ] || [ "$("$mdbook" --version)" != "mdbook v$MDBOOK_VERSION" ]; then
  root="${CARGO_HOME:-$HOME/.cargo}/mdbook-$MDBOOK_VERSION"
  mdbook="$root/bin/mdbook"
  if [ ! -x "$mdbook" ]; then
    # Without `serve`, `watch` and search: about 2 minutes from cold on 2 cores.
    cargo install mdbook --locked --no-default-features --version "$MDBOOK_VERSION" \
      --root "$root" --quiet
  fi
fi
python3 -c 'import yaml' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pyyaml

binary="${1:-target/debug/paastis}"
[ -x "$binary" ] || cargo build --locked --bin paastis
"$mdbook" build docs
python3 scripts/check-book.py docs/book
python3 scripts/check-book.py --configs "$(realpath "$binary")"
