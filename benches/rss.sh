#!/usr/bin/env bash
# Peak memory (max RSS) and wall time of `iok merge` / `iok pgzip` on the
# adversarial inputs of issue 11 ("lose nothing, ever"), one row each:
#
#   long-line  a 2 GiB file with no newline (merge must fail fast with the
#              line's offset; pgzip must compress it in bounded memory)
#   dev-zero   /dev/zero as a merge input (a stream that never ends and
#              has no newline; must fail with the max-line message)
#   zero-bomb  ~2 MB of gzip that expands to 2 GiB of zeros (no newline)
#   line-bomb  ~3 MB of gzip that expands to 2 GiB of short lines
#              (merged whole)
#
# Usage: benches/rss.sh
#        WORKDIR=/mnt/x IOK=path/to/iok IOK_BASELINE=/tmp/iok-main benches/rss.sh
# With IOK_BASELINE every row is also run with that binary (e.g. one built
# at main) for a before/after table. Each run is cut off after TIMEOUT
# seconds (default 120; a cut-off row says so). Peak RSS is GNU time's %M.
# Needs: cargo (unless IOK is given), GNU time (/usr/bin/time), gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-$(mktemp -d /tmp/iok-rss.XXXXXX)}
TIMEOUT=${TIMEOUT:-120}
GIB=${GIB:-2}
mkdir -p "$WORKDIR"
if [[ -z "${IOK:-}" ]]; then
    cargo build --release --bin iok >&2
    IOK=target/release/iok
fi
[[ -x /usr/bin/time ]] || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }

long="$WORKDIR/long-line.pfw"
zbomb="$WORKDIR/zero-bomb.pfw.gz"
lbomb="$WORKDIR/line-bomb.pfw.gz"
[[ -s $long ]] || head -c "${GIB}G" /dev/zero | tr '\0' 'x' >"$long"
[[ -s $zbomb ]] || head -c "${GIB}G" /dev/zero | gzip -9 >"$zbomb"
[[ -s $lbomb ]] || { yes '{"a":0}' || true; } | head -c "${GIB}G" | gzip -9 >"$lbomb"

# run LABEL BINARY ARGS...: prints one table row.
run() {
    local label=$1 bin=$2
    shift 2
    local out="$WORKDIR/out" log="$WORKDIR/time.log" err="$WORKDIR/err.log"
    rm -f "$out" "$out.gz"
    local rc=0
    sync
    # time outside timeout: a cut-off run still gets its peak RSS (wait4
    # reports the largest RSS of the child and the descendants it reaped).
    /usr/bin/time -f '%e %M' -o "$log" timeout "$TIMEOUT" "$bin" "$@" >/dev/null 2>"$err" || rc=$?
    local secs rss note
    # GNU time puts "Command exited with non-zero status N" first.
    read -r secs rss < <(tail -n 1 "$log" 2>/dev/null) || { secs="-"; rss="-"; }
    if [[ $rc -eq 124 ]]; then
        note="cut off after ${TIMEOUT} s"
    elif [[ $rc -eq 0 ]]; then
        note="ok"
    else
        note=$(grep -v '^Command' "$err" | head -1 | cut -c1-90)
    fi
    local mib="-"
    [[ $rss != "-" ]] && mib=$((rss / 1024))
    printf '| %s | %s | %s | %s | %s |\n' "$label" "$*" "$secs" "$mib" "$note"
}

echo "| binary | command | seconds | max RSS MiB | result |"
echo "| --- | --- | ---: | ---: | --- |"
for pair in "after:$IOK" ${IOK_BASELINE:+"before:$IOK_BASELINE"}; do
    label=${pair%%:*}
    bin=${pair#*:}
    run "$label" "$bin" merge "$long" -o "$WORKDIR/out"
    run "$label" "$bin" pgzip "$long" -o "$WORKDIR/out.gz" --level 1
    run "$label" "$bin" merge /dev/zero -o "$WORKDIR/out"
    run "$label" "$bin" merge "$zbomb" -o "$WORKDIR/out"
    run "$label" "$bin" merge "$lbomb" -o "$WORKDIR/out" --durability none
done
echo
echo "inputs: $(du -h "$long" | cut -f1) long line, $(du -h "$zbomb" | cut -f1) zero bomb, $(du -h "$lbomb" | cut -f1) line bomb (each ${GIB} GiB decoded), in $WORKDIR"
