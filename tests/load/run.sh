#!/usr/bin/env bash
# Load test of jwks-issuer's POST /token and JWKS on loopback, side by side
# with node-oidc-provider (the peer our goals are stated against), using the
# peer bench scripts in ../shared/bench/peer-oidc-provider (wrk; server CPU
# time from /proc; RSS sampled).
#
# usage: tests/load/run.sh [SECONDS=8] [WARMUP=2] [OUT=target/load]
#   PEER=0          skip the peer (node-oidc-provider)
#   BARE=0          skip the bare-signature baseline (criterion bench)
#   ONLY_KEYS20=1   run only the 20-keys-in-the-JWKS section
# Prints SUMMARY lines and writes them to $OUT/summary.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH="${BENCH_DIR:-$ROOT/../shared/bench/peer-oidc-provider}"
DUR="${1:-8}"; export WARMUP="${2:-2}"; OUT="${3:-$ROOT/target/load}"
PORT=18080; PEER_PORT=4010
mkdir -p "$OUT"; SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
cd "$ROOT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p jwks-issuer
BIN="$ROOT/target/release/jwks-issuer"

SECRET="bench-secret-change-me"
HASH="$(printf '%s\n' "$SECRET" | "$BIN" hash-secret)"   # default argon2id parameters
WORK="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

config() { # $1 = rsa_bits, $2 = rotation_period, $3 = publish_ahead, $4 = extra clients
  cat <<TOML
issuer = "http://127.0.0.1:$PORT"
listen = "127.0.0.1:$PORT"
[keys]
dir = "$WORK/keys-$1-$2"
algorithms = ["ES256", "RS256"]
rsa_bits = $1
rotation_period = "$2"
publish_ahead = "$3"
[jwks]
max_age = "1s"
[tokens]
ttl = "5m"
audience = "https://api.example.test"
[throttle]
burst = 0
[[clients]]
id = "bench-client"
secret_hash = "$HASH"
scopes = ["invoices:read", "invoices:write"]
audiences = ["https://api.example.test"]
[[clients]]
id = "bench-client-rs"
secret_hash = "$HASH"
scopes = ["invoices:read", "invoices:write"]
audiences = ["https://api.example.test"]
algorithm = "RS256"
$4
TOML
}

# N extra clients, to show the lookup does not grow with the client count.
extra_clients() {
  local n="$1" i
  for ((i = 0; i < n; i++)); do
    printf '[[clients]]\nid = "filler-%d"\nsecret_hash = "%s"\nscopes = ["x"]\n' "$i" "$HASH"
  done
}

SERVER_PID=""
start_issuer() { # $1 = config file
  RUST_LOG=warn "$BIN" --config "$1" serve >"$OUT/issuer.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && return; sleep 0.1; done
  cat "$OUT/issuer.log"; echo "issuer did not start" >&2; exit 1
}
stop_issuer() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

bench() { # label, then bench_token args
  local label="$1"; shift
  LABEL="$label" bash "$BENCH/bench_token.sh" "$@" | tee -a "$OUT/$label.log" | grep '^SUMMARY' | tee -a "$SUMMARY"
}
bench_jwks() {
  local label="$1"; shift
  LABEL="$label" bash "$BENCH/bench_jwks.sh" "$@" | tee -a "$OUT/$label.log" | grep '^SUMMARY' | tee -a "$SUMMARY"
}
URL="http://127.0.0.1:$PORT/token"
SCOPE="invoices:read invoices:write"

# --- ours: 20 keys in the JWKS (18 pending successors from `keys rotate`) -----------
config 2048 30d 1d "" > "$WORK/issuer-keys20.toml"
start_issuer "$WORK/issuer-keys20.toml"
for _ in $(seq 9); do "$BIN" --config "$WORK/issuer-keys20.toml" keys rotate >/dev/null 2>&1; done
sleep 2.5 # the server picks the change up within 2 s
keys=$(curl -s "http://127.0.0.1:$PORT/.well-known/jwks.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["keys"]))')
echo "keys in the JWKS: $keys" | tee -a "$SUMMARY"
bench "ours-es256-c16-keys$keys" "$URL" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$SERVER_PID"
bench "ours-rs256-c16-keys$keys" "$URL" bench-client-rs "$SECRET" "$SCOPE" "$DUR" 16 "$SERVER_PID"
bench_jwks "ours-jwks-c16-keys$keys" "http://127.0.0.1:$PORT/.well-known/jwks.json" "$DUR" 16 "$SERVER_PID"
stop_issuer
[ "${ONLY_KEYS20:-0}" = 1 ] && { echo "summary: $SUMMARY"; exit 0; }

# --- ours: 1, 10 and 1,000 clients ------------------------------------------------
for n in 0 8 998; do
  config 2048 30d 1d "$(extra_clients $n)" > "$WORK/issuer-$n.toml"
  start_issuer "$WORK/issuer-$n.toml"
  clients=$((n + 2))
  for conc in 16 64; do
    [ "$n" != 0 ] && [ "$conc" = 64 ] && continue
    bench "ours-es256-c$conc-clients$clients" "$URL" bench-client "$SECRET" "$SCOPE" "$DUR" "$conc" "$SERVER_PID"
    bench "ours-rs256-c$conc-clients$clients" "$URL" bench-client-rs "$SECRET" "$SCOPE" "$DUR" "$conc" "$SERVER_PID"
  done
  [ "$n" = 0 ] && bench_jwks "ours-jwks-c16" "http://127.0.0.1:$PORT/.well-known/jwks.json" "$DUR" 16 "$SERVER_PID"
  [ "$n" = 0 ] && bench_jwks "ours-jwks-c64" "http://127.0.0.1:$PORT/.well-known/jwks.json" "$DUR" 64 "$SERVER_PID"
  stop_issuer
done

# --- ours: p99 while 4096-bit RSA successors are generated in the server ----------
config 4096 30d 5s "" > "$WORK/issuer-steady.toml"
start_issuer "$WORK/issuer-steady.toml"
bench "ours-es256-c16-rsa4096-steady" "$URL" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$SERVER_PID"
stop_issuer
# rotation_period 6s, publish_ahead 5s: a successor is due every ~6 s per algorithm.
config 4096 6s 5s "" > "$WORK/issuer-rotating.toml"
start_issuer "$WORK/issuer-rotating.toml"
before=$(ls "$WORK"/keys-4096-6s | wc -l)
bench "ours-es256-c16-rsa4096-rotating" "$URL" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$SERVER_PID"
after=$(ls "$WORK"/keys-4096-6s | wc -l)
grep -c "key created" "$OUT/issuer.log" | sed 's/^/keys created during the rotating run (log lines): /' | tee -a "$SUMMARY" || true
echo "key files before/after: $before/$after" | tee -a "$SUMMARY"
stop_issuer

# --- the peer ----------------------------------------------------------------------
if [ "${PEER:-1}" != 0 ]; then
  bash "$BENCH/setup.sh" install >/dev/null
  for alg in ES256 RS256; do
    pid="$(bash "$BENCH/setup.sh" start "$alg" "$PEER_PORT" 2>/dev/null | tail -1)"
    for conc in 16 64; do
      bench "peer-$(echo $alg | tr A-Z a-z)-c$conc" "http://127.0.0.1:$PEER_PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" "$conc" "$pid"
    done
    [ "$alg" = ES256 ] && bench_jwks "peer-jwks-c16" "http://127.0.0.1:$PEER_PORT/jwks" "$DUR" 16 "$pid"
    bash "$BENCH/setup.sh" stop
  done
fi

# --- the bare signature on this machine, same run ------------------------------------
if [ "${BARE:-1}" != 0 ]; then
  cargo bench -q -p jwks-issuer --bench issue -- --noplot 2>/dev/null | grep -E '^issue|time:' | tee -a "$SUMMARY"
fi
echo "summary: $SUMMARY"
