#include "gateway/engine/local/kernels.hpp"

#include "gateway/engine/local/kernels_avx512.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace sluice::kernels {

namespace {

// AVX2 + FMA (+ F16C) versions, chosen at run time: the build targets any
// x86-64, the machine it runs on may do better.
bool has_avx2() {
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    // F16C is CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports has no "f16c").
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  }();
  return yes;
}

// The cap on the kernel path (KernelPath's values), from SLUICE_CPU_KERNELS
// at start, then limit_kernels.
std::atomic<int> kernel_cap{[] {
  const char* v = std::getenv("SLUICE_CPU_KERNELS");
  if (v != nullptr && std::string_view(v) == "portable") return static_cast<int>(KernelPath::kPortable);
  if (v != nullptr && std::string_view(v) == "avx2") return static_cast<int>(KernelPath::kAvx2);
  return static_cast<int>(KernelPath::kAvx512);
}()};

bool use_avx2() {
  return kernel_cap.load(std::memory_order_relaxed) >= static_cast<int>(KernelPath::kAvx2) && has_avx2();
}
bool use_avx512() {
  return kernel_cap.load(std::memory_order_relaxed) >= static_cast<int>(KernelPath::kAvx512) && has_avx2() &&
         avx512::cpu_has();
}

__attribute__((target("avx2,fma"))) float hsum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// 8 weights of a row, from element i, as floats.
template <gguf::TensorType T>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline __m256 load8(const uint8_t* row, int64_t i) {
  if constexpr (T == gguf::TensorType::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else if constexpr (T == gguf::TensorType::kBF16) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  }
}

template <gguf::TensorType T>
float element(const uint8_t* row, int64_t i) {
  if constexpr (T == gguf::TensorType::kF32) {
    float f;
    std::memcpy(&f, row + 4 * i, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * i, 2);
    return T == gguf::TensorType::kBF16 ? bf16_to_float(h) : half_to_float(h);
  }
}

// A register tile (llamafile's tinyBLAS): R weight rows (`row_bytes` apart)
// against N activation rows (x, `cols` apart), one accumulator of 8 lanes per
// (row, token). Each 8 weights are loaded and converted once for the N
// tokens, each 8 activations once for the R rows. y[t * y_stride + r].
//
// Every (row, token) sum runs in the same order whatever R and N are (8
// lanes over the columns, the lanes added, then the scalar tail), so a
// token's result does not depend on the batch it is in.
template <gguf::TensorType T, int R, int N>
__attribute__((target("avx2,fma,f16c"))) void tile_float_avx2(const uint8_t* row0, size_t row_bytes, const float* x,
                                                               int64_t cols, float* y, int64_t y_stride) {
  __m256 acc[R][N];
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 4
    for (int t = 0; t < N; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) {
    __m256 xv[N];
    #pragma GCC unroll 4
    for (int t = 0; t < N; ++t) xv[t] = _mm256_loadu_ps(x + t * cols + i);
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 w = load8<T>(row0 + r * row_bytes, i);
      #pragma GCC unroll 4
      for (int t = 0; t < N; ++t) acc[r][t] = _mm256_fmadd_ps(w, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < N; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < cols; ++j) s += element<T>(row0 + r * row_bytes, j) * x[t * cols + j];
      y[t * y_stride + r] = s;
    }
  }
}

__attribute__((target("avx2,fma,f16c"))) float dot_q8_0_avx2(const uint8_t* a, const float* x, int64_t blocks) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = a + b * 34;
    uint16_t h;
    std::memcpy(&h, block, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(h));
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const float* xb = x + b * 32;
    __m256 part = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      const __m128i q8 = k < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
      const __m128i bytes = (k % 2) ? _mm_srli_si128(q8, 8) : q8;
      const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
      part = _mm256_fmadd_ps(qf, _mm256_loadu_ps(xb + 8 * k), part);
    }
    acc = _mm256_fmadd_ps(d, part, acc);
  }
  return hsum(acc);
}

// Q8_0 weights against Q8_0 activations (the llama.cpp scheme): each block of
// 32 is an integer dot product, scaled by both blocks' scales. The integer
// part is exact, so every path gives the same block sums.
//
// A register tile as above: R weight rows by N tokens, each weight block
// loaded once for the N tokens and each activation block once for the R
// rows; one accumulator per (row, token), summed in block order whatever R
// and N are.
template <int R, int N>
__attribute__((target("avx2,fma,f16c"))) void tile_q8_avx2(const uint8_t* row0, size_t row_bytes, int64_t blocks,
                                                            const int8_t* xq, const float* xd, float* y,
                                                            int64_t y_stride) {
  __m256 acc[R][N];
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 4
    for (int t = 0; t < N; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t cols = blocks * 32;
  for (int64_t b = 0; b < blocks; ++b) {
    __m256i xv[N];
    #pragma GCC unroll 4
    for (int t = 0; t < N; ++t) xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + t * cols + b * 32));
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const uint8_t* block = row0 + r * row_bytes + b * 34;
      uint16_t h;
      std::memcpy(&h, block, 2);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(h));
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      const __m256i aw = _mm256_sign_epi8(w, w);  // |w|, unsigned; Q8_0 never holds -128
      #pragma GCC unroll 4
      for (int t = 0; t < N; ++t) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[t], w)), ones);
        // dw * dx as a vector product (the same float as the scalar one).
        const __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(xd + t * blocks + b));
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), scale, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < N; ++t) y[t * y_stride + r] = hsum(acc[r][t]);
  }
}

// e^x for 8 lanes (Cephes' expf, as in avx_mathfun; arguments clamped to
// +-88.38). Within 1e-6 relative of std::exp (unit test, through silu_mul).
__attribute__((target("avx2,fma"), always_inline)) inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f)), _mm256_set1_ps(88.3762626647949f));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// out[0..8*NV) = sum over the runs' positions p of w[p] * v_p[0..8*NV).
template <int NV>
__attribute__((target("avx2,fma"))) void weighted_values_avx2(const float* w, const KvRun* runs, size_t run_count,
                                                               int64_t stride, int64_t offset, float* out) {
  __m256 acc[NV];
  #pragma GCC unroll 8
  for (int k = 0; k < NV; ++k) acc[k] = _mm256_setzero_ps();
  int64_t p = 0;
  for (size_t r = 0; r < run_count; ++r) {
    for (int64_t j = 0; j < runs[r].count; ++j, ++p) {
      const __m256 wp = _mm256_set1_ps(w[p]);
      const float* vp = runs[r].v + j * stride + offset;
      #pragma GCC unroll 8
      for (int k = 0; k < NV; ++k) acc[k] = _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + 8 * k), acc[k]);
    }
  }
  #pragma GCC unroll 8
  for (int k = 0; k < NV; ++k) _mm256_storeu_ps(out + 8 * k, acc[k]);
}

__attribute__((target("avx2,fma"))) void attention_avx2(const float* q, int64_t heads, int64_t head_dim,
                                                         const KvRun* runs, size_t run_count, int64_t stride,
                                                         float scale, float* scores, float* out) {
  int64_t positions = 0;
  for (size_t r = 0; r < run_count; ++r) positions += runs[r].count;
  // Scores: each key row is read once for all the heads that share it.
  int64_t p = 0;
  for (size_t r = 0; r < run_count; ++r) {
    for (int64_t j = 0; j < runs[r].count; ++j, ++p) {
      const float* kp = runs[r].k + j * stride;
      for (int64_t h = 0; h < heads; ++h) {
        const float* qh = q + h * head_dim;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < head_dim; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + i), _mm256_loadu_ps(kp + i), acc);
        scores[h * positions + p] = hsum(acc) * scale;
      }
    }
  }
  for (int64_t h = 0; h < heads; ++h) {
    float* s = scores + h * positions;
    float max = -INFINITY;
    for (int64_t i = 0; i < positions; ++i) max = std::max(max, s[i]);
    const __m256 vmax = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= positions; i += 8) {
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vmax));
      _mm256_storeu_ps(s + i, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    if (i < positions) {  // the tail, through the same exp8
      alignas(32) float tail[8] = {};
      const int64_t n = positions - i;
      std::memcpy(tail, s + i, static_cast<size_t>(n) * 4);
      const __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(tail), vmax));
      _mm256_store_ps(tail, e);
      for (int64_t k = n; k < 8; ++k) tail[k] = 0;
      vsum = _mm256_add_ps(vsum, _mm256_load_ps(tail));
      std::memcpy(s + i, tail, static_cast<size_t>(n) * 4);
    }
    const float inv = 1.0f / hsum(vsum);
    float* oh = out + h * head_dim;
    for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
      switch (std::min<int64_t>(64, head_dim - d0) / 8) {
        case 8: weighted_values_avx2<8>(s, runs, run_count, stride, d0, oh + d0); break;
        case 7: weighted_values_avx2<7>(s, runs, run_count, stride, d0, oh + d0); break;
        case 6: weighted_values_avx2<6>(s, runs, run_count, stride, d0, oh + d0); break;
        case 5: weighted_values_avx2<5>(s, runs, run_count, stride, d0, oh + d0); break;
        case 4: weighted_values_avx2<4>(s, runs, run_count, stride, d0, oh + d0); break;
        case 3: weighted_values_avx2<3>(s, runs, run_count, stride, d0, oh + d0); break;
        case 2: weighted_values_avx2<2>(s, runs, run_count, stride, d0, oh + d0); break;
        default: weighted_values_avx2<1>(s, runs, run_count, stride, d0, oh + d0); break;
      }
    }
    for (int64_t d = 0; d < head_dim; ++d) oh[d] *= inv;
  }
}

void attention_portable(const float* q, int64_t heads, int64_t head_dim, const KvRun* runs, size_t run_count,
                        int64_t stride, float scale, float* scores, float* out) {
  int64_t positions = 0;
  for (size_t r = 0; r < run_count; ++r) positions += runs[r].count;
  for (int64_t h = 0; h < heads; ++h) {
    const float* qh = q + h * head_dim;
    float* s = scores + h * positions;
    float max = -INFINITY;
    int64_t p = 0;
    for (size_t r = 0; r < run_count; ++r) {
      for (int64_t j = 0; j < runs[r].count; ++j, ++p) {
        const float* kp = runs[r].k + j * stride;
        float dot = 0;
        for (int64_t i = 0; i < head_dim; ++i) dot += qh[i] * kp[i];
        s[p] = dot * scale;
        max = std::max(max, s[p]);
      }
    }
    float sum = 0;
    for (int64_t i = 0; i < positions; ++i) {
      s[i] = std::exp(s[i] - max);
      sum += s[i];
    }
    float* oh = out + h * head_dim;
    std::fill(oh, oh + head_dim, 0.0f);
    p = 0;
    for (size_t r = 0; r < run_count; ++r) {
      for (int64_t j = 0; j < runs[r].count; ++j, ++p) {
        const float* vp = runs[r].v + j * stride;
        for (int64_t i = 0; i < head_dim; ++i) oh[i] += s[p] * vp[i];
      }
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < head_dim; ++i) oh[i] *= inv;
  }
}

__attribute__((target("avx2,fma"))) void silu_mul_avx2(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void dot_q8_q8_portable(const uint8_t* row, int64_t blocks, const QuantizedActivations& x, int64_t t, float* out) {
  float s = 0;
  const int8_t* xq = x.q.data() + t * x.cols;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = row + b * 34;
    uint16_t h;
    std::memcpy(&h, block, 2);
    const auto* q = reinterpret_cast<const int8_t*>(block + 2);
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += static_cast<int32_t>(q[j]) * xq[b * 32 + j];
    s += static_cast<float>(sum) * (half_to_float(h) * x.d[t * x.blocks() + b]);
  }
  *out = s;
}

// Tiles over y = x w^T: rows in blocks of `Rows`, handed out to the pool's
// threads a few blocks at a time (a thread that finishes early takes more),
// and within a row block the tokens in groups of `Tokens`, then 2, then 1.
// The rows of a block stay in the cache while every token group passes over
// them; the tokens go in blocks of kTokenBlock, so that a long prompt's
// activations are not all streamed past every row block.
// prepare(worker, r0, rows, tokens) runs before a row block's tiles, in the
// same thread; tile(worker, r0, rows constant, t0, tokens constant) computes
// one tile (worker: ThreadPool::parallel_chunks').
constexpr int64_t kTokenBlock = 64;

template <int Rows, int Tokens, class Prepare, class Tile>
void for_each_tile(ThreadPool& pool, int64_t rows, int64_t tokens, Prepare&& prepare, Tile&& tile) {
  const int64_t row_blocks = (rows + Rows - 1) / Rows;
  // About 8 handouts per thread: small enough to even out, large enough that
  // the shared counter is not the cost.
  const int64_t grain = std::max<int64_t>(1, row_blocks / (8 * pool.size()));
  for (int64_t tb = 0; tb < tokens; tb += kTokenBlock) {
    const int64_t te = std::min(tokens, tb + kTokenBlock);
    pool.parallel_chunks(row_blocks, grain, [&](int64_t begin, int64_t end, int worker) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t r0 = blk * Rows;
        const int64_t block_rows = std::min<int64_t>(Rows, rows - r0);
        prepare(worker, r0, block_rows, te - tb);
        const auto by_tokens = [&](auto rows_c) {
          int64_t t = tb;
          for (; te - t >= Tokens; t += Tokens) tile(worker, r0, rows_c, t, std::integral_constant<int, Tokens>{});
          if constexpr (Tokens > 2) {
            for (; te - t >= 2; t += 2) tile(worker, r0, rows_c, t, std::integral_constant<int, 2>{});
          }
          for (; t < te; ++t) tile(worker, r0, rows_c, t, std::integral_constant<int, 1>{});
        };
        static_assert(Rows >= 1 && Rows <= 4);
        switch (block_rows) {
          case 4: if constexpr (Rows >= 4) by_tokens(std::integral_constant<int, 4>{}); break;
          case 3: if constexpr (Rows >= 3) by_tokens(std::integral_constant<int, 3>{}); break;
          case 2: if constexpr (Rows >= 2) by_tokens(std::integral_constant<int, 2>{}); break;
          default: by_tokens(std::integral_constant<int, 1>{}); break;
        }
      }
    });
  }
}

constexpr auto kNoPrepare = [](int, int64_t, int64_t, int64_t) {};

// Q8_0 tiles: 2 rows by 4 tokens (measured at 32 sessions on an AVX2 Zen 3:
// 85 tokens/s, against 82 for 4x3, 81 for 3x4 and 67 for 4x2).
constexpr int kQ8TileRows = 2, kQ8TileTokens = 4;

void matmul_q8_0(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  thread_local QuantizedActivations scratch;
  // The pool's threads must see this thread's buffer, not their own.
  const QuantizedActivations& xq = scratch;
  quantize_activations(x, tokens, w.cols, scratch);
  const bool avx2 = use_avx2();
  const int64_t blocks = w.cols / 32;
  const size_t row_bytes = w.row_bytes();
  const auto tile = [&](int, int64_t r0, auto rows_c, int64_t t0, auto tokens_c) {
    constexpr int R = decltype(rows_c)::value, N = decltype(tokens_c)::value;
    const uint8_t* row0 = w.data + static_cast<size_t>(r0) * row_bytes;
    if (avx2) {
      tile_q8_avx2<R, N>(row0, row_bytes, blocks, xq.q.data() + t0 * w.cols, xq.d.data() + t0 * blocks,
                         y + t0 * w.rows + r0, w.rows);
    } else {
      for (int r = 0; r < R; ++r) {
        for (int t = 0; t < N; ++t) dot_q8_q8_portable(row0 + r * row_bytes, blocks, xq, t0 + t, y + (t0 + t) * w.rows + r0 + r);
      }
    }
  };
  // One token: row after row, as for the float types (measured here: 41.6
  // against 30 tokens/s with 2-row tiles on the Qwen2-0.5B shape).
  if (tokens == 1) return for_each_tile<1, 1>(pool, w.rows, tokens, kNoPrepare, tile);
  for_each_tile<kQ8TileRows, kQ8TileTokens>(pool, w.rows, tokens, kNoPrepare, tile);
}

// F16 and BF16 rows are converted to floats once per row block (exactly:
// both convert to float without rounding) when several tokens will pass
// over them, instead of once per tile; one token reads them as they are.
constexpr int kFloatTileRows = 4, kFloatTileTokens = 3;

// `cols` weights of a row as floats.
template <gguf::TensorType T>
__attribute__((target("avx2,fma,f16c"))) void convert_row_avx2(const uint8_t* row, int64_t cols, float* out) {
  int64_t i = 0;
  for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(out + i, load8<T>(row, i));
  for (; i < cols; ++i) out[i] = element<T>(row, i);
}

template <gguf::TensorType T>
void matmul_float_avx2(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  const size_t row_bytes = w.row_bytes();
  const int64_t cols = w.cols;
  // Each thread's row block, as floats, and whether it is there (the
  // calling thread owns them: the pool's threads index them by worker).
  thread_local std::vector<float> converted;
  thread_local std::vector<char> active;
  if (tokens == 1) {
    // One token (a lone decoding session): the weights stream from memory
    // row after row, which the prefetchers follow best (measured: 4-row tiles
    // read them about 5% slower here). The same sums as in a tile.
    return for_each_tile<1, 1>(pool, w.rows, tokens, kNoPrepare, [&](int, int64_t r0, auto, int64_t, auto) {
      tile_float_avx2<T, 1, 1>(w.data + static_cast<size_t>(r0) * row_bytes, row_bytes, x, cols, y + r0, w.rows);
    });
  }
  const auto block_floats = static_cast<size_t>(kFloatTileRows * cols);
  if constexpr (T != gguf::TensorType::kF32) converted.resize(block_floats * static_cast<size_t>(pool.size()));
  active.assign(static_cast<size_t>(pool.size()), 0);
  float* const conv = converted.data();
  char* const on = active.data();
  for_each_tile<kFloatTileRows, kFloatTileTokens>(
      pool, w.rows, tokens,
      [&](int worker, int64_t r0, int64_t rows, int64_t block_tokens) {
        on[worker] = T != gguf::TensorType::kF32 && block_tokens >= 2;
        if (!on[worker]) return;
        for (int64_t r = 0; r < rows; ++r) {
          convert_row_avx2<T>(w.data + static_cast<size_t>(r0 + r) * row_bytes, cols,
                              conv + block_floats * static_cast<size_t>(worker) + static_cast<size_t>(r * cols));
        }
      },
      [&](int worker, int64_t r0, auto rows_c, int64_t t0, auto tokens_c) {
        constexpr int R = decltype(rows_c)::value, N = decltype(tokens_c)::value;
        float* out = y + t0 * w.rows + r0;
        if (on[worker]) {
          const auto* rows = reinterpret_cast<const uint8_t*>(conv + block_floats * static_cast<size_t>(worker));
          tile_float_avx2<gguf::TensorType::kF32, R, N>(rows, cols * 4, x + t0 * cols, cols, out, w.rows);
        } else {
          tile_float_avx2<T, R, N>(w.data + static_cast<size_t>(r0) * row_bytes, row_bytes, x + t0 * cols, cols, out,
                                   w.rows);
        }
      });
}

}  // namespace

namespace {
// One block of 32 as quantize_activations does it, 8 lanes at a time: the
// same max, scale, products and rounding (half to even), so the same bytes.
__attribute__((target("avx2,fma"))) void quantize_block_avx2(const float* v, int8_t* q, float* d_out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(v));
  for (int k = 1; k < 4; ++k) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + 8 * k)));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 0x55));
  const float d = _mm_cvtss_f32(m4) / 127.0f;
  const float id = d > 0 ? 1.0f / d : 0.0f;
  *d_out = d;
  const __m256 vid = _mm256_set1_ps(id);
  __m256i i32[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(v + 8 * k), vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    i32[k] = _mm256_cvtps_epi32(r);
  }
  // 32 int32 -> 32 int8 (|values| <= 127: no saturation), back in order.
  const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
  const __m256i i8 = _mm256_packs_epi16(i16a, i16b);
  const __m256i ordered = _mm256_permutevar8x32_epi32(i8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
}
}  // namespace

void quantize_activations(const float* x, int64_t tokens, int64_t cols, QuantizedActivations& out) {
  out.cols = cols;
  out.q.resize(static_cast<size_t>(tokens * cols));
  out.d.resize(static_cast<size_t>(tokens * cols / 32));
  if (use_avx2()) {
    for (int64_t b = 0; b < tokens * cols / 32; ++b) quantize_block_avx2(x + b * 32, out.q.data() + b * 32, out.d.data() + b);
    return;
  }
  for (int64_t b = 0; b < tokens * cols / 32; ++b) {
    const float* v = x + b * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    out.d[static_cast<size_t>(b)] = d;
    // Round half to even, as PyTorch's reference does.
    for (int j = 0; j < 32; ++j) out.q[static_cast<size_t>(b * 32 + j)] = static_cast<int8_t>(std::nearbyint(v[j] * id));
  }
}

const char* kernel_path_name(KernelPath p) {
  switch (p) {
    case KernelPath::kPortable: return "portable";
    case KernelPath::kAvx2: return "avx2";
    case KernelPath::kAvx512: return "avx512";
  }
  return "?";
}

KernelPath active_kernels() {
  if (use_avx512()) return KernelPath::kAvx512;
  return use_avx2() ? KernelPath::kAvx2 : KernelPath::kPortable;
}

void limit_kernels(KernelPath cap) { kernel_cap.store(static_cast<int>(cap), std::memory_order_relaxed); }

void force_portable(bool on) { limit_kernels(on ? KernelPath::kPortable : KernelPath::kAvx512); }

bool native_kernels_active() { return use_avx2(); }

std::unique_ptr<PackedWeight> pack_for_avx512(const Weight& w) {
  if (!has_avx2() || !avx512::cpu_has()) return nullptr;
  return avx512::pack(w);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FF;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void dequantize_row(const Weight& w, int64_t r, float* out) {
  const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes();
  switch (w.type) {
    case gguf::TensorType::kF32: std::memcpy(out, row, static_cast<size_t>(w.cols) * 4); return;
    case gguf::TensorType::kF16:
    case gguf::TensorType::kBF16: {
      for (int64_t i = 0; i < w.cols; ++i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        out[i] = w.type == gguf::TensorType::kF16 ? half_to_float(h) : bf16_to_float(h);
      }
      return;
    }
    case gguf::TensorType::kQ8_0: {
      for (int64_t b = 0; b < w.cols / 32; ++b) {
        const uint8_t* block = row + b * 34;
        uint16_t h;
        std::memcpy(&h, block, 2);
        const float d = half_to_float(h);
        const auto* q = reinterpret_cast<const int8_t*>(block + 2);
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = d * static_cast<float>(q[j]);
      }
      return;
    }
  }
}

float dot_row(const Weight& w, int64_t r, const float* x) {
  const uint8_t* row = w.data + static_cast<size_t>(r) * w.row_bytes();
  const int64_t n = w.cols;
  if (use_avx2()) {
    float out;
    switch (w.type) {
      case gguf::TensorType::kQ8_0: return dot_q8_0_avx2(row, x, n / 32);
      case gguf::TensorType::kF32: tile_float_avx2<gguf::TensorType::kF32, 1, 1>(row, 0, x, n, &out, 1); break;
      case gguf::TensorType::kBF16: tile_float_avx2<gguf::TensorType::kBF16, 1, 1>(row, 0, x, n, &out, 1); break;
      case gguf::TensorType::kF16: tile_float_avx2<gguf::TensorType::kF16, 1, 1>(row, 0, x, n, &out, 1); break;
    }
    return out;
  }
  switch (w.type) {
    case gguf::TensorType::kF32: {
      const auto* a = reinterpret_cast<const float*>(row);
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = 0;
      for (; i + 4 <= n; i += 4) {
        s0 += a[i] * x[i];
        s1 += a[i + 1] * x[i + 1];
        s2 += a[i + 2] * x[i + 2];
        s3 += a[i + 3] * x[i + 3];
      }
      for (; i < n; ++i) s0 += a[i] * x[i];
      return (s0 + s1) + (s2 + s3);
    }
    case gguf::TensorType::kBF16:
    case gguf::TensorType::kF16: {
      const auto to_float = w.type == gguf::TensorType::kF16 ? half_to_float : bf16_to_float;
      float s = 0;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        s += to_float(h) * x[i];
      }
      return s;
    }
    case gguf::TensorType::kQ8_0: {
      float s = 0;
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* block = row + b * 34;
        uint16_t h;
        std::memcpy(&h, block, 2);
        const auto* q = reinterpret_cast<const int8_t*>(block + 2);
        const float* xb = x + b * 32;
        float part = 0;
        for (int j = 0; j < 32; ++j) part += static_cast<float>(q[j]) * xb[j];
        s += half_to_float(h) * part;
      }
      return s;
    }
  }
  return 0;
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this, i] { work(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {
// A decode step is a few hundred short parallel loops; waking a sleeping
// thread for each costs more than the loop at batch 1. Threads spin this long
// for the next one before they sleep.
constexpr auto kSpin = std::chrono::microseconds(200);

void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}
}  // namespace

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0; generation_.load() == seen; ++i) {
      cpu_relax();
      if ((i & 255) == 0 && std::chrono::steady_clock::now() > spin_until) break;
    }
    if (generation_.load() == seen) {
      std::unique_lock lock(mutex_);
      // sleepers_ and generation_ are sequentially consistent: either
      // parallel_for sees this thread asleep and wakes it, or this thread
      // sees the new generation here.
      sleepers_.fetch_add(1);
      start_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
      if (stop_) return;
    }
    seen = generation_.load();
    const int parts = size();
    const int64_t begin = n_ * index / parts, end = n_ * (index + 1) / parts;
    if (begin < end) (*job_)(begin, end);
    pending_.fetch_sub(1);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (workers_.empty() || n < 2) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  n_ = n;
  pending_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard lock(mutex_); }
    start_.notify_all();
  }
  const int parts = size();
  const int64_t end = n / parts;  // part 0 is the caller's
  if (end > 0) fn(0, end);
  for (int i = 0; pending_.load() != 0; ++i) {
    if (i < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void attention(const float* q, int64_t heads, int64_t head_dim, const KvRun* runs, size_t run_count, int64_t stride,
               float scale, float* scores, float* out) {
  if (use_avx2() && head_dim % 8 == 0) {
    attention_avx2(q, heads, head_dim, runs, run_count, stride, scale, scores, out);
  } else {
    attention_portable(q, heads, head_dim, runs, run_count, stride, scale, scores, out);
  }
}

bool attention_rows_available(int64_t head_dim) { return use_avx512() && head_dim % 16 == 0; }

size_t attention_rows_scratch(int64_t rows, int64_t positions, int64_t head_dim) {
  return avx512::attention_scratch(rows, positions, head_dim);
}

void attention_rows(const float* const* q, float* const* out, const int64_t* pos, int64_t rows, int64_t head_dim,
                    const KvRun* runs, size_t run_count, int64_t stride, float scale, float* scratch) {
  avx512::attention(q, out, pos, rows, head_dim, runs, run_count, stride, scale, scratch);
}

namespace {
__attribute__((target("avx2,fma"))) float max_avx2(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  int64_t i = 0;
  // max_ps(x, m) is m where x is NaN.
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
  float m = -INFINITY;
  for (float v : lanes) m = std::max(m, v);
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
}  // namespace

int64_t argmax(const float* x, int64_t n) {
  // The largest value (a vector pass over a vocabulary of 150,000 logits),
  // then where it first is.
  float m = -INFINITY;
  if (use_avx2()) {
    m = max_avx2(x, n);
  } else {
    for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] == m) return i;
  }
  return 0;
}

void silu_mul(float* gate, const float* up, int64_t n) {
  if (use_avx2()) return silu_mul_avx2(gate, up, n);
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void ThreadPool::parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (workers_.empty() || n <= grain) {
    fn(0, n, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  // parallel_for over size() parts gives each thread one part: its index.
  parallel_for(size(), [&](int64_t worker, int64_t) {
    for (int64_t begin = next.fetch_add(grain); begin < n; begin = next.fetch_add(grain)) {
      fn(begin, std::min(n, begin + grain), static_cast<int>(worker));
    }
  });
}

void matmul(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  if (w.packed && use_avx512()) return avx512::matmul(pool, *w.packed, x, y, tokens);
  if (w.type == gguf::TensorType::kQ8_0) return matmul_q8_0(pool, w, x, y, tokens);
  if (use_avx2()) {
    switch (w.type) {
      case gguf::TensorType::kF32: return matmul_float_avx2<gguf::TensorType::kF32>(pool, w, x, y, tokens);
      case gguf::TensorType::kBF16: return matmul_float_avx2<gguf::TensorType::kBF16>(pool, w, x, y, tokens);
      default: return matmul_float_avx2<gguf::TensorType::kF16>(pool, w, x, y, tokens);
    }
  }
  for_each_tile<kFloatTileRows, kFloatTileTokens>(pool, w.rows, tokens, kNoPrepare, [&](int, int64_t r0, auto rows_c, int64_t t0, auto tokens_c) {
    constexpr int R = decltype(rows_c)::value, N = decltype(tokens_c)::value;
    for (int r = 0; r < R; ++r) {
      for (int t = 0; t < N; ++t) y[(t0 + t) * w.rows + r0 + r] = dot_row(w, r0 + r, x + (t0 + t) * w.cols);
    }
  });
}

}  // namespace sluice::kernels
