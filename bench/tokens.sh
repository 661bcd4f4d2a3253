#!/usr/bin/env bash
# The token endpoint under SMART Backend Services load: a client registered
# with an ES384 key (inline JWKS) asks for system/*.rs tokens, each with a
# fresh signed assertion (its jti recorded in the store), from CONCURRENCY
# keep-alive connections. The assertions are signed before the clock
# starts; the server's CPU per token is read from /proc.
#
#   bench/tokens.sh                         # 3 rounds of 5,000 tokens, 16 connections
#   COUNT=20000 ROUNDS=1 bench/tokens.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/hearth_tokens bench/tokens.sh
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-5000}
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-16}
PORT=${PORT:-8191}
WORKERS=${WORKERS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"

cargo build --release -p hearth --quiet
cargo build --release -p conformance-tests --example token_load --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
LOAD="$CARGO_TARGET_DIR/release/examples/token_load"

DATA=$(mktemp -d)
BASE="http://127.0.0.1:$PORT"
COMMON=(--data-dir "$DATA" --auth smart --base-url "$BASE")
if [ -n "${DATABASE_URL:-}" ]; then COMMON+=(--database-url "$DATABASE_URL"); fi
"$LOAD" keygen "$DATA"
"$BIN" client "${COMMON[@]}" add bench-bulk --name "Bench bulk client" --jwks "$DATA/jwks.json" --scope "system/*.rs"
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$PORT" --workers "$WORKERS" > "$DATA/server.log" &
PID=$!
cleanup() { kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$BASE/metadata" >/dev/null && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "== machine: $(nproc) cores; ${DATABASE_URL:+PostgreSQL}${DATABASE_URL:-SQLite}; $WORKERS workers; $COUNT tokens x $ROUNDS rounds; $CONCURRENCY connections; info logging"
for round in $(seq "$ROUNDS"); do
    before=$(ticks $PID)
    out=$("$LOAD" run "$BASE" bench-bulk "$DATA" "$COUNT" "$CONCURRENCY")
    used=$(( $(ticks $PID) - before ))
    awk -v out="$out" -v t="$used" -v n="$COUNT" -v hz="$(getconf CLK_TCK)" -v r="$round" \
        'BEGIN { printf "round %d: %s; server %.0f us CPU/token\n", r, out, t / hz / n * 1e6 }'
done
