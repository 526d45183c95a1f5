#!/usr/bin/env bash
# The test command: installs missing system packages, then runs every test
# of the workspace (unit, property, integration with the real binaries).
# Long soak and fault-injection runs stay behind CAIRN_LONG_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn-target}"
cargo test --workspace --all-targets "$@"
