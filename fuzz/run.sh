#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [SECONDS=60] [TARGET...]
#
# Stable toolchain: `-s none` (no sanitizer) needs no nightly; `-a` keeps
# debug assertions and overflow checks on (the bugs safe Rust can have).
# Each target starts from fuzz/seeds/<target> and keeps its corpus in
# fuzz/corpus/<target> (not committed); crashes land in fuzz/artifacts/<target>/ and the script
# exits 1. Logs: fuzz/<target>.log (the last `#N DONE cov: ft:` line is the
# summary). Runs at the lowest priority: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token jwks token_form dpop_proof)
# `cargo fuzz` has no --locked: this fails first when fuzz/Cargo.lock no
# longer matches the crates' manifests, instead of letting the build
# rewrite it. After a dependency change: `cargo update -w --manifest-path
# fuzz/Cargo.toml` (or any cargo command there without --locked), and
# commit fuzz/Cargo.lock.
if ! cargo fetch --locked --quiet; then
  echo "!! fuzz/Cargo.lock is out of date (see above); update and commit it" >&2
  exit 1
fi
# JWKS_FUZZ_CODEGEN_UNITS=16 (set by .ci/run): a faster build, somewhat
# slower runs (cargo fuzz builds with 1 codegen unit by default).
build_flags=(-s none -a)
if [ -n "${JWKS_FUZZ_CODEGEN_UNITS:-}" ]; then
  build_flags+=(--codegen-units "$JWKS_FUZZ_CODEGEN_UNITS")
fi
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  if ! nice -n 19 cargo fuzz run "${build_flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -dict=dict/json.dict -max_len=16384 -rss_limit_mb=2048 \
      -timeout=10 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$t.log" 2>&1; then
    echo "!! $t failed or crashed: see fuzz/$t.log and fuzz/artifacts/$t/"
    status=1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^Done [0-9]+ runs' "$t.log" | tail -3 || true
done
exit $status
