#!/usr/bin/env bash
# The production shapes of issue 20, ours and node-oidc-provider side by side
# in one run, on loopback (wrk; the peer bench scripts in
# ../shared/bench/peer-oidc-provider, which stay read-only and are wrapped):
#   1 keep-alive, plain HTTP            (client_secret_basic, ES256)
#   2 keep-alive, TLS                   ([tls] / node's https)
#   3 a new TLS connection per request  (Connection: close: a full handshake each)
#   4 PostgreSQL store, 2 replicas, private_key_jwt + DPoP: single-use ids
#     claimed across replicas in the database (ours only: the peer's
#     in-memory adapter has no shared store)
#   5 10,000 configured clients         (client_secret_basic, ES256)
#   6 private_key_jwt + DPoP, one server (two signature checks per request)
#
# usage: tests/load/shapes.sh [SECONDS=8] [WARMUP=2] [OUT=target/load-shapes]
#   PEER=0   skip the peer;  SHAPES="1 2 3 4 5 6"  the shapes to run
#   PG_URL   the PostgreSQL server for shape 4 (default postgres://postgres@127.0.0.1:5432)
#   JWKS_ISSUER_BIN  a binary to use instead of building the release one
# Prints SUMMARY lines and writes them to $OUT/summary.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LOAD="$ROOT/tests/load"
BENCH="${BENCH_DIR:-$ROOT/../shared/bench/peer-oidc-provider}"
DUR="${1:-8}"; export WARMUP="${2:-2}"; OUT="${3:-$ROOT/target/load-shapes}"
SHAPES="${SHAPES:-1 2 3 4 5 6}"
PORT=18080; PORT2=18081; PEER_PORT=4010
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
mkdir -p "$OUT"; SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
cd "$ROOT"
has() { [[ " $SHAPES " == *" $1 "* ]]; }

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
python3 -c 'import jwt, cryptography' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
if [ -z "${JWKS_ISSUER_BIN:-}" ]; then cargo build --release -q -p jwks-issuer; fi
BIN="${JWKS_ISSUER_BIN:-$ROOT/target/release/jwks-issuer}"
SECRET="bench-secret-change-me"
HASH="$(printf '%s\n' "$SECRET" | "$BIN" hash-secret)"
WORK="$(mktemp -d)"
PIDS_TO_STOP=()
cleanup() { for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
export JWKS_ISSUER_KEK="$(head -c 32 /dev/urandom | base64)"

# --- a test CA and the servers' certificate (P-256) -------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=load CA" \
  -addext basicConstraints=critical,CA:TRUE -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
  -extfile "$WORK/server.ext" -out "$WORK/server.crt" 2>/dev/null
export CURL_CA_BUNDLE="$WORK/ca.crt"
python3 "$LOAD/gen_signed.py" keygen "$WORK"

config() { # $1 issuer URL, $2 listen port, $3 store line, $4 tls (0/1), $5 extra clients, $6 pkjwt (0/1)
  cat <<TOML
issuer = "$1"
listen = "127.0.0.1:$2"
[keys]
$3
algorithms = ["ES256", "RS256"]
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
TOML
  local i
  if [ "$6" = 1 ]; then
    for ((i = 0; i < 16; i++)); do
      printf '[[clients]]\nid = "bench-pkjwt-%d"\njwks_file = "client.jwks.json"\nscopes = ["invoices:read", "invoices:write"]\naudiences = ["https://api.example.test"]\n' "$i"
    done
  fi
  for ((i = 0; i < $5; i++)); do
    printf '[[clients]]\nid = "filler-%d"\nsecret_hash = "%s"\nscopes = ["x"]\n' "$i" "$HASH"
  done
  if [ "$4" = 1 ]; then
    printf '[tls]\ncert_file = "server.crt"\nkey_file = "server.key"\n'
  fi
}

start_issuer() { # $1 config, $2 port, $3 scheme -> sets LAST_PID
  RUST_LOG=warn "$BIN" --config "$1" serve >>"$OUT/issuer.log" 2>&1 &
  LAST_PID=$!; PIDS_TO_STOP+=("$LAST_PID")
  for _ in $(seq 300); do curl -sf -o /dev/null "$3://127.0.0.1:$2/readyz" && return; sleep 0.1; done
  tail -20 "$OUT/issuer.log"; echo "issuer did not start" >&2; exit 1
}
stop() { kill "$@" 2>/dev/null || true; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }

start_peer() { # $1 port, then env assignments -> sets LAST_PID
  local port="$1"; shift
  cp "$LOAD/peer_server.mjs" /tmp/peer-oidc/
  (cd /tmp/peer-oidc && env NODE_ENV=production PORT="$port" "$@" node peer_server.mjs >"$OUT/peer.log" 2>&1) &
  LAST_PID=$!; PIDS_TO_STOP+=("$LAST_PID")
  local scheme=http; [[ " $* " == *TLS_CERT_FILE* ]] && scheme=https
  for _ in $(seq 300); do curl -sf -o /dev/null "$scheme://127.0.0.1:$port/.well-known/openid-configuration" && break; sleep 0.1; done
  # the node process itself (the subshell's child) for CPU and RSS
  LAST_PID="$(pgrep -P "$LAST_PID" -f peer_server.mjs || echo "$LAST_PID")"
}

bench() { # label, then bench_token.sh args
  local label="$1"; shift
  LABEL="$label" bash "$BENCH/bench_token.sh" "$@" | tee -a "$OUT/$label.log" | grep '^SUMMARY' | tee -a "$SUMMARY"
}
signed() { # label pids url=file...
  local label="$1"; shift
  bash "$LOAD/bench_signed.sh" "$label" "$DUR" 16 "$@" | tee -a "$OUT/$label.log" | grep '^SUMMARY' | tee -a "$SUMMARY"
}
# Enough single-use requests for a run at up to $1 tokens/s: $2 = issuer, $3 = file.
gen_requests() {
  python3 "$LOAD/gen_signed.py" requests "$WORK" "$3" "$(( $1 * DUR ))" "$2" bench-pkjwt 1
  python3 "$LOAD/gen_signed.py" requests "$WORK" "$3.warm" "$(( $1 * WARMUP ))" "$2" bench-pkjwt 1
}
SCOPE="invoices:read invoices:write"
peer_on() { [ "${PEER:-1}" != 0 ]; }
[ -d /tmp/peer-oidc/node_modules/oidc-provider ] || ! peer_on || bash "$BENCH/setup.sh" install >/dev/null

echo "date: $(date -u +%FT%TZ); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$SUMMARY"

# --- 1, 2, 3: plain keep-alive, TLS keep-alive, TLS per request -------------------
if has 1 || has 2 || has 3; then
  config "http://127.0.0.1:$PORT" "$PORT" "dir = \"$WORK/keys-plain\"" 0 0 0 > "$WORK/plain.toml"
  config "https://127.0.0.1:$PORT2" "$PORT2" "dir = \"$WORK/keys-tls\"" 1 0 0 > "$WORK/tls.toml"
  if has 1; then
    start_issuer "$WORK/plain.toml" "$PORT" http; pid=$LAST_PID
    bench "s1-ours-plain-keepalive" "http://127.0.0.1:$PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
    stop "$pid"
  fi
  if has 2 || has 3; then
    start_issuer "$WORK/tls.toml" "$PORT2" https; pid=$LAST_PID
    has 2 && bench "s2-ours-tls-keepalive" "https://127.0.0.1:$PORT2/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
    has 3 && BENCH_CONN_CLOSE=1 bench "s3-ours-tls-per-request" "https://127.0.0.1:$PORT2/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
    stop "$pid"
  fi
  if peer_on; then
    if has 1; then
      start_peer "$PEER_PORT"; pid=$LAST_PID
      bench "s1-peer-plain-keepalive" "http://127.0.0.1:$PEER_PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
      stop "$pid"
    fi
    if has 2 || has 3; then
      start_peer "$PEER_PORT" TLS_CERT_FILE="$WORK/server.crt" TLS_KEY_FILE="$WORK/server.key"; pid=$LAST_PID
      has 2 && bench "s2-peer-tls-keepalive" "https://127.0.0.1:$PEER_PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
      has 3 && BENCH_CONN_CLOSE=1 bench "s3-peer-tls-per-request" "https://127.0.0.1:$PEER_PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
      stop "$pid"
    fi
  fi
fi

# --- 4: two replicas on PostgreSQL, private_key_jwt + DPoP ------------------------
if has 4; then
  db="jwks_load_$$"
  psql "$PG_URL/postgres" -qAtX -c "CREATE DATABASE $db" >/dev/null
  store="postgres = \"$PG_URL/$db\""
  config "http://127.0.0.1:$PORT" "$PORT" "$store" 0 0 1 > "$WORK/pg1.toml"
  config "http://127.0.0.1:$PORT" "$PORT2" "$store" 0 0 1 > "$WORK/pg2.toml"
  start_issuer "$WORK/pg1.toml" "$PORT" http; a=$LAST_PID
  start_issuer "$WORK/pg2.toml" "$PORT2" http; b=$LAST_PID
  gen_requests 2500 "http://127.0.0.1:$PORT" "$WORK/pg-a.req"
  gen_requests 2500 "http://127.0.0.1:$PORT" "$WORK/pg-b.req"
  signed "s4-ours-postgres-2-replicas-pkjwt-dpop" "$a,$b" \
    "http://127.0.0.1:$PORT/token=$WORK/pg-a.req" "http://127.0.0.1:$PORT2/token=$WORK/pg-b.req"
  echo "single-use ids in the database after the run: $(psql "$PG_URL/$db" -qAtX -c 'SELECT count(*) FROM jwks_issuer_replay')" | tee -a "$SUMMARY"
  stop "$a" "$b"
  # Diagnosis: the same with the database's commits not waiting for the
  # WAL flush (each claim is its own transaction: two commits per token).
  psql "$PG_URL/postgres" -qAtX -c "ALTER DATABASE $db SET synchronous_commit = off" >/dev/null
  start_issuer "$WORK/pg1.toml" "$PORT" http; a=$LAST_PID
  start_issuer "$WORK/pg2.toml" "$PORT2" http; b=$LAST_PID
  gen_requests 2500 "http://127.0.0.1:$PORT" "$WORK/pg-a.req"
  gen_requests 2500 "http://127.0.0.1:$PORT" "$WORK/pg-b.req"
  signed "s4-ours-postgres-2-replicas-pkjwt-dpop-synchronous_commit_off" "$a,$b" \
    "http://127.0.0.1:$PORT/token=$WORK/pg-a.req" "http://127.0.0.1:$PORT2/token=$WORK/pg-b.req"
  stop "$a" "$b"
  psql "$PG_URL/postgres" -qAtX -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
fi

# --- 5: 10,000 configured clients -------------------------------------------------
if has 5; then
  config "http://127.0.0.1:$PORT" "$PORT" "dir = \"$WORK/keys-many\"" 0 9999 0 > "$WORK/many.toml"
  start_issuer "$WORK/many.toml" "$PORT" http; pid=$LAST_PID
  bench "s5-ours-10000-clients" "http://127.0.0.1:$PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
  stop "$pid"
  if peer_on; then
    start_peer "$PEER_PORT" EXTRA_CLIENTS=9999; pid=$LAST_PID
    bench "s5-peer-10000-clients" "http://127.0.0.1:$PEER_PORT/token" bench-client "$SECRET" "$SCOPE" "$DUR" 16 "$pid"
    stop "$pid"
  fi
fi

# --- 6: private_key_jwt + DPoP, one server ----------------------------------------
if has 6; then
  config "http://127.0.0.1:$PORT" "$PORT" "dir = \"$WORK/keys-pkjwt\"" 0 0 1 > "$WORK/pkjwt.toml"
  start_issuer "$WORK/pkjwt.toml" "$PORT" http; pid=$LAST_PID
  gen_requests 8000 "http://127.0.0.1:$PORT" "$WORK/ours.req"
  signed "s6-ours-pkjwt-dpop" "$pid" "http://127.0.0.1:$PORT/token=$WORK/ours.req"
  stop "$pid"
  if peer_on; then
    start_peer "$PEER_PORT" PKJWT_JWKS="$WORK/client.jwks.json"; pid=$LAST_PID
    gen_requests 3000 "http://127.0.0.1:$PEER_PORT" "$WORK/peer.req"
    signed "s6-peer-pkjwt-dpop" "$pid" "http://127.0.0.1:$PEER_PORT/token=$WORK/peer.req"
    stop "$pid"
  fi
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$SUMMARY"
echo "summary: $SUMMARY"
