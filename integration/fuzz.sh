#!/bin/bash
# Smoke-fuzz every target in fuzz/ for FUZZ_SECONDS each (default 60): config.json parsing and
# validation, exec's process.json, the state.json loader and the command line. Any crash, panic,
# leak report or input slower than FUZZ_TIMEOUT seconds (default 10: a hang) fails the run; the
# reproducer is left in fuzz/artifacts/<target>/ (commit it to fuzz/corpus/<target>/ with the fix).
#
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes
# (sanitizer coverage, AddressSanitizer). The committed seeds in fuzz/corpus/ stay untouched:
# libFuzzer adds what it finds to a scratch corpus under fuzz/target/.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
TARGETS=${FUZZ_TARGETS:-"config process state cli"}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# Built once for all targets; the binaries are then run directly: `cargo fuzz run <target>`
# builds with other RUSTFLAGS than `cargo fuzz build` (-Ccodegen-units=1 among them), which
# rebuilt the whole crate before every target (~2 minutes each on this machine).
cargo fuzz build -O
bin=fuzz/target/x86_64-unknown-linux-gnu/release
start=$(date +%s)
for t in $TARGETS; do
    scratch=fuzz/target/corpus/$t
    mkdir -p "$scratch" "fuzz/artifacts/$t"
    echo "fuzz: $t for ${FUZZ_SECONDS}s"
    # -rss_limit_mb: a config that makes berth allocate without bound is a bug too.
    "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$FUZZ_SECONDS" \
        -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 -dict=fuzz/json.dict -print_final_stats=1 \
        "$scratch" "fuzz/corpus/$t" 2>&1 | grep -v '^"' | tail -n 20
done
echo "fuzz: all targets clean in $(($(date +%s) - start))s"
