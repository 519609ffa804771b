#!/usr/bin/env bash
# User-space instructions per echo round trip, counted by callgrind: a
# measure that does not move with the machine's load, unlike the server
# CPU per round trip of run.sh (which is what the targets are judged on).
#
# Each server runs under `valgrind --tool=callgrind` with one thread: iok
# bench --serve-echo on epoll (and IOK_BASELINE's, as epoll-base), and
# tokio's echo server from benches/compare. The load generator (natively)
# ping-pongs each shape of ECHO_SET for SECS seconds; the server's counts
# are then dumped and divided by the round trips the generator counted.
# The counters are zeroed once the server listens, so the count covers
# the connections' setup and the round trips, user space only: kernel work
# is not counted. io_uring servers (iokernel uring, compio, monoio) cannot run
# under valgrind, so they are not measured here.
#
# Knobs (environment): ECHO_SET="16x64 256x64" SECS=4 IOK_BASELINE=""
# DIR=target/echo-instructions. Output: one line per server and shape.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ECHO_SET=${ECHO_SET:-"16x64 256x64"}
SECS=${SECS:-4}
DIR=${DIR:-$ROOT/target/echo-instructions}
mkdir -p "$DIR"

command -v valgrind >/dev/null 2>&1 || apt-get install -y valgrind >&2
cargo build --release --bin iok >&2
cargo build --release --manifest-path benches/compare/Cargo.toml >&2
IOK=$ROOT/target/release/iok
CMP=$ROOT/benches/compare/target/release/iokernel-compare

servers=(epoll tokio)
if [[ -n ${IOK_BASELINE:-} ]]; then servers+=(epoll-base); fi

server_cmd() { # server -> command line
  case $1 in
    epoll) echo "$IOK bench --serve-echo 127.0.0.1:0 --backend epoll --threads 1" ;;
    epoll-base) echo "$IOK_BASELINE bench --serve-echo 127.0.0.1:0 --backend epoll --threads 1" ;;
    tokio) echo "$CMP tokio-echo 127.0.0.1:0 1" ;;
  esac
}

for shape in $ECHO_SET; do
  for s in "${servers[@]}"; do
    out=$DIR/callgrind-$s-$shape
    rm -f "$out" "$out".*
    # shellcheck disable=SC2046 # the command line splits into words
    valgrind --tool=callgrind --callgrind-out-file="$out" $(server_cmd "$s") \
      >"$DIR/server-$s.out" 2>"$DIR/server-$s.err" &
    pid=$!
    for _ in $(seq 200); do grep -q listening "$DIR/server-$s.out" && break; sleep 0.1; done
    addr=$(awk '/listening on/ {print $NF}' "$DIR/server-$s.out")
    [[ -n $addr ]] || { cat "$DIR/server-$s.err" >&2; exit 1; }
    # Counted from here: the server's start is left out.
    callgrind_control -z "$pid" >/dev/null
    "$CMP" echo-load "$addr" "${shape%x*}" "${shape#*x}" "$SECS" "$s" "$pid" >"$DIR/load-$s-$shape.json"
    callgrind_control -d "$pid" >/dev/null
    for _ in $(seq 50); do [[ -s $out.1 ]] && break; sleep 0.1; done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$s" "$shape" "$DIR/load-$s-$shape.json" "$out.1" <<'EOF'
import json, re, sys
server, shape, load, counts = sys.argv[1:]
trips = json.load(open(load))["ops"]
total = None
for line in open(counts):
    m = re.match(r"(?:summary|totals):\s+(\d+)", line)
    if m:
        total = int(m.group(1))
if total is None or trips == 0:
    sys.exit(f"{server} {shape}: no count (trips {trips})")
print(f"{server:<11} echo-{shape:<9} {trips:>9} round trips  {total / trips:>8.0f} instructions per round trip")
EOF
  done
done
