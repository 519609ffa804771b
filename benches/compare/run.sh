#!/usr/bin/env bash
# Side-by-side I/O comparison (`just compare`): fio (io_uring, psync),
# iokernel (uring, epoll, pool, sync fallback) via `iok bench`, and the
# peers tokio (benches/compare), compio (benches/compare-compio) and monoio
# (benches/compare-monoio), each a crate of its own, on the same files, in
# one run. A peer that does not build or cannot start here (no io_uring,
# say) is left out with the reason printed; the run goes on without it.
#
# For each test the contenders run RUNS times, alternating (the starting
# contender rotates every round); the summary prints per-contender medians,
# each median as a ratio to the test's anchor (fio io_uring for reads and
# writes, tokio for echo) and to the test's best peer (the fastest of
# compio, monoio and tokio, and for reads fio io_uring too; for echo also
# the lowest server CPU per round trip), then the issue 16 targets with
# met/MISSED. Every fio command line is printed as run.
#
# The echo rows also carry a bare io_uring loop (benches/compare-uring-bare),
# not a peer: an echo server written straight on io_uring with no runtime,
# as uring-bare (one recv entry per message, what every server here does)
# and uring-bare-multishot (a multishot recv into provided buffers), and
# with BARE's fixed modes the same two with each socket a registered file
# (uring-bare-fixed, uring-bare-multishot-fixed). Its
# user time is what an io_uring server spends in user space at the least;
# its system time is not a floor (it depends on when each recv reaches the
# kernel: one that finds no data arms a poll).
#
# Echo: one load generator (benches/compare echo-load, one thread) against
# each server (one server thread each: iok bench --serve-echo on uring and
# epoll, tokio, compio, monoio); each shape of ECHO_SET ("CONNSxBYTES") is
# a test of its own. The server's CPU per round trip is its utime+stime
# (/proc/PID/stat) over the measured window divided by the round trips.
#
# Knobs (environment): RUNS=5 FILE_MIB=1024 HOT_SECS=3 COLD_OPS=8192
# THREADS=1 ECHO_SET="16x64 256x64 16x4096 256x4096" (or the older
# ECHO_CONNS=16 ECHO_BYTES=64 for one shape) ECHO_SECS=3 DIR=target/compare
# TESTS="hot cold write echo" ONLY="" (contenders to keep, e.g. "fio-io_uring
# uring monoio") PEERS="compio monoio" (the optional peers to build)
# BARE="oneshot multishot" (the bare loop's modes on the echo rows, of
# oneshot, multishot, oneshot-fixed, multishot-fixed; "" for none)
# IOK_BASELINE="" (another iok build, run as contender uring-base on the
# read and echo rows: before/after side by side). compio and monoio run one runtime
# thread, so they are left out when THREADS is not 1. Output: a log and
# results.tsv in DIR, and a markdown summary on stdout (the README's
# Performance table comes from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

RUNS=${RUNS:-5}
FILE_MIB=${FILE_MIB:-1024}
HOT_SECS=${HOT_SECS:-3}
COLD_OPS=${COLD_OPS:-8192}
THREADS=${THREADS:-1}
if [[ -z ${ECHO_SET:-} ]]; then
  if [[ -n ${ECHO_CONNS:-}${ECHO_BYTES:-} ]]; then
    ECHO_SET="${ECHO_CONNS:-16}x${ECHO_BYTES:-64}"
  else
    ECHO_SET="16x64 256x64 16x4096 256x4096"
  fi
fi
ECHO_SECS=${ECHO_SECS:-3}
PEERS=${PEERS:-"compio monoio"}
BARE=${BARE-"oneshot multishot"}
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

say "building iok and the comparison crates (release)"
cargo build --release --bin iok >&2
cargo build --release --manifest-path benches/compare/Cargo.toml >&2
IOK=$ROOT/target/release/iok
CMP=$ROOT/benches/compare/target/release/iokernel-compare

# The optional peers: built into the tokio crate's target dir (shared
# dependencies build once); one that does not build is left out.
declare -A PEER_BIN=()
for p in $PEERS; do
  if [[ $THREADS != 1 ]]; then
    say "leaving out $p: it runs one runtime thread and THREADS=$THREADS"
    continue
  fi
  if cargo build --release --manifest-path "benches/compare-$p/Cargo.toml" \
    --target-dir benches/compare/target >"$DIR/build-$p.log" 2>&1; then
    PEER_BIN[$p]=$ROOT/benches/compare/target/release/iokernel-compare-$p
  else
    tail -n 20 "$DIR/build-$p.log" >&2
    say "leaving out $p: it did not build here (log: $DIR/build-$p.log)"
  fi
done

say "preparing $FILE ($FILE_MIB MiB) and $WFILE"
# iok bench never writes into an existing file: a data file of this
# script's left by a run with a smaller FILE_MIB is made again.
if [[ -f $FILE && $(stat -c %s "$FILE") -lt $((FILE_MIB << 20)) ]]; then rm -f "$FILE"; fi
"$IOK" bench --file "$FILE" --file-mib "$FILE_MIB" --backend sync --test write --json >/dev/null

# A peer that built but cannot run here (io_uring refused, say) is left out
# too: one hot read each, before any test.
for p in "${!PEER_BIN[@]}"; do
  if ! "${PEER_BIN[$p]}" "$p-read" "$FILE" 1 1 ops:1 hot >/dev/null 2>"$DIR/probe-$p.log"; then
    cat "$DIR/probe-$p.log" >&2
    say "leaving out $p: it does not run here"
    unset "PEER_BIN[$p]"
  fi
done
PEER_NAMES=()
for p in $PEERS; do
  if [[ -n ${PEER_BIN[$p]:-} ]]; then PEER_NAMES+=("$p"); fi
done

# The bare io_uring loop's modes, as contenders uring-bare[-multishot][-fixed].
BARE_NAMES=()
BARE_BIN=$ROOT/benches/compare/target/release/iokernel-compare-uring-bare
if [[ -n $BARE && $TESTS == *echo* ]]; then
  if [[ $THREADS != 1 ]]; then
    say "leaving out the bare io_uring loop: it runs one thread and THREADS=$THREADS"
  elif cargo build --release --manifest-path benches/compare-uring-bare/Cargo.toml \
    --target-dir benches/compare/target >"$DIR/build-uring-bare.log" 2>&1; then
    for mode in $BARE; do
      case $mode in
        oneshot) BARE_NAMES+=(uring-bare) ;;
        multishot) BARE_NAMES+=(uring-bare-multishot) ;;
        oneshot-fixed) BARE_NAMES+=(uring-bare-fixed) ;;
        multishot-fixed) BARE_NAMES+=(uring-bare-multishot-fixed) ;;
        *) say "BARE: unknown mode $mode (oneshot, multishot, oneshot-fixed, multishot-fixed)"; exit 2 ;;
      esac
    done
  else
    tail -n 20 "$DIR/build-uring-bare.log" >&2
    say "leaving out the bare io_uring loop: it did not build here (log: $DIR/build-uring-bare.log)"
  fi
fi

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
    rr-*:tokio | rr-*:compio | rr-*:monoio)
      local limit=ops:$COLD_OPS bin=$CMP
      [[ $cache == hot ]] && { warm; limit=secs:$HOT_SECS; }
      [[ $who == tokio ]] || bin=${PEER_BIN[$who]}
      "$bin" "$who-read" "$FILE" "$qd" "$THREADS" "$limit" "$cache" ;;
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
    write:compio | write:monoio) "${PEER_BIN[$who]}" "$who-write" "$WFILE" "$FILE_MIB" "$THREADS" ;;
    write:*)
      "$IOK" bench --file "$FILE" --file-mib "$FILE_MIB" --backend "$who" --test write \
        --threads "$THREADS" --json ;;
    echo-*:*)
      local shape=${test#echo-}
      "$CMP" echo-load "${ECHO_ADDR[$who]}" "${shape%x*}" "${shape#*x}" "$ECHO_SECS" "$who" \
        "${ECHO_PID[$who]}" ;;
  esac
}

keep() { [[ -z ${ONLY:-} || " $ONLY uring-base " == *" $1 "* ]]; }

# Run every contender of a test RUNS times, rotating who goes first.
alternate() { # test anchor contenders...
  local test=$1 anchor=$2
  shift 2
  local who=() c
  if [[ -n ${IOK_BASELINE:-} && $test == rr-* ]]; then set -- "$@" uring-base; fi
  for c in "$@"; do
    if keep "$c"; then who+=("$c"); fi
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
LOAD_BEFORE=$(uptime)
for t in $TESTS; do
  case $t in
    hot | cold)
      alternate "rr-qd1-$t" fio-io_uring fio-io_uring fio-psync uring epoll pool sync tokio "${PEER_NAMES[@]}"
      alternate "rr-qd32-$t" fio-io_uring fio-io_uring uring epoll pool tokio "${PEER_NAMES[@]}" ;;
    write)
      alternate write fio-io_uring fio-io_uring fio-psync uring epoll pool sync tokio "${PEER_NAMES[@]}" ;;
    echo)
      declare -A ECHO_ADDR=() ECHO_PID=()
      SERVERS=()
      trap 'for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
      ECHO_WHO=()
      BASE_NAMES=()
      if [[ -n ${IOK_BASELINE:-} ]]; then BASE_NAMES=(uring-base); fi
      for s in tokio uring epoll "${BASE_NAMES[@]}" "${PEER_NAMES[@]}" "${BARE_NAMES[@]}"; do
        keep "$s" || continue
        case $s in
          tokio) "$CMP" tokio-echo 127.0.0.1:0 "$THREADS" >"$DIR/echo-$s.out" 2>&1 & ;;
          uring-bare) "$BARE_BIN" bare-echo 127.0.0.1:0 1 oneshot >"$DIR/echo-$s.out" 2>&1 & ;;
          uring-bare-multishot)
            "$BARE_BIN" bare-echo 127.0.0.1:0 1 multishot >"$DIR/echo-$s.out" 2>&1 & ;;
          uring-bare-fixed)
            "$BARE_BIN" bare-echo 127.0.0.1:0 1 oneshot-fixed >"$DIR/echo-$s.out" 2>&1 & ;;
          uring-bare-multishot-fixed)
            "$BARE_BIN" bare-echo 127.0.0.1:0 1 multishot-fixed >"$DIR/echo-$s.out" 2>&1 & ;;
          uring | epoll)
            "$IOK" bench --serve-echo 127.0.0.1:0 --backend "$s" --threads "$THREADS" >"$DIR/echo-$s.out" 2>&1 & ;;
          uring-base)
            "$IOK_BASELINE" bench --serve-echo 127.0.0.1:0 --backend uring --threads "$THREADS" \
              >"$DIR/echo-$s.out" 2>&1 & ;;
          *) "${PEER_BIN[$s]}" "$s-echo" 127.0.0.1:0 "$THREADS" >"$DIR/echo-$s.out" 2>&1 & ;;
        esac
        ECHO_PID[$s]=$!
        SERVERS+=($!)
        ECHO_WHO+=("$s")
        for _ in $(seq 50); do grep -q listening "$DIR/echo-$s.out" && break; sleep 0.1; done
        ECHO_ADDR[$s]=$(awk '/listening on/ {print $NF}' "$DIR/echo-$s.out")
        [[ -n ${ECHO_ADDR[$s]} ]] || { cat "$DIR/echo-$s.out" >&2; exit 1; }
      done
      for shape in $ECHO_SET; do
        alternate "echo-$shape" tokio "${ECHO_WHO[@]}"
      done
      for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done
      SERVERS=() ;;
  esac
done
LOAD_AFTER=$(uptime)

say "summary (medians of $RUNS alternating runs)"
echo "Load before: $LOAD_BEFORE"
echo "Load after:  $LOAD_AFTER"
echo "Peers available: tokio${PEER_NAMES[*]:+ ${PEER_NAMES[*]}} (ONLY may keep fewer)"
echo "Bare io_uring echo loop: ${BARE_NAMES[*]:-none} (not peers)"
echo
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

def med(test, who, key):
    vals = [r[key] for r in rows.get(test, {}).get(who, []) if key in r]
    return statistics.median(vals) if vals else None

def peers_of(test, names=None):
    """The peers a row is judged against (present in it): `names`, or by
    default compio, monoio, tokio, and for reads fio io_uring too (the
    issue's cold target is fio's level)."""
    if names is None:
        names = ("compio", "monoio", "tokio") + (("fio-io_uring",) if test.startswith("rr-") else ())
    return [p for p in names if p in rows.get(test, {})]

def best_peer(test, names=None):
    """(name, median ops/s) of the fastest peer, or None."""
    got = [(med(test, p, "ops_per_s"), p) for p in peers_of(test, names)]
    return max(got)[::-1] if got else None

def best_cpu_peer(test, names=None):
    """(name, median server CPU us per round trip) of the leanest peer."""
    got = [(med(test, p, "server_cpu_us_per_op"), p) for p in peers_of(test, names)]
    got = [g for g in got if g[0]]
    return min(got)[::-1] if got else None

print("| test | contender | ops/s (median) | MiB/s | p50 us | p99 us | server CPU us/rt (user + sys) | "
      "ratio to anchor | ratio to best peer | runs (ops/s) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for test in order:
    base = med(test, anchors[test], "ops_per_s")
    best = best_peer(test)
    best_cpu = best_cpu_peer(test)
    for who in rows[test]:
        ops = med(test, who, "ops_per_s")
        ratio = f"{ops / base:.2f}x" if base else "-"
        if who == anchors[test]:
            ratio += " (anchor)"
        cpu = med(test, who, "server_cpu_us_per_op")
        user, sys_ = (med(test, who, f"server_{k}_us_per_op") for k in ("user", "sys"))
        cpu_cell = f"{cpu:.2f}" if cpu else "-"
        if cpu and user is not None and sys_ is not None:
            cpu_cell += f" ({user:.2f} + {sys_:.2f})"
        vs = "-"
        if best and best[1]:
            vs = f"{ops / best[1]:.2f}x" + (" (best peer)" if who == best[0] else "")
        if cpu and best_cpu:
            # Lower CPU is better: the ratio is the peer's over this one.
            vs += f", CPU {best_cpu[1] / cpu:.2f}x" + (" (leanest peer)" if who == best_cpu[0] else "")
        runs = " ".join(f"{r['ops_per_s']:.0f}" for r in rows[test][who])
        print(f"| {test} | {who} | {ops:,.0f} | {med(test, who, 'mib_per_s'):,.1f} | "
              f"{med(test, who, 'p50_us'):.1f} | {med(test, who, 'p99_us'):.1f} | "
              f"{cpu_cell} | {ratio} | {vs} | {runs} |")
print()
print("The best peer of a row is the fastest of compio, monoio and tokio (reads: and fio "
      "io_uring); on echo rows \"CPU\" is the leanest peer's server CPU per round trip "
      "over this contender's (above 1 = this one spends less). The server CPU column is "
      "the median total, with the medians of its user and system parts in brackets.")
print()

def verdict(label, got, want, detail=""):
    ok = got >= want
    print(f"- {label}: {got:.2f}x (target >= {want}x){detail}: {'met' if ok else 'MISSED'}")
    return ok

def missing(label):
    print(f"- {label}: not measured in this run")

def ratio_to(test, who, other_ops, label, want, detail=""):
    ops = med(test, who, "ops_per_s")
    if ops is None or not other_ops:
        return missing(label)
    verdict(label, ops / other_ops, want, detail)

print("Targets (issue 16):")
qd1 = best_peer("rr-qd1-hot", ("compio", "monoio"))
for b in ("uring", "epoll", "pool"):
    label = f"hot QD1: iokernel {b} / best of compio, monoio"
    if qd1:
        ratio_to("rr-qd1-hot", b, qd1[1], label, 1.1, f" [{qd1[0]}]")
    else:
        missing(label)
qd32 = best_peer("rr-qd32-hot")
label = "hot QD32: iokernel uring / best peer"
if qd32:
    ratio_to("rr-qd32-hot", "uring", qd32[1], label, 1.1, f" [{qd32[0]}]")
else:
    missing(label)
ratio_to("rr-qd32-cold", "uring", med("rr-qd32-cold", "fio-io_uring", "ops_per_s"),
         "cold QD32: iokernel uring / fio io_uring", 1.0)

def echo_target(test, who, against, want):
    """Server CPU per round trip against the leanest of `against` (>= want),
    and throughput not lower than the fastest of them."""
    label = f"{test}: iokernel {who} / {'best peer' if len(against) > 1 else against[0]} in server CPU per round trip, throughput not lower"
    lean = best_cpu_peer(test, against)
    fast = best_peer(test, against)
    cpu = med(test, who, "server_cpu_us_per_op")
    ops = med(test, who, "ops_per_s")
    if not (lean and fast and cpu and ops):
        return missing(label)
    cpu_ratio = lean[1] / cpu
    ops_ratio = ops / fast[1]
    ok = cpu_ratio >= want and ops_ratio >= 1.0
    split = ""
    parts = [(med(test, w, "server_user_us_per_op"), med(test, w, "server_sys_us_per_op"))
             for w in (who, lean[0])]
    if all(u is not None and s is not None for u, s in parts):
        (u, s), (lu, ls) = parts
        split = f"; user + sys us/rt {u:.2f} + {s:.2f} against {lu:.2f} + {ls:.2f}"
    print(f"- {label}: CPU {cpu_ratio:.2f}x [{lean[0]}] (target >= {want}x), "
          f"round trips/s {ops_ratio:.2f}x [{fast[0]}] (target >= 1.0x): "
          f"{'met' if ok else 'MISSED'}{split}")

for test in order:
    if test.startswith("echo-"):
        echo_target(test, "uring", ("compio", "monoio", "tokio"), 1.05)
        echo_target(test, "epoll", ("tokio",), 1.0)

bares = [(t, b) for t in order if t.startswith("echo-")
         for b in ("uring-bare", "uring-bare-multishot", "uring-bare-fixed",
                   "uring-bare-multishot-fixed") if b in rows[t]]
if bares:
    print()
    print("The bare io_uring loop (no runtime; not a peer, not a target), server CPU per round "
          "trip against the leanest peer, and iokernel uring's user and system time against its:")
for test, bare in bares:
    lean = best_cpu_peer(test, ("compio", "monoio", "tokio"))
    cpu = med(test, bare, "server_cpu_us_per_op")
    user, sys_ = (med(test, bare, f"server_{k}_us_per_op") for k in ("user", "sys"))
    if not (lean and cpu):
        continue
    line = f"- {test}: {bare} {cpu:.2f} us ({user:.2f} + {sys_:.2f}), CPU {lean[1] / cpu:.2f}x [{lean[0]}]"
    ours = [med(test, "uring", f"server_{k}_us_per_op") for k in ("user", "sys")]
    if all(v is not None for v in ours):
        line += f"; iokernel uring {ours[0]:.2f} + {ours[1]:.2f}"
    print(line)
print()
print("Targets (issue 4, still standing):")
ratio_to("rr-qd32-cold", "uring", med("rr-qd32-cold", "pool", "ops_per_s"),
         "cold QD32: iokernel uring / iokernel pool (same threads)", 2.0)
ratio_to("rr-qd1-hot", "sync", med("rr-qd1-hot", "fio-psync", "ops_per_s"),
         "hot QD1: iokernel sync fallback / fio psync", 0.95)
print()
print("fio command lines used:")
seen = set()
for cmd in open(sys.argv[2]):
    cmd = cmd.strip()
    if cmd and cmd not in seen:
        seen.add(cmd)
        print("    " + cmd)
EOF
