#!/usr/bin/env bash
# prep.sh ACTION BIN ROOT BUNDLE ID: put container ID of runtime BIN (state in ROOT) into a known
# state before one timed run; hyperfine --prepare calls it (run.sh). Never timed itself.
#   gone:    no container ID
#   created: ID created (its init waits for start)
#   stopped: ID created, started and its /bin/true exited (state says "stopped")
set -u
action=$1 bin=$2 root=$3 bundle=$4 id=$5
rt() { timeout 20 "$bin" --root "$root" "$@" </dev/null >/dev/null 2>&1; }
rt delete -f "$id"
[ "$action" = gone ] && exit 0
rt create -b "$bundle" "$id" || { echo "prep: $bin create $id failed" >&2; exit 1; }
[ "$action" = created ] && exit 0
rt start "$id" || { echo "prep: $bin start $id failed" >&2; exit 1; }
for _ in $(seq 500); do
  s=$(timeout 20 "$bin" --root "$root" state "$id" 2>/dev/null </dev/null | jq -r .status)
  [ "$s" = stopped ] && exit 0
  sleep 0.01
done
echo "prep: $id did not stop" >&2
exit 1
