#!/usr/bin/env bash
# `iok merge --mpi` across ranks, side by side in one run (issue 13,
# part 7): the same input set merged by
#   - mpirun -n N iok merge --mpi   (N ranks, --producers MPI_PRODUCERS each)
#   - iok merge --producers N       (one process, N producers)
#   - fio --numjobs=N               (N jobs writing one file: disjoint
#                                    ranges of it, psync, bs = the chunk)
# for every N in RANK_SET, tools alternating within each round, median of
# ROUNDS rounds; plus the coordination cost: each merge's own reservation
# counters (rank 0's summary: reservations, mean and slowest
# reserve_bytes / reserve_slots call, every rank counted), and the
# coordinator alone (examples/mpi_coordinator --reserve-calls, inline and
# funnelled), set against the time one chunk takes to write (fio's per-job
# rate).
#
# On a host with fewer cores than N x producers the ranks run
# OVERSUBSCRIBED (mpirun --oversubscribe); the script prints the core
# count and says so in every such row. The load average before and after
# each round is printed: other work on the host skews the numbers.
#
# Usage: benches/mpi-merge.sh                      (16 files, ~256 MiB, N = 1 2 4)
#        RANK_SET="1 2 4 8" FILES=64 LINES_PER_FILE=200000 ROUNDS=5 GZIP=1 \
#          WORKDIR=/lustre/x benches/mpi-merge.sh
# COUNTERS=funnelled makes merge --mpi reserve through its MPI thread
# instead of inline (IOK_MPI_COUNTERS). Throughput is input MiB per
# wall-clock second, process (and mpirun) start included, and iok's own
# figure from its summary (first read to finish); durability none (the page-cache path, not the disk)
# unless FSYNC=1. Needs: cargo, Open MPI's mpirun; installs fio with
# apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RANK_SET=${RANK_SET:-"1 2 4"}
FILES=${FILES:-16}
LINES_PER_FILE=${LINES_PER_FILE:-160000}
ROUNDS=${ROUNDS:-3}
MPI_PRODUCERS=${MPI_PRODUCERS:-1}
GZIP=${GZIP:-0}
FSYNC=${FSYNC:-0}
RESERVE_CALLS=${RESERVE_CALLS:-20000}
# How merge --mpi reserves: auto (inline under THREAD_MULTIPLE) or funnelled.
COUNTERS=${COUNTERS:-auto}
WORKDIR=${WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/iok-mpi-merge.XXXXXX")}
KEEP_WORKDIR=${KEEP_WORKDIR:-0}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
DURABILITY=none
FIO_FSYNC=0
if [ "$FSYNC" = 1 ]; then DURABILITY=fsync FIO_FSYNC=1; fi
GZIP_ARG=()
if [ "$GZIP" = 1 ]; then GZIP_ARG=(--gzip=1); fi

step() { printf '\n==> %s\n' "$*" >&2; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

command -v mpirun >/dev/null 2>&1 || { echo "mpirun is missing (apt-get install openmpi-bin libopenmpi-dev libclang-dev)" >&2; exit 1; }
if ! command -v fio >/dev/null 2>&1; then
  step "installing fio"
  apt-get install -y fio >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y fio >/dev/null; }
fi

step "building iok and the coordinator example with --features mpi (release)"
cargo build --release --features mpi --bin iok --example mpi_coordinator >&2
IOK=target/release/iok
COORD=target/release/examples/mpi_coordinator

mkdir -p "$WORKDIR/in"
cleanup() { if [ "$KEEP_WORKDIR" != 1 ]; then rm -rf "$WORKDIR"; fi; }
trap cleanup EXIT

step "generating $FILES trace files of $LINES_PER_FILE lines in $WORKDIR/in"
for i in $(seq 1 "$FILES"); do
  "$IOK" trace-gen -o "$WORKDIR/in/trace-$(printf %04d "$i").pfw" --lines "$LINES_PER_FILE" --seed "$i" >/dev/null
done
BYTES=$(cat "$WORKDIR"/in/*.pfw | wc -c)
CORES=$(nproc)
printf 'input: %s files, %s bytes (%.1f MiB) on %s (%s); %s cores; gzip %s; durability %s; mpi ranks run --producers %s\n' \
  "$FILES" "$BYTES" "$(calc "$BYTES / 1048576")" "$WORKDIR" "$(stat -f -c %T "$WORKDIR")" \
  "$CORES" "$GZIP" "$DURABILITY" "$MPI_PRODUCERS"

# Seconds (wall clock) that "$@" takes; stdout+stderr to $WORKDIR/last.out.
# The previous run's dirty pages are written back first, outside the timing.
timed() {
  local start end
  sync
  start=$(date +%s.%N)
  "$@" >"$WORKDIR/last.out" 2>&1 || {
    echo "command failed: $*" >&2
    tail -20 "$WORKDIR/last.out" >&2
    exit 1
  }
  end=$(date +%s.%N)
  calc "$end - $start"
}

step "warm-up merge (reads the chunk size for fio's --bs)"
"$IOK" merge "$WORKDIR/in" -o "$WORKDIR/out" --force --durability none >"$WORKDIR/warm.out"
cat "$WORKDIR/warm.out" >&2
CHUNK_BYTES=$(sed -n 's/.*chunk \([0-9.]*\) \([KMG]\)iB.*/\1 \2/p' "$WORKDIR/warm.out" |
  awk '{ m = ($2 == "K") ? 1024 : ($2 == "M") ? 1048576 : 1073741824; printf "%d", $1 * m }')
[ -n "$CHUNK_BYTES" ] || { echo "no chunk size in: $(cat "$WORKDIR/warm.out")" >&2; exit 1; }
rm -f "$WORKDIR/out"
echo "writer chunk size: $CHUNK_BYTES bytes"

declare -A T_MPI T_ONE T_FIO R_MPI R_ONE RES_N RES_US RES_MAX
for round in $(seq 1 "$ROUNDS"); do
  step "round $round of $ROUNDS (load before: $(load))"
  for n in $RANK_SET; do
    # Alternate which tool goes first from round to round.
    tools=(mpi one fio)
    if (( round % 2 == 0 )); then tools=(fio one mpi); fi
    for tool in "${tools[@]}"; do
      case $tool in
        mpi)
          t=$(timed "${MPIRUN[@]}" -x IOK_MPI_COUNTERS="$COUNTERS" -n "$n" "$IOK" merge --mpi "$WORKDIR/in" -o "$WORKDIR/out" --force \
            --producers "$MPI_PRODUCERS" --durability "$DURABILITY" "${GZIP_ARG[@]}")
          T_MPI[$n]+="$t "
          R_MPI[$n]+="$(sed -n 's/^merged.*, \([0-9.]*\) MiB\/s$/\1/p' "$WORKDIR/last.out") "
          # "coordination (...): K reservations, mean M us, slowest S us; ..."
          line=$(grep '^coordination' "$WORKDIR/last.out" || true)
          RES_N[$n]+="$(sed -n 's/.*: \([0-9]*\) reservations.*/\1/p' <<<"$line") "
          RES_US[$n]+="$(sed -n 's/.*mean \([0-9.]*\) us.*/\1/p' <<<"$line") "
          RES_MAX[$n]+="$(sed -n 's/.*slowest \([0-9.]*\) us.*/\1/p' <<<"$line") "
          [ "$GZIP" = 1 ] || [ "$(wc -c <"$WORKDIR/out")" = "$BYTES" ] ||
            { echo "mpi merge output has $(wc -c <"$WORKDIR/out") bytes, inputs $BYTES" >&2; exit 1; }
          ;;
        one)
          t=$(timed "$IOK" merge "$WORKDIR/in" -o "$WORKDIR/out" --force --producers "$n" \
            --durability "$DURABILITY" "${GZIP_ARG[@]}")
          T_ONE[$n]+="$t "
          R_ONE[$n]+="$(sed -n 's/^merged.*, \([0-9.]*\) MiB\/s$/\1/p' "$WORKDIR/last.out") "
          ;;
        fio)
          per_job=$(( (BYTES / n + CHUNK_BYTES - 1) / CHUNK_BYTES * CHUNK_BYTES ))
          t=$(timed fio --name=mpi-merge-cmp --filename="$WORKDIR/out" --rw=write --ioengine=psync \
            --bs="$CHUNK_BYTES" --size="$per_job" --offset_increment="$per_job" --numjobs="$n" \
            --end_fsync="$FIO_FSYNC" --group_reporting --output-format=terse)
          T_FIO[$n]+="$t "
          ;;
      esac
      rm -f "$WORKDIR/out"
    done
  done
  echo "round $round: load after: $(load)" >&2
done

step "the coordinator alone: $RESERVE_CALLS back-to-back 1 MiB reserve_bytes per rank, every rank at once"
declare -A COORD_INLINE COORD_FUNNEL
for n in $RANK_SET; do
  COORD_INLINE[$n]=$("${MPIRUN[@]}" -n "$n" "$COORD" --reserve-calls "$RESERVE_CALLS" | sed -n 's/^reserve_bytes:.*mean \([0-9.]*\) us.*/\1/p')
  COORD_FUNNEL[$n]=$("${MPIRUN[@]}" -n "$n" "$COORD" --funnelled --reserve-calls "$RESERVE_CALLS" | sed -n 's/^reserve_bytes:.*mean \([0-9.]*\) us.*/\1/p')
done

mib() { calc "$BYTES / 1048576 / $1"; }
echo
printf 'median of %s rounds, MiB/s of input: wall clock with start-up (mpirun, fio) and, for iok, its own\n' "$ROUNDS"
printf 'summary (first read to finish; mpi: total bytes over the slowest rank); %s cores; merge --mpi counters: %s\n' "$CORES" "$COUNTERS"
printf '%-4s %9s %9s %9s %9s %9s %9s %9s %8s %9s %9s %11s %11s %9s  %s\n' \
  N "mpi" "mpi_run" "1-proc" "1p_run" "fio" "mpi/1p" "run_ratio" "reserves" "mean_us" "max_us" "coord_inl" "coord_fun" "chunk_us" "note"
for n in $RANK_SET; do
  # shellcheck disable=SC2086
  t_mpi=$(median ${T_MPI[$n]}); t_one=$(median ${T_ONE[$n]}); t_fio=$(median ${T_FIO[$n]})
  # shellcheck disable=SC2086
  res_n=$(median ${RES_N[$n]:-0}); res_us=$(median ${RES_US[$n]:-0}); res_max=$(median ${RES_MAX[$n]:-0})
  # One chunk's write time: chunk bytes at one fio job's share of the rate.
  chunk_us=$(calc "$CHUNK_BYTES / ($BYTES / $t_fio / $n) * 1000000")
  note=""
  if (( n * MPI_PRODUCERS > CORES || n > CORES )); then note="oversubscribed: $n ranks on $CORES cores"; fi
  # shellcheck disable=SC2086
  r_mpi=$(median ${R_MPI[$n]:-0}); r_one=$(median ${R_ONE[$n]:-0})
  printf '%-4s %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f %9.2f %8s %9.2f %9.1f %11.2f %11.2f %9.0f  %s\n' \
    "$n" "$(mib "$t_mpi")" "$r_mpi" "$(mib "$t_one")" "$r_one" "$(mib "$t_fio")" "$(calc "$t_one / $t_mpi")" \
    "$(calc "$r_mpi / ($r_one + 0.000001)")" \
    "$res_n" "$res_us" "$res_max" "${COORD_INLINE[$n]:-0}" "${COORD_FUNNEL[$n]:-0}" "$chunk_us" "$note"
  printf '     coordination per reserved chunk: %.2f%% of a chunk'"'"'s write time (in the merge), %.2f%% (coordinator alone, inline)\n' \
    "$(calc "$res_us / $chunk_us * 100")" "$(calc "${COORD_INLINE[$n]:-0} / $chunk_us * 100")"
done
echo "load average at the end: $(load)"
