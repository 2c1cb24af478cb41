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
# The cgroup tests again on a pure cgroup-v2 kernel (qemu VM, ~2-3 min under TCG); prints
# "cgroup-v2 VM tests skipped: REASON" where the VM cannot be had. BERTH_VM=0 skips it.
if [ "${BERTH_VM:-1}" = 1 ]; then
  bash integration/vm/run-cgroup-tests.sh
fi
# Fuzz smoke run: every cargo-fuzz target for FUZZ_SECONDS (default 60) each; ~5 min with
# dependencies built, ~12 min on a fresh machine (cargo install cargo-fuzz). BERTH_FUZZ=0 skips it.
if [ "${BERTH_FUZZ:-1}" = 1 ]; then
  bash integration/fuzz.sh
fi
