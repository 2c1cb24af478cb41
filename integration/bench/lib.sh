# Shared by run.sh, hangcheck.sh and integration/demo.sh (sourced, not run; only function
# definitions).

# build_berth REPO: cargo build --release, then print the binary's path as cargo reports it
# (.cargo/config.toml builds for an explicit target: target/<target triple>/release/berth).
build_berth() {
  (cd "$1" && cargo build --release --quiet --message-format=json) |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "berth" and .executable != null) | .executable'
}

# make_rootfs DIR: a busybox-static root filesystem.
make_rootfs() {
  mkdir -p "$1/bin"
  cp "$(command -v busybox)" "$1/bin/busybox"
  local a
  for a in $("$1/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
}

# make_bundle DIR ROOTFS JQ-FILTER: config.json from `runc spec` (the same default every runtime
# gets), terminal off, root.path pointing at the shared ROOTFS, then FILTER applied.
make_bundle() {
  local dir=$1 rootfs=$2 filter=$3
  mkdir -p "$dir"
  runc spec --bundle "$dir"
  jq --arg r "$rootfs" ".process.terminal=false | .root.path=\$r | $filter" "$dir/config.json" >"$dir/config.tmp"
  mv "$dir/config.tmp" "$dir/config.json"
}

# median FILE: median of the numbers in FILE, one a line (empty if none).
median() {
  sort -g "$1" | awk '{v[NR]=$1} END {if (NR==0) exit; if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
