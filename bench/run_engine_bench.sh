#!/usr/bin/env bash
# Local engine benchmark: a Qwen2-0.5B-shaped model with random weights in
# BF16 (made once by tools/make_test_model.py, kept in build/bench-models/),
# decoded by sluice-engine-bench at 1, 8 and 32 sessions, and by PyTorch
# (Debian's python3-torch) on the same weights with the same threads.
# Usage: bench/run_engine_bench.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
cmake --preset release >/dev/null
cmake --build --preset release --target sluice-engine-bench >/dev/null
model=build/bench-models/qwen2-0.5b-bf16.gguf
if [ ! -f "$model" ]; then
  mkdir -p build/bench-models
  /usr/bin/python3 tools/make_test_model.py "$model" --arch qwen2 --type bf16 --seed 1 --shape qwen2-0.5b
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
build/release/bin/sluice-engine-bench "$model" --threads "$threads" --batches 1,8,32 --tokens 32
/usr/bin/python3 bench/local_engine/torch_decode.py --threads "$threads" --batches 1,8,32 --tokens 32
