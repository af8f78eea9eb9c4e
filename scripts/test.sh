#!/usr/bin/env bash
# Installs the dependencies, builds Sluice and runs every test: a short smoke
# run of each libFuzzer target, then the whole suite on the release build,
# under AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer.
# Usage: scripts/test.sh [preset...]   (default: the fuzz smoke, release asan tsan;
# e.g. `scripts/test.sh tsan` runs only the ThreadSanitizer suite)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Real third-party clients for the end-to-end tests, pinned by package-lock.json.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
npm ci --prefix web-demo --no-audit --no-fund --loglevel=error  # the widget's Markdown parser and sanitizer
presets=("$@")
fuzz_smoke=0
if [ ${#presets[@]} -eq 0 ]; then
  presets=(release asan tsan)
  fuzz_smoke=1
fi
jobs=$(nproc)
if [ "$fuzz_smoke" = 1 ]; then
  echo "=== fuzz smoke"
  bash tools/fuzz.sh "${SLUICE_FUZZ_SECONDS:-20}"
fi
for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== ${preset}: tests"
  if [ "$preset" = release ]; then
    ctest --preset "$preset" -j "$jobs"
  else
    # Under the sanitizers everything runs 3-20x slower on 2 cores; a test
    # that fails there is run once more before it counts as failed.
    ctest --preset "$preset" -j "$jobs" --repeat until-pass:2
  fi
done
