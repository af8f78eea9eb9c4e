#!/usr/bin/env bash
# Installs the dependencies, builds Sluice and runs every test: the release
# build, then the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
# Usage: scripts/test.sh [preset...]   (default: release asan)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Real third-party clients for the end-to-end tests, pinned by package-lock.json.
npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(release asan)
jobs=$(nproc)
for preset in "${presets[@]}"; do
  echo "=== ${preset}: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "=== ${preset}: tests"
  ctest --preset "$preset" -j "$jobs"
done
