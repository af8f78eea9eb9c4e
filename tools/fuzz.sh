#!/usr/bin/env bash
# Runs each libFuzzer target (client protocol parser, SSE parser + chunk
# decoder, config loader, GGUF reader) for SECONDS (default 60), starting from the seed
# corpora in tests/fuzz/corpus/. Crashes land in build/fuzz/artifacts/.
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
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  echo "=== fuzz ${t}: ${secs} s"
  build/fuzz/bin/sluice_fuzz_${t} -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/artifacts/${t}- -print_final_stats=1 \
    "$work" "tests/fuzz/corpus/${t}" 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|SUMMARY' || true
  rm -rf "$work"
  if ls build/fuzz/artifacts/${t}-* >/dev/null 2>&1; then
    echo "fuzz ${t}: FAILED, see build/fuzz/artifacts/" >&2
    exit 1
  fi
  echo "fuzz ${t}: no crash"
done
