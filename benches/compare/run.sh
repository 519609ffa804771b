#!/usr/bin/env bash
# Side-by-side I/O comparison (`just compare`): fio (io_uring, psync),
# iokernel (uring, epoll, pool, sync fallback) via `iok bench`, and tokio
# (benches/compare, a crate of its own), on the same files, in one run.
#
# For each test the contenders run RUNS times, alternating (the starting
# contender rotates every round); the summary prints per-contender medians
# and each median as a ratio to the test's anchor (fio io_uring for reads
# and writes, tokio for echo). Every fio command line is printed as run.
#
# Knobs (environment): RUNS=5 FILE_MIB=1024 HOT_SECS=3 COLD_OPS=8192
# THREADS=1 ECHO_CONNS=16 ECHO_BYTES=64 ECHO_SECS=3 DIR=target/compare
# TESTS="hot cold write echo" ONLY="" (contenders to keep, e.g. "fio-io_uring
# uring") IOK_BASELINE="" (another iok build, run as contender uring-base on
# the read rows: before/after side by side). Output: a log and results.tsv
# in DIR, and a markdown summary on stdout (the README's Performance table comes from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

RUNS=${RUNS:-5}
FILE_MIB=${FILE_MIB:-1024}
HOT_SECS=${HOT_SECS:-3}
COLD_OPS=${COLD_OPS:-8192}
THREADS=${THREADS:-1}
ECHO_CONNS=${ECHO_CONNS:-16}
ECHO_BYTES=${ECHO_BYTES:-64}
ECHO_SECS=${ECHO_SECS:-3}
TESTS=${TESTS:-"hot cold write echo"}
DIR=${DIR:-$ROOT/target/compare}
mkdir -p "$DIR"
FILE=$DIR/data.bin
WFILE=$FILE.write
TSV=$DIR/results.tsv
: >"$TSV"

say() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v fio >/dev/null 2>&1; then
  say "installing fio"
  apt-get install -y fio >&2 || { apt-get update >&2 && apt-get install -y fio >&2; }
fi
command -v python3 >/dev/null 2>&1 || apt-get install -y python3 >&2

say "building iok and the comparison crate (release)"
cargo build --release --bin iok >&2
cargo build --release --manifest-path benches/compare/Cargo.toml >&2
IOK=$ROOT/target/release/iok
CMP=$ROOT/benches/compare/target/release/iokernel-compare

say "preparing $FILE ($FILE_MIB MiB) and $WFILE"
"$IOK" bench --file "$FILE" --file-mib "$FILE_MIB" --backend sync --test write --json >/dev/null

# fio's JSON -> the row shape iok bench --json prints.
fio_row() { # name ddir test
  python3 -c '
import json, sys
name, ddir, test = sys.argv[1:4]
raw = sys.stdin.read()
job = json.loads(raw[raw.index("{"):])["jobs"][0][ddir]
pct = job["lat_ns"].get("percentile", {})
secs = job["runtime"] / 1000.0
print(json.dumps({"backend": name, "test": test, "ops": job["total_ios"], "seconds": secs,
  "ops_per_s": job["iops"], "mib_per_s": job["bw_bytes"] / 1048576.0,
  "p50_us": pct.get("50.000000", 0) / 1000.0, "p99_us": pct.get("99.000000", 0) / 1000.0}))
' "$@"
}

run_fio() { # name ddir test args...
  local name=$1 ddir=$2 test=$3
  shift 3
  echo "fio $*" >>"$DIR/fio-commands.txt"
  fio "$@" --output-format=json | fio_row "$name" "$ddir" "$test"
}

warm() { cat "$FILE" >/dev/null; }

# One contender's single run for a test; prints one JSON row.
contender() { # test contender
  local test=$1 who=$2 qd cache
  case $test in
    rr-qd*-*) qd=${test#rr-qd}; qd=${qd%%-*}; cache=${test##*-} ;;
  esac
  local common=(--name=bench --filename="$FILE" --size="${FILE_MIB}m" --direct=0
    --numjobs=1 --thread --lat_percentiles=1 --norandommap --randrepeat=0)
  local hot=(--invalidate=0 --runtime="$(awk "BEGIN { print int($HOT_SECS * 1000) }")ms" --time_based)
  local cold=(--invalidate=1 --io_size=$((COLD_OPS * 4))k)
  case $test:$who in
    rr-*:fio-*)
      local engine=${who#fio-} limit
      [[ $cache == hot ]] && { warm; limit=("${hot[@]}"); } || limit=("${cold[@]}")
      run_fio "$who" read "randread-4k-qd$qd-$cache" "${common[@]}" --rw=randread --bs=4k \
        --ioengine="$engine" --iodepth="$qd" "${limit[@]}" ;;
    rr-*:tokio)
      local limit=ops:$COLD_OPS
      [[ $cache == hot ]] && { warm; limit=secs:$HOT_SECS; }
      "$CMP" tokio-read "$FILE" "$qd" "$THREADS" "$limit" "$cache" ;;
    rr-*:uring-base)
      local limit=(--cold-ops "$COLD_OPS")
      [[ $cache == hot ]] && { warm; limit=(--seconds "$HOT_SECS"); }
      "$IOK_BASELINE" bench --file "$FILE" --file-mib "$FILE_MIB" --backend uring --test read \
        --qd "$qd" --cache "$cache" --threads "$THREADS" "${limit[@]}" --json ;;
    rr-*:*)
      local limit=(--cold-ops "$COLD_OPS")
      [[ $cache == hot ]] && { warm; limit=(--seconds "$HOT_SECS"); }
      "$IOK" bench --file "$FILE" --file-mib "$FILE_MIB" --backend "$who" --test read \
        --qd "$qd" --cache "$cache" --threads "$THREADS" "${limit[@]}" --json ;;
    write:fio-*)
      run_fio "$who" write seqwrite-1m-fsync --name=bench --filename="$WFILE" \
        --size="${FILE_MIB}m" --direct=0 --numjobs=1 --thread --lat_percentiles=1 \
        --rw=write --bs=1m --iodepth=1 --ioengine="${who#fio-}" --end_fsync=1 ;;
    write:tokio) "$CMP" tokio-write "$WFILE" "$FILE_MIB" "$THREADS" ;;
    write:*)
      "$IOK" bench --file "$FILE" --file-mib "$FILE_MIB" --backend "$who" --test write \
        --threads "$THREADS" --json ;;
    echo:*) "$CMP" echo-load "${ECHO_ADDR[$who]}" "$ECHO_CONNS" "$ECHO_BYTES" "$ECHO_SECS" "$who" ;;
  esac
}

# Run every contender of a test RUNS times, rotating who goes first.
alternate() { # test anchor contenders...
  local test=$1 anchor=$2
  shift 2
  local who=() c
  if [[ -n ${IOK_BASELINE:-} && $test == rr-* ]]; then set -- "$@" uring-base; fi
  for c in "$@"; do
    if [[ -z ${ONLY:-} || " $ONLY uring-base " == *" $c "* ]]; then who+=("$c"); fi
  done
  local n=${#who[@]}
  say "$test: ${who[*]} x $RUNS (anchor $anchor)"
  for ((round = 0; round < RUNS; round++)); do
    for ((k = 0; k < n; k++)); do
      local c=${who[$(((round + k) % n))]} row
      row=$(contender "$test" "$c" | tail -n 1)
      echo "$row" >>"$DIR/rows.jsonl"
      printf '%s\t%s\t%s\t%s\t%s\n' "$test" "$anchor" "$c" "$round" "$row" >>"$TSV"
      printf '  round %d %-10s %s\n' "$round" "$c" "$row" >&2
    done
  done
}

: >"$DIR/fio-commands.txt"
: >"$DIR/rows.jsonl"
for t in $TESTS; do
  case $t in
    hot | cold)
      alternate "rr-qd1-$t" fio-io_uring fio-io_uring fio-psync uring epoll pool sync tokio
      alternate "rr-qd32-$t" fio-io_uring fio-io_uring uring epoll pool tokio ;;
    write)
      alternate write fio-io_uring fio-io_uring fio-psync uring epoll pool sync tokio ;;
    echo)
      declare -A ECHO_ADDR=()
      SERVERS=()
      trap 'for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
      for s in tokio uring epoll; do
        if [[ $s == tokio ]]; then
          "$CMP" tokio-echo 127.0.0.1:0 "$THREADS" >"$DIR/echo-$s.out" 2>&1 &
        else
          "$IOK" bench --serve-echo 127.0.0.1:0 --backend "$s" --threads "$THREADS" >"$DIR/echo-$s.out" 2>&1 &
        fi
        SERVERS+=($!)
        for _ in $(seq 50); do grep -q listening "$DIR/echo-$s.out" && break; sleep 0.1; done
        ECHO_ADDR[$s]=$(awk '/listening on/ {print $NF}' "$DIR/echo-$s.out")
        [[ -n ${ECHO_ADDR[$s]} ]] || { cat "$DIR/echo-$s.out" >&2; exit 1; }
      done
      alternate echo tokio tokio uring epoll
      for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done ;;
  esac
done

say "summary (medians of $RUNS alternating runs)"
python3 - "$TSV" "$DIR/fio-commands.txt" <<'EOF'
import json, statistics, sys
rows = {}
order = []
anchors = {}
for line in open(sys.argv[1]):
    test, anchor, who, _round, row = line.rstrip("\n").split("\t", 4)
    r = json.loads(row)
    if test not in rows:
        rows[test] = {}
        order.append(test)
    anchors[test] = anchor
    rows[test].setdefault(who, []).append(r)
print("| test | contender | ops/s (median) | MiB/s | p50 us | p99 us | ratio to anchor | runs (ops/s) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
for test in order:
    med = lambda who, k: statistics.median(r[k] for r in rows[test][who])
    base = med(anchors[test], "ops_per_s") if anchors[test] in rows[test] else None
    for who in rows[test]:
        ops = med(who, "ops_per_s")
        ratio = f"{ops / base:.2f}x" if base else "-"
        if who == anchors[test]:
            ratio += " (anchor)"
        runs = " ".join(f"{r['ops_per_s']:.0f}" for r in rows[test][who])
        print(f"| {test} | {who} | {ops:,.0f} | {med(who, 'mib_per_s'):,.1f} | "
              f"{med(who, 'p50_us'):.1f} | {med(who, 'p99_us'):.1f} | {ratio} | {runs} |")
print()
def target(test, who, anchor, want, label):
    try:
        m = lambda w: statistics.median(r["ops_per_s"] for r in rows[test][w])
        got = m(who) / m(anchor)
    except (KeyError, ZeroDivisionError):
        print(f"- {label}: not measured in this run")
        return
    verdict = "met" if got >= want else "MISSED"
    print(f"- {label}: {got:.2f}x (target >= {want}x): {verdict}")
print("Targets (issue 4):")
target("rr-qd32-cold", "uring", "fio-io_uring", 0.95, "cold QD32: iokernel uring / fio io_uring")
target("rr-qd32-cold", "uring", "pool", 2.0, "cold QD32: iokernel uring / iokernel pool (same threads)")
target("rr-qd32-hot", "uring", "fio-io_uring", 0.9, "hot QD32: iokernel uring / fio io_uring")
target("rr-qd1-hot", "sync", "fio-psync", 0.95, "hot QD1: iokernel sync fallback / fio psync")
print()
print("fio command lines used:")
seen = set()
for cmd in open(sys.argv[2]):
    cmd = cmd.strip()
    if cmd and cmd not in seen:
        seen.add(cmd)
        print("    " + cmd)
EOF
