#!/usr/bin/env bash
# Side-by-side throughput of the parallel writer's two commands against
# what users would otherwise run, in one run, alternating tools within each
# round, median of ROUNDS rounds:
#
#   write: the writer itself as issue 5 states the target
#          (examples/writer_lines.rs: 2 producer tasks on 2 workers, each
#          calling Producer::write_line for half of the input's lines, which
#          are loaded into memory first; striped, plain) vs a naive
#          one-write(2)-per-line loop (examples/naive_lines.rs) vs
#          `fio --rw=write --ioengine=psync` buffered with bs = the writer's
#          chunk size and the same byte count; plus `iok merge` (2 producers,
#          plain, striped), which also reads and splits the input, as a
#          second row, and a single-threaded std BufWriter (1 MiB) copy
#          (naive_lines --buffered) as the careful-program reference.
#          By default nothing fsyncs (the page-cache write path
#          is measured, not the disk); FSYNC=1 makes all of them fsync at
#          the end (iok's default durability).
#   gzip:  `iok pgzip --level 6 --threads 2` vs `pigz -p 2 -6` vs `gzip -6`,
#          plus compressed sizes and `gzip -t` on every output; and
#          `iok merge --gzip=6 --producers 2` vs `cat INPUT | gzip -6`.
#
# Usage: benches/writer-compare.sh            (10 million lines, 3 rounds)
#        LINES=2000000 ROUNDS=5 FSYNC=1 WORKDIR=/mnt/x benches/writer-compare.sh
# Throughput is input MiB per wall-clock second, process start included,
# except for the writer row: its time is the writer phase writer_lines
# reports (ParallelWriter::new to the end of finish; loading and splitting
# the input is not counted), and its whole-process wall time is shown too.
# BASELINE=DIR adds, in every round, the same four iokernel commands (the
# writer, merge, pgzip, merge --gzip) from another build: DIR holds its
# `iok` and `examples/writer_lines` (a `target/release` directory), and the
# summary prints this build's time over the baseline's per command (above
# 1 = this build is slower), to check that a change regressed none of them.
# Needs: cargo; installs fio and pigz with apt-get if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-10000000}
ROUNDS=${ROUNDS:-3}
WORKDIR=${WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/iok-writer-compare.XXXXXX")}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
FSYNC=${FSYNC:-0}
if [ "$FSYNC" = 1 ]; then
  IOK_DURABILITY=fsync NAIVE_FSYNC=--fsync FIO_FSYNC=1
else
  IOK_DURABILITY=none NAIVE_FSYNC= FIO_FSYNC=0
fi

step() { printf '\n==> %s\n' "$*" >&2; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }

for tool in fio pigz gzip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    step "installing $tool"
    apt-get install -y "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }
  fi
done

step "building iok and the naive baseline (release)"
cargo build --release --bin iok --example naive_lines --example writer_lines >&2
IOK=target/release/iok
NAIVE=target/release/examples/naive_lines
WRITER=target/release/examples/writer_lines
BASELINE=${BASELINE:-}
if [ -n "$BASELINE" ]; then
  for f in "$BASELINE/iok" "$BASELINE/examples/writer_lines"; do
    [ -x "$f" ] || { echo "BASELINE=$BASELINE: $f is missing or not executable" >&2; exit 1; }
  done
fi

mkdir -p "$WORKDIR"
cleanup() { if [ "$KEEP_WORKDIR" != 1 ]; then rm -rf "$WORKDIR"; fi; }
trap cleanup EXIT

INPUT=$WORKDIR/input.jsonl
step "generating $LINES synthetic trace lines in $INPUT"
"$IOK" trace-gen --lines "$LINES" --seed 7 -o "$INPUT" >&2
BYTES=$(stat -c %s "$INPUT")
printf 'input: %s lines, %s bytes (%.1f MiB, %.1f bytes/line) on %s (%s)\n' \
  "$LINES" "$BYTES" "$(calc "$BYTES / 1048576")" "$(calc "$BYTES / $LINES")" \
  "$WORKDIR" "$(stat -f -c %T "$WORKDIR")"

# Seconds (wall clock) that "$@" takes; its stdout goes to $WORKDIR/last.out.
# Every tool starts from the same state: the previous tool's dirty pages
# are written back first (sync), outside the timing, so no run pays for
# another's writeback.
timed() {
  local start end
  sync
  start=$(date +%s.%N)
  "$@" >"$WORKDIR/last.out" 2>"$WORKDIR/last.err" || {
    echo "command failed: $*" >&2
    cat "$WORKDIR/last.err" >&2
    exit 1
  }
  end=$(date +%s.%N)
  calc "$end - $start"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mibs() { calc "$BYTES / 1048576 / $1"; }

# The writer's chunk size on this file system, from iok's summary line
# ("chunk 1.00 MiB"), in bytes, for fio's block size.
step "warm-up merge (also reads the chunk size)"
"$IOK" merge "$INPUT" -o "$WORKDIR/merge.out" --producers 2 --durability "$IOK_DURABILITY" >"$WORKDIR/warm.out"
cat "$WORKDIR/warm.out" >&2
CHUNK_BYTES=$(sed -n 's/.*chunk \([0-9.]*\) \([KMG]\)iB.*/\1 \2/p' "$WORKDIR/warm.out" |
  awk '{ m = ($2 == "K") ? 1024 : ($2 == "M") ? 1048576 : 1073741824; printf "%d", $1 * m }')
if [ -z "$CHUNK_BYTES" ]; then
  echo "could not read the chunk size from: $(cat "$WORKDIR/warm.out")" >&2
  exit 1
fi
rm -f "$WORKDIR/merge.out"
echo "writer chunk size: $CHUNK_BYTES bytes (fio --bs)"

declare -a T_WRITER T_WRITER_WALL T_MERGE T_NAIVE T_BUFW T_FIO T_PGZIP T_PIGZ T_GZIP T_MERGEGZ T_CATGZ
declare -a B_WRITER B_MERGE B_PGZIP B_MERGEGZ
# One round of the four iokernel commands of the build in $1 (its iok and
# examples/writer_lines), checking each output; prints "writer merge
# pgzip mergegz" seconds. The writer's time is its phase, as above.
iok_round() {
  local dir=$1 tag=$2 writer merge pgzip mergegz
  timed "$dir/examples/writer_lines" "$INPUT" "$WORKDIR/writer$tag.out" $NAIVE_FSYNC >/dev/null
  writer=$(sed -n 's/^writer_seconds=\([0-9.]*\) .*/\1/p' "$WORKDIR/last.out")
  [ -n "$writer" ] || { echo "$dir: writer_lines printed no writer_seconds" >&2; exit 1; }
  cmp -s <(wc -c <"$WORKDIR/writer$tag.out") <(echo "$BYTES") || { echo "$dir: writer output size differs" >&2; exit 1; }
  rm -f "$WORKDIR/writer$tag.out"
  merge=$(timed "$dir/iok" merge "$INPUT" -o "$WORKDIR/merge$tag.out" --producers 2 --layout striped --durability "$IOK_DURABILITY")
  cmp -s <(wc -c <"$WORKDIR/merge$tag.out") <(echo "$BYTES") || { echo "$dir: merge output size differs" >&2; exit 1; }
  rm -f "$WORKDIR/merge$tag.out"
  pgzip=$(timed "$dir/iok" pgzip "$INPUT" -o "$WORKDIR/pgzip$tag.gz" --level 6 --threads 2 --durability "$IOK_DURABILITY")
  gzip -t "$WORKDIR/pgzip$tag.gz" || { echo "$dir: gzip -t failed on its pgzip output" >&2; exit 1; }
  rm -f "$WORKDIR/pgzip$tag.gz"
  mergegz=$(timed "$dir/iok" merge "$INPUT" -o "$WORKDIR/mergegz$tag.gz" --gzip=6 --producers 2 --layout striped --durability "$IOK_DURABILITY")
  gzip -t "$WORKDIR/mergegz$tag.gz" || { echo "$dir: gzip -t failed on its merge --gzip output" >&2; exit 1; }
  rm -f "$WORKDIR/mergegz$tag.gz"
  echo "$writer $merge $pgzip $mergegz"
}
# The baseline's commands for round $1 (nothing without BASELINE).
base_round() {
  [ -n "$BASELINE" ] || return 0
  local out t
  out=$(iok_round "$BASELINE" -base) || exit 1
  read -r -a t <<<"$out"
  B_WRITER+=("${t[0]}") B_MERGE+=("${t[1]}") B_PGZIP+=("${t[2]}") B_MERGEGZ+=("${t[3]}")
  echo "round $1: baseline writer ${t[0]} s, merge ${t[1]} s, pgzip ${t[2]} s, merge --gzip ${t[3]} s" >&2
}
for round in $(seq 1 "$ROUNDS"); do
  step "round $round of $ROUNDS"
  # The last round's compressed outputs are checked below; an earlier
  # round's go first (iok refuses to replace an existing output).
  rm -f "$WORKDIR"/{pgzip,pigz,gzip,mergegz,catgz}.gz
  # The baseline goes first in odd rounds and last in even ones.
  if [ $((round % 2)) = 1 ]; then base_round "$round"; fi
  T_WRITER_WALL+=("$(timed "$WRITER" "$INPUT" "$WORKDIR/writer.out" $NAIVE_FSYNC)")
  T_WRITER+=("$(sed -n 's/^writer_seconds=\([0-9.]*\) .*/\1/p' "$WORKDIR/last.out")")
  [ -n "${T_WRITER[-1]}" ] || { echo "writer_lines printed no writer_seconds: $(cat "$WORKDIR/last.out")" >&2; exit 1; }
  cmp -s <(wc -c <"$WORKDIR/writer.out") <(echo "$BYTES") || { echo "writer output size differs" >&2; exit 1; }
  rm -f "$WORKDIR/writer.out"
  T_MERGE+=("$(timed "$IOK" merge "$INPUT" -o "$WORKDIR/merge.out" --producers 2 --layout striped --durability "$IOK_DURABILITY")")
  cmp -s <(wc -c <"$WORKDIR/merge.out") <(echo "$BYTES") || { echo "merge output size differs" >&2; exit 1; }
  rm -f "$WORKDIR/merge.out"
  T_NAIVE+=("$(timed "$NAIVE" "$INPUT" "$WORKDIR/naive.out" $NAIVE_FSYNC)")
  rm -f "$WORKDIR/naive.out"
  T_BUFW+=("$(timed "$NAIVE" "$INPUT" "$WORKDIR/bufw.out" $NAIVE_FSYNC --buffered)")
  cmp -s "$WORKDIR/bufw.out" "$INPUT" || { echo "BufWriter copy differs from the input" >&2; exit 1; }
  rm -f "$WORKDIR/bufw.out"
  T_FIO+=("$(timed fio --name=seqwrite --filename="$WORKDIR/fio.out" --rw=write --bs="$CHUNK_BYTES" \
    --size="$BYTES" --ioengine=psync --direct=0 --end_fsync="$FIO_FSYNC" --numjobs=1 --output-format=terse)")
  rm -f "$WORKDIR/fio.out"
  T_PGZIP+=("$(timed "$IOK" pgzip "$INPUT" -o "$WORKDIR/pgzip.gz" --level 6 --threads 2 --durability "$IOK_DURABILITY")")
  T_PIGZ+=("$(timed sh -c 'pigz -p 2 -6 -c "$1" >"$2"' _ "$INPUT" "$WORKDIR/pigz.gz")")
  T_GZIP+=("$(timed sh -c 'gzip -6 -c "$1" >"$2"' _ "$INPUT" "$WORKDIR/gzip.gz")")
  T_MERGEGZ+=("$(timed "$IOK" merge "$INPUT" -o "$WORKDIR/mergegz.gz" --gzip=6 --producers 2 --layout striped --durability "$IOK_DURABILITY")")
  T_CATGZ+=("$(timed sh -c 'cat "$1" | gzip -6 >"$2"' _ "$INPUT" "$WORKDIR/catgz.gz")")
  echo "round $round: writer ${T_WRITER[-1]} s (process ${T_WRITER_WALL[-1]} s), merge ${T_MERGE[-1]} s, naive ${T_NAIVE[-1]} s, fio ${T_FIO[-1]} s," \
    "pgzip ${T_PGZIP[-1]} s, pigz ${T_PIGZ[-1]} s, gzip ${T_GZIP[-1]} s" >&2
  if [ $((round % 2)) = 0 ]; then base_round "$round"; fi
done

step "checking the compressed outputs (last round)"
for f in pgzip pigz gzip mergegz catgz; do
  gzip -t "$WORKDIR/$f.gz" || { echo "gzip -t failed on $f.gz" >&2; exit 1; }
done
cmp <(zcat "$WORKDIR/pgzip.gz") "$INPUT" || { echo "pgzip output does not decompress to the input" >&2; exit 1; }
S_PGZIP=$(stat -c %s "$WORKDIR/pgzip.gz")
S_PIGZ=$(stat -c %s "$WORKDIR/pigz.gz")
S_GZIP=$(stat -c %s "$WORKDIR/gzip.gz")

M_WRITER=$(median "${T_WRITER[@]}")
M_WRITER_WALL=$(median "${T_WRITER_WALL[@]}")
M_MERGE=$(median "${T_MERGE[@]}")
M_NAIVE=$(median "${T_NAIVE[@]}")
M_BUFW=$(median "${T_BUFW[@]}")
M_MERGEGZ=$(median "${T_MERGEGZ[@]}")
M_CATGZ=$(median "${T_CATGZ[@]}")
M_FIO=$(median "${T_FIO[@]}")
M_PGZIP=$(median "${T_PGZIP[@]}")
M_PIGZ=$(median "${T_PIGZ[@]}")
M_GZIP=$(median "${T_GZIP[@]}")

echo
echo "medians of $ROUNDS alternating rounds, $LINES lines, $BYTES bytes, FSYNC=$FSYNC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %10s %10s %12s\n' "command" "seconds" "MiB/s" "size bytes"
printf '%-44s %10.3f %10.1f %12s\n' "writer: 2 producers x write_line (phase)" "$M_WRITER" "$(mibs "$M_WRITER")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "  same, whole process (loads input first)" "$M_WRITER_WALL" "$(mibs "$M_WRITER_WALL")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "iok merge --producers 2 (striped, plain)" "$M_MERGE" "$(mibs "$M_MERGE")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "naive one write(2) per line" "$M_NAIVE" "$(mibs "$M_NAIVE")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "std BufWriter 1 MiB, one thread" "$M_BUFW" "$(mibs "$M_BUFW")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "fio psync buffered bs=$CHUNK_BYTES" "$M_FIO" "$(mibs "$M_FIO")" "$BYTES"
printf '%-44s %10.3f %10.1f %12s\n' "iok pgzip --level 6 --threads 2" "$M_PGZIP" "$(mibs "$M_PGZIP")" "$S_PGZIP"
printf '%-44s %10.3f %10.1f %12s\n' "pigz -p 2 -6" "$M_PIGZ" "$(mibs "$M_PIGZ")" "$S_PIGZ"
printf '%-44s %10.3f %10.1f %12s\n' "gzip -6" "$M_GZIP" "$(mibs "$M_GZIP")" "$S_GZIP"
printf '%-44s %10.3f %10.1f %12s\n' "iok merge --gzip=6 --producers 2" "$M_MERGEGZ" "$(mibs "$M_MERGEGZ")" "$(stat -c %s "$WORKDIR/mergegz.gz")"
printf '%-44s %10.3f %10.1f %12s\n' "cat INPUT | gzip -6" "$M_CATGZ" "$(mibs "$M_CATGZ")" "$(stat -c %s "$WORKDIR/catgz.gz")"
echo
ratio() { calc "$1 / $2"; }
verdict() { if awk "BEGIN { exit !($1 >= $2) }"; then echo "met"; else echo "MISSED"; fi; }
W_NAIVE=$(ratio "$M_NAIVE" "$M_WRITER")
W_FIO=$(ratio "$M_FIO" "$M_WRITER")
R_NAIVE=$(ratio "$M_NAIVE" "$M_MERGE")
R_FIO=$(ratio "$M_FIO" "$M_MERGE")
R_PIGZ=$(ratio "$M_PIGZ" "$M_PGZIP")
R_GZIP=$(ratio "$M_GZIP" "$M_PGZIP")
R_SIZE=$(ratio "$S_PGZIP" "$S_PIGZ")
printf '%-44s %8.2fx  (target >= 10x: %s)\n' "writer vs naive loop" "$W_NAIVE" "$(verdict "$W_NAIVE" 10)"
printf '%-44s %8.2fx  (target >= 0.8x: %s)\n' "writer vs fio" "$W_FIO" "$(verdict "$W_FIO" 0.8)"
printf '%-44s %8.2fx  (second row, not the target)\n' "merge vs naive loop" "$R_NAIVE"
printf '%-44s %8.2fx  (second row, not the target)\n' "merge vs fio" "$R_FIO"
printf '%-44s %8.2fx  (target >= 1.5x: %s)\n' "pgzip vs pigz -p 2" "$R_PIGZ" "$(verdict "$R_PIGZ" 1.5)"
printf '%-44s %8.2fx\n' "pgzip vs gzip" "$R_GZIP"
printf '%-44s %8.2fx\n' "writer vs std BufWriter" "$(ratio "$M_BUFW" "$M_WRITER")"
printf '%-44s %8.2fx\n' "merge vs std BufWriter" "$(ratio "$M_BUFW" "$M_MERGE")"
printf '%-44s %8.2fx\n' "merge --gzip=6 vs cat | gzip -6" "$(ratio "$M_CATGZ" "$M_MERGEGZ")"
printf '%-44s %8.4f   (target <= 1.02: %s)\n' "pgzip size / pigz size" "$R_SIZE" "$(verdict 1.02 "$R_SIZE")"
echo "gzip -t: pgzip, pigz, gzip, merge --gzip and cat|gzip outputs all pass; zcat of the pgzip output equals the input"
if [ -n "$BASELINE" ]; then
  echo
  echo "against the baseline build in $BASELINE (this build's seconds / the baseline's; medians; above 1 = slower):"
  printf '%-44s %10s %10s %8s  %s\n' "command" "this" "baseline" "ratio" "baseline rounds (s)"
  base_row() { # label this-median baseline-times...
    local label=$1 this=$2
    shift 2
    local base
    base=$(median "$@")
    printf '%-44s %10.3f %10.3f %7.3fx  %s\n' "$label" "$this" "$base" "$(ratio "$this" "$base")" "$*"
  }
  base_row "writer: 2 producers x write_line (phase)" "$M_WRITER" "${B_WRITER[@]}"
  base_row "iok merge --producers 2 (striped, plain)" "$M_MERGE" "${B_MERGE[@]}"
  base_row "iok pgzip --level 6 --threads 2" "$M_PGZIP" "${B_PGZIP[@]}"
  base_row "iok merge --gzip=6 --producers 2" "$M_MERGEGZ" "${B_MERGEGZ[@]}"
fi
