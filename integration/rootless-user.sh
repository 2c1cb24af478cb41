#!/usr/bin/env bash
# A dedicated unprivileged user for the rootless tests, with subordinate id ranges for
# newuidmap/newgidmap. Idempotent; needs root.
set -euo pipefail
U=berthtest
[ "$(id -u)" -eq 0 ] || { echo "rootless-user: needs root"; exit 0; }
id "$U" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$U"
grep -q "^$U:" /etc/subuid || echo "$U:200000:65536" >> /etc/subuid
grep -q "^$U:" /etc/subgid || echo "$U:200000:65536" >> /etc/subgid
