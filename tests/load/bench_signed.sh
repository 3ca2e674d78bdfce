#!/usr/bin/env bash
# Drive pre-signed token requests (private_key_jwt, optionally DPoP; made by
# gen_signed.py) at one or more token endpoints at once, each with its own
# request file, and print the SUMMARY line of the peer bench scripts
# (../shared/bench/peer-oidc-provider/bench_token.sh, whose helpers this
# sources): tokens/s summed, p50/p99 the worst of the endpoints, server CPU
# per token summed over every PID, RSS summed.
#
# usage: bench_signed.sh LABEL SECONDS CONCURRENCY PIDS URL=FILE [URL=FILE...]
#   PIDS: comma-separated server PIDs. Each URL gets CONCURRENCY connections.
#   A warm-up of WARMUP seconds (default 2) runs first from FILE.warm when it exists.
set -euo pipefail
BENCH="${BENCH_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/bench/peer-oidc-provider}"
. "$BENCH/bench_lib.sh"
HERE_LOAD="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LABEL="$1"; DUR="$2"; CONC="$3"; PIDS="$4"; shift 4
THREADS="${THREADS:-$(( CONC < 2 ? CONC : 2 ))}"
export BENCH_THREADS="$THREADS"
for pair in "$@"; do assert_loopback "${pair%%=*}"; done

wrk_one() { # URL FILE SECONDS -> RESULT line
  BENCH_REQUESTS="$2" run_wrk "$3" "$CONC" "$THREADS" "$HERE_LOAD/signed_post.lua" "$1" | grep '^RESULT' || true
}
if [ "${WARMUP:-2}" -gt 0 ]; then
  for pair in "$@"; do
    f="${pair#*=}.warm"; [ -f "$f" ] && wrk_one "${pair%%=*}" "$f" "${WARMUP:-2}" >/dev/null &
  done
  wait
fi
rss_file="$(mktemp)"; outs="$(mktemp -d)"
cpu0="$(cpu_ticks "$PIDS")"
sampler="$(start_rss_sampler "$PIDS" "$rss_file" "$(( DUR + 2 ))")"
t0="$(date +%s.%N)"
i=0
for pair in "$@"; do
  wrk_one "${pair%%=*}" "${pair#*=}" "$DUR" >"$outs/$i" &
  i=$((i + 1))
done
wait
t1="$(date +%s.%N)"
cpu1="$(cpu_ticks "$PIDS")"
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
cat "$outs"/*
read -r requests non2xx jwt_ok exhausted rps p50 p99 < <(cat "$outs"/* | awk '
  function kv(k,   i) { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return 0 }
  { r += kv("requests"); n += kv("non2xx"); j += kv("jwt_ok"); x += kv("exhausted"); s += kv("rps");
    if (kv("p50_ms") + 0 > p50) p50 = kv("p50_ms") + 0; if (kv("p99_ms") + 0 > p99) p99 = kv("p99_ms") + 0 }
  END { printf "%d %d %d %d %.1f %.2f %.2f\n", r, n, j, x, s, p50, p99 }')
rm -rf "$outs"
read -r cpu_us cpu_pct < <(awk -v a="$cpu0" -v b="$cpu1" -v hz="$CLK_TCK" -v n="$jwt_ok" -v t0="$t0" -v t1="$t1" \
  'BEGIN{s=(b-a)/hz; printf "%.0f %.0f\n", (n>0? s*1e6/n : 0), 100*s/(t1-t0)}')
rss_max="$(awk '{printf "%.1f", $1/1024}' "$rss_file")"; rm -f "$rss_file"
echo "SUMMARY label=$LABEL conc=$CONC threads=$THREADS dur=$DUR rps=$rps p50_ms=$p50 p99_ms=$p99 requests=$requests non2xx=$non2xx exhausted=$exhausted jwt_ok=$jwt_ok tokens=$jwt_ok cpu_us_per_token=$cpu_us server_cpu_pct=$cpu_pct rss_max_mb=$rss_max"
