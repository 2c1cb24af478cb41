#!/bin/sh
# criu-runc-smoke.sh BUNDLE [RUNTIME]
#   The reference for a future `berth checkpoint/restore`: RUNTIME (runc) runs BUNDLE (a
#   counting shell writing /tmp/c inside its rootfs), checkpoints it, restores it, and the
#   counter must go on from the checkpointed value. Prints "criu-runc: PASS|FAIL ..." lines;
#   exit 0 only when all pass. Run as root where `criu check` passes (the VM).
B=$1
RT=${2:-runc}
ID=criu-smoke-$$
W=$(mktemp -d /tmp/criu-runc.XXXXXX)
rc=0
pass() { echo "criu-runc: PASS $*"; }
fail() { echo "criu-runc: FAIL $*"; rc=1; }
now() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
cleanup() { $RT delete -f $ID >/dev/null 2>&1; rm -rf "$W"; }
trap cleanup EXIT
C=$B/rootfs/tmp/c
rm -f "$C"

cd "$B" || exit 1
echo "criu-runc: $($RT --version | head -n1)"
# stdio on /dev/null: a file outside the container's mounts (say a log) is not dumpable
# ("Can't lookup mount=N for fd=2")
$RT run -d $ID </dev/null >/dev/null 2>&1 || { fail "$RT run -d $ID failed"; exit 1; }
sleep 1
[ -s "$C" ] || { fail "counter did not start"; exit 1; }
t0=$(now)
if $RT checkpoint --image-path "$W/img" --work-path "$W/dump" $ID 2>"$W/ck.err"; then
    t1=$(now); c1=$(cat "$C")
    pass "$RT checkpoint at counter $c1 ($(secs "$t0" "$t1")s)"
else
    fail "$RT checkpoint: $(cat "$W/ck.err")"; grep Error "$W/dump/dump.log" | head -n 5; exit 1
fi
sleep 1
c2=$(cat "$C")
[ "$c2" = "$c1" ] && pass "counter frozen at $c2; after checkpoint: $($RT state $ID 2>/dev/null | grep -o '"status": "[a-z]*"' || echo "no container (runc deleted it)")" ||
    fail "counter moved after checkpoint: $c1 -> $c2"
t0=$(now)
if $RT restore -d --image-path "$W/img" --work-path "$W/restore" $ID </dev/null >/dev/null 2>"$W/rs.err"; then
    t1=$(now)
    ca=$(cat "$C")
    pass "$RT restore ($(secs "$t0" "$t1")s)"
else
    fail "$RT restore: $(cat "$W/rs.err")"; grep Error "$W/restore/restore.log" | head -n 5; exit 1
fi
sleep 1
c3=$(cat "$C")
$RT state $ID 2>/dev/null | grep -q '"status": "running"' && pass "container running again" || fail "container not running after restore"
# continued, not restarted: at once no lower than when dumped, then moving on
if [ "$ca" -ge "$c2" ] && [ "$c3" -gt "$ca" ]; then
    pass "counter continues: $c2 -> $ca (just restored) -> $c3 (1 s later)"
else
    fail "counter after restore: $c2 -> $ca -> $c3"
fi
exit $rc
