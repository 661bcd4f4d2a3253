#!/usr/bin/env bash
# The bundles issue's Synthea queries (bench/queries.sh) with and without
# SMART authorization, on one store with two servers — open, and requiring
# tokens — and their requests alternating, so both are timed in the same
# seconds: the queries that name patient X under a patient/*.rs token for
# X, the others under user/*.rs. p50 and p90 of REPEAT runs each.
#
#   bench/auth-queries.sh                    # SQLite, synthea-120 imported
#   REUSE=/path/to.db bench/auth-queries.sh  # an SQLite store already loaded
#   DATABASE=postgres bench/auth-queries.sh  # a fresh PostgreSQL database
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/queries.sh

SYNTHEA=${SYNTHEA:-../shared/data/synthea-120}
REPEAT=${REPEAT:-30}
OPEN_PORT=${OPEN_PORT:-8183}
SMART_PORT=${SMART_PORT:-8184}
DATABASE=${DATABASE:-sqlite}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
WORK=$(mktemp -d)
PG_DB=""
cleanup() {
    kill ${PIDS:-} 2>/dev/null; wait 2>/dev/null
    rm -rf "$WORK"
    if [ -n "$PG_DB" ]; then psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"; fi
}
trap cleanup EXIT

if [ -n "${REUSE:-}" ]; then
    URL=$REUSE
elif [ "$DATABASE" = postgres ]; then
    PG_DB="hearth_bench_auth_$$"
    psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $PG_DB"
    URL="$PG_SERVER/$PG_DB"
else
    URL="$WORK/hearth.db"
fi
if [ -z "${REUSE:-}" ]; then
    echo "== importing $SYNTHEA"
    "$BIN" import --data-dir "$WORK" --database-url "$URL" --log-level warn "$SYNTHEA" 2>&1 | tail -2
fi
SMART_BASE="http://127.0.0.1:$SMART_PORT"
OPEN_BASE="http://127.0.0.1:$OPEN_PORT"
COMMON=(--data-dir "$WORK" --database-url "$URL" --log-level warn)
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$OPEN_PORT" --auth none &
PIDS="$!"
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$SMART_PORT" --auth smart --base-url "$SMART_BASE" &
PIDS="$PIDS $!"
for b in "$OPEN_BASE" "$SMART_BASE"; do
    for _ in $(seq 100); do curl -s -o /dev/null "$b/metadata" && break; sleep 0.1; done
done

echo "== machine: $(nproc) cores; database: $DATABASE"
pick_queries "$OPEN_BASE"
token() { "$BIN" token "${COMMON[@]}" --auth smart --base-url "$SMART_BASE" "$@"; }
PATIENT_TOKEN=$(token --scope "patient/*.rs" --patient "$X" --client bench)
USER_TOKEN=$(token --scope "user/*.rs" --fhir-user Practitioner/bench --client bench)

# Every curl of queries.sh's functions carries $AUTH.
AUTH=()
curl() { command curl "${AUTH[@]}" "$@"; }

printf "%-62s %17s %17s %7s\n" "query" "open p50/p90 ms" "SMART p50/p90 ms" "totals"
for q in "${QUERIES[@]}"; do
    if [[ "$q" == *"$X"* ]]; then scope=patient; tok=$PATIENT_TOKEN; else scope=user; tok=$USER_TOKEN; fi
    open_times=(); smart_times=()
    for _ in $(seq "$REPEAT"); do
        AUTH=(); open_times+=("$(time_query "$OPEN_BASE" "$q")")
        AUTH=(-H "Authorization: Bearer $tok"); smart_times+=("$(time_query "$SMART_BASE" "$q")")
    done
    AUTH=(); open_total=$(query_total "$OPEN_BASE" "$q")
    AUTH=(-H "Authorization: Bearer $tok"); smart_total=$(query_total "$SMART_BASE" "$q")
    printf "%-62s %8s/%-8s %8s/%-8s %s\n" "${q:0:55} ($scope)" \
        "$(printf '%s\n' "${open_times[@]}" | percentile 50)" "$(printf '%s\n' "${open_times[@]}" | percentile 90)" \
        "$(printf '%s\n' "${smart_times[@]}" | percentile 50)" "$(printf '%s\n' "${smart_times[@]}" | percentile 90)" \
        "$open_total/$smart_total"
done
