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
        --database-url "$url" --log-level warn "$@" 2>&1 | grep -v '^\[' | sed 's/^\r//' | tail -3
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
# The patient with the most Observations, and a family name.
X=$(curl -s "$B/Patient?_count=200&_elements=id" | python3 -c '
import json, sys, urllib.request
ids = [e["resource"]["id"] for e in json.load(sys.stdin).get("entry", [])]
def count(i):
    with urllib.request.urlopen(f"'"$B"'/Observation?patient={i}&_summary=count") as r:
        return json.load(r)["total"]
print(max(ids, key=count))')
FAMILY=$(curl -s "$B/Patient/$X" | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"][0]["family"])')
echo "   patient X = $X ($(curl -s "$B/Observation?patient=$X&_summary=count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])') Observations), family $FAMILY"
# The code X has most often since 2015 (X's heart rates may all be older:
# a query that matches nothing would measure nothing).
Y=$(curl -s "$B/Observation?patient=$X&date=ge2015&_elements=code&_count=1000" | python3 -c '
import collections, json, sys
codes = collections.Counter(
    c["code"] for e in json.load(sys.stdin).get("entry", [])
    for c in e["resource"]["code"].get("coding", [])[:1] if c.get("system") == "http://loinc.org")
print(codes.most_common(1)[0][0] if codes else "8867-4")')
echo "   code Y = $Y"
queries=(
    "Observation?code=http://loinc.org|8867-4&_summary=count"
    "Observation?category=laboratory&_sort=-date"
    "Observation?patient=$X&code=http://loinc.org|$Y&date=ge2015"
    "Patient?family=$FAMILY"
    "Observation?subject:Patient.family=$FAMILY"
    "Patient?_has:Observation:patient:code=8867-4"
    "Encounter?patient=$X&_include=Encounter:practitioner"
    "Patient/$X/\$everything"
)
printf '   %-72s %8s %8s %8s\n' "query" "p50 ms" "p95 ms" "total"
for q in "${queries[@]}"; do
    times=$(for _ in $(seq "$REPEAT"); do
        if [[ "$q" == *\?* ]]; then
            curl -s -o /dev/null -w '%{time_total}\n' -G "$B/${q%%\?*}" $(echo "${q#*\?}" | tr '&' '\n' | sed 's/^/--data-urlencode /')
        else
            curl -s -o /dev/null -w '%{time_total}\n' "$B/$q"
        fi
    done | sort -n)
    p50=$(echo "$times" | awk -v n="$REPEAT" 'NR == int(n * 0.5) + 1 {printf "%.2f", $1 * 1000}')
    p95=$(echo "$times" | awk -v n="$REPEAT" 'NR == int(n * 0.95) + 1 {printf "%.2f", $1 * 1000}')
    # What the query matched (Bundle.total, where the server gives it).
    total=$(curl -s -G "$B/${q%%\?*}" $( [[ "$q" == *\?* ]] && echo "${q#*\?}" | tr '&' '\n' | sed 's/^/--data-urlencode /') \
        | python3 -c 'import json,sys; print(json.load(sys.stdin).get("total", "-"))')
    printf '   %-72s %8s %8s %8s\n' "${q//$X/X}" "$p50" "$p95" "$total"
done
