#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the end-to-end tests that run real
# containers with the berth binary (those print "skipped: needs root" when not run as root).
#
# Two tiers, each timed: the fast tier (formatting, lints, unit and end-to-end tests: what every
# change runs) and the long tier (the cgroup-v2 VM, fuzzing, the benchmark smoke run, the hang
# watchdog). CI runs both; BERTH_TIER=fast runs the fast tier alone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash integration/deps.sh
bash integration/rootless-user.sh
T0=$(date +%s)
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast
else
  cargo test --no-fail-fast -- --test-threads=2
fi
echo "test.sh: fast tier (fmt, clippy, unit and end-to-end tests) took $(($(date +%s) - T0)) s"
if [ "${BERTH_TIER:-all}" = fast ]; then
  exit 0
fi
T1=$(date +%s)
# The cgroup tests (tests/cgroups.rs, tests/cgroups_core.rs) again on a pure cgroup-v2 kernel,
# and the CRIU checkpoint/restore tests that can only run there (tests/checkpoint.rs; qemu VM,
# under TCG); prints
# "cgroup-v2 VM tests skipped: REASON" where the VM cannot be had. BERTH_VM=0 skips it.
if [ "${BERTH_VM:-1}" = 1 ]; then
  bash integration/vm/run-cgroup-tests.sh
  # The systemd cgroup driver, in the same VM booted with systemd 252 as PID 1 (~1-2 min).
  bash integration/vm/run-systemd-tests.sh
fi
# Fuzz smoke run: every cargo-fuzz target for FUZZ_SECONDS (default 60) each; ~5 min with
# dependencies built, ~12 min on a fresh machine (cargo install cargo-fuzz). BERTH_FUZZ=0 skips it.
if [ "${BERTH_FUZZ:-1}" = 1 ]; then
  bash integration/fuzz.sh
fi
# The benchmark harness itself (integration/bench/run.sh: berth, crun and runc through
# cgview.sh), one round of two runs per cell into a scratch file (~15 s): every berth cell must
# be a number. No timing is asserted anywhere. BERTH_BENCH=0 skips it.
if [ "${BERTH_BENCH:-1}" = 1 ]; then
  out=$(mktemp)
  BENCH_ROUNDS=1 BENCH_RUNS=2 BENCH_LOOP_ROUNDS=1 BENCH_RSS=1 BENCH_CPU_ROUNDS=1 BENCH_CPU_RUNS=2 BENCH_LANE_N=2 BENCH_OUT="$out" bash integration/bench/run.sh >/dev/null
  awk -F'|' '/^\| / && !/measurement|shared libraries/ && $4 !~ /^ *[0-9.]+ *$/ {print "bench smoke: berth has no number in:" $0; bad = 1}
    /^\| CPU per `run` \/bin\/true / && $7 !~ /^ *[0-9.]+ *$/ {print "bench smoke: floor.c has no number in:" $0; bad = 1}
    END {exit bad}' "$out"
  rm -f "$out"
fi
# The hang watchdog: 10,000 back-to-back `berth run` of /bin/true, each under a 10 s timeout;
# any hang, failure or leftover fails the suite (~2.5 min). BERTH_HANGCHECK=N runs N, 0 skips.
if [ "${BERTH_HANGCHECK:-10000}" != 0 ]; then
  bash integration/bench/hangcheck.sh "${BERTH_HANGCHECK:-10000}"
fi
echo "test.sh: long tier (VM, fuzz, bench smoke, hang watchdog) took $(($(date +%s) - T1)) s"
