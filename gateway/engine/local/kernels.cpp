#include "gateway/engine/local/kernels.hpp"

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

std::atomic<bool> portable_only{[] {
  const char* v = std::getenv("SLUICE_CPU_KERNELS");
  return v != nullptr && std::string_view(v) == "portable";
}()};

bool use_avx2() { return !portable_only.load(std::memory_order_relaxed) && has_avx2(); }

__attribute__((target("avx2,fma"))) float hsum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// 16 weights of a row, from element i, as two vectors of 8 floats.
template <gguf::TensorType T>
__attribute__((target("avx2,fma,f16c"), always_inline)) inline void load16(const uint8_t* row, int64_t i, __m256& w0,
                                                                          __m256& w1) {
  if constexpr (T == gguf::TensorType::kF32) {
    const auto* a = reinterpret_cast<const float*>(row);
    w0 = _mm256_loadu_ps(a + i);
    w1 = _mm256_loadu_ps(a + i + 8);
  } else if constexpr (T == gguf::TensorType::kBF16) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i));
    w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(w)), 16));
    w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(w, 1)), 16));
  } else {
    w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
    w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i + 16)));
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

// A row of F32, F16 or BF16 weights against `Tokens` activation rows (x,
// one after the other): each 16 weights are loaded and converted once for
// all of them, so with several tokens in a step a row is read from memory
// once, not once per token. Each token's sum runs in the same order whatever
// `Tokens` is: a token's result does not depend on the batch.
template <gguf::TensorType T, int Tokens>
__attribute__((target("avx2,fma,f16c"))) void dot_float_avx2(const uint8_t* row, const float* x, int64_t cols,
                                                              float* out) {
  __m256 acc[Tokens][2];
  for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= cols; i += 16) {
    __m256 w0, w1;
    load16<T>(row, i, w0, w1);
    #pragma GCC unroll 4  // keeps every accumulator in a register
    for (int t = 0; t < Tokens; ++t) {
      acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * cols + i), acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * cols + i + 8), acc[t][1]);
    }
  }
  for (int t = 0; t < Tokens; ++t) {
    float s = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
    for (int64_t j = i; j < cols; ++j) s += element<T>(row, j) * x[t * cols + j];
    out[t] = s;
  }
}

template <int Tokens>
void dot_float_avx2(gguf::TensorType type, const uint8_t* row, const float* x, int64_t cols, float* out) {
  switch (type) {
    case gguf::TensorType::kF32: return dot_float_avx2<gguf::TensorType::kF32, Tokens>(row, x, cols, out);
    case gguf::TensorType::kBF16: return dot_float_avx2<gguf::TensorType::kBF16, Tokens>(row, x, cols, out);
    default: return dot_float_avx2<gguf::TensorType::kF16, Tokens>(row, x, cols, out);
  }
}

// For every row r of w (rows split over the pool) and the tokens in groups
// of 4, then 2, then 1: kernel(row, r, t, std::integral_constant<int, N>,
// out) computes out[i] = dot(row r, x[t + i]) for i < N, which land in
// y[t + i][r]. Rows outside, tokens inside: a row is read from memory once
// per step, not once per token.
template <class Kernel>
void rows_by_token_groups(ThreadPool& pool, const Weight& w, int64_t tokens, float* y, Kernel&& kernel) {
  const size_t row_bytes = w.row_bytes();
  pool.parallel_for(w.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* row = w.data + static_cast<size_t>(r) * row_bytes;
      const auto run = [&](int64_t t, auto group) {
        constexpr int n = decltype(group)::value;
        float out[n];
        kernel(row, r, t, group, out);
        for (int i = 0; i < n; ++i) y[(t + i) * w.rows + r] = out[i];
      };
      int64_t t = 0;
      for (; tokens - t >= 4; t += 4) run(t, std::integral_constant<int, 4>{});
      for (; tokens - t >= 2; t += 2) run(t, std::integral_constant<int, 2>{});
      for (; t < tokens; ++t) run(t, std::integral_constant<int, 1>{});
    }
  });
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
// `Tokens` activation rows share each weight block load: with several tokens
// in a step the weights are read from memory once, not once per token.
template <int Tokens>
__attribute__((target("avx2,fma,f16c"))) void dot_q8_q8_avx2(const uint8_t* row, int64_t blocks, const QuantizedActivations& x,
                                                              int64_t t0, float* out) {
  __m256 acc[Tokens][2];
  for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* block = row + b * 34;
    uint16_t h;
    std::memcpy(&h, block, 2);
    const float dw = _cvtsh_ss(h);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const __m256i aw = _mm256_sign_epi8(w, w);  // |w|, unsigned; Q8_0 never holds -128
    #pragma GCC unroll 4  // keeps every accumulator in a register
    for (int t = 0; t < Tokens; ++t) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q.data() + (t0 + t) * x.cols + b * 32));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, w)), ones);
      // Two accumulators per token hide the FMA latency at batch 1.
      acc[t][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * x.d[(t0 + t) * x.blocks() + b]), acc[t][b & 1]);
    }
  }
  for (int t = 0; t < Tokens; ++t) out[t] = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
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

void matmul_q8_0(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  thread_local QuantizedActivations scratch;
  // The pool's threads must see this thread's buffer, not their own.
  const QuantizedActivations& xq = scratch;
  quantize_activations(x, tokens, w.cols, scratch);
  const bool avx2 = use_avx2();
  const int64_t blocks = w.cols / 32;
  rows_by_token_groups(pool, w, tokens, y, [&](const uint8_t* row, int64_t, int64_t t, auto group, float* out) {
    constexpr int n = decltype(group)::value;
    if (avx2) {
      dot_q8_q8_avx2<n>(row, blocks, xq, t, out);
    } else {
      for (int i = 0; i < n; ++i) dot_q8_q8_portable(row, blocks, xq, t + i, out + i);
    }
  });
}

}  // namespace

void quantize_activations(const float* x, int64_t tokens, int64_t cols, QuantizedActivations& out) {
  out.cols = cols;
  out.q.resize(static_cast<size_t>(tokens * cols));
  out.d.resize(static_cast<size_t>(tokens * cols / 32));
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

void force_portable(bool on) { portable_only.store(on, std::memory_order_relaxed); }

bool native_kernels_active() { return use_avx2(); }

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

size_t Weight::row_bytes() const {
  switch (type) {
    case gguf::TensorType::kF32: return static_cast<size_t>(cols) * 4;
    case gguf::TensorType::kF16:
    case gguf::TensorType::kBF16: return static_cast<size_t>(cols) * 2;
    case gguf::TensorType::kQ8_0: return static_cast<size_t>(cols) / 32 * 34;
  }
  return 0;
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
    if (w.type == gguf::TensorType::kQ8_0) return dot_q8_0_avx2(row, x, n / 32);
    float out;
    dot_float_avx2<1>(w.type, row, x, n, &out);
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

void matmul(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  if (w.type == gguf::TensorType::kQ8_0) {
    matmul_q8_0(pool, w, x, y, tokens);
    return;
  }
  const bool avx2 = use_avx2();
  rows_by_token_groups(pool, w, tokens, y, [&](const uint8_t* row, int64_t r, int64_t t, auto group, float* out) {
    constexpr int n = decltype(group)::value;
    if (avx2) {
      dot_float_avx2<n>(w.type, row, x + t * w.cols, w.cols, out);
    } else {
      for (int i = 0; i < n; ++i) out[i] = dot_row(w, r, x + (t + i) * w.cols);
    }
  });
}

}  // namespace sluice::kernels
