#!/usr/bin/env bash
# The test command: installs missing system packages, then runs every test
# of the workspace (unit, property, integration with the real binaries) and
# ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
# The deliberately broken node the harness must catch (jepsen/tests/unsafe_ack.rs);
# a bin with required-features is not part of the workspace build.
profile=()
for a in "$@"; do [ "$a" = --release ] && profile=(--release); done
cargo build "${profile[@]}" -p cairn-node --features unsafe-ack --bin cairnd-unsafe-ack
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
