#!/bin/sh
# criu-smoke.sh [LOGDIR]
#   `criu check`, then a dump/restore of a tiny process tree (a shell counting into a file
#   every 0.1 s): the counter must stop while the tree is dumped and go on from where it
#   stopped after the restore, in the same pid. Prints one "criu-smoke: PASS|FAIL ..." line per
#   step; exit 0 only when all pass. Runs inside the test VM (criu-check.sh) or on any host.
#   CRIU's logs (check.log, dump.log, restore.log) go to LOGDIR (default: a temp dir).
LOGDIR=${1:-$(mktemp -d /tmp/criu-logs.XXXXXX)}
mkdir -p "$LOGDIR"
rc=0
pass() { echo "criu-smoke: PASS $*"; }
fail() { echo "criu-smoke: FAIL $*"; rc=1; }
now() { cut -d' ' -f1 /proc/uptime; }

echo "criu-smoke: $(criu --version 2>&1 | head -n1), kernel $(uname -r)"
if criu check -v4 -o "$LOGDIR/check.log" >"$LOGDIR/check.out" 2>&1; then
    pass "criu check ($(cat "$LOGDIR/check.out"))"
else
    fail "criu check:"; sed 's/^/  /' "$LOGDIR/check.out"
    grep -E 'Error|failed' "$LOGDIR/check.log" | head -n 5 | sed 's/^/  log: /'
    if grep -q 'Unexpected rt vDSO area bounds' "$LOGDIR/check.log" && grep -q vvar_vclock /proc/self/maps; then
        echo "  why: this kernel maps [vvar] [vvar_vclock] [vdso] (x86 vDSO split, Linux 6.13);" \
            "this criu expects [vvar] right next to [vdso] (fixed upstream in CRIU 4.1)"
    fi
    exit 1
fi

IMG=$(mktemp -d /tmp/criu-img.XXXXXX)
CNT=$(mktemp /tmp/criu-counter.XXXXXX)
# cwd and stdio outside any 9p share; setsid: the tree is its own session
cd /tmp || exit 1
setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > "$1"; sleep 0.1; done' counter "$CNT" \
    </dev/null >/dev/null 2>&1 &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null; rm -rf "$IMG" "$CNT"; }
trap cleanup EXIT
sleep 1
c0=$(cat "$CNT")
[ -n "$c0" ] && [ "$c0" -gt 0 ] || { fail "counter did not start (pid $pid)"; exit 1; }

t0=$(now)
if criu dump -t "$pid" -D "$IMG" --shell-job -v4 -o "$LOGDIR/dump.log"; then
    t1=$(now)
    c1=$(cat "$CNT")
    pass "dump of pid $pid at counter $c1 ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s, $(du -sk "$IMG" | cut -f1) KiB of images)"
else
    fail "criu dump (see $LOGDIR/dump.log):"
    grep -E 'Error' "$LOGDIR/dump.log" | head -n 5 | sed 's/^/  log: /'
    exit 1
fi
if kill -0 "$pid" 2>/dev/null; then fail "pid $pid still runs after dump"; fi
sleep 1
c2=$(cat "$CNT")
[ "$c2" = "$c1" ] && pass "counter frozen at $c2 while dumped" || fail "counter moved while dumped: $c1 -> $c2"

t0=$(now)
if criu restore -D "$IMG" --shell-job -d -v4 -o "$LOGDIR/restore.log"; then
    t1=$(now)
    ca=$(cat "$CNT")
    pass "restore ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')s)"
else
    fail "criu restore (see $LOGDIR/restore.log):"
    grep -E 'Error' "$LOGDIR/restore.log" | head -n 5 | sed 's/^/  log: /'
    exit 1
fi
sleep 1
c3=$(cat "$CNT")
if kill -0 "$pid" 2>/dev/null && grep -q counter "/proc/$pid/cmdline" 2>/dev/null; then
    pass "pid $pid runs again"
else
    fail "pid $pid is not the restored counter"
fi
# continued, not restarted: at once no lower than when dumped, then moving on
if [ "$ca" -ge "$c2" ] && [ "$c3" -gt "$ca" ]; then
    pass "counter continues: $c2 -> $ca (just restored) -> $c3 (1 s later)"
else
    fail "counter after restore: $c2 -> $ca -> $c3"
fi
exit $rc
