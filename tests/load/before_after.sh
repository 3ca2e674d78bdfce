#!/usr/bin/env bash
# Two builds of jwks-issuer side by side, in alternating rounds of the same
# wrk load (the peer scripts in ../shared/bench/peer-oidc-provider), so a
# busy machine slows both alike: the comparison is the ratio of server CPU
# per token (and of tokens/s) between the two, round by round.
#
# usage: tests/load/before_after.sh BEFORE_BIN AFTER_BIN [ROUNDS=3] [SECONDS=5] [CONC=16]
# Prints SUMMARY lines labelled before-/after-ALG-rN and writes them to
# $OUT/before_after.txt (default target/load).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH="${BENCH_DIR:-$ROOT/../shared/bench/peer-oidc-provider}"
BEFORE="$1"; AFTER="$2"; ROUNDS="${3:-3}"; DUR="${4:-5}"; CONC="${5:-16}"
OUT="${OUT:-$ROOT/target/load}"; mkdir -p "$OUT"; SUMMARY="$OUT/before_after.txt"; : >"$SUMMARY"
export WARMUP="${WARMUP:-1}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
WORK="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

SECRET="before-after-secret"
HASH="$(printf '%s\n' "$SECRET" | "$AFTER" hash-secret)"
config() { # $1 = name, $2 = port
  cat <<TOML
issuer = "http://127.0.0.1:$2"
listen = "127.0.0.1:$2"
[keys]
dir = "$WORK/keys-$1"
algorithms = ["ES256", "RS256"]
[tokens]
audience = "https://api.example.test"
[throttle]
burst = 0
[[clients]]
id = "bench-es"
secret_hash = "$HASH"
scopes = ["read", "write"]
audiences = ["https://api.example.test"]
[[clients]]
id = "bench-rs"
secret_hash = "$HASH"
scopes = ["read", "write"]
audiences = ["https://api.example.test"]
algorithm = "RS256"
TOML
}
declare -A PID PORT=([before]=18121 [after]=18122) BIN=([before]="$BEFORE" [after]="$AFTER")
for side in before after; do
  config "$side" "${PORT[$side]}" >"$WORK/$side.toml"
  RUST_LOG=warn "${BIN[$side]}" --config "$WORK/$side.toml" serve >"$OUT/$side.log" 2>&1 &
  PID[$side]=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:${PORT[$side]}/readyz" && break; sleep 0.1; done
done
for r in $(seq "$ROUNDS"); do
  for alg in es rs; do
    for side in before after; do
      LABEL="$side-${alg}256-r$r" bash "$BENCH/bench_token.sh" "http://127.0.0.1:${PORT[$side]}/token" \
        "bench-$alg" "$SECRET" "read write" "$DUR" "$CONC" "${PID[$side]}" | grep '^SUMMARY' | tee -a "$SUMMARY"
    done
  done
done
echo "summary: $SUMMARY"
