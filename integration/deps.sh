#!/usr/bin/env bash
# Install what berth's build, demo and tests need on a fresh Debian bookworm machine.
# Quick when everything is already there (no apt-get call at all).
set -euo pipefail
PKGS=(busybox-static libseccomp-dev pkg-config jq uidmap bsdutils podman conmon catatonit netavark docker.io containerd tini gcc libc6-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# berth builds for musl (.cargo/config.toml): its Rust standard library, once per toolchain.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "deps: rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl >/dev/null
fi
# The cgroup-v2 VM tests (integration/vm/run-cgroup-tests.sh): qemu without its recommends
# (no GUI stack); the guest kernel itself is fetched by integration/vm/build.sh. criu: the
# checkpoint tests run the host's (the guest shares /usr; integration/vm/CRIU.md).
if [ "${BERTH_VM:-1}" = 1 ] && [ "$(uname -m)" = x86_64 ] &&
  { ! dpkg -s qemu-system-x86 >/dev/null 2>&1 || ! dpkg -s criu >/dev/null 2>&1; }; then
  echo "deps: installing qemu-system-x86 and criu"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-system-x86 xz-utils criu >/dev/null
fi
