#!/usr/bin/env bash
# The hostile-input run: a release Hearth on Synthea's 120 patients
# (SQLite), then bench/hostile.py's requests against it; prints the status
# counts of each class, whether the server lived and the store stayed
# unchanged, and the server's peak RSS.
#
#   bench/hostile.sh                  # SYNTHEA=../shared/data/synthea-120
#   BIN=/path/to/hearth bench/hostile.sh   # another build of Hearth
set -euo pipefail
cd "$(dirname "$0")/.."

SYNTHEA=${SYNTHEA:-../shared/data/synthea-120}
PORT=${PORT:-8190}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
if [ -z "${BIN:-}" ]; then
    cargo build --release -p hearth --quiet
    BIN="$CARGO_TARGET_DIR/release/hearth"
fi
WORK=$(mktemp -d)
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/plain"
for f in "$SYNTHEA"/*.bz2; do bzcat "$f" > "$WORK/plain/$(basename "${f%.bz2}")"; done
"$BIN" import --database-url "$WORK/hearth.db" --log-level warn "$WORK/plain" | tail -2
"$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$WORK/hearth.db" --log-level warn &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
echo "== $(nproc) cores; $("$BIN" --version)"
python3 bench/hostile.py "http://127.0.0.1:$PORT" "$PID"
