#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end tests that run real
# containers with the berth binary (those print "skipped: needs root" when not run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/deps.sh
bash integration/rootless-user.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast -- --test-threads=2
fi
