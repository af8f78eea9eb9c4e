// One CUDA kernel at a time on host inputs, for the tests that compare each
// kernel with the CPU backend's (a GPU is needed; they throw without one).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "gateway/engine/local/kernels.hpp"

// Exported by libsluice-cuda.so (built with hidden visibility otherwise).
#define SLUICE_CUDA_EXPORT __attribute__((visibility("default")))

namespace sluice::cuda::ops {

// y [tokens][rows] = x [tokens][cols] . w^T; `gemm`: the prompt path (cuBLAS,
// FP32 or, with `bf16`, bfloat16 on the tensor cores), else the decode kernel.
SLUICE_CUDA_EXPORT std::vector<float> matmul(const kernels::Weight& w, const std::vector<float>& x, int tokens,
                                             bool gemm, bool bf16 = false);
SLUICE_CUDA_EXPORT std::vector<float> rms_norm(const std::vector<float>& x, const std::vector<float>& w, int rows, float eps);
SLUICE_CUDA_EXPORT std::vector<float> silu_mul(const std::vector<float>& gate, const std::vector<float>& up);
// The k largest logits not banned, (value, id), sorted by value then id.
SLUICE_CUDA_EXPORT std::vector<std::pair<float, int32_t>> top_k(const std::vector<float>& logits, const std::vector<uint8_t>& banned,
                                             int k);

}  // namespace sluice::cuda::ops
