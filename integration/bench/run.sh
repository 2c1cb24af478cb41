#!/usr/bin/env bash
# integration/bench/run.sh: measure berth, crun and runc in ONE run on the same busybox bundle
# and write the table to integration/bench/RESULTS.md (method: PERFORMANCE.md).
#
# Every runtime runs inside cgview.sh (same pure cgroup-v1 view; crun 1.8.1 refuses the hybrid
# host otherwise), with its own --root on a private tmpfs. Runtimes are interleaved round-robin
# (the order rotates every round) so background load hits them alike; cells are medians over all
# rounds. Timing comes from hyperfine, peak RSS from `/usr/bin/time -f %M`.
#
# Knobs: BENCH_ROUNDS (5) x BENCH_RUNS (8) samples per latency cell, BENCH_LOOP_ROUNDS (3) for the
# 50-container rows and the lanes, BENCH_LANE_N (50) containers per lane, BENCH_CPU_ROUNDS (4) x
# BENCH_CPU_RUNS (50) sequential runs for the CPU rows, BENCH_RSS (3) create runs per runtime and
# round for peak RSS,
# BENCH_ONLY="run create ..." to measure a subset, BENCH_OUT (integration/bench/RESULTS.md),
# BENCH_BASELINE=/path/to/other/berth: that binary runs interleaved in the same rounds as a
# fourth runtime, and a second table compares the two berths (a before/after that load on the
# machine cannot skew).
# The kernel floor: floor.c (built here with gcc) does the same kernel work as a runtime for the
# plain bundle in one process; it runs beside the runtimes in the run, CPU and lanes rows.
# Nothing here asserts on timings: the targets section is informational.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if [ -z "${BENCH_INNER:-}" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "bench: needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
  bash "$REPO/integration/deps.sh"
  for p in hyperfine runc crun time; do
    dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
  done
  BERTH_BIN=$(build_berth "$REPO")
  export BERTH_BIN
  BENCH_INNER=1 exec "$HERE/cgview.sh" "$0" "$@"
fi

ROUNDS=${BENCH_ROUNDS:-5}
RUNS=${BENCH_RUNS:-8}
LOOP_ROUNDS=${BENCH_LOOP_ROUNDS:-3}
RSS_RUNS=${BENCH_RSS:-3}
CPU_ROUNDS=${BENCH_CPU_ROUNDS:-4}
CPU_RUNS=${BENCH_CPU_RUNS:-50}
LANE_N=${BENCH_LANE_N:-50}
# Rows where floor.c runs too (it knows only the plain bundle).
FLOOR_KEYS=" run cpu lanes2 lanes8 "
OUT=${BENCH_OUT:-$HERE/RESULTS.md}
PREP=$HERE/prep.sh
RTS=(berth crun runc)
declare -A BIN=([berth]=$BERTH_BIN [crun]=$(command -v crun) [runc]=$(command -v runc))
if [ -n "${BENCH_BASELINE:-}" ]; then
  RTS+=(base)
  BIN[base]=$BENCH_BASELINE
fi
declare -A NA=()
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# The source measured: taken now, and without the results file itself, which this run rewrites.
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet -- . ':!integration/bench/RESULTS.md' 2>/dev/null || echo ", dirty")"

# We are alone in a private mount namespace (cgview.sh): the tmpfs vanishes with it.
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
# 0711: the user-namespace bundle's root (host uid 100000) must reach the rootfs below.
mount -t tmpfs -o size=256m,mode=0711 bench "$WORK"
DATA=$WORK/data
mkdir -p "$DATA"
cleanup() {
  local rt
  for rt in "${RTS[@]}"; do
    for id in $(ls "$WORK/root-$rt" 2>/dev/null); do
      timeout 20 "${BIN[$rt]}" --root "$WORK/root-$rt" delete -f "$id" </dev/null >/dev/null 2>&1 || true
    done
  done
  umount "$WORK" 2>/dev/null || umount -l "$WORK"
  rmdir "$WORK"
}
trap cleanup EXIT

make_rootfs "$WORK/rootfs"
make_bundle "$WORK/b-true" "$WORK/rootfs" '.process.args=["/bin/true"]'
make_bundle "$WORK/b-sleep" "$WORK/rootfs" '.process.args=["sleep","3600"]'
make_bundle "$WORK/b-seccomp" "$WORK/rootfs" \
  ".process.args=[\"/bin/true\"] | .linux.seccomp=$(jq -c . "$HERE/seccomp-default.json")"
# A user namespace as rootless engines configure one (root of the container = an unprivileged
# host uid range); the rootfs stays root-owned and world-readable, as an image's usually is.
make_bundle "$WORK/b-userns" "$WORK/rootfs" '.process.args=["/bin/true"] | .linux.namespaces += [{"type":"user"}]
  | .linux.uidMappings=[{"containerID":0,"hostID":100000,"size":65536}]
  | .linux.gidMappings=[{"containerID":0,"hostID":100000,"size":65536}]'
for rt in "${RTS[@]}"; do mkdir -p "$WORK/root-$rt"; done
KFLOOR=$WORK/floor
BIN[kfloor]=$KFLOOR
if ! gcc -O2 -o "$KFLOOR" "$HERE/floor.c" 2>"$DATA/gcc.err"; then
  for k in $FLOOR_KEYS; do NA[$k.kfloor]="n/a (floor.c: $(tail -1 "$DATA/gcc.err"))"; done
fi

rtc() { local rt=$1; shift; timeout 20 "${BIN[$rt]}" --root "$WORK/root-$rt" "$@" </dev/null; }
cmd() { echo "${BIN[$1]} --root $WORK/root-$1"; }
# runcmd RT ID BUNDLE: the command line that runs one container to completion.
runcmd() {
  if [ "$1" = kfloor ]; then echo "$KFLOOR $WORK/rootfs $2"; else echo "$(cmd "$1") run -b $3 $2"; fi
}
# Machine-wide busy time (user, nice, system, irq, softirq, steal) in clock ticks: kernel work a
# runtime causes outside its own processes (kworkers, RCU, namespace teardown) shows here.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# Features berth lacks on this branch: show n/a instead of failing, so the row lights up by itself.
probe() {
  local rt f=$DATA/probe.err
  if ! rtc berth run -b "$WORK/b-seccomp" probe-sec >/dev/null 2>"$f"; then
    if grep -q "seccomp is not supported yet" "$f"; then NA[seccomp_run.berth]="n/a (seccomp not built)"
    else NA[seccomp_run.berth]="failed: $(tail -1 "$f")"; fi
  fi
  rtc berth delete -f probe-sec >/dev/null 2>&1 || true
  for rt in "${RTS[@]}"; do
    rtc "$rt" create -b "$WORK/b-sleep" probe-x >/dev/null 2>&1 && rtc "$rt" start probe-x >/dev/null 2>&1 || true
    if ! rtc "$rt" exec probe-x /bin/true >/dev/null 2>"$f"; then
      if grep -qiE "unrecognized subcommand|not supported|unknown command" "$f"; then NA[exec.$rt]="n/a (exec not built)"
      else NA[exec.$rt]="failed: $(tail -1 "$f")"; fi
    fi
    rtc "$rt" delete -f probe-x >/dev/null 2>&1 || true
    if ! rtc "$rt" run -b "$WORK/b-userns" probe-u >/dev/null 2>"$f"; then
      NA[userns_run.$rt]="failed: $(tail -1 "$f")"
      NA[cpu_userns.$rt]="failed: $(tail -1 "$f")"
    fi
    rtc "$rt" delete -f probe-u >/dev/null 2>&1 || true
    if [ "$rt" != berth ] && ! rtc "$rt" run -b "$WORK/b-seccomp" probe-sec >/dev/null 2>"$f"; then
      NA[seccomp_run.$rt]="failed: $(tail -1 "$f")"
    fi
  done
}

# block KEY RT RUNS HYPERFINE-ARGS...: one hyperfine block; its times (ms) go to $DATA/KEY.RT.
block() {
  local key=$1 rt=$2 runs=$3 j=$DATA/last.json
  shift 3
  if ! timeout 900 hyperfine --style none --runs "$runs" --export-json "$j" "$@" >/dev/null 2>"$DATA/hf.err"; then
    NA[$key.$rt]="failed: $(grep -v '^$' "$DATA/hf.err" | tail -1)"
    return 0
  fi
  jq -r '.results[0].times[] * 1000' "$j" >>"$DATA/$key.$rt"
}

# One block per metric and runtime; ID names are per runtime, so no two runtimes share a cgroup.
m_run() { block run "$1" "$RUNS" -N --warmup 1 "$(runcmd "$1" "$1-run" "$WORK/b-true")"; }
m_userns_run() { block userns_run "$1" "$RUNS" -N --warmup 1 "$(cmd "$1") run -b $WORK/b-userns $1-urun"; }
# cpu_block KEY RT BUNDLE: CPU_RUNS sequential runs; per container, the user+system time of the
# runtime and everything it waited for (hyperfine's rusage of its child) goes to KEY, and the
# machine's busy time over the whole block to busy_KEY (only meaningful on an idle machine).
cpu_block() {
  local key=$1 rt=$2 j=$DATA/last.json b0 b1
  b0=$(busy)
  if ! timeout 900 hyperfine --style none -N --runs "$CPU_RUNS" --export-json "$j" \
    "$(runcmd "$rt" "$rt-$key" "$3")" >/dev/null 2>"$DATA/hf.err"; then
    NA[$key.$rt]="failed: $(grep -v '^$' "$DATA/hf.err" | tail -1)"
    return 0
  fi
  b1=$(busy)
  jq -r '(.results[0].user + .results[0].system) * 1000' "$j" >>"$DATA/$key.$rt"
  awk -v a="$b0" -v b="$b1" -v n="$CPU_RUNS" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.3f\n", (b - a) * 1000 / hz / n}' >>"$DATA/busy_$key.$rt"
}
m_cpu() { cpu_block cpu "$1" "$WORK/b-true"; }
m_cpu_seccomp() { cpu_block cpu_seccomp "$1" "$WORK/b-seccomp"; }
m_cpu_userns() { cpu_block cpu_userns "$1" "$WORK/b-userns"; }
# lanes KEY RT N: N shells, each running LANE_N containers back to back, all at once.
lanes() {
  local key=$1 rt=$2 n=$3 s="" w="" i
  for ((i = 0; i < n; i++)); do
    s+="(for i in \$(seq $LANE_N); do $(runcmd "$rt" "$rt-$key-$i-\$i" "$WORK/b-true") || exit 1; done) & p$i=\$!; "
    w+=" \$p$i"
  done
  block "$key" "$rt" 1 "${s}r=0; for p in$w; do wait \$p || r=1; done; exit \$r"
}
m_lanes2() { lanes lanes2 "$1" 2; }
m_lanes8() { lanes lanes8 "$1" 8; }
m_create() {
  block create "$1" "$RUNS" -N --prepare "$PREP gone ${BIN[$1]} $WORK/root-$1 $WORK/b-true $1-c" \
    "$(cmd "$1") create -b $WORK/b-true $1-c"
  rtc "$1" delete -f "$1-c" >/dev/null 2>&1 || true
}
m_start() {
  block start "$1" "$RUNS" -N --prepare "$PREP created ${BIN[$1]} $WORK/root-$1 $WORK/b-true $1-s" "$(cmd "$1") start $1-s"
  rtc "$1" delete -f "$1-s" >/dev/null 2>&1 || true
}
m_state() {
  rtc "$1" create -b "$WORK/b-true" "$1-q" >/dev/null 2>&1 || true
  block state "$1" "$RUNS" -N --warmup 1 "$(cmd "$1") state $1-q"
  rtc "$1" delete -f "$1-q" >/dev/null 2>&1 || true
}
m_kill() {
  block kill "$1" "$RUNS" -N --prepare "$PREP created ${BIN[$1]} $WORK/root-$1 $WORK/b-true $1-k" "$(cmd "$1") kill $1-k KILL"
  rtc "$1" delete -f "$1-k" >/dev/null 2>&1 || true
}
m_delete() {
  block delete "$1" "$RUNS" -N --prepare "$PREP stopped ${BIN[$1]} $WORK/root-$1 $WORK/b-true $1-d" "$(cmd "$1") delete $1-d"
}
m_cycle() {
  local c
  c=$(cmd "$1")
  # Through sh (hyperfine subtracts the shell's own start-up), like youki's published benchmark.
  block cycle "$1" "$RUNS" --prepare "$PREP gone ${BIN[$1]} $WORK/root-$1 $WORK/b-true $1-y" \
    "$c create -b $WORK/b-true $1-y && $c start $1-y && $c delete -f $1-y"
}
m_exec() {
  rtc "$1" create -b "$WORK/b-sleep" "$1-x" >/dev/null 2>&1 && rtc "$1" start "$1-x" >/dev/null 2>&1 || true
  block exec "$1" "$RUNS" -N --warmup 1 "$(cmd "$1") exec $1-x /bin/true"
  rtc "$1" delete -f "$1-x" >/dev/null 2>&1 || true
}
m_seccomp_run() { block seccomp_run "$1" "$RUNS" -N --warmup 1 "$(cmd "$1") run -b $WORK/b-seccomp $1-sec"; }
m_seq50() {
  block seq50 "$1" 1 "for i in \$(seq 50); do $(cmd "$1") run -b $WORK/b-true $1-l\$i || exit 1; done"
}
m_par2() {
  local l="$(cmd "$1") run -b $WORK/b-true $1-p"
  block par2 "$1" 1 "(for i in \$(seq 25); do ${l}a\$i || exit 1; done) & a=\$!; (for i in \$(seq 25); do ${l}b\$i || exit 1; done) & b=\$!; wait \$a && wait \$b"
}
m_rss() {
  local i
  for ((i = 0; i < RSS_RUNS; i++)); do
    if timeout 20 /usr/bin/time -f %M -o "$DATA/time.out" "${BIN[$1]}" --root "$WORK/root-$1" create -b "$WORK/b-true" "$1-m" \
      </dev/null >/dev/null 2>&1; then
      awk '{print $1/1024}' "$DATA/time.out" >>"$DATA/rss.$1"
    else
      NA[rss.$1]="failed"
    fi
    rtc "$1" delete -f "$1-m" >/dev/null 2>&1 || true
  done
}

# measure KEY ROUNDS: ROUNDS rounds, the runtimes' order rotated each round.
measure() {
  local key=$1 rounds=$2 r i rt
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $key "* ]]; then return 0; fi
  echo "bench: $key" >&2
  local rts=("${RTS[@]}")
  [[ "$FLOOR_KEYS" == *" $key "* ]] && rts+=(kfloor)
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#rts[@]}; i++)); do
      rt=${rts[$(((r + i) % ${#rts[@]}))]}
      [ -n "${NA[$key.$rt]:-}" ] && continue
      "m_$key" "$rt"
    done
  done
}

# The machine's own speed in this run: a plain process start (/bin/true, fork+exec+wait by
# hyperfine), before and after the measurements. The absolute targets (ms) move with it.
floor() {
  hyperfine -N --style none --runs 40 --export-json "$DATA/floor.json" /bin/true >/dev/null 2>&1 &&
    jq -r '.results[0].times[] * 1000' "$DATA/floor.json" >>"$DATA/floor"
}

probe
floor
for k in run create start state kill delete cycle exec seccomp_run userns_run rss; do measure $k "$ROUNDS"; done
for k in cpu cpu_seccomp cpu_userns; do measure $k "$CPU_ROUNDS"; done
for k in seq50 par2 lanes2 lanes8; do measure $k "$LOOP_ROUNDS"; done
floor
FLOOR=$([ -s "$DATA/floor" ] && median "$DATA/floor" | awk '{printf "%.2f ms", $1}' || echo "not measured")
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----
cell() { # KEY RT SCALE DECIMALS: median of the samples, scaled, or the n/a reason
  local key=$1 rt=$2 m
  if [ -n "${NA[$key.$rt]:-}" ]; then echo "$rt: ${NA[$key.$rt]}"; return; fi
  m=$([ -s "$DATA/$key.$rt" ] && median "$DATA/$key.$rt")
  [ -n "$m" ] && awk -v m="$m" -v s="$3" -v d="$4" 'BEGIN {printf "%.*f", d, m * s}' || echo "-"
}
ratio() { # KEY RT: berth median / RT median
  local a b
  [ -z "${NA[$1.berth]:-}" ] && [ -z "${NA[$1.$2]:-}" ] && [ -s "$DATA/$1.berth" ] && [ -s "$DATA/$1.$2" ] || { echo "-"; return; }
  a=$(median "$DATA/$1.berth")
  b=$(median "$DATA/$1.$2")
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}'
}
samples() { [ -s "$DATA/$1.berth" ] && wc -l <"$DATA/$1.berth" || echo 0; }
base_row() { # KEY LABEL: berth, the baseline, their ratio, and each one's ratio to crun
  local key=$1
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $key "* ]]; then return 0; fi
  local b c x
  b=$([ -s "$DATA/$key.berth" ] && median "$DATA/$key.berth")
  x=$([ -s "$DATA/$key.base" ] && median "$DATA/$key.base")
  c=$([ -s "$DATA/$key.crun" ] && median "$DATA/$key.crun")
  [ -n "$b" ] && [ -n "$x" ] && [ -n "$c" ] || return 0
  awk -v l="$2" -v b="$b" -v x="$x" -v c="$c" \
    'BEGIN {printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", l, b, x, b / x, b / c, x / c}'
}
row() { # KEY LABEL UNIT SCALE DECIMALS
  local key=$1
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $key "* ]]; then return 0; fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$3" "$(cell "$key" berth "$4" "$5")" \
    "$(cell "$key" crun "$4" "$5")" "$(cell "$key" runc "$4" "$5")" "$(ratio "$key" crun)" "$(ratio "$key" runc)" "$(samples "$key")"
}
frow() { # KEY LABEL UNIT SCALE DECIMALS: row with the floor.c column
  local key=$1
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" ${key#busy_} "* ]]; then return 0; fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$3" "$(cell "$key" berth "$4" "$5")" \
    "$(cell "$key" crun "$4" "$5")" "$(cell "$key" runc "$4" "$5")" "$(cell "$key" kfloor "$4" "$5")" \
    "$(ratio "$key" crun)" "$(ratio "$key" kfloor)" "$(samples "$key")"
}
mib() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1048576}'; }
with_libs() { # BIN: size of the binary plus every shared library it loads
  local total f
  total=$(stat -L -c %s "$1")
  for f in $(ldd "$1" 2>/dev/null | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}'); do
    total=$((total + $(stat -L -c %s "$f")))
  done
  echo "$total"
}
nlibs() { ldd "$1" 2>/dev/null | grep -c '/' || true; }

machine=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
memtotal=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "# berth benchmark results"
  echo
  echo "Generated by \`integration/bench/run.sh\` (method and analysis: PERFORMANCE.md). Do not edit by hand."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $machine, $(nproc) cores, $memtotal"
  echo "- kernel: $(uname -r); cgroups as the runtimes saw them: $CGVIEW"
  echo "- berth $("${BIN[berth]}" --version | awk 'NR == 1 {print $3}') (commit $COMMIT), $(crun --version | head -1), $(runc --version | head -1), $(hyperfine --version)"
  echo "- process floor: \`/bin/true\` (fork+exec+wait) median $FLOOR in this run: the yardstick for the absolute (ms) targets"
  echo "- load average at start / end: $LOAD_START / $LOAD_END$(awk -v a="${LOAD_START%% *}" -v b="${LOAD_END%% *}" -v n="$(nproc)" 'BEGIN {if (a > n / 4 || b > n / 4) print " (LOADED machine: other jobs were running; trust the ratios, not the absolute numbers)"}')"
  echo "- latency cells: median of $ROUNDS rounds x $RUNS runs, runtimes interleaved round-robin; 50-container rows: $LOOP_ROUNDS rounds; RSS: $ROUNDS x $RSS_RUNS creates"
  echo "- bundle: busybox-static rootfs, \`runc spec\` config, args [\"/bin/true\"], terminal off, no cgroupsPath; state roots on tmpfs"
  echo
  echo "| measurement | unit | berth | crun | runc | berth/crun | berth/runc | n (berth) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  row run '`run` /bin/true' ms 1 2
  row create '`create`' ms 1 2
  row start '`start` (created container)' ms 1 2
  row state '`state` (created container)' ms 1 2
  row kill '`kill KILL` (created container)' ms 1 2
  row delete '`delete` (stopped container)' ms 1 2
  row cycle '`create && start && delete -f`' ms 1 2
  row exec '`exec /bin/true` (running container)' ms 1 2
  row seccomp_run '`run` with a Docker-like seccomp profile (298 syscalls)' ms 1 2
  row userns_run '`run` with a user namespace (uid/gid maps of 65536)' ms 1 2
  row seq50 '50 x `run`, back to back' ms 1 0
  row par2 '50 x `run`, 2 at a time' ms 1 0
  row rss 'peak RSS of `create` (/usr/bin/time %M)' MiB 1 2
  printf '| binary size | MiB | %s | %s | %s | %s | %s | - |\n' "$(mib "$(stat -L -c %s "${BIN[berth]}")")" \
    "$(mib "$(stat -L -c %s "${BIN[crun]}")")" "$(mib "$(stat -L -c %s "${BIN[runc]}")")" - -
  printf '| binary + shared libraries | MiB | %s (%s libs) | %s (%s libs) | %s (%s libs) | - | - | - |\n' \
    "$(mib "$(with_libs "${BIN[berth]}")")" "$(nlibs "${BIN[berth]}")" "$(mib "$(with_libs "${BIN[crun]}")")" "$(nlibs "${BIN[crun]}")" \
    "$(mib "$(with_libs "${BIN[runc]}")")" "$(nlibs "${BIN[runc]}")"
  per_lane2=$(awk -v n="$LANE_N" 'BEGIN {print 1 / (2 * n)}')
  per_lane8=$(awk -v n="$LANE_N" 'BEGIN {print 1 / (8 * n)}')
  echo
  echo "CPU per container and overlapping starts. CPU: user+system time of the runtime and every process"
  echo "it waited for, per container, over $CPU_ROUNDS x $CPU_RUNS sequential runs; machine busy: all CPUs'"
  echo "non-idle time over the same runs per container (kernel work in kworkers and RCU counts; only"
  echo "meaningful when nothing else runs). Lanes: N shells each running $LANE_N containers back to back,"
  echo "wall time / (N x $LANE_N). floor.c: the same kernel work in one C process (PERFORMANCE.md)."
  echo
  echo "| measurement | unit | berth | crun | runc | floor.c | berth/crun | berth/floor | n (berth) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  frow cpu 'CPU per `run` /bin/true' ms 1 2
  frow busy_cpu 'machine busy per `run` /bin/true' ms 1 2
  frow cpu_seccomp 'CPU per `run`, seccomp profile' ms 1 2
  frow busy_cpu_seccomp 'machine busy per `run`, seccomp profile' ms 1 2
  frow cpu_userns 'CPU per `run`, user namespace' ms 1 2
  frow busy_cpu_userns 'machine busy per `run`, user namespace' ms 1 2
  frow run '`run` /bin/true latency' ms 1 2
  frow lanes2 '2 lanes: time per container' ms "$per_lane2" 2
  frow lanes8 '8 lanes: time per container' ms "$per_lane8" 2
  if [ -n "${BENCH_BASELINE:-}" ]; then
    echo
    echo "Baseline in the same rounds: $("${BIN[base]}" --version | awk '/^commit/ {print "commit " $2}') ($BENCH_BASELINE)"
    echo
    echo "| measurement (ms) | berth | baseline | berth/baseline | berth/crun | baseline/crun |"
    echo "|---|---:|---:|---:|---:|---:|"
    base_row run '`run` /bin/true'
    base_row create '`create`'
    base_row start '`start`'
    base_row state '`state`'
    base_row kill '`kill KILL`'
    base_row delete '`delete`'
    base_row cycle '`create && start && delete -f`'
    base_row exec '`exec /bin/true`'
    base_row seccomp_run '`run` with the seccomp profile'
    base_row seq50 '50 x `run`, back to back'
    base_row par2 '50 x `run`, 2 at a time'
  fi
  echo
  echo "Targets (informational, never asserted): run <= 0.8 x crun; create+start+delete <= 0.8 x crun;"
  echo "state, start, kill, delete each under 2 ms; berth's peak RSS during create <= crun's. Per container"
  echo "(issue #19): CPU and machine busy <= 0.5 x crun and <= 1.5 x floor.c; run and exec medians <= 0.5 x crun;"
  echo "2 and 8 lanes <= 0.6 x crun's time per container; the same with the seccomp profile and a user namespace."
} >"$OUT"
cat "$OUT"
