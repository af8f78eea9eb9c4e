#!/usr/bin/env bash
# The CUDA backend's checks on a lent GPU machine, in one run.
#
# Here (Debian 12 with CUDA 13's nvcc, no GPU needed):
#   bash bench/gpu_check.sh prepare
# builds the release preset and copies what the GPU machine needs into
# .gpu-check/ (ignored by git): the GPU tests, the engine benchmark and
# libsluice-cuda.so (the GPU machine has CUDA 13's libraries and PyTorch, not
# this project's build dependencies).
#
# There (the device tool, from the repository root, carrying .gpu-check):
#   bash bench/gpu_check.sh run
# runs the GPU tests (every kernel against the CPU's, whole-model logits,
# greedy tokens, batch invariance, graphs, the demo model), makes the
# Qwen2-0.5B-shaped random models (BF16 and Q8_0, tools/make_test_model.py),
# runs the engine benchmark on the GPU (graphs on and off; prompt GEMMs in
# FP32 and BF16) and PyTorch on the GPU beside it on the same weights. All of
# it goes to stdout and $OUT/gpu-check.log. About 5 minutes on an H200.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
  set -e
  cmake --preset release >/dev/null
  cmake --build --preset release --target sluice_cuda_tests sluice-engine-bench sluice_cuda
  rm -rf .gpu-check
  mkdir -p .gpu-check/bin
  cp build/release/bin/sluice_cuda_tests build/release/bin/sluice-engine-bench build/release/bin/libsluice-cuda.so \
    .gpu-check/bin/
  du -sh .gpu-check
  echo 'then: device run, command "bash bench/gpu_check.sh run", carry [".gpu-check"], timeout_s 540'
}

run() {
  local out=${OUT:-/tmp/gpu-check}
  mkdir -p "$out"
  exec > >(tee "$out/gpu-check.log") 2>&1
  [ -x .gpu-check/bin/sluice_cuda_tests ] || { echo "no .gpu-check/: run 'bash bench/gpu_check.sh prepare' here first"; exit 2; }
  local failed=0 t0=$SECONDS
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv || true
  export LD_LIBRARY_PATH="$PWD/.gpu-check/bin:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export SLUICE_DEMO_MODEL="$PWD/models/sluice-demo.gguf"
  local py=${PYTHON:-python3}  # the GPU machine's python3 holds PyTorch
  # The benchmark's models, made while the tests run (CPU work).
  mkdir -p /tmp/gpu-check-models
  ( for type in bf16 q8_0; do
      $py tools/make_test_model.py /tmp/gpu-check-models/qwen2-05b-$type.gguf --arch qwen2 --type $type --seed 1 \
        --shape qwen2-0.5b >/dev/null || echo "model $type: failed"
    done ) &
  local models=$!
  echo "=== GPU tests ($((SECONDS - t0)) s)"
  timeout 300 .gpu-check/bin/sluice_cuda_tests --gtest_color=no 2>&1 | tee "$out/gpu-tests.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed=1
  if grep -q '^\[  SKIPPED \]' "$out/gpu-tests.log"; then
    echo "the GPU tests were SKIPPED here: $(grep -m1 'no CUDA GPU' "$out/gpu-tests.log")"
    failed=1
  fi
  wait $models
  local bench=.gpu-check/bin/sluice-engine-bench bf16=/tmp/gpu-check-models/qwen2-05b-bf16.gguf
  local q8=/tmp/gpu-check-models/qwen2-05b-q8_0.gguf
  local common=(--device cuda --bandwidth-gbs 4800 --tokens 64 --threads 1)
  echo "=== engine benchmark, BF16 ($((SECONDS - t0)) s)"
  timeout 120 $bench $bf16 "${common[@]}" --batches 1,8,32,64 --prompts 1,8 --step-tokens 4096 || failed=1
  echo "=== BF16 without graphs, and prompts on the tensor cores ($((SECONDS - t0)) s)"
  timeout 60 $bench $bf16 "${common[@]}" --batches 1,64 --prompts '' --cuda-graphs 0 || failed=1
  timeout 60 $bench $bf16 "${common[@]}" --batches '' --prompts 1,8 --step-tokens 4096 --prompt-gemm bf16 || failed=1
  echo "=== engine benchmark, Q8_0 ($((SECONDS - t0)) s)"
  timeout 90 $bench $q8 "${common[@]}" --batches 1,8,64 --prompts 1 --step-tokens 4096 || failed=1
  echo "=== PyTorch on the GPU, same weights ($((SECONDS - t0)) s)"
  timeout 120 $py bench/local_engine/torch_decode.py --device cuda --dtype bf16 --batches 1,8,32,64 --tokens 64 \
    --prompts 1,8 --threads 1 || failed=1
  echo "=== done in $((SECONDS - t0)) s, $([ $failed = 0 ] && echo 'every step passed' || echo 'a step FAILED')"
  return $failed
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare | run" >&2; exit 2 ;;
esac
