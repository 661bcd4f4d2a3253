#!/usr/bin/env bash
# The bundles issue's queries on two databases at once, to compare scales
# (synthea-120 and its 10x copy): one server on each, and each query's
# requests alternate between them, so the two figures of a row are taken
# in the same seconds of this shared VM, whose speed drifts by up to 2x
# within minutes.
#
#   bench/scale.sh SMALL_DB_URL LARGE_DB_URL     # REPEAT=50 by default
#
# The databases come from `hearth import` (bench/synthea.sh imports into
# temporary ones; bench/copy_synthea.py makes the 10x files).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/queries.sh

SMALL=$1
LARGE=$2
REPEAT=${REPEAT:-50}
PORT=${PORT:-8182}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start() { # database URL, port
    "$BIN" serve --listen "127.0.0.1:$2" --data-dir "$WORK" --database-url "$1" --log-level warn &
    PIDS+=($!)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$2/metadata" >/dev/null && break; sleep 0.1; done
}
start "$SMALL" "$PORT"
start "$LARGE" "$((PORT + 1))"
A="http://127.0.0.1:$PORT"
B="http://127.0.0.1:$((PORT + 1))"

echo "== small: $SMALL"
pick_queries "$A"
SMALL_QUERIES=("${QUERIES[@]}")
SMALL_X=$X
echo "== large: $LARGE"
pick_queries "$B"
LARGE_X=$X

printf '   %-64s %9s %9s %7s %8s %8s\n' "query (p50 ms)" "small" "large" "ratio" "total" "total"
for i in "${!QUERIES[@]}"; do
    small_q=${SMALL_QUERIES[$i]}
    large_q=${QUERIES[$i]}
    : >"$WORK/a"
    : >"$WORK/b"
    for _ in $(seq "$REPEAT"); do
        time_query "$A" "$small_q" >>"$WORK/a"
        time_query "$B" "$large_q" >>"$WORK/b"
    done
    a=$(percentile 50 <"$WORK/a")
    b=$(percentile 50 <"$WORK/b")
    printf '   %-64s %9s %9s %7s %8s %8s\n' "${small_q//$SMALL_X/X}" "$a" "$b" \
        "$(echo "scale=2; $b / $a" | bc)" "$(query_total "$A" "$small_q")" "$(query_total "$B" "$large_q")"
done
