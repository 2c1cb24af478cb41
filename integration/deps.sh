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
