#!/usr/bin/env bash
# The cost of SMART authorization on reads by id: one store, two servers on
# it — one open (auth = none), one requiring tokens (auth = smart) — and
# wrk against each in turn, ROUNDS times, so both are measured in the same
# minutes of a noisy machine. Default logging (info), as users run it,
# each server to a file.
#
#   bench/auth.sh                      # N=10000 Patients, 3 rounds of 8 s
#   ROUNDS=5 DURATION=10s bench/auth.sh
#
# Runs, each on the open and on the SMART server (and, first in each round,
# bare actix-web serving a fixed Patient body: the ceiling):
#   any:   GET /Patient/{random}, a user/*.rs token (the grant is whole:
#          the token is checked, then the read is as open)
#   own:   GET /Patient/bench-1, a patient/*.rs token for bench-1 (the read
#          is checked against the patient's compartment in SQL)
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-32}
OPEN_PORT=${OPEN_PORT:-8181}
SMART_PORT=${SMART_PORT:-8182}
WORKERS=${WORKERS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p hearth --quiet
cargo build --release -p hearth-http --example bare --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
BARE="$CARGO_TARGET_DIR/release/examples/bare"
BARE_PORT=${BARE_PORT:-8185}

DATA=$(mktemp -d)
SMART_BASE="http://127.0.0.1:$SMART_PORT"
COMMON=(--data-dir "$DATA" --workers "$WORKERS")
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$OPEN_PORT" --auth none > "$DATA/open.log" &
OPEN_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$OPEN_PORT/metadata" >/dev/null && break; sleep 0.1; done
python3 bench/load.py 127.0.0.1 "$OPEN_PORT" "$N" bench/patient.json
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$SMART_PORT" --auth smart --base-url "$SMART_BASE" > "$DATA/smart.log" &
SMART_PID=$!
"$BARE" "127.0.0.1:$BARE_PORT" bench/patient.json &
BARE_PID=$!
cleanup() { kill $OPEN_PID $SMART_PID $BARE_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$SMART_BASE/metadata" >/dev/null && break; sleep 0.1; done
token() { "$BIN" token "${COMMON[@]}" --auth smart --base-url "$SMART_BASE" "$@"; }
USER_TOKEN=$(token --scope "user/*.rs" --fhir-user Practitioner/bench --client bench)
PATIENT_TOKEN=$(token --scope "patient/*.rs" --patient bench-1 --client bench)
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PATIENT_TOKEN" "$SMART_BASE/Patient/bench-1")" = 200
test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PATIENT_TOKEN" "$SMART_BASE/Patient/bench-2")" = 404
test "$(curl -s -o /dev/null -w '%{http_code}' "$SMART_BASE/Patient/bench-1")" = 401

cat > "$DATA/one.lua" <<'EOF'
wrk.headers["Accept"] = "application/fhir+json"
request = function() return wrk.format("GET", "/Patient/bench-1") end
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run NAME PID URL SCRIPT [TOKEN]: req/s and the server's CPU per request.
run() {
    local name=$1 pid=$2 url=$3 script=$4 token=${5:-} before out rate n
    before=$(ticks "$pid")
    if [ -n "$token" ]; then
        out=$(HEARTH_BENCH_N=$N wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$script" -H "Authorization: Bearer $token" "$url")
    else
        out=$(HEARTH_BENCH_N=$N wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$script" "$url")
    fi
    rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
    awk -v name="$name" -v r="$rate" -v t="$(( $(ticks "$pid") - before ))" -v n="$n" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%-14s %9.0f req/s  %5.1f us CPU/request\n", name, r, t / hz / n * 1e6 }'
}

echo "== machine: $(nproc) cores; $N Patients; SQLite; $WORKERS workers each; wrk -t2 -c$CONNECTIONS -d$DURATION; info logging"
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    run "bare actix" $BARE_PID "http://127.0.0.1:$BARE_PORT" bench/read.lua
    run "open any" $OPEN_PID "http://127.0.0.1:$OPEN_PORT" bench/read.lua
    run "smart any" $SMART_PID "$SMART_BASE" bench/read.lua "$USER_TOKEN"
    run "open own" $OPEN_PID "http://127.0.0.1:$OPEN_PORT" "$DATA/one.lua"
    run "smart own" $SMART_PID "$SMART_BASE" "$DATA/one.lua" "$PATIENT_TOKEN"
done
