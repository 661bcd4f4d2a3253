#!/usr/bin/env bash
# Bulk Data `$export` of everything in a database, from kick-off to the
# manifest (polling every 50 ms), and the server's resident memory each
# second: the bundles issue's export figure.
#
#   bench/export.sh DATABASE_URL
#
# The database comes from `hearth import` (bench/synthea.sh imports into
# temporary ones; bench/copy_synthea.py makes the 10x files).
set -euo pipefail
cd "$(dirname "$0")/.."

DB=$1
PORT=${PORT:-8184}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
WORK=$(mktemp -d)
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK" --database-url "$DB" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/metadata" >/dev/null && break; sleep 0.1; done

(while kill -0 "$PID" 2>/dev/null; do
    awk '/VmRSS/ { print $2 }' "/proc/$PID/status" 2>/dev/null >>"$WORK/rss"
    sleep 1
done) &
start=$(date +%s.%N)
status=$(curl -s -D - -o /dev/null -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' \
    "http://127.0.0.1:$PORT/\$export" | tr -d '\r' | awk 'tolower($1) == "content-location:" { print $2 }')
until [ "$(curl -s -o "$WORK/manifest" -w '%{http_code}' "$status")" = 200 ]; do sleep 0.05; done
end=$(date +%s.%N)

python3 - "$WORK/manifest" "$start" "$end" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
seconds = float(sys.argv[3]) - float(sys.argv[2])
total = sum(o.get("count", 0) for o in manifest["output"])
print(f"   {total} resources in {len(manifest['output'])} files, {seconds:.2f} s, {total / seconds:,.0f} resources/s")
PY
echo "   server RSS each second (kB): $(tr '\n' ' ' <"$WORK/rss")"
echo "   server peak RSS: $(awk '/VmHWM/ { print $2 }' "/proc/$PID/status") kB"
