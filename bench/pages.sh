#!/usr/bin/env bash
# The authorization pages' server time: the sign-in page (GET
# /auth/authorize: the request checked, the client read, a ticket signed,
# the page written) and the sign-in POST (Argon2id checks the password,
# then the consent page is written), each ROUNDS times from curl on
# loopback; the median and 95th percentile of curl's time to first byte.
#
#   bench/pages.sh            # 200 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-200}
PORT=${PORT:-8193}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
cargo build --release -p hearth --quiet
BIN="$CARGO_TARGET_DIR/release/hearth"
DATA=$(mktemp -d)
BASE="http://127.0.0.1:$PORT"
COMMON=(--data-dir "$DATA" --auth smart --base-url "$BASE")
"$BIN" client "${COMMON[@]}" add bench-app --name "Bench app" --redirect-uri http://localhost:9/cb \
    --scope "launch/patient patient/*.rs offline_access" >/dev/null
printf 'a long enough password\n' | "$BIN" user "${COMMON[@]}" add bench --fhir-user Patient/bench-1 --password-stdin >/dev/null
"$BIN" serve "${COMMON[@]}" --listen "127.0.0.1:$PORT" --workers 2 > "$DATA/server.log" &
PID=$!
cleanup() { kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "$BASE/metadata" >/dev/null && break; sleep 0.1; done

CHALLENGE=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
AUTHORIZE="$BASE/auth/authorize?response_type=code&client_id=bench-app&redirect_uri=http%3A%2F%2Flocalhost%3A9%2Fcb&scope=launch%2Fpatient+patient%2FObservation.rs+offline_access&state=s1&aud=$BASE&code_challenge=$CHALLENGE&code_challenge_method=S256"
JAR="$DATA/cookies"
: > "$DATA/get.txt"; : > "$DATA/post.txt"
for _ in $(seq "$ROUNDS"); do
    curl -s -c "$JAR" -b "$JAR" -o "$DATA/page.html" -w '%{time_starttransfer}\n' "$AUTHORIZE" >> "$DATA/get.txt"
    ticket=$(sed -n 's/.*name="ticket" value="\([^"]*\)".*/\1/p' "$DATA/page.html")
    csrf=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$DATA/page.html")
    curl -s -c "$JAR" -b "$JAR" -o "$DATA/consent.html" -w '%{time_starttransfer}\n' \
        --data-urlencode "ticket=$ticket" --data-urlencode "csrf=$csrf" \
        --data-urlencode "username=bench" --data-urlencode "password=a long enough password" \
        "$BASE/auth/sign-in" >> "$DATA/post.txt"
    grep -q 'Allow Bench app' "$DATA/consent.html" || { echo "no consent page" >&2; cat "$DATA/consent.html" >&2; exit 1; }
done
stats() { sort -n "$1" | awk '{ t[NR] = $1 * 1000 } END { printf "median %.2f ms, p95 %.2f ms (n=%d)\n", t[int(NR/2)+1], t[int(NR*0.95)], NR }'; }
echo "== machine: $(nproc) cores; SQLite; release build; 2 workers; curl on loopback"
echo "sign-in page (GET /auth/authorize):            $(stats "$DATA/get.txt")"
echo "sign-in POST (Argon2id + consent page written): $(stats "$DATA/post.txt")"
