#!/usr/bin/env bash
# Loading and searching Synthea's 120 patients (../shared/data/synthea-120:
# 122 files, 92,114 resources): `hearth import` of the files decompressed
# beforehand and straight from the .bz2 files, the same files uploaded over
# HTTP as transaction Bundles (`hearth import --url`), then the bundles
# issue's queries on the loaded data, each REPEAT times with one client.
#
#   bench/synthea.sh                      # on SQLite
#   DATABASE=postgres bench/synthea.sh    # on PostgreSQL (fresh databases on
#                                         # PG_SERVER, dropped afterwards)
#   REUSE=/path/to.db bench/synthea.sh     # the queries only, on that database
#   COPIES=10 bench/synthea.sh            # ten copies of the patients with new
#                                         # ids (bench/copy_synthea.py): the
#                                         # import and the queries only
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/queries.sh

SYNTHEA=${SYNTHEA:-../shared/data/synthea-120}
REPEAT=${REPEAT:-50}
PORT=${PORT:-8182}
DATABASE=${DATABASE:-sqlite}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
WORK=$(mktemp -d)
DATABASES=()
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
    for db in "${DATABASES[@]}"; do
        psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    done
}
trap cleanup EXIT

# A fresh database URL named $1.
fresh() {
    if [ "$DATABASE" = postgres ]; then
        local db="hearth_bench_${1}_$$"
        psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $db"
        DATABASES+=("$db")
        echo "$PG_SERVER/$db"
    else
        echo "$WORK/$1.db"
    fi
}

timed_import() { # database URL, paths…
    local url=$1
    shift
    /usr/bin/time -f "   wall %e s, peak RSS %M KB" "$BIN" import --data-dir "$WORK" \
        --database-url "$url" --log-level warn "$@" 2>&1 | grep -v '^\[' | sed 's/^\r//' | tail -4
}

echo "== machine: $(nproc) cores; database: $DATABASE"
mkdir -p "$WORK/plain"
start=$(date +%s.%N)
ls "$SYNTHEA"/*.bz2 | xargs -P "$(nproc)" -I{} sh -c 'bzcat "$1" > "$2/$(basename "$1" .bz2)"' _ {} "$WORK/plain"
echo "== decompressed $(ls "$WORK/plain" | wc -l) files ($(du -sh "$WORK/plain" | cut -f1)) in $(echo "$(date +%s.%N) - $start" | bc) s"

COPIES=${COPIES:-1}
if [ "$COPIES" -gt 1 ]; then
    python3 bench/copy_synthea.py "$WORK/plain" "$WORK/copies" "$COPIES"
    rm -rf "$WORK/plain"
    mv "$WORK/copies" "$WORK/plain"
    echo "== $COPIES copies: $(ls "$WORK/plain" | wc -l) files ($(du -sh "$WORK/plain" | cut -f1))"
fi

if [ -n "${REUSE:-}" ]; then
    # REUSE=database-url: the queries only, on a database imported before.
    MAIN=$REUSE
    SKIP_EXTRA=1
else
echo "== hearth import of the decompressed files"
MAIN=$(fresh main)
timed_import "$MAIN" "$WORK/plain"
fi
if [ "$COPIES" -gt 1 ]; then
    SKIP_EXTRA=1
fi
if [ -z "${SKIP_EXTRA:-}" ]; then
echo "== hearth import straight from the .bz2 files"
timed_import "$(fresh bz2)" "$SYNTHEA"
echo "== hearth import again (nothing new to write)"
timed_import "$MAIN" "$WORK/plain"

echo "== hearth import --url: over HTTP, as transaction and batch Bundles"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK" --database-url "$(fresh http)" --log-level warn &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/metadata" >/dev/null && break; sleep 0.1; done
"$BIN" import --url "http://127.0.0.1:$PORT" "$WORK/plain" 2>/dev/null | head -1
kill "$PID"; wait "$PID" 2>/dev/null || true
fi

echo "== queries on the imported data"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK" --database-url "$MAIN" --log-level warn &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/metadata" >/dev/null && break; sleep 0.1; done
if [ "$DATABASE" = postgres ]; then psql "$MAIN" -qc "ANALYZE"; fi
B="http://127.0.0.1:$PORT"
pick_queries "$B"
printf '   %-72s %8s %8s %8s\n' "query" "p50 ms" "p95 ms" "total"
for q in "${QUERIES[@]}"; do
    times=$(for _ in $(seq "$REPEAT"); do time_query "$B" "$q"; done)
    p50=$(echo "$times" | percentile 50)
    p95=$(echo "$times" | percentile 95)
    printf '   %-72s %8s %8s %8s\n' "${q//$X/X}" "$p50" "$p95" "$(query_total "$B" "$q")"
done
