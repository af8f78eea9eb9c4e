#!/usr/bin/env bash
# Runs each libFuzzer target (client protocol parser, SSE parser + chunk
# decoder, config loader, GGUF reader) for SECONDS (default 60), starting from the seed
# corpora in tests/fuzz/corpus/. Any crash, leak or sanitizer report fails the
# run: the fuzz preset builds with -fno-sanitize-recover=all, so UBSan aborts
# at its first report (and libFuzzer keeps the input), and the output is also
# searched for sanitizer reports in case one slips through. Crashes land in
# build/fuzz/artifacts/.
# Usage: tools/fuzz.sh [SECONDS] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(client_parser sse_parser config gguf)
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target $(printf 'sluice_fuzz_%s ' "${targets[@]}")
mkdir -p build/fuzz/artifacts
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  log=$(mktemp)
  echo "=== fuzz ${t}: ${secs} s"
  status=0
  build/fuzz/bin/sluice_fuzz_${t} -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/artifacts/${t}- -print_final_stats=1 \
    "$work" "tests/fuzz/corpus/${t}" >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|SUMMARY|runtime error' "$log" || true
  rm -rf "$work"
  failed=0
  [ "$status" -eq 0 ] || failed=1
  grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)' "$log" && failed=1
  ls build/fuzz/artifacts/${t}-* >/dev/null 2>&1 && failed=1
  if [ "$failed" = 1 ]; then
    grep -B2 -A20 -E 'runtime error:|ERROR:' "$log" | head -60 >&2 || true
    rm -f "$log"
    echo "fuzz ${t}: FAILED (exit ${status}), see build/fuzz/artifacts/" >&2
    exit 1
  fi
  rm -f "$log"
  echo "fuzz ${t}: no crash, no sanitizer report"
done
