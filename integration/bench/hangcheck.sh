#!/usr/bin/env bash
# integration/bench/hangcheck.sh [N]: the hang watchdog. N (default 10000) back-to-back
# `berth run` of /bin/true, each under `timeout 10`; counts hangs (timeout fired) and failures.
# youki 0.7.0 hung on about 1 % of such runs (SIGCHLD before it blocked signals): berth must not.
# Runs on the host's cgroup layout as is (berth supports hybrid hosts). Exit 1 on any hang or failure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${1:-10000}
[ "$(id -u)" -eq 0 ] || { echo "hangcheck: needs root" >&2; exit 1; }
# shellcheck source=lib.sh
. "$HERE/lib.sh"
bash "$REPO/integration/deps.sh"
command -v runc >/dev/null || { apt-get update -qq && apt-get install -y -qq runc >/dev/null; } # runc spec
BERTH=$(build_berth "$REPO")
WORK=$(mktemp -d /tmp/berth-hangcheck.XXXXXX)
ROOT=$WORK/state
trap 'rm -rf "$WORK"' EXIT
make_rootfs "$WORK/rootfs"
make_bundle "$WORK/bundle" "$WORK/rootfs" '.process.args=["/bin/true"]'

hangs=0 fails=0 start=$(date +%s.%N)
for ((i = 1; i <= N; i++)); do
  id=hc-$$-$i
  rc=0
  timeout -k 5 10 "$BERTH" --root "$ROOT" run -b "$WORK/bundle" "$id" </dev/null >/dev/null 2>"$WORK/err" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    hangs=$((hangs + 1))
    echo "hangcheck: run $i HUNG (timeout after 10 s)" >&2
  elif [ "$rc" -ne 0 ]; then
    fails=$((fails + 1))
    echo "hangcheck: run $i failed (exit $rc): $(tail -1 "$WORK/err")" >&2
  fi
  # Whatever a hung or failed run left behind must not pile up.
  [ "$rc" -eq 0 ] || timeout 20 "$BERTH" --root "$ROOT" delete -f "$id" </dev/null >/dev/null 2>&1 || true
  if ((i % 500 == 0)); then echo "hangcheck: $i/$N runs, $hangs hangs, $fails failures" >&2; fi
done
left=$(ls -A "$ROOT" 2>/dev/null | wc -l)
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
echo "hangcheck: $N runs of berth run /bin/true in $secs s: $hangs hangs, $fails failures, $left containers left behind"
[ "$hangs" -eq 0 ] && [ "$fails" -eq 0 ] && [ "$left" -eq 0 ]
