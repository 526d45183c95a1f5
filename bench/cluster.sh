#!/usr/bin/env bash
# Backups to a cairnd cluster vs a local vault, on loopback, same data, same run.
# See bench/README.md ("Cluster").
#
# usage: bench/cluster.sh DATA_DIR        (e.g. ~/bench-data/big)
#
# Measures, each from a cold page cache of the vault side:
#   local    backup and restore with a local-disk vault
#   1-node   backup to a one-node cluster (tier R=1)
#   3-node   backup to a three-node cluster, R=3, W=2; restore from it
#   repair   node 3 is killed, REPAIR_MIB (500) of random data is backed up with W=2,
#            node 3 restarts: bytes the leader copies / time until no chunk
#            is under-replicated
#   restic   restic backup and restore of the same data to a local repository,
#            for reference (skipped when restic is not installed)
# and prints MiB/s, the ratios the issue sets a bar for (3-node vs local), and each
# step's CPU: the command's user / sys time and the cairnd processes' during it.
#
# Environment: WORK (scratch, default next to DATA_DIR), CAIRND/CAIRN (binaries,
# default: cargo build --release), KEEP=1 keeps the scratch dir, PERF_STEP=STEP
# (e.g. three_backup) records `perf record -a` during that step into PERF_OUT (the last
# run's, with RUNS),
# RUNS=N (default 1) repeats the whole sequence N times, from fresh vaults and
# clusters, and reports each step's best time (with that run's CPU), the ratios of
# the best times and each run's ratios: on a shared 2-core machine one run's
# ratio swings by a quarter.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
die() { printf 'cluster.sh: error: %s\n' "$*" >&2; exit 2; }
say() { printf '%s\n' "$*" >&2; }

[ $# -eq 1 ] || die "usage: $0 DATA_DIR"
RUNS=${RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[ -d "$1" ] || die "DATA_DIR '$1' is not a directory"
DATA=$(cd "$1" && pwd)
WORK=${WORK:-$(dirname "$DATA")/cluster-bench}
export CAIRN_PASSWORD=${CAIRN_PASSWORD:-cairn-bench-password}
export RESTIC_PASSWORD=$CAIRN_PASSWORD

if [ -z "${CAIRND:-}" ] || [ -z "${CAIRN:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p cairn-node -p cairn-client) || die "build failed"
  T=${CARGO_TARGET_DIR:-$ROOT/target}
  CAIRND=${CAIRND:-$T/release/cairnd}
  CAIRN=${CAIRN:-$T/release/cairn}
fi
[ -x "$CAIRND" ] && [ -x "$CAIRN" ] || die "binaries not found: $CAIRND $CAIRN"
# A bench cluster has no license: count it as licensed (dev and test setting).
export CAIRND_DEV_LICENSE=1

rm -rf "$WORK"; mkdir -p "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

SIZE=$(du -sb "$DATA" | cut -f1)
MIB=$(python3 -c "print($SIZE/1048576)")
say "dataset $DATA: $(printf '%.0f' "$MIB") MiB"

drop_caches() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches || true; }
warm() { tar -cf - "$DATA" 2>/dev/null | cat > /dev/null; }   # source in page cache, like a re-run
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
rate() { python3 -c "print(f'{$MIB/$1:.0f}')"; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A URL DIRS PID
start_node() {  # ID JOIN_URL|"" ; node 1 is initialised
  local id=$1 join=$2 p; p=$(port)
  DIRS[$id]=$WORK/node$id; URL[$id]=http://127.0.0.1:$p
  if [ -z "$join" ]; then
    "$CAIRND" init --data-dir "${DIRS[$id]}" --node-id "$id" --listen "127.0.0.1:$p" >/dev/null
    "$CAIRND" serve --data-dir "${DIRS[$id]}" --repair-interval-ms 500 >"$WORK/node$id.log" 2>&1 &
  else
    "$CAIRND" serve --data-dir "${DIRS[$id]}" --node-id "$id" --listen "127.0.0.1:$p" \
      --join "$join" --cluster-secret-file "${DIRS[1]}/cluster.secret" \
      --repair-interval-ms 500 >"$WORK/node$id.log" 2>&1 &
  fi
  PID[$id]=$!; PIDS+=("$!")
  wait_ready "$id"
}
restart_node() { "$CAIRND" serve --data-dir "${DIRS[$1]}" --repair-interval-ms 500 >>"$WORK/node$1.log" 2>&1 & PID[$1]=$!; PIDS+=("$!"); wait_ready "$1"; }
wait_ready() { for _ in $(seq 600); do curl -sf "${URL[$1]}/readyz" >/dev/null && return; sleep 0.1; done; die "node $1 not ready"; }
admin() { "$CAIRND" admin --server "${URL[1]}" --admin-token-file "${DIRS[1]}/admin.token" "$@" >/dev/null; }
under_replicated() { "$CAIRND" cluster status --server "${URL[1]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("under_replicated_chunks"))'; }
stop_all() { for id in "${!PID[@]}"; do kill "${PID[$id]}" 2>/dev/null || true; wait "${PID[$id]}" 2>/dev/null || true; done; PID=(); }

client() {  # HOME_DIR ARGS...
  local h=$1; shift
  XDG_CONFIG_HOME=$h/config XDG_CACHE_HOME=$h/cache "$CAIRN" "$@"
}
# CPU seconds the running cairnd processes have used so far (user + system).
nodes_cpu() {
  local ticks=0 p hz; hz=$(getconf CLK_TCK)
  for p in "${PID[@]:-}"; do
    [ -n "$p" ] && [ -r "/proc/$p/stat" ] || continue
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  python3 -c "print($ticks / $hz)"
}
timed() {  # STEP CMD...   → $RES/STEP: seconds, the CPU of the command (user, sys) and
           # of the nodes during it ("-" without nodes)
  local t0 t1 n0 n1 TIMEFORMAT='%U %S'; drop_caches; warm
  local perf=
  if [ "${PERF_STEP:-}" = "$1" ]; then   # profile the whole machine during this step
    perf record -a -q -o "${PERF_OUT:-$WORK/perf.data}" >/dev/null 2>&1 & perf=$!; sleep 0.5
  fi
  n0=$(nodes_cpu); t0=$(now)
  { time "${@:2}" >/dev/null 2>"$RES/$1.err"; } 2>"$RES/$1.time" ||
    { cat "$RES/$1.err" >&2; die "step $1 failed"; }
  t1=$(now); n1=$(nodes_cpu)
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
  local nodes=-   # no cairnd running during this step
  if [ -n "${PID[*]:-}" ]; then nodes=$(python3 -c "print(f'{$n1 - $n0:.2f}')"); fi
  echo "$(secs "$t0" "$t1") $(tail -n1 "$RES/$1.time") $nodes" >"$RES/$1"
}

for RUN in $(seq 1 "$RUNS"); do
[ "$RUNS" -eq 1 ] || say "-- run $RUN/$RUNS"
RES=$WORK/results/$RUN; mkdir -p "$RES"
# ---------------------------------------------------------------- local vault
"$CAIRN" vault init --local "$WORK/local-vault" >/dev/null
timed local_backup "$CAIRN" backup --vault "$WORK/local-vault" "$DATA"
timed local_restore "$CAIRN" restore --vault "$WORK/local-vault" latest --target "$WORK/r-local"
rm -rf "$WORK/r-local" "$WORK/local-vault"

# ---------------------------------------------------------------- 1-node cluster
start_node 1 ""
admin tier create single --replicas 1
admin user create bench --password-file <(printf %s "$CAIRN_PASSWORD")
client "$WORK/c1" login --server "${URL[1]}" --user bench --device one >/dev/null
client "$WORK/c1" vault request --tier single --name v >/dev/null
timed one_backup client "$WORK/c1" backup --vault v "$DATA"
stop_all; rm -rf "$WORK/node1" "$WORK/c1"

# ---------------------------------------------------------------- 3-node cluster, R=3, W=2
start_node 1 ""; start_node 2 "${URL[1]}"; start_node 3 "${URL[1]}"
admin tier create triple --replicas 3
admin user create bench --password-file <(printf %s "$CAIRN_PASSWORD")
client "$WORK/c3" login --server "${URL[1]}" --user bench --device three >/dev/null
client "$WORK/c3" vault request --tier triple --name v >/dev/null
timed three_backup client "$WORK/c3" backup --vault v "$DATA"
timed three_restore client "$WORK/c3" restore --vault v latest --target "$WORK/r-three"
rm -rf "$WORK/r-three"

# ---------------------------------------------------------------- repair after a node returns
kill -9 "${PID[3]}"; wait "${PID[3]}" 2>/dev/null || true; unset 'PID[3]'
# Fresh random data: every chunk of it is new, so all of it needs repair.
REPAIR_MIB=${REPAIR_MIB:-500}
mkdir -p "$WORK/second"; head -c "${REPAIR_MIB}M" /dev/urandom > "$WORK/second/random.bin"
client "$WORK/c3" backup --vault v "$WORK/second" >/dev/null
before=$(curl -s "${URL[1]}/metrics" | awk '/^cairn_storage_repair_bytes_total/ {s+=$2} END {print s+0}')
t0=$(now); restart_node 3
until [ "$(under_replicated)" = 0 ]; do sleep 0.2; done
t1=$(now)
after=$(curl -s "${URL[1]}/metrics" | awk '/^cairn_storage_repair_bytes_total/ {s+=$2} END {print s+0}')
echo "$(secs "$t0" "$t1") $(python3 -c "print(($after-$before)/1048576)")" >"$RES/repair"
stop_all; rm -rf "$WORK"/node* "$WORK/c3" "$WORK/second"

# ---------------------------------------------------------------- restic reference
if command -v restic >/dev/null; then
  restic init -q -r "$WORK/restic" >/dev/null
  timed restic_backup restic -q -r "$WORK/restic" backup "$DATA"
  timed restic_restore restic -q -r "$WORK/restic" restore latest --target "$WORK/r-restic"
  rm -rf "$WORK/restic" "$WORK/r-restic"
fi
done

# ---------------------------------------------------------------- report
python3 - "$MIB" "$WORK/results" "$RUNS" <<'EOF'
import os, sys
mib, root, runs = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def read(run, key):
    try:
        return open(os.path.join(root, str(run), key)).read().split()
    except OSError:
        return None
steps = {}   # step -> [(seconds, user, sys, nodes)] of each run, None where it did not run
for key in ("local_backup", "one_backup", "three_backup", "local_restore", "three_restore",
            "restic_backup", "restic_restore"):
    steps[key] = [(float(r[0]), *r[1:4]) if r else None
                  for r in (read(n, key) for n in range(1, runs + 1))]
def best(key):
    done = [r for r in steps[key] if r]
    return min(done) if done else None
def row(name, key, base=None):
    b = best(key)
    if b is None:
        return
    s, user, sys_, nodes = b
    ratio = ""
    if base and best(base):
        ratio = f"{best(base)[0] / s * 100:.0f}%"
        if runs > 1:
            each = [f"{o[0] / r[0] * 100:.0f}%" for r, o in zip(steps[key], steps[base]) if r and o]
            ratio += f" (runs: {', '.join(each)})"
    cpu = f"{float(user):.2f} / {float(sys_):.2f} s | " + ("" if nodes == "-" else f"{nodes} s")
    print(f"| {name} | {s:.2f} s | {mib / s:.0f} MiB/s | {ratio} | {cpu} |")
print(f"dataset: {mib:.0f} MiB" + (f", best of {runs} runs" if runs > 1 else "") + "\n")
print("| step | time | throughput | vs cairn local vault | CPU of the command (user / sys) | CPU of the nodes |")
print("|---|---:|---:|---:|---:|---:|")
row("local vault backup", "local_backup")
row("1-node cluster backup", "one_backup", "local_backup")
row("3-node R=3 W=2 backup", "three_backup", "local_backup")
row("local vault restore", "local_restore")
row("3-node restore", "three_restore", "local_restore")
repairs = [r for r in (read(n, "repair") for n in range(1, runs + 1)) if r]
if repairs:
    s, copied = min((float(a), float(b)) for a, b in repairs)
    print(f"| repair after node 3 returns | {s:.2f} s | {copied / s:.0f} MiB/s | {copied:.0f} MiB copied | | |")
row("restic local backup (reference)", "restic_backup", "local_backup")
row("restic local restore (reference)", "restic_restore", "local_restore")
EOF
