#!/usr/bin/env bash
# Benchmark Hearth over HTTP on loopback: single-resource creates per second,
# read-by-id requests per second, and the server's peak RSS during the reads.
#
#   bench/run.sh                 # N=10000 patients, 32 connections, 10 s runs
#   N=50000 DURATION=30s bench/run.sh
#   DATABASE=postgres bench/run.sh   # on PostgreSQL (a fresh database on
#                                    # PG_SERVER, dropped afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10s}
PORT=${PORT:-8180}
WORKERS=${WORKERS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"

DATA=$(mktemp -d)
DATABASE=${DATABASE:-sqlite}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
case "$DATABASE" in
    sqlite) DATABASE_URL="$DATA/hearth.db" ;;
    postgres)
        PG_DB="hearth_bench_$$"
        psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $PG_DB"
        DATABASE_URL="$PG_SERVER/$PG_DB" ;;
    *) echo "DATABASE is sqlite or postgres" >&2; exit 2 ;;
esac
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --database-url "$DATABASE_URL" \
    --workers "$WORKERS" --log-level warn &
PID=$!
cleanup() {
    kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"
    if [ -n "${PG_DB:-}" ]; then psql "$PG_SERVER/postgres" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/metadata" >/dev/null && break
    sleep 0.1
done

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; Hearth workers: $WORKERS; database: $DATABASE"
echo "== load $N Patients (2.6 KB each) by PUT"
python3 bench/load.py 127.0.0.1 "$PORT" "$N" bench/patient.json

# The server's CPU time (user + system, in clock ticks) so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
# Runs wrk and reports the server's CPU time per request (less noisy than
# the rate on a shared machine).
measure() {
    local before out requests
    before=$(cpu_ticks)
    out=$(wrk "$@")
    echo "$out"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v t="$(( $(cpu_ticks) - before ))" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "server CPU per request: %.0f us\n", t / hz / n * 1e6 }'
}

echo "== creates: wrk -t$THREADS -c$CONNECTIONS -d$DURATION POST /Patient"
measure -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/create.lua "http://127.0.0.1:$PORT/Patient"

echo "== reads: wrk -t$THREADS -c$CONNECTIONS -d$DURATION GET /Patient/{random of $N}"
echo 5 > "/proc/$PID/clear_refs"   # reset the peak-RSS counter (VmHWM)
HEARTH_BENCH_N=$N measure -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/read.lua "http://127.0.0.1:$PORT"
echo "== server peak RSS during the read run: $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' "/proc/$PID/status")"
if [ "$DATABASE" = postgres ]; then
    echo "== database size: $(psql "$PG_SERVER/postgres" -Atc "SELECT pg_size_pretty(pg_database_size('$PG_DB'))")"
    else
    echo "== database size: $(du -sh "$DATA" | cut -f1)"
fi
