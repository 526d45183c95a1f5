#!/usr/bin/env bash
# Fuzz smoke run (CI): builds the cargo-fuzz targets of fuzz/, replays every
# committed corpus input once (regressions), then fuzzes each target for
# SECONDS (default 20). Fails if any target crashes, panics, times out or
# exceeds the memory limits; crashing inputs land in fuzz/artifacts/<target>/.
# New inputs found go to fuzz/corpus-tmp/ (not committed; see fuzz/README.md
# for longer campaigns and how to grow the corpus).
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment: CAIRN_FUZZ_TARGETS (space-separated subset),
# CAIRN_FUZZ_TARGET_DIR (build dir, default fuzz/target),
# CAIRN_FUZZ_SANITIZER (address, the default: -malloc_limit_mb needs its
# allocator hooks; or none), CAIRN_FUZZ_CGU (codegen units; cargo-fuzz
# builds with 1 by default, fastest to run; 16 builds faster from cold).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
seconds="${1:-20}"
sanitizer="${CAIRN_FUZZ_SANITIZER:-address}"
build=(--sanitizer "$sanitizer" ${CAIRN_FUZZ_CGU:+--codegen-units "$CAIRN_FUZZ_CGU"})
# Only stable Rust is installed; cargo-fuzz needs -Z flags (sanitizer,
# coverage passes), which stable accepts with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CAIRN_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "=== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

cd fuzz
# The limits every target runs under: no input may take a second, allocate
# more than 512 MiB at once or grow the process beyond 512 MiB.
limits=(-rss_limit_mb=512 -malloc_limit_mb=512 -timeout=10)
echo "=== cargo fuzz build (sanitizer: $sanitizer)"
start=$(date +%s)
cargo fuzz build "${build[@]}"
echo "built in $(( $(date +%s) - start ))s"
# The seed generator (examples/seeds.rs) is no fuzz target: check that it
# still compiles against today's types, in a plain build dir of its own.
echo "=== cargo check --examples (seed generator)"
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/examples-check" cargo check --examples

targets="${CAIRN_FUZZ_TARGETS:-$(cargo fuzz list)}"
failed=()
for t in $targets; do
  mkdir -p "corpus/$t" "corpus-tmp/$t"
  echo "=== $t: replay $(ls "corpus/$t" | wc -l) corpus inputs"
  if ! cargo fuzz run "${build[@]}" "$t" "corpus/$t" -- \
      -runs=0 "${limits[@]}" 2>"corpus-tmp/$t.replay.log"; then
    tail -40 "corpus-tmp/$t.replay.log"
    failed+=("$t (replay)")
    continue
  fi
  echo "=== $t: fuzz ${seconds}s"
  # The first directory takes new inputs; the committed corpus stays as is.
  if ! cargo fuzz run "${build[@]}" "$t" "corpus-tmp/$t" "corpus/$t" -- \
      -max_total_time="$seconds" "${limits[@]}" -print_final_stats=1 \
      2>"corpus-tmp/$t.fuzz.log"; then
    tail -40 "corpus-tmp/$t.fuzz.log"
    failed+=("$t")
    continue
  fi
  grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)' "corpus-tmp/$t.fuzz.log" | tr '\n' ' '
  echo
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: $(echo $targets | wc -w) targets passed (${seconds}s each)"
