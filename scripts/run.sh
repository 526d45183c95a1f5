#!/usr/bin/env bash
# The run command: installs missing system packages, builds, and starts
# `cairnd` — with no arguments a one-node dev cluster with every role, data
# in ./cairn-data, listening on 127.0.0.1:8700. Extra arguments go to cairnd.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
# Build from the repo root so .cargo/config.toml (Debian's RocksDB) applies;
# cairnd itself runs in the caller's directory (its data goes to ./cairn-data).
(cd "$here" && cargo build --release -p cairn-node -p cairn-client)
echo "binaries: $CARGO_TARGET_DIR/release/cairnd and $CARGO_TARGET_DIR/release/cairn" >&2
exec "$CARGO_TARGET_DIR/release/cairnd" "$@"
