#!/usr/bin/env bash
# Search latency on a generated population: starts a release Hearth on a
# fresh database, writes PATIENTS Patients and OBSERVATIONS Observations
# (bench/generate.py), then runs each query REPEAT times with one client and
# reports the median and 95th percentile (ms, measured by curl over loopback).
#
#   bench/search.sh                               # 2,000 patients, 50,000 observations
#   PATIENTS=10000 OBSERVATIONS=250000 bench/search.sh
#   DATABASE=postgres bench/search.sh             # on PostgreSQL (a fresh database
#                                                 # on PG_SERVER, dropped afterwards),
#                                                 # with each query's plan (EXPLAIN)
set -euo pipefail
cd "$(dirname "$0")/.."

PATIENTS=${PATIENTS:-2000}
OBSERVATIONS=${OBSERVATIONS:-50000}
REPEAT=${REPEAT:-50}
PORT=${PORT:-8181}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
DATA=$(mktemp -d)
DATABASE=${DATABASE:-sqlite}
PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432}
case "$DATABASE" in
    sqlite) DATABASE_URL="$DATA/hearth.db" ;;
    postgres)
        PG_DB="hearth_bench_search_$$"
        psql "$PG_SERVER/postgres" -qc "CREATE DATABASE $PG_DB"
        DATABASE_URL="$PG_SERVER/$PG_DB" ;;
    *) echo "DATABASE is sqlite or postgres" >&2; exit 2 ;;
esac
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --database-url "$DATABASE_URL" --log-level warn &
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

start=$(date +%s.%N)
python3 bench/generate.py 127.0.0.1 "$PORT" "$PATIENTS" "$OBSERVATIONS"
end=$(date +%s.%N)
echo "== wrote $((PATIENTS + OBSERVATIONS)) resources in $(echo "$end - $start" | bc) s"
# Statistics for the planner, as autovacuum gathers soon after a load.
if [ "$DATABASE" = postgres ]; then psql "$DATABASE_URL" -qc "ANALYZE"; fi

B="http://127.0.0.1:$PORT"
queries=(
    "Observation?code=http://loinc.org|8867-4&_summary=count"
    "Observation?category=laboratory&_sort=-date&_count=20"
    "Observation?patient=p17&code=http://loinc.org|2339-0&date=ge2015"
    "Patient?family=garcia&_count=20"
    "Patient?name=mul&birthdate=lt1970&_count=20"
    "Observation?subject:Patient.family=chalmers&_count=20"
    "Patient?_has:Observation:patient:code=718-7&_count=20"
    "Observation?value-quantity=gt150|http://unitsofmeasure.org|mg/dL&_count=20"
    "Observation?patient=p42&_include=Observation:subject&_revinclude=Provenance:target"
    "Patient/p5/Observation?_count=20"
)
printf '%-80s %8s %8s\n' "query" "p50 ms" "p95 ms"
for q in "${queries[@]}"; do
    times=$(for _ in $(seq "$REPEAT"); do
        curl -s -o /dev/null -w '%{time_total}\n' -G "$B/${q%%\?*}" $(echo "${q#*\?}" | tr '&' '\n' | sed 's/^/--data-urlencode /') 2>/dev/null
    done | sort -n)
    p50=$(echo "$times" | awk -v n="$REPEAT" 'NR == int(n * 0.5) + 1 {printf "%.2f", $1 * 1000}')
    p95=$(echo "$times" | awk -v n="$REPEAT" 'NR == int(n * 0.95) + 1 {printf "%.2f", $1 * 1000}')
    printf '%-80s %8s %8s\n' "$q" "$p50" "$p95"
done
if [ "$DATABASE" = postgres ]; then
    echo "== database: $(psql "$PG_SERVER/postgres" -Atc "SELECT pg_size_pretty(pg_database_size('$PG_DB'))")"
else
    echo "== database: $(du -sh "$DATA" | cut -f1)"
fi
# The plans (compartment searches are Hearth's own rewriting: left out).
plans=$("$BIN" explain --data-dir "$DATA" --database-url "$DATABASE_URL" --log-level warn \
    $(printf '%s\n' "${queries[@]}" | grep -v '^Patient/'))
if [ -n "${SHOW_PLANS:-}" ]; then echo "$plans"; fi
echo "== full scans of resource or index tables in the plans:"
echo "$plans" | grep -E "^==|Seq Scan on (resources|resource_versions|idx_)|SCAN (r|resources|idx_)" || true
