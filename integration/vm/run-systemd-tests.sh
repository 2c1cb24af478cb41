#!/usr/bin/env bash
# The systemd cgroup driver's tests (tests/systemd.rs, and the lib tests of src/cgroups/systemd
# that talk to systemd: the whole lib binary runs, its other tests with them) in the VM with the
# host's systemd 252 as PID 1 (run-in-vm.sh's VM_SYSTEMD=1): run-cgroup-tests.sh with that
# mode. Same skip rules and env as it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export VM_SYSTEMD=1
export BERTH_VM_TESTS=${BERTH_VM_TESTS:-lib systemd}
export BERTH_VM_FILTER=${BERTH_VM_FILTER:-}
exec bash integration/vm/run-cgroup-tests.sh
