#!/usr/bin/env bash
# Instructions per token request, counted by valgrind's callgrind: a figure
# that does not move with the machine's load, for before/after comparisons
# of the token path (issue 13) and for itemising where a token's CPU goes.
#
# usage: tests/load/callgrind.sh [BIN=target/release/jwks-issuer] [N=400] [ALG=ES256]
#   BIN  the jwks-issuer binary to measure (build it with --release)
#   N    token requests counted, after 50 uncounted ones (argon2 runs once:
#        later requests hit the verified-credential cache)
#   ALG  the signing algorithm of the tokens (ES256 or RS256)
# Prints "ir_per_token N" and the functions with the largest inclusive
# counts; writes the callgrind output to $OUT (default target/callgrind).
#
# The requests come one at a time over one keep-alive connection, from a
# Python client, so the server's counts are of the server alone.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${1:-$ROOT/target/release/jwks-issuer}"
N="${2:-400}"
ALG="${3:-ES256}"
OUT="${OUT:-$ROOT/target/callgrind}"
PORT="${PORT:-18111}"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

SECRET="callgrind-secret"
HASH="$(printf '%s\n' "$SECRET" | "$BIN" hash-secret)"
cat >"$WORK/issuer.toml" <<TOML
issuer = "http://127.0.0.1:$PORT"
listen = "127.0.0.1:$PORT"
[keys]
dir = "$WORK/keys"
algorithms = ["$ALG"]
rsa_bits = 2048
[tokens]
algorithm = "$ALG"
audience = "https://api.example.test"
[[clients]]
id = "bench"
secret_hash = "$HASH"
scopes = ["read", "write"]
audiences = ["https://api.example.test"]
TOML

RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$OUT/callgrind.out.%p" \
  "$BIN" serve --config "$WORK/issuer.toml" >"$WORK/server.log" 2>&1 &
VPID=$!

python3 - "$PORT" "$SECRET" "$N" "$VPID" <<'PY'
import http.client, base64, subprocess, sys, time
port, secret, n, vpid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
deadline = time.time() + 120
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("GET", "/healthz"); c.getresponse().read(); break
    except OSError:
        if time.time() > deadline: sys.exit("server did not start")
        time.sleep(0.2)
auth = "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode()
body = "grant_type=client_credentials&scope=read"
hdrs = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
def one():
    c.request("POST", "/token", body, hdrs)
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"token request answered {r.status}")
for _ in range(50): one()
subprocess.run(["callgrind_control", "-i", "on", vpid], check=True, capture_output=True)
for _ in range(n): one()
subprocess.run(["callgrind_control", "-i", "off", vpid], check=True, capture_output=True)
subprocess.run(["callgrind_control", "-d", "counted", vpid], check=True, capture_output=True)
PY
kill "$VPID"; wait "$VPID" 2>/dev/null || true

FILE="$(grep -l "counted" "$OUT"/callgrind.out.* | tail -n1)"
TOTAL="$(callgrind_annotate "$FILE" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t { gsub(",", "", $1); t = $1 } END { print t }')"
echo "file $FILE"
echo "ir_total $TOTAL"
echo "ir_per_token $((TOTAL / N))"
callgrind_annotate --inclusive=yes "$FILE" 2>/dev/null | sed -n "/Ir/,\$p" | sed -n 1,45p
