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

}  // namespace sluice::kernels::avx512
