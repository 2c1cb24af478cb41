#!/usr/bin/env bash
# criu-check.sh [--host] [--runc]
#   Does CRIU work here? Runs criu-smoke.sh (`criu check`, then a dump/restore of a counting
#   shell that must go on counting) inside the cgroup-v2 VM of run-in-vm.sh (default), or
#   directly on this host (--host). --runc: then also criu-runc-smoke.sh, `runc checkpoint` and
#   `runc restore` of a busybox container (the reference behaviour for the runtime).
#   Installs Debian's criu on the host first if it is missing: the guest runs the host's /usr,
#   so that is also the guest's criu.
#   Prints the smoke tests' PASS/FAIL lines, then "criu-check: PASS|FAIL (vm|host ...)";
#   exit 0 on PASS, 1 on FAIL, 2 when the check cannot run (not root, no VM, no criu).
#   CRIU's logs are kept (path printed) on FAIL, or always with CRIU_KEEP_LOGS=1.
# Env: BERTH_VM_BUILD (1: run build.sh when VM artefacts are missing), run-in-vm.sh's VM_*.
# Findings: CRIU.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WHERE=vm
RUNC=0
for a in "$@"; do
    case "$a" in
        --host) WHERE=host ;;
        --runc) RUNC=1 ;;
        *) echo "usage: $0 [--host] [--runc]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "criu-check: needs root" >&2; exit 2; }

if ! command -v criu >/dev/null; then
    echo "criu-check: installing Debian's criu ..."
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q criu; } \
        >/tmp/criu-check-apt.log 2>&1 ||
        { echo "criu-check: apt-get install criu failed: $(tail -n 2 /tmp/criu-check-apt.log | tr '\n' ' ')" >&2; exit 2; }
fi

WORK=$(mktemp -d /tmp/criu-check.XXXXXX)
cp "$HERE/criu-smoke.sh" "$HERE/criu-runc-smoke.sh" "$WORK/"
if [ $RUNC = 1 ]; then
    for c in runc jq busybox; do
        command -v $c >/dev/null || { echo "criu-check: --runc needs $c" >&2; exit 2; }
    done
    # busybox-static rootfs; runc's default spec (new pid/mnt/net/ipc/uts namespaces)
    mkdir -p "$WORK/bundle/rootfs/bin" "$WORK/bundle/rootfs/tmp"
    cp "$(command -v busybox)" "$WORK/bundle/rootfs/bin/busybox"
    for l in sh sleep cat; do ln -s busybox "$WORK/bundle/rootfs/bin/$l"; done
    (cd "$WORK/bundle" && runc spec && jq '.process.terminal = false | .root.readonly = false
        | .process.args = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.1; done"]' \
        config.json > config.new && mv config.new config.json)
fi
set +e
if [ $WHERE = host ]; then
    { sh "$WORK/criu-smoke.sh" "$WORK/logs" && { [ $RUNC = 0 ] || sh "$WORK/criu-runc-smoke.sh" "$WORK/bundle"; }; } 2>&1 |
        tee "$WORK/out"
    rc=${PIPESTATUS[0]}
    what="host, kernel $(uname -r)"
else
    if [ ! -e "$HERE/out/vmlinuz" ] || ! command -v qemu-system-x86_64 >/dev/null; then
        [ "${BERTH_VM_BUILD:-1}" = 1 ] || { echo "criu-check: no VM artefacts and BERTH_VM_BUILD=0" >&2; exit 2; }
        echo "criu-check: building the VM (build.sh) ..."
        bash "$HERE/build.sh" >/tmp/criu-check-build.log 2>&1 ||
            { echo "criu-check: build.sh failed: $(tail -n 3 /tmp/criu-check-build.log | tr '\n' ' ')" >&2; exit 2; }
    fi
    # Kernel module autoloading must work in the guest: CRIU's kernel feature probe (kerndat,
    # run by every criu command) needs nf_tables (libcrc32c -> crypto-crc32c), the sock diag
    # modules, veth and tun, all loaded on demand through /proc/sys/kernel/modprobe. The
    # guest's /sbin/modprobe is the host's, absent without kmod: then use busybox's (as
    # init does; repeated here for VM images built from an older init).
    payload='h=$(cat /proc/sys/kernel/modprobe)
[ -x "$h" ] || echo /.busybox-bin/modprobe > /proc/sys/kernel/modprobe
echo "criu-check: guest modprobe helper $(cat /proc/sys/kernel/modprobe)"
sh /mnt/host/criu-smoke.sh /mnt/host/logs; rc=$?
if [ $rc = 0 ] && [ -d /mnt/host/bundle ]; then sh /mnt/host/criu-runc-smoke.sh /mnt/host/bundle || rc=1; fi
echo "criu-check: modules loaded: $(lsmod | awk '"'NR>1{print \$1}'"' | tr "\n" " ")"
exit $rc'
    start=$(date +%s.%N)
    VM_MODULES=${VM_MODULES-} VM_SAME_PATH=0 bash "$HERE/run-in-vm.sh" "$WORK" "$payload" 2>&1 | tee "$WORK/out"
    rc=${PIPESTATUS[0]}
    end=$(date +%s.%N)
    what="vm, kernel $(cat "$HERE/out/kver" 2>/dev/null), $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')s"
fi
set -e
echo
if [ "$rc" = 0 ] && grep -q '^criu-smoke: PASS counter continues' "$WORK/out" &&
    { [ $RUNC = 0 ] || grep -q '^criu-runc: PASS counter continues' "$WORK/out"; }; then
    echo "criu-check: PASS ($what)"
    [ "${CRIU_KEEP_LOGS:-0}" = 1 ] && echo "criu-check: logs in $WORK/logs" || rm -rf "$WORK"
    exit 0
fi
echo "criu-check: FAIL ($what, rc=$rc); CRIU logs in $WORK/logs"
exit 1
