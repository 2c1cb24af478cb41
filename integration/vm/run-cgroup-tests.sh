#!/usr/bin/env bash
# Run berth's cgroup end-to-end tests (tests/cgroups.rs and tests/cgroups_core.rs; others via
# BERTH_VM_TESTS) on a pure cgroup-v2 kernel: the test binaries are built here on the host,
# then run inside the VM of run-in-vm.sh (Debian's stock kernel, cgroup_no_v1=all) one test at
# a time. Nothing is ever compiled inside the VM.
#
# Prints "cgroup-v2 VM tests skipped: REASON" and exits 0 when the VM cannot be had (not root,
# not x86_64, no qemu, no kernel package); a failure under CI or with BERTH_VM_REQUIRED=1.
# The test binaries run with --include-ignored: tests that need pure cgroup v2 are #[ignore]d
# so that the host's summary shows them as not run.
# Env: BERTH_VM_TESTS ("cgroups cgroups_core exec checkpoint": tests/checkpoint.rs needs CRIU,
# which works only here; e.g. "cgroups lifecycle"; "lib" for the unit tests), BERTH_VM_FILTER (test name
# filter passed to the test binaries), BERTH_VM_BUILD (1: run build.sh
# when artefacts are missing), plus run-in-vm.sh's VM_* variables (VM_OUT: build.sh's output,
# default integration/vm/out).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
VM=$REPO/integration/vm
OUT=${VM_OUT:-$VM/out}

# Under CI (the CI variable set) the VM stage is required: a VM that cannot be had fails it.
skip() {
    echo "cgroup-v2 VM tests skipped: $*"
    [ "${BERTH_VM_REQUIRED:-0}" = 1 ] && exit 1
    [ -n "${CI:-}" ] && { echo "cgroup-v2 VM tests: required under CI" >&2; exit 1; }
    exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (qemu's 9p passthrough shares and the containers inside)"
[ "$(uname -m)" = x86_64 ] || skip "the VM boots an amd64 kernel; this host is $(uname -m)"
if [ ! -e "$OUT/vmlinuz" ] || ! command -v qemu-system-x86_64 >/dev/null; then
    [ "${BERTH_VM_BUILD:-1}" = 1 ] || skip "VM artefacts missing and BERTH_VM_BUILD=0"
    echo "vm: building the VM (qemu-system-x86, kernel package) ..."
    bash "$VM/build.sh" >/tmp/berth-vm-build.log 2>&1 ||
        skip "integration/vm/build.sh failed (no qemu-system-x86 or kernel package?): $(tail -n 3 /tmp/berth-vm-build.log | tr '\n' ' ')"
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
[ -e "$OUT/vmlinuz" ] || skip "no VM kernel in $OUT"

# Host-side build: the berth binary and the test executables (their CARGO_BIN_EXE_berth path
# points into this repo, which the VM mounts at the same path).
# exec too: on pure v2 the init may be cloned into the cgroup, which changes how an exec's
# process reaches it (and whether a container at its pids limit still gets one).
TESTS=${BERTH_VM_TESTS:-cgroups cgroups_core exec checkpoint}
targs=()
# "lib": the unit tests (with a filter: e.g. the CRIU RPC check, BERTH_VM_FILTER=criu)
for t in $TESTS; do if [ "$t" = lib ]; then targs+=(--lib); else targs+=(--test "$t"); fi; done
cargo build --quiet
BINS=$(cargo test --no-run --message-format=json "${targs[@]}" 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true) | .executable')
[ -n "$BINS" ] || { echo "vm: no test executables built" >&2; exit 1; }

payload="rc=0; echo \"vm: \$(uname -r), cgroup: \$(stat -fc %T /sys/fs/cgroup)\";"
# Module autoloading for CRIU's kernel probe (tests/checkpoint.rs; CRIU.md): the guest's
# /sbin/modprobe is the host's, absent without kmod; busybox's reads the shared module tree.
# init does this too; repeated for VM images built from an older init.
payload+=' [ -x "$(cat /proc/sys/kernel/modprobe)" ] || echo /.busybox-bin/modprobe > /proc/sys/kernel/modprobe;'
payload+=" grep -q cgroup2 /proc/mounts && ! grep -q ' cgroup ' /proc/mounts || { echo 'vm: not a pure cgroup v2 guest'; exit 3; };"
for b in $BINS; do
    payload+=" echo \"vm: running $(basename "$b")\"; $b --test-threads=1 --include-ignored ${BERTH_VM_FILTER:-} || rc=1;"
done
payload+=" exit \$rc"
# TCG by default: /dev/kvm exists on the CI machines but nested KVM aborts qemu there
# ("failed to set MSR 0x10a"). Elsewhere VM_ACCEL=kvm VM_CPU=host is much faster.
echo "vm: accel ${VM_ACCEL:-tcg}; tests: $TESTS"
VM_MODULES=${VM_MODULES-} exec bash "$VM/run-in-vm.sh" "$REPO" "$payload"
