#!/usr/bin/env bash
# Compare cairn with restic, borg (and rustic) on the same data. See bench/README.md.
#
# usage: bench/compare.sh DATA_DIR
#   DATA_DIR with subdirectories linux/, big/, syslib/, images/, media/, tiny/ (as
#   made by bench/datasets.sh): each one present is a dataset; otherwise DATA_DIR
#   itself is the one dataset.
#
# Environment (all optional):
#   CAIRN          cairn binary (default: cargo build --release -p cairn-client, then
#                  ${CARGO_TARGET_DIR:-target}/release/cairn)
#   WORK           scratch + results dir (default: a new dir under ${TMPDIR:-/tmp}, or
#                  next to DATA_DIR when /tmp is a tmpfs)
#   RUNS           repetitions of every step (default 1; more -> medians)
#   STAT=best      with RUNS > 1, report each step's best time (and that run's user/sys)
#   TOOLS          subset of "cairn restic borg rustic" (default: all four; rustic only
#                  when on PATH)
#   STEP_TIMEOUT   seconds before one measured step is killed (default 1800)
#   MODIFY         the modifier (default bench/modify.py)
#   ONLY           which of DATA_DIR's datasets to run, e.g. "linux big" (default: all)
#   MODIFY_MODE    small|big for a single-directory DATA_DIR (default: big for datasets
#                  named "big" or "images", small otherwise)
#   KEEP=1         keep the scratch dir (source copy, repos) instead of deleting it
#   AUTO_INSTALL=0 do not apt-get install missing restic/borgbackup/time
#   CAIRN_PASSWORD, RESTIC_PASSWORD, BORG_PASSPHRASE, RUSTIC_PASSWORD (default: a fixed
#                  benchmark password)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

die() { printf 'compare.sh: error: %s\n' "$*" >&2; exit 2; }
say() { printf '%s\n' "$*" >&2; }

[ $# -eq 1 ] || die "usage: $0 DATA_DIR   (see bench/README.md)"
[ -d "$1" ] || die "DATA_DIR '$1' is not a directory"
DATA=$(cd "$1" && pwd)

RUNS=${RUNS:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
[[ $STEP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "STEP_TIMEOUT must be a positive integer"
TOOLS=${TOOLS:-cairn restic borg rustic}
KEEP=${KEEP:-0}
AUTO_INSTALL=${AUTO_INSTALL:-1}
MODIFY=${MODIFY:-$HERE/modify.py}
[ -f "$MODIFY" ] || die "modifier not found: $MODIFY (set MODIFY=/path/to/modify.py)"

export CAIRN_PASSWORD=${CAIRN_PASSWORD:-cairn-bench-password}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-cairn-bench-password}
export BORG_PASSPHRASE=${BORG_PASSPHRASE:-cairn-bench-password}
export RUSTIC_PASSWORD=${RUSTIC_PASSWORD:-cairn-bench-password}
# borg must never stop to ask a question
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO

# ---------------------------------------------------------------- datasets
DATASETS=()   # entries "name:path"
for d in ${ONLY:-linux big syslib images media tiny}; do
  [ -d "$DATA/$d" ] && DATASETS+=("$d:$DATA/$d")
done
[ ${#DATASETS[@]} -gt 0 ] || DATASETS=("$(basename "$DATA"):$DATA")

# ---------------------------------------------------------------- tools
apt_install() {  # PACKAGE...
  [ "$AUTO_INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  say "installing from Debian: $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; }
}
[ -x /usr/bin/time ] || apt_install time || true
[ -x /usr/bin/time ] || die "GNU time (/usr/bin/time) is missing: apt-get install -y time"
for t in python3 timeout du tar; do command -v $t >/dev/null || die "$t is missing"; done

ACTIVE=()
for tool in $TOOLS; do
  case $tool in
    cairn) ;;
    restic) command -v restic >/dev/null || apt_install restic || true ;;
    borg) command -v borg >/dev/null || apt_install borgbackup || true ;;
    rustic) ;;
    *) die "unknown tool '$tool' in TOOLS (known: cairn restic borg rustic)" ;;
  esac
  if [ "$tool" = cairn ]; then
    if [ -n "${CAIRN:-}" ]; then
      if [ -x "$CAIRN" ] && [ -f "$CAIRN" ]; then CAIRN=$(cd "$(dirname "$CAIRN")" && pwd)/$(basename "$CAIRN")
      elif command -v "$CAIRN" >/dev/null; then CAIRN=$(command -v "$CAIRN")
      else say "SKIPPING cairn: CAIRN=$CAIRN is not an executable file"; continue; fi
    else
      [ -f "$ROOT/Cargo.toml" ] || { say "SKIPPING cairn: no CAIRN given and no Cargo workspace at $ROOT"; continue; }
      tdir=${CARGO_TARGET_DIR:-target}
      case $tdir in /*) ;; *) tdir=$ROOT/$tdir ;; esac
      blog=$(mktemp "${TMPDIR:-/tmp}/cairn-build.XXXXXX.log")
      say "building cairn: (cd $ROOT && cargo build --release -p cairn-client)  [log: $blog]"
      if (cd "$ROOT" && cargo build --release -p cairn-client) >"$blog" 2>&1 && [ -x "$tdir/release/cairn" ]; then
        CAIRN=$tdir/release/cairn
      else
        say "SKIPPING cairn: build failed or produced no $tdir/release/cairn; last lines of $blog:"
        tail -n 15 "$blog" | sed 's/^/    /' >&2
        continue
      fi
    fi
    ACTIVE+=(cairn)
  elif command -v "$tool" >/dev/null; then
    ACTIVE+=("$tool")
  else
    case $tool in
      rustic) say "skipping rustic: not on PATH" ;;
      *) say "SKIPPING $tool: not installed and could not be installed (apt-get install -y $([ "$tool" = borg ] && echo borgbackup || echo "$tool"))" ;;
    esac
  fi
done
[ ${#ACTIVE[@]} -gt 0 ] || die "no tool to run (TOOLS='$TOOLS')"

tool_version() {
  case $1 in
    cairn) "$CAIRN" --version 2>/dev/null | head -n1 || echo "unknown ($CAIRN)" ;;
    restic) restic version | head -n1 ;;
    borg) borg --version | head -n1 ;;
    rustic) rustic --version 2>/dev/null | head -n1 || echo unknown ;;
  esac
}

# ---------------------------------------------------------------- work dir
if [ -z "${WORK:-}" ]; then
  base=${TMPDIR:-/tmp}
  if [ "$(df --output=fstype "$base" 2>/dev/null | tail -n1)" = tmpfs ]; then
    base=$(dirname "$DATA")   # repos in RAM would flatter everyone: stay on the data's disk
  fi
  WORK=$(mktemp -d "$base/cairn-bench.XXXXXX")
fi
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
case "$WORK/" in "$DATA/"*) die "WORK ($WORK) must not be inside DATA_DIR ($DATA)" ;; esac
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$WORK/results-$STAMP
LOGS=$RESULTS/logs
SCR=$WORK/scratch-$STAMP-$$
mkdir -p "$LOGS" "$SCR"
RAW=$RESULTS/raw.tsv
: >"$RAW"

cleanup() {
  local rc=$?
  if [ "$KEEP" = 1 ]; then say "kept scratch dir $SCR"; else rm -rf "$SCR"; fi
  [ $rc -eq 0 ] || say "compare.sh: stopped (exit $rc); partial results in $RESULTS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free space: a copy of the data, one repo per tool (at most ~ the data) and a restore
for entry in "${DATASETS[@]}"; do
  b=$(du -sb "${entry#*:}" | cut -f1)
  need=$(( b * (${#ACTIVE[@]} + 2) * 11 / 10 ))
  avail=$(df -B1 --output=avail "$WORK" | tail -n1 | tr -d ' ')
  [ "$avail" -ge "$need" ] || die "not enough space in $WORK for ${entry%%:*}: need ~$need bytes, have $avail"
done

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }   # dataset tool run metric value

for tool in "${ACTIVE[@]}"; do record '*' "$tool" - version "$(tool_version "$tool")"; done
say "tools: ${ACTIVE[*]}   runs: $RUNS   work: $WORK"
[[ " ${ACTIVE[*]} " == *" cairn "* ]] && say "cairn: $CAIRN"

# ---------------------------------------------------------------- steps
warm() {  # DIR...: read everything once so that the measured step starts with a warm page cache
  local d
  for d in "$@"; do
    [ -e "$d" ] || continue
    tar -cf - -C "$d" . 2>/dev/null | cat >/dev/null || true   # (tar skips reading when writing to /dev/null itself)
  done
}

build_cmd() {  # TOOL ACTION -> CMD (uses SRC, TARGET)
  local tool=$1 action=$2 repo=$SCR/repo-$1 home=$SCR/home-$1
  case $tool:$action in
    cairn:init)     CMD=("$CAIRN" vault init --local "$repo") ;;
    cairn:backup)   CMD=("$CAIRN" backup --vault "$repo" "$SRC" --json) ;;
    cairn:restore)  CMD=("$CAIRN" restore --vault "$repo" latest --target "$TARGET") ;;
    restic:init)    CMD=(restic -r "$repo" init --repository-version 2) ;;
    restic:backup)  CMD=(restic -r "$repo" backup "$SRC") ;;
    restic:restore) CMD=(restic -r "$repo" restore latest --target "$TARGET") ;;
    borg:init)      CMD=(borg init -e repokey-blake2 "$repo") ;;
    borg:backup)    CMD=(borg create --compression lz4 "$repo::$STEP" "$SRC") ;;
    borg:restore)   CMD=(borg extract "$repo::backup_modified") ;;   # into the current dir
    rustic:init)    CMD=(rustic --no-progress -r "$repo" init) ;;
    rustic:backup)  CMD=(rustic --no-progress -r "$repo" backup "$SRC") ;;
    rustic:restore) CMD=(rustic --no-progress -r "$repo" restore latest "$TARGET") ;;
    *) die "internal: no command for $tool $action" ;;
  esac
  # every tool keeps its caches/config (restic cache, borg cache+keys, ...) in its own scratch home
  CMD=(env XDG_CACHE_HOME="$home/cache" XDG_CONFIG_HOME="$home/config"
       XDG_DATA_HOME="$home/data" XDG_STATE_HOME="$home/state" "${CMD[@]}")
}

fail_note() {  # TOOL WHAT RC LOGBASE
  say "  !! $1: $2 failed (exit $3); log: $4.{out,err}"
  tail -n 8 "$4.err" 2>/dev/null | sed 's/^/     | /' >&2 || true
}

# run TOOL ACTION STEP CWD: one measured step (sync, warm, timed). Records STEP_s (wall),
# STEP_user_s and STEP_sys_s (CPU time of the step's processes) and STEP_rss_kb (or
# FAIL/TIMEOUT). Returns non-zero when the step failed.
run() {
  local tool=$1 action=$2 cwd=$4
  STEP=$3
  local lb=$LOGS/$DS.run$RUN.$tool.$STEP tf rc=0 secs rss user sys
  build_cmd "$tool" "$action"
  sync
  warm "$SRC" "$SCR/repo-$tool" "$SCR/home-$tool"
  tf=$(mktemp "$SCR/time.XXXXXX")
  (cd "$cwd" && exec /usr/bin/time -f '%e %M %U %S' -o "$tf" \
      timeout --kill-after=30 "$STEP_TIMEOUT" "${CMD[@]}") </dev/null >"$lb.out" 2>"$lb.err" || rc=$?
  read -r secs rss user sys < <(tail -n1 "$tf") || true
  rm -f "$tf"
  # borg exits 1 for warnings (e.g. a file changed while read): the backup exists
  if [ $rc -eq 0 ] || { [ "$tool" = borg ] && [ $rc -eq 1 ]; }; then
    [ $rc -eq 0 ] || say "  ($tool $STEP: borg warning, see $lb.err)"
    record "$DS" "$tool" "$RUN" "${STEP}_s" "$secs"
    record "$DS" "$tool" "$RUN" "${STEP}_rss_kb" "$rss"
    record "$DS" "$tool" "$RUN" "${STEP}_user_s" "$user"
    record "$DS" "$tool" "$RUN" "${STEP}_sys_s" "$sys"
    say "  $(printf '%-7s %-17s %9s s  %8s KiB RSS  user %s s  sys %s s' "$tool" "$STEP" "$secs" "$rss" "$user" "$sys")"
    return 0
  fi
  local v=FAIL; [ $rc -eq 124 ] || [ $rc -eq 137 ] && v=TIMEOUT
  record "$DS" "$tool" "$RUN" "${STEP}_s" "$v"
  record "$DS" "$tool" "$RUN" "${STEP}_rss_kb" "$v"
  fail_note "$tool" "$STEP" "$rc$([ $v = TIMEOUT ] && echo ", timeout ${STEP_TIMEOUT}s")" "$lb"
  return 1
}

size_of() { du -sb "$1" 2>/dev/null | cut -f1; }

# ---------------------------------------------------------------- main loop
for entry in "${DATASETS[@]}"; do
  DS=${entry%%:*}
  DSRC=${entry#*:}
  mode=${MODIFY_MODE:-}
  [ -n "$mode" ] || case $DS in big | images) mode=big ;; *) mode=small ;; esac
  case $mode in small|big) ;; *) die "MODIFY_MODE must be small or big" ;; esac
  record "$DS" '*' - files "$(find "$DSRC" -type f | wc -l)"
  record "$DS" '*' - bytes "$(size_of "$DSRC")"
  say ""
  say "== dataset $DS: $DSRC ($(size_of "$DSRC") bytes), modification: modify.py $mode"
  # The pipeline's CPU ceiling on this data (chunk, hash, compress, seal; no IO):
  # the report gives cairn's initial backup as a fraction of it.
  if [[ " ${ACTIVE[*]} " == *" cairn "* ]]; then
    warm "$DSRC"
    if "$CAIRN" benchmark --json "$DSRC" >"$LOGS/$DS.ceiling.json" 2>"$LOGS/$DS.ceiling.err"; then
      for k in ceiling_mib_s cores; do
        record "$DS" '*' - "$k" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$LOGS/$DS.ceiling.json" "$k")"
      done
    else
      say "cairn benchmark failed (see $LOGS/$DS.ceiling.err): no CPU ceiling for $DS"
    fi
  fi

  for RUN in $(seq 1 "$RUNS"); do
    [ "$RUNS" -eq 1 ] || say "-- run $RUN/$RUNS"
    declare -A DEAD=()
    # a private copy, so that DATA_DIR is never modified; same path for all backups
    rm -rf "$SCR/src" "$SCR"/repo-* "$SCR"/home-* "$SCR"/restore-*
    mkdir -p "$SCR/src"
    SRC=$SCR/src/$DS
    cp -a "$DSRC" "$SRC"

    for tool in "${ACTIVE[@]}"; do
      mkdir -p "$SCR/home-$tool"
      lb=$LOGS/$DS.run$RUN.$tool.init
      build_cmd "$tool" init
      rc=0; (cd "$SCR" && "${CMD[@]}") </dev/null >"$lb.out" 2>"$lb.err" || rc=$?
      [ $rc -ne 0 ] || [ -d "$SCR/repo-$tool" ] || { rc="0 but created no $SCR/repo-$tool"; echo "(compare.sh: $rc)" >>"$lb.err"; }
      if [ "$rc" != 0 ]; then
        fail_note "$tool" "repository init" "$rc" "$lb"
        DEAD[$tool]=1
        for m in backup_initial backup_nochange backup_modified restore; do
          record "$DS" "$tool" "$RUN" "${m}_s" FAIL; record "$DS" "$tool" "$RUN" "${m}_rss_kb" FAIL
        done
        continue
      fi
      if run "$tool" backup backup_initial "$SCR"; then
        record "$DS" "$tool" "$RUN" size_initial_b "$(size_of "$SCR/repo-$tool")"
        run "$tool" backup backup_nochange "$SCR" || DEAD[$tool]=1
      else
        DEAD[$tool]=1
      fi
    done

    modlog=$("$MODIFY" "$mode" "$SRC" 2>&1) || die "modify.py failed: $modlog"
    modlog=${modlog//$SCR\/src\//}
    [ "$RUN" -gt 1 ] || record "$DS" '*' - modify "$(printf '%s' "$modlog" | tr '\n\t' '  ' | cut -c1-300)"
    say "  modified copy: $(printf '%s' "$modlog" | head -n1 | cut -c1-120)"

    for tool in "${ACTIVE[@]}"; do
      [ -z "${DEAD[$tool]:-}" ] || continue
      if run "$tool" backup backup_modified "$SCR"; then
        record "$DS" "$tool" "$RUN" size_final_b "$(size_of "$SCR/repo-$tool")"
        record "$DS" "$tool" "$RUN" cache_b "$(size_of "$SCR/home-$tool")"
      else
        DEAD[$tool]=1
      fi
    done

    python3 "$HERE/manifest.py" "$SRC" >"$SCR/source.manifest"
    for tool in "${ACTIVE[@]}"; do
      [ -z "${DEAD[$tool]:-}" ] || { record "$DS" "$tool" "$RUN" verify FAILED; continue; }
      TARGET=$SCR/restore-$tool
      rm -rf "$TARGET"; mkdir -p "$TARGET"
      if run "$tool" restore restore "$TARGET"; then
        # each tool recreates the absolute source path under the target
        got=$TARGET$SRC
        [ -d "$got" ] || got=$TARGET/$DS
        [ -d "$got" ] || got=$TARGET
        vb=$LOGS/$DS.run$RUN.$tool.verify
        python3 "$HERE/manifest.py" "$got" >"$SCR/restored.manifest"
        if cmp -s "$SCR/source.manifest" "$SCR/restored.manifest"; then
          record "$DS" "$tool" "$RUN" verify OK
          say "  $tool restore check: OK"
        else
          record "$DS" "$tool" "$RUN" verify FAILED
          diff "$SCR/source.manifest" "$SCR/restored.manifest" >"$vb.diff" || true
          say "  !! $tool restore check: FAILED ($got differs from the source; $(grep -c '^[<>]' "$vb.diff") manifest lines differ, see $vb.diff)"
          head -n 6 "$vb.diff" | cut -c1-160 | sed 's/^/     | /' >&2
        fi
      else
        record "$DS" "$tool" "$RUN" verify FAILED
      fi
      rm -rf "$TARGET"
    done
    rm -rf "$SCR/src" "$SCR"/repo-* "$SCR"/home-* "$SCR"/*.manifest
    unset DEAD
  done
done

say ""
python3 "$HERE/report.py" "$RAW" "$RESULTS"
say ""
say "results: $RESULTS/summary.{md,tsv,json} (raw measurements: $RAW, tool output: $LOGS/)"
