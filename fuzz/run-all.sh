#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), starting from the
# committed seed corpus. New inputs go to a scratch corpus under
# fuzz/target/ so the committed one stays small; a crash fails the run,
# prints the fuzzer's report and leaves the input in fuzz/artifacts/<target>/.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
cargo +nightly fuzz build
for target in slot_plan lustre_lov sim_ops size_args writer; do
  scratch="target/corpus-work/$target"
  log="target/fuzz-$target.log"
  mkdir -p "$scratch"
  printf '\n--> fuzz %s for %ss\n' "$target" "$seconds"
  if ! cargo +nightly fuzz run "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed (full log: fuzz/$log)" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|stat::new_units_added|cov: ' "$log" | tail -n 3
done
