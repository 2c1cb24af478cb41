#!/usr/bin/env bash
# The demo: build berth, make a busybox bundle, run an isolated container that shows its own
# hostname, pid 1 and mounts, then clean up. Needs root (real namespaces and cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (real namespaces, mounts and cgroups)"; exit 1; }
bash integration/deps.sh
# build_berth (the binary's path as cargo reports it) and make_rootfs (busybox-static).
# shellcheck source=bench/lib.sh
. integration/bench/lib.sh
BERTH=$(build_berth .)
WORK=$(mktemp -d /tmp/berth-demo.XXXXXX)
ROOT=$WORK/state
ID=demo-$$
cleanup() { "$BERTH" --root "$ROOT" delete --force "$ID" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
make_rootfs "$WORK/bundle/rootfs"
"$BERTH" spec -b "$WORK/bundle"
jq '.process.terminal=false | .hostname="berth-demo"
    | .process.args=["sh","-c","echo \"hostname: $(hostname)\"; echo \"my pid: $$\"; echo processes:; ps; echo mounts:; cat /proc/mounts"]' \
   "$WORK/bundle/config.json" > "$WORK/config.json" && mv "$WORK/config.json" "$WORK/bundle/config.json"
echo "== berth $("$BERTH" --version | head -1 | cut -d' ' -f3): running container $ID"
"$BERTH" --root "$ROOT" run -b "$WORK/bundle" "$ID"
echo "== container exited with $?; state left behind: $(ls -A "$ROOT" | wc -l) containers"
