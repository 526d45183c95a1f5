#!/usr/bin/env bash
# cairn vs restic against the same S3 server on loopback, same run:
# initial backup, no-change backup and restore of one dataset (by default
# the large-file set `big/` of bench/datasets.sh), each into a fresh
# vault/repository in one bucket of a moto server (or s3s-fs with
# SERVER=s3s-fs) started here. Prints wall seconds, peak RSS and (moto,
# whose access log names each request) the requests each step sent.
#
#   bench/s3.sh ~/bench-data/big
#   SERVER=s3s-fs CAIRN=target/release/cairn bench/s3.sh /some/dir
set -euo pipefail
data="${1:?usage: bench/s3.sh DATA_DIR}"
data="$(cd "$data" && pwd)"
here="$(cd "$(dirname "$0")/.." && pwd)"
tools="${CAIRN_TOOLS:-$HOME/.cache/cairn-tools}"
server="${SERVER:-moto}"
if [ -z "${CAIRN:-}" ]; then
  (cd "$here" && cargo build -q --release -p cairn-client)
  CAIRN="${CARGO_TARGET_DIR:-$here/target}/release/cairn"
fi
command -v restic >/dev/null || { echo "restic is missing (apt-get install restic)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-s3-bench.XXXXXX")"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bucket=bench
case "$server" in
  moto)
    moto=$(command -v moto_server || echo "$tools/moto/bin/moto_server")
    # Unbuffered: the access log is counted after each step.
    PYTHONUNBUFFERED=1 "$moto" -H 127.0.0.1 -p "$port" >"$work/server.log" 2>&1 &
    pid=$!
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench ;;
  s3s-fs)
    mkdir -p "$work/fs/$bucket"
    s3s=$(command -v s3s-fs || echo "$tools/bin/s3s-fs")
    "$s3s" --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret \
      "$work/fs" >"$work/server.log" 2>&1 &
    pid=$!
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret ;;
  *) echo "SERVER is moto or s3s-fs" >&2; exit 2 ;;
esac
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
[ "$server" = moto ] && curl -sf -X PUT "http://127.0.0.1:$port/$bucket" >/dev/null
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$work/cache"

step() { # name tool cmd...
  local name=$1 tool=$2; shift 2
  sync
  local before
  before=$(wc -l <"$work/server.log")
  /usr/bin/time -f '%e %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
    echo "$tool $name failed:" >&2; cat "$work/err" >&2; exit 1; }
  read -r secs rss <"$work/t"
  local requests
  requests=$(tail -n +"$((before + 1))" "$work/server.log" | grep -cE "\"[A-Z]+ /$bucket(/$tool|\?[^ ]*prefix=$tool)" || true)
  printf '%-8s %-20s %8.1f s %8d MiB %8s requests\n' "$tool" "$name" "$secs" "$((rss / 1024))" "$requests"
}

size=$(du -sb "$data" | cut -f1)
echo "dataset $data: $((size / 1048576)) MiB; server $server on 127.0.0.1:$port"
cairn_vault="s3://$bucket/cairn"
restic_repo="s3:http://127.0.0.1:$port/$bucket/restic"
"$CAIRN" vault init "$cairn_vault" >/dev/null
restic -r "$restic_repo" init -q >/dev/null
step "initial backup" cairn "$CAIRN" backup --vault "$cairn_vault" "$data"
step "initial backup" restic restic -r "$restic_repo" backup -q "$data"
step "no-change backup" cairn "$CAIRN" backup --vault "$cairn_vault" "$data"
step "no-change backup" restic restic -r "$restic_repo" backup -q "$data"
mkdir -p "$work/r-cairn" "$work/r-restic"
step "restore" cairn "$CAIRN" restore --vault "$cairn_vault" latest --target "$work/r-cairn"
step "restore" restic restic -r "$restic_repo" restore latest -q --target "$work/r-restic"
diff -r "$data" "$work/r-cairn$data" >/dev/null && diff -r "$data" "$work/r-restic$data" >/dev/null \
  && echo "both restores match the source"
