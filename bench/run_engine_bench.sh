#!/usr/bin/env bash
# Local engine benchmark: a Qwen2-0.5B-shaped model with random weights in
# BF16 and in Q8_0 (made once by tools/make_test_model.py, kept in
# build/bench-models/), decoded by sluice-engine-bench at 1, 8 and 32
# sessions, and by PyTorch (Debian's python3-torch) on the same weights with
# the same threads: in bfloat16 beside the BF16 model, with its dynamic int8
# linears beside the Q8_0 model.
# Usage: bench/run_engine_bench.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
cmake --preset release >/dev/null
cmake --build --preset release --target sluice-engine-bench >/dev/null
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for type in bf16 q8_0; do
  model=build/bench-models/qwen2-0.5b-$type.gguf
  if [ ! -f "$model" ]; then
    mkdir -p build/bench-models
    /usr/bin/python3 tools/make_test_model.py "$model" --arch qwen2 --type $type --seed 1 --shape qwen2-0.5b
  fi
  echo
  build/release/bin/sluice-engine-bench "$model" --threads "$threads" --batches 1,8,32 --tokens 32
  torch_type=bf16
  [ $type = q8_0 ] && torch_type=int8
  /usr/bin/python3 bench/local_engine/torch_decode.py --threads "$threads" --batches 1,8,32 --tokens 32 --dtype $torch_type
done
