#!/usr/bin/env bash
# Installs the dependencies, builds Sluice and runs every test: a short smoke
# run of each libFuzzer target, then the whole suite on the release build,
# under AddressSanitizer + UndefinedBehaviorSanitizer, and under TSan.
# Usage: scripts/test.sh [preset...]   (default: the fuzz smoke, release asan tsan)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Real third-party clients for the end-to-end tests, pinned by package-lock.json.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
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
  ctest --preset "$preset" -j "$jobs"
done
