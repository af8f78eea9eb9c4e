// The AVX-512 kernels (kernels_avx512.cpp), private to kernels.cpp: matmul
// over weights packed by pack(), in the layout PackedWeight describes.
#pragma once

#include <memory>

#include "gateway/engine/local/kernels.hpp"

namespace sluice::kernels::avx512 {

// The CPU has AVX-512 F, DQ, BW, VL, VNNI and BF16 and the OS saves the
// 512-bit state.
bool cpu_has();
// `w` (BF16 or Q8_0) in the packed layout.
std::unique_ptr<PackedWeight> pack(const Weight& w);
// y = x w^T as kernels::matmul, over the packed weights.
void matmul(ThreadPool& pool, const PackedWeight& w, const float* x, float* y, int64_t tokens);

// kernels::attention_rows (head_dim a multiple of 16) and its scratch.
size_t attention_scratch(int64_t rows, int64_t positions, int64_t head_dim);
void attention(const float* const* q, float* const* out, const int64_t* pos, int64_t rows, int64_t head_dim,
               const KvRun* runs, size_t run_count, int64_t stride, float scale, float* scratch);

}  // namespace sluice::kernels::avx512
