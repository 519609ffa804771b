#!/usr/bin/env bash
# `iok merge --mpi` under mpirun (issue 13): the coordinator's own checks,
# then every layout (striped, padded, sharded, sharded --keep-shards) x
# gzip on/off x ordered on/off merged by RANKS ranks from a generated trace
# set, each output verified like the single-process tests (`iok
# verify-merge`: the multiset of lines, exact input order when ordered,
# padded stripe boundaries; `gzip -t` on gzip outputs); then the bad-input
# cases: ranks launched with different -o, a missing input, a corrupt
# input, and a rank that dies mid-write (test hook
# IOK_TEST_ONLY_ABORT_RANK) with every durability; and the
# coordinator over Open MPI's osc/pt2pt (refused with advice by default,
# working funnelled).
#
# Needs: `cargo build --release --features mpi --bin iok --example
# mpi_coordinator` and Open MPI's mpirun. Env: RANKS (default 4; runs
# oversubscribed), IOK (default target/release/iok). Takes about a minute
# on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

RANKS=${RANKS:-4}
IOK=${IOK:-target/release/iok}
COORD_EXAMPLE=${COORD_EXAMPLE:-target/release/examples/mpi_coordinator}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
STRIPE=65536

work=$(mktemp -d "${TMPDIR:-/tmp}/iok-mpi.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

say "== coordinator checks on $RANKS ranks"
"${MPIRUN[@]}" -n "$RANKS" "$COORD_EXAMPLE" || fail "mpi_coordinator on $RANKS ranks"

say "== trace set"
mkdir -p "$work/in"
# Uneven sizes, names that sort in generation order, some gzip.
for i in $(seq 1 10); do
  lines=$(( (i % 4 + 1) * 4000 ))
  if (( i % 3 == 0 )); then
    "$IOK" trace-gen -o "$work/in/trace-$(printf %02d "$i").pfw.gz" --lines "$lines" --seed "$i" --gzip 1 >/dev/null
  else
    "$IOK" trace-gen -o "$work/in/trace-$(printf %02d "$i").pfw" --lines "$lines" --seed "$i" >/dev/null
  fi
done
ls "$work/in" | sed 's/^/  /'

# merge NAME EXTRA_ARGS...: mpirun the merge of the trace directory.
merge() {
  local name=$1; shift
  "${MPIRUN[@]}" -n "$RANKS" "$IOK" merge --mpi "$work/in" -o "$work/$name" \
    --stripe-size "$STRIPE" --producers 2 "$@"
}

say "== every layout x gzip x ordered on $RANKS ranks"
for layout in striped padded sharded sharded-keep; do
  for gzip in off on; do
    for ordered in off on; do
      name="out-$layout-gzip_$gzip-ordered_$ordered"
      args=(--layout "${layout%-keep}" --durability none)
      [[ $layout == sharded-keep ]] && args+=(--keep-shards)
      [[ $gzip == on ]] && args+=(--gzip=1)
      [[ $ordered == on ]] && args+=(--ordered)
      if ! merge "$name" "${args[@]}" >"$work/$name.log" 2>&1; then
        fail "$name: merge failed:"; sed 's/^/    /' "$work/$name.log" | tail -5; continue
      fi
      grep -q "across $RANKS MPI ranks" "$work/$name.log" || fail "$name: no summary from rank 0"
      summaries=$(grep -c "^merged across" "$work/$name.log" || true)
      [[ $summaries == 1 ]] || fail "$name: $summaries summaries (rank 0 alone prints one)"
      if [[ $layout == sharded-keep ]]; then
        mapfile -t files < <(ls "$work/$name".shard_* 2>/dev/null | sort -V)
      else
        files=("$work/$name")
      fi
      (( ${#files[@]} > 0 )) || { fail "$name: no output files"; continue; }
      # Kept shards are numbered in global order (rank by rank): in input
      # order when ordered, read in that (version-sorted) order.
      check=(--ordered)
      [[ $ordered == off ]] && check=()
      [[ $layout == padded ]] && check+=(--padded-stripe "$STRIPE")
      outs=(); for f in "${files[@]}"; do outs+=(-o "$f"); done
      if verdict=$("$IOK" verify-merge "$work/in" "${outs[@]}" "${check[@]}" 2>&1); then
        say "  ok   $name (${#files[@]} file(s)): $verdict"
      else
        fail "$name: $verdict"
      fi
      if [[ $gzip == on ]]; then
        for f in "${files[@]}"; do gzip -t "$f" || fail "$name: gzip -t $f"; done
      fi
      rm -f "$work/$name" "$work/$name".shard_*
    done
  done
done

say "== atomic-rename and fsync on $RANKS ranks"
for durability in atomic-rename fsync; do
  name="out-durable-$durability"
  if merge "$name" --durability "$durability" --ordered >"$work/$name.log" 2>&1 \
    && verdict=$("$IOK" verify-merge "$work/in" -o "$work/$name" --ordered 2>&1); then
    say "  ok   $name: $verdict"
  else
    fail "$name:"; sed 's/^/    /' "$work/$name.log" | tail -5
  fi
  rm -f "$work/$name"
done

# expect_failure NAME NEEDLE... -- COMMAND...: COMMAND fails, its output
# names every NEEDLE, and no file named $work/NAME* exists afterwards.
expect_failure() {
  local name=$1; shift
  local needles=()
  while [[ $1 != -- ]]; do needles+=("$1"); shift; done
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    fail "$name: succeeded"; return
  fi
  for needle in "${needles[@]}"; do
    grep -qF -- "$needle" "$work/$name.log" || { fail "$name: output does not name '$needle':"; sed 's/^/    /' "$work/$name.log" | head -8; return; }
  done
  # Nothing it created may remain: not the output, not a shard, not an
  # atomic-rename temporary (.NAME.iok-tmp.*).
  left=$( { compgen -G "$work/$name*" || true; compgen -G "$work/.$name*" || true; } | grep -v '\.log$' || true)
  if [[ -n $left ]]; then
    fail "$name: left $(tr '\n' ' ' <<<"$left")"; return
  fi
  say "  ok   $name: refused, naming: ${needles[*]}"
}

say "== bad input across ranks"
half=$(( RANKS > 1 ? RANKS / 2 : 1 ))
expect_failure diff-o "different arguments" "-o" "rank $half" -- \
  "${MPIRUN[@]}" -n "$half" "$IOK" merge --mpi "$work/in" -o "$work/diff-o-a" \
  : -n "$half" "$IOK" merge --mpi "$work/in" -o "$work/diff-o-b"
expect_failure diff-layout "different arguments" "--layout" -- \
  "${MPIRUN[@]}" -n "$half" "$IOK" merge --mpi "$work/in" -o "$work/diff-layout" \
  : -n "$half" "$IOK" merge --mpi "$work/in" -o "$work/diff-layout" --layout padded
# The missing input is last, so the last rank inspects it.
expect_failure missing "rank $((RANKS - 1))" "$work/missing.pfw" "No such file" -- \
  "${MPIRUN[@]}" -n "$RANKS" "$IOK" merge --mpi "$work/in" "$work/missing.pfw" -o "$work/missing"
printf 'not gzip at all\n' >"$work/bad-in.pfw.gz"
expect_failure corrupt "rank $((RANKS - 1))" "bad-in.pfw.gz" "not gzip" -- \
  "${MPIRUN[@]}" -n "$RANKS" "$IOK" merge --mpi "$work/in" "$work/bad-in.pfw.gz" -o "$work/corrupt"
rm -f "$work/bad-in.pfw.gz"
# The last rank dies (SIGABRT, like a crash) after 3 reserved chunks; the
# job must fail and leave nothing: with atomic-rename the final name never
# appears, with fsync and none the partial output is removed (mpirun stops
# the other ranks with SIGTERM, whose signal handling removes what they
# created, and SIGKILL a moment later, after which each rank's cleanup
# helper removes what its rank had not).
dying=$((RANKS - 1))
for durability in atomic-rename fsync none; do
  expect_failure "dies-$durability" "rank $dying" "dying after" -- \
    "${MPIRUN[@]}" -x IOK_TEST_ONLY_ABORT_RANK="$dying:3" -n "$RANKS" "$IOK" merge --mpi "$work/in" \
    -o "$work/dies-$durability" --stripe-size "$STRIPE" --durability "$durability"
done

say "== the counters over osc/pt2pt (what Open MPI uses on networks without RDMA)"
# It refuses windows under MPI_THREAD_MULTIPLE: the default path must say
# what to do instead of aborting cryptically, and the funnelled path (MPI
# at THREAD_FUNNELED) must pass every check.
expect_failure pt2pt-auto "IOK_MPI_COUNTERS=funnelled" -- \
  "${MPIRUN[@]}" --mca osc pt2pt -n 2 "$COORD_EXAMPLE"
if "${MPIRUN[@]}" --mca osc pt2pt -n "$RANKS" "$COORD_EXAMPLE" --funnelled >"$work/pt2pt.log" 2>&1; then
  say "  ok   pt2pt-funnelled: $(grep 'every check passed' "$work/pt2pt.log")"
else
  fail "pt2pt-funnelled:"; sed 's/^/    /' "$work/pt2pt.log" | tail -5
fi

if (( failures > 0 )); then
  say "MPI matrix: $failures failure(s)"
  exit 1
fi
say "MPI matrix: every case passed on $RANKS ranks"
