// AVX-512 matmuls for BF16, Q8_0, F16 and F32 weights (the cores of a Zen
// 4/5 or a recent Xeon), over weights packed once at load.
//
// The packed layout puts the same columns of 16 consecutive rows in one
// 512-bit register, one row per lane. A token's activations are broadcast
// (a 4-byte memory operand), so one instruction advances 16 rows' dot
// products at once and no horizontal sum is needed at the end: a tile of
// 16 rows by N tokens keeps N accumulators and stores each as 16 outputs.
//   BF16: vdpbf16ps multiplies pairs of bfloat16 (a column pair of each row
//         against the token's pair, rounded to bfloat16 once per matmul).
//   F16, F32: one column of 16 rows per register (F16 converted exactly on
//         load), the token's activation broadcast as a float.
//   Q8_0: vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds
//         them to an int32. Weights are stored plus 128 (1..255) and the
//         token's quantized activations are the signed side; the 128 x
//         sum(activations) this adds is subtracted by starting the block's
//         integer sum at -128 x sum (exact), then the block sum is scaled
//         by both blocks' scales, as on the other paths.
// Every (row, token) sum runs in one order whatever the tile (N tokens),
// the thread or the row's place in its group, so a token's result does not
// depend on the batch it is in.
#include "gateway/engine/local/kernels_avx512.hpp"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

// GCC 12's _mm512_cvtph_ps and _mm512_cvtepi32_ps pass _mm512_undefined_ps()
// as the unused merge source, which -Wmaybe-uninitialized reports once
// inlined (a false positive: no lane of it is ever read).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define SLUICE_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni,avx512bf16,fma,f16c")))

namespace sluice::kernels {

namespace {
constexpr size_t kHugePage = 2u << 20;
}

PackedWeight::PackedWeight(gguf::TensorType type, int64_t rows, int64_t cols, size_t bytes)
    : type_(type), rows_(rows), cols_(cols) {
  // Aligned to a huge page, so that transparent huge pages can back the
  // whole matrix (a 0.5B model's weights span 250,000 4 KiB pages otherwise).
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, std::max(rounded, kHugePage)));
  if (!data_) throw std::bad_alloc();
  // Asked for: the usual setting is transparent huge pages on request only.
  madvise(data_, std::max(rounded, kHugePage), MADV_HUGEPAGE);
}

PackedWeight::~PackedWeight() { std::free(data_); }

namespace avx512 {

namespace {

constexpr int64_t kGroupRows = 16;
// Tokens of a long prompt go through the rows in blocks of this many, so
// that their activations stay in the cache while every row group passes.
constexpr int64_t kTokenBlock = 64;
// Tiles: BF16, F16, F32 2 groups (32 rows) by 12 tokens: 24 accumulators,
// 2 weight registers and the broadcasts in the 32 vector registers. Q8_0
// one group by 8 tokens: 8 accumulators and the 8 registers of a block's
// weights.
constexpr int kRowTileGroups = 2, kRowTileTokens = 12, kQ8TileTokens = 8;

int64_t groups_of(int64_t rows) { return (rows + kGroupRows - 1) / kGroupRows; }
// BF16: column pairs per row, the columns padded to a multiple of 16 (one
// activations are converted 16 at a time).
int64_t pairs_of(int64_t cols) { return (cols + 15) / 16 * 8; }

int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The first n of 16 lanes (none for n <= 0).
__mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// The lanes of group g that are real rows.
__mmask16 group_mask(int64_t rows, int64_t g) { return first_lanes(rows - g * kGroupRows); }

// How each float-accumulating type steps through a packed group: one step
// is a register of 16 rows' weights (`bytes` of them) against one 4-byte
// broadcast of a token's activations.
//   BF16: a pair of columns, bfloat16 activations, vdpbf16ps;
//   F16, F32: one column (F16 converted exactly on load), float
//         activations, FMA.
template <gguf::TensorType T>
struct RowStep {
  static constexpr int64_t bytes = T == gguf::TensorType::kF16 ? 32 : 64;
  using Activation = std::conditional_t<T == gguf::TensorType::kBF16, uint16_t, float>;
  static constexpr int64_t activations = T == gguf::TensorType::kBF16 ? 2 : 1;  // per step
  SLUICE_AVX512 static __m512 load(const uint8_t* p) {
    if constexpr (T == gguf::TensorType::kF16) {
      return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
    } else {
      return _mm512_load_ps(reinterpret_cast<const float*>(p));
    }
  }
  SLUICE_AVX512 static __m512 broadcast(const Activation* x) {
    if constexpr (T == gguf::TensorType::kBF16) {
      return _mm512_castsi512_ps(_mm512_set1_epi32(load32(x)));
    } else {
      return _mm512_set1_ps(*x);
    }
  }
  SLUICE_AVX512 static __m512 madd(__m512 acc, __m512 w, __m512 x) {
    if constexpr (T == gguf::TensorType::kBF16) {
      return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(w), (__m512bh)_mm512_castps_si512(x));
    } else {
      return _mm512_fmadd_ps(w, x, acc);
    }
  }
};

// G row groups (16 G rows) by N tokens, one accumulator per (group, token),
// over `steps` steps of a group (RowStep): each broadcast of a token's
// activations feeds G rows' registers, so there are fewer loads than
// multiplies, and the G groups' chains are independent, which hides the
// multiply's latency even for one token. `next`, when not null, is what
// this thread computes next (G groups on): its weights are prefetched into
// L2 while this tile computes, so that the first tile over them does not
// wait on memory (a step reads every weight once). The last group's lanes
// past `rows` are not stored (`last_mask`).
template <gguf::TensorType T, int G, int N>
SLUICE_AVX512 void tile_rows(const uint8_t* group, int64_t steps, const typename RowStep<T>::Activation* x,
                             int64_t x_stride, float* y, int64_t y_stride, __mmask16 last_mask, const uint8_t* next) {
  using S = RowStep<T>;
  const int64_t group_bytes = steps * S::bytes;
  __m512 acc[G][N];
  #pragma GCC unroll 16
  for (int t = 0; t < N; ++t) {
    #pragma GCC unroll 2
    for (int g = 0; g < G; ++g) acc[g][t] = _mm512_setzero_ps();
  }
  #pragma GCC unroll 2
  for (int64_t c = 0; c < steps; ++c) {
    __m512 w[G];
    #pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
      w[g] = S::load(group + g * group_bytes + c * S::bytes);
      if (next && (c * S::bytes) % 64 == 0) {
        _mm_prefetch(reinterpret_cast<const char*>(next + g * group_bytes + c * S::bytes), _MM_HINT_T1);
      }
    }
    #pragma GCC unroll 16
    for (int t = 0; t < N; ++t) {
      const __m512 b = S::broadcast(x + t * x_stride + c * S::activations);
      #pragma GCC unroll 2
      for (int g = 0; g < G; ++g) acc[g][t] = S::madd(acc[g][t], w[g], b);
    }
  }
  #pragma GCC unroll 16
  for (int t = 0; t < N; ++t) {
    #pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
      _mm512_mask_storeu_ps(y + t * y_stride + g * kGroupRows, g == G - 1 ? last_mask : 0xFFFF, acc[g][t]);
    }
  }
}

template <int N>
SLUICE_AVX512 void tile_q8(const uint8_t* quants, const uint16_t* scales, int64_t blocks, const int8_t* xq,
                           int64_t cols, const int32_t* corr, const float* xd, float* y, int64_t y_stride,
                           __mmask16 mask, const uint8_t* next) {
  __m512 acc[N];
  #pragma GCC unroll 16
  for (int t = 0; t < N; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const auto* wp = reinterpret_cast<const __m512i*>(quants + b * 512);
    if (next) {
      #pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) _mm_prefetch(reinterpret_cast<const char*>(next + b * 512 + k * 64), _MM_HINT_T1);
    }
    __m512i w[8];
    #pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) w[k] = _mm512_load_si512(wp + k);
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(scales + b * kGroupRows)));
    #pragma GCC unroll 16
    for (int t = 0; t < N; ++t) {
      const int8_t* xt = xq + t * cols + b * 32;
      // Two integer chains (exact, so their split changes nothing).
      __m512i s0 = _mm512_set1_epi32(corr[t * blocks + b]), s1 = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int k = 0; k < 8; k += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[k], _mm512_set1_epi32(load32(xt + 4 * k)));
        s1 = _mm512_dpbusd_epi32(s1, w[k + 1], _mm512_set1_epi32(load32(xt + 4 * k + 4)));
      }
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xd[t * blocks + b]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), scale, acc[t]);
    }
  }
  #pragma GCC unroll 16
  for (int t = 0; t < N; ++t) _mm512_mask_storeu_ps(y + t * y_stride, mask, acc[t]);
}

// Row groups handed out to the pool's threads a few at a time, `Groups` at
// a time to a tile (the last tile may have fewer); within them the tokens
// in tiles of N, then 8, 4, 2, 1. tile(first group, groups, first token,
// tokens as a constant, prefetch the next groups).
template <int N, int Groups, class Tile>
void for_each_group(ThreadPool& pool, int64_t groups, int64_t tokens, Tile&& tile) {
  const int64_t units = (groups + Groups - 1) / Groups;
  const int64_t grain = std::max<int64_t>(1, units / (8 * pool.size()));
  for (int64_t tb = 0; tb < tokens; tb += kTokenBlock) {
    const int64_t te = std::min(tokens, tb + kTokenBlock);
    pool.parallel_chunks(units, grain, [&](int64_t begin, int64_t end, int) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t g = u * Groups, count = std::min<int64_t>(Groups, groups - g);
        int64_t t = tb;
        // The first tile over these groups prefetches the next ones' weights.
        const auto call = [&](auto m) { tile(g, count, t, m, t == tb && u + 1 < end); };
        for (; te - t >= N; t += N) call(std::integral_constant<int, N>{});
        const auto rest = [&](auto m) {
          if (te - t >= decltype(m)::value) {
            call(m);
            t += decltype(m)::value;
          }
        };
        if constexpr (N > 8) rest(std::integral_constant<int, 8>{});
        static_assert(N <= 16);
        if constexpr (N > 4) rest(std::integral_constant<int, 4>{});
        if constexpr (N > 2) rest(std::integral_constant<int, 2>{});
        if constexpr (N > 1) rest(std::integral_constant<int, 1>{});
      }
    });
  }
}

// Activations as bfloat16, rounded to nearest even, `stride` apart and
// padded with zeros.
SLUICE_AVX512 void to_bf16(const float* x, int64_t tokens, int64_t cols, int64_t stride, uint16_t* out) {
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < stride; i += 16) {
      const int64_t left = std::max<int64_t>(0, std::min<int64_t>(16, cols - i));
      const auto m = static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(m, x + t * cols + i);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + t * stride + i), (__m256i)_mm512_cvtneps_pbh(v));
    }
  }
}

// BF16, F16 and F32: tiles of kRowTileGroups groups by kRowTileTokens
// tokens. BF16 takes its activations as bfloat16, the others as they are.
template <gguf::TensorType T>
void matmul_rows(ThreadPool& pool, const PackedWeight& w, const float* x, float* y, int64_t tokens) {
  using S = RowStep<T>;
  const int64_t rows = w.rows(), cols = w.cols(), groups = groups_of(rows);
  const int64_t steps = T == gguf::TensorType::kBF16 ? pairs_of(cols) : cols;
  const int64_t x_stride = steps * S::activations;
  const typename S::Activation* xs = nullptr;
  if constexpr (T == gguf::TensorType::kBF16) {
    thread_local std::vector<uint16_t> scratch;
    scratch.resize(static_cast<size_t>(tokens * x_stride));
    to_bf16(x, tokens, cols, x_stride, scratch.data());
    xs = scratch.data();  // the pool's threads must read this thread's buffer, not their own
  } else {
    xs = x;
  }
  const int64_t group_bytes = steps * S::bytes;
  const uint8_t* data = w.data();
  for_each_group<kRowTileTokens, kRowTileGroups>(
      pool, groups, tokens, [&](int64_t g, int64_t count, int64_t t0, auto n, bool prefetch) {
        const uint8_t* first = data + g * group_bytes;
        const uint8_t* next = prefetch ? data + (g + count) * group_bytes : nullptr;
        float* out = y + t0 * rows + g * kGroupRows;
        const __mmask16 mask = group_mask(rows, g + count - 1);
        constexpr int N = decltype(n)::value;
        if (count == 2) {
          tile_rows<T, 2, N>(first, steps, xs + t0 * x_stride, x_stride, out, rows, mask, next);
        } else {
          tile_rows<T, 1, N>(first, steps, xs + t0 * x_stride, x_stride, out, rows, mask, next);
        }
      });
}

void matmul_q8(ThreadPool& pool, const PackedWeight& w, const float* x, float* y, int64_t tokens) {
  const int64_t rows = w.rows(), cols = w.cols(), blocks = cols / 32, groups = groups_of(rows);
  thread_local QuantizedActivations scratch;
  thread_local std::vector<int32_t> corrections;
  quantize_activations(x, tokens, cols, scratch);
  corrections.resize(static_cast<size_t>(tokens * blocks));
  for (int64_t b = 0; b < tokens * blocks; ++b) {
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) sum += scratch.q[static_cast<size_t>(b * 32 + j)];
    corrections[static_cast<size_t>(b)] = -128 * sum;
  }
  const int8_t* xq = scratch.q.data();
  const float* xd = scratch.d.data();
  const int32_t* corr = corrections.data();
  const uint8_t* quants = w.data();
  const auto* scales = reinterpret_cast<const uint16_t*>(w.data() + groups * blocks * 512);
  for_each_group<kQ8TileTokens, 1>(pool, groups, tokens, [&](int64_t g, int64_t, int64_t t0, auto n, bool prefetch) {
    tile_q8<decltype(n)::value>(quants + g * blocks * 512, scales + g * blocks * kGroupRows, blocks, xq + t0 * cols, cols,
                                corr + t0 * blocks, xd + t0 * blocks, y + t0 * rows + g * kGroupRows, rows,
                                group_mask(rows, g), prefetch ? quants + (g + 1) * blocks * 512 : nullptr);
  });
}

uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// e^x for 16 lanes: exp8's polynomial (kernels.cpp), 16 wide. Arguments
// are clamped to +-88.38; e^x of anything below comes out 0.
SLUICE_AVX512 inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)), _mm512_set1_ps(88.3762626647949f));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

// Scores of up to 8 rows against one chunk of up to 16 positions, from the
// chunk's keys transposed (kt: head_dim x 16): lane j of a row's sum is
// q . k_j, the products added in the order of the head's dimensions.
template <int R>
SLUICE_AVX512 void score_rows(const float* const* q, int64_t head_dim, const float* kt, float scale, float* const* out,
                              __mmask16 lanes) {
  __m512 acc[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < head_dim; ++i) {
    const __m512 k = _mm512_load_ps(kt + i * 16);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][i]), k, acc[r]);
  }
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(out[r], lanes, _mm512_mul_ps(acc[r], _mm512_set1_ps(scale)));
}

// out[r][d0 .. d0 + 16 NV) = (sum over positions p < positions of e[r][p]
// v_p, in position order) * inv[r], for R rows.
template <int R, int NV>
SLUICE_AVX512 void weigh_rows(const float* const* e, const float* inv, const KvRun* runs, size_t run_count,
                              int64_t stride, int64_t positions, int64_t d0, float* const* out) {
  __m512 acc[R][NV];
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    #pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) acc[r][k] = _mm512_setzero_ps();
  }
  int64_t p = 0;
  for (size_t run = 0; run < run_count && p < positions; ++run) {
    for (int64_t j = 0; j < runs[run].count && p < positions; ++j, ++p) {
      const float* vp = runs[run].v + j * stride + d0;
      __m512 v[NV];
      #pragma GCC unroll 4
      for (int k = 0; k < NV; ++k) v[k] = _mm512_loadu_ps(vp + 16 * k);
      #pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512 w = _mm512_set1_ps(e[r][p]);
        #pragma GCC unroll 4
        for (int k = 0; k < NV; ++k) acc[r][k] = _mm512_fmadd_ps(w, v[k], acc[r][k]);
      }
    }
  }
  #pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
    #pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) _mm512_storeu_ps(out[r] + d0 + 16 * k, _mm512_mul_ps(acc[r][k], scale));
  }
}

template <int R, class F>
void rows_in_tiles(int64_t rows, F&& f) {
  int64_t r = 0;
  for (; rows - r >= R; r += R) f(r, std::integral_constant<int, R>{});
  for (; r < rows; ++r) f(r, std::integral_constant<int, 1>{});
}

}  // namespace

size_t attention_scratch(int64_t rows, int64_t positions, int64_t head_dim) {
  const int64_t padded = (positions + 15) / 16 * 16;
  return static_cast<size_t>(16 + head_dim * 16 + rows * padded + rows);
}

SLUICE_AVX512 void attention(const float* const* q, float* const* out, const int64_t* pos, int64_t rows,
                             int64_t head_dim, const KvRun* runs, size_t run_count, int64_t stride, float scale,
                             float* scratch) {
  int64_t positions = 0;
  for (int64_t r = 0; r < rows; ++r) positions = std::max(positions, pos[r] + 1);
  const int64_t padded = (positions + 15) / 16 * 16;
  // scratch: the transposed keys of a chunk (aligned), every row's scores,
  // then every row's 1 / sum.
  float* kt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) / 64 * 64);
  float* scores = kt + head_dim * 16;
  float* inv = scores + rows * padded;
  // Scores: the positions in chunks of up to 16 within a run (the KV pool's
  // blocks), each chunk's keys gathered into columns once for all rows.
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(stride)));
  int64_t p0 = 0;
  for (size_t run = 0; run < run_count && p0 < positions; ++run) {
    for (int64_t j0 = 0; j0 < runs[run].count && p0 < positions; j0 += 16) {
      const int64_t n = std::min({runs[run].count - j0, int64_t{16}, positions - p0});
      const __mmask16 lanes = first_lanes(n);
      const float* k0 = runs[run].k + j0 * stride;
      for (int64_t i = 0; i < head_dim; ++i) {
        _mm512_store_ps(kt + i * 16, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, offsets, k0 + i, 4));
      }
      rows_in_tiles<8>(rows, [&](int64_t r0, auto tile) {
        constexpr int R = decltype(tile)::value;
        float* row_scores[R];
        for (int r = 0; r < R; ++r) row_scores[r] = scores + (r0 + r) * padded + p0;
        score_rows<R>(q + r0, head_dim, kt, scale, row_scores, lanes);
      });
      p0 += n;
    }
  }
  // Softmax of each row over its own positions (0 .. pos[r]); the rest of
  // the row becomes e^-inf = 0, so a row's sums are the same whatever rows
  // it is computed with.
  const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * padded;
    const int64_t own = pos[r] + 1;
    __m512 vmax = minus_inf;
    for (int64_t i = 0; i < own; i += 16) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(minus_inf, first_lanes(own - i), s + i));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t i = 0; i < padded; i += 16) {
      const __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(minus_inf, first_lanes(own - i), s + i), m));
      _mm512_storeu_ps(s + i, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    inv[r] = 1.0f / _mm512_reduce_add_ps(vsum);
  }
  // Values: rows 4 at a time, 64 dimensions at a time.
  rows_in_tiles<4>(rows, [&](int64_t r0, auto tile) {
    constexpr int R = decltype(tile)::value;
    const float* e[R];
    for (int r = 0; r < R; ++r) e[r] = scores + (r0 + r) * padded;
    for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
      switch (std::min<int64_t>(64, head_dim - d0) / 16) {
        case 4: weigh_rows<R, 4>(e, inv + r0, runs, run_count, stride, positions, d0, out + r0); break;
        case 3: weigh_rows<R, 3>(e, inv + r0, runs, run_count, stride, positions, d0, out + r0); break;
        case 2: weigh_rows<R, 2>(e, inv + r0, runs, run_count, stride, positions, d0, out + r0); break;
        default: weigh_rows<R, 1>(e, inv + r0, runs, run_count, stride, positions, d0, out + r0); break;
      }
    }
  });
}

bool cpu_has() {
  static const bool yes = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || (c & (1u << 27)) == 0) return false;  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    // XCR0: SSE, AVX, opmask, the upper halves of zmm0-15 and zmm16-31.
    if ((lo & 0xE6) != 0xE6) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    const bool vnni = c & (1u << 11);
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    const bool bf16 = a & (1u << 5);
    return f && dq && bw && vl && vnni && bf16;
  }();
  return yes;
}

std::unique_ptr<PackedWeight> pack(const Weight& w) {
  const int64_t groups = groups_of(w.rows);
  const size_t row_bytes = w.row_bytes();
  if (w.type == gguf::TensorType::kBF16) {
    const int64_t pairs = pairs_of(w.cols);
    auto p = std::make_unique<PackedWeight>(w.type, w.rows, w.cols, static_cast<size_t>(groups * pairs * 64));
    auto* out = reinterpret_cast<uint16_t*>(p->data());
    for (int64_t g = 0; g < groups; ++g) {
      uint16_t* group = out + g * pairs * 32;
      for (int64_t j = 0; j < kGroupRows; ++j) {
        const int64_t r = g * kGroupRows + j;
        const uint8_t* row = w.data + static_cast<size_t>(r) * row_bytes;
        for (int64_t c = 0; c < 2 * pairs; ++c) {
          group[(c / 2) * 32 + j * 2 + c % 2] = r < w.rows && c < w.cols ? load16(row + 2 * c) : 0;
        }
      }
    }
    return p;
  }
  if (w.type == gguf::TensorType::kF16 || w.type == gguf::TensorType::kF32) {
    // Column-major within a group: column c of rows 16g .. 16g + 15.
    const size_t value_bytes = w.type == gguf::TensorType::kF16 ? 2 : 4;
    auto p = std::make_unique<PackedWeight>(w.type, w.rows, w.cols,
                                            static_cast<size_t>(groups * w.cols * kGroupRows) * value_bytes);
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t j = 0; j < kGroupRows; ++j) {
        const int64_t r = g * kGroupRows + j;
        for (int64_t c = 0; c < w.cols; ++c) {
          uint8_t* dst = p->data() + (static_cast<size_t>((g * w.cols + c) * kGroupRows + j)) * value_bytes;
          if (r < w.rows) {
            std::memcpy(dst, w.data + static_cast<size_t>(r) * row_bytes + static_cast<size_t>(c) * value_bytes, value_bytes);
          } else {
            std::memset(dst, 0, value_bytes);
          }
        }
      }
    }
    return p;
  }
  if (w.type == gguf::TensorType::kQ8_0) {
    const int64_t blocks = w.cols / 32;
    const size_t quant_bytes = static_cast<size_t>(groups * blocks * 512);
    auto p = std::make_unique<PackedWeight>(w.type, w.rows, w.cols, quant_bytes + static_cast<size_t>(groups * blocks * 32));
    uint8_t* quants = p->data();
    auto* scales = reinterpret_cast<uint16_t*>(p->data() + quant_bytes);
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t j = 0; j < kGroupRows; ++j) {
        const int64_t r = g * kGroupRows + j;
        for (int64_t b = 0; b < blocks; ++b) {
          const uint8_t* block = r < w.rows ? w.data + static_cast<size_t>(r) * row_bytes + b * 34 : nullptr;
          scales[(g * blocks + b) * kGroupRows + j] = block ? load16(block) : 0;
          uint8_t* rec = quants + (g * blocks + b) * 512;
          for (int k = 0; k < 8; ++k) {
            for (int i = 0; i < 4; ++i) {
              const int q = block ? static_cast<int8_t>(block[2 + 4 * k + i]) : 0;
              rec[(k * kGroupRows + j) * 4 + i] = static_cast<uint8_t>(q + 128);
            }
          }
        }
      }
    }
    return p;
  }
  return nullptr;
}

void matmul(ThreadPool& pool, const PackedWeight& w, const float* x, float* y, int64_t tokens) {
  switch (w.type()) {
    case gguf::TensorType::kBF16: return matmul_rows<gguf::TensorType::kBF16>(pool, w, x, y, tokens);
    case gguf::TensorType::kF16: return matmul_rows<gguf::TensorType::kF16>(pool, w, x, y, tokens);
    case gguf::TensorType::kF32: return matmul_rows<gguf::TensorType::kF32>(pool, w, x, y, tokens);
    case gguf::TensorType::kQ8_0: return matmul_q8(pool, w, x, y, tokens);
  }
}

}  // namespace avx512
}  // namespace sluice::kernels
