#include "gateway/engine/local/kernels.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstring>

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

__attribute__((target("avx2,fma"))) float hsum(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float dot_f32_avx2(const float* a, const float* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(x + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(x + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * x[i];
  return s;
}

__attribute__((target("avx2,fma"))) float dot_bf16_avx2(const uint8_t* a, const float* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2 * i));
    const __m256 w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(w)), 16));
    const __m256 w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(w, 1)), 16));
    s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), s0);
    s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), s1);
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, a + 2 * i, 2);
    s += bf16_to_float(h) * x[i];
  }
  return s;
}

__attribute__((target("avx2,fma,f16c"))) float dot_f16_avx2(const uint8_t* a, const float* x, int64_t n) {
  __m256 s0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 2 * i)));
    s0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), s0);
  }
  float s = hsum(s0);
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, a + 2 * i, 2);
    s += half_to_float(h) * x[i];
  }
  return s;
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

}  // namespace

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
  if (has_avx2()) {
    switch (w.type) {
      case gguf::TensorType::kF32: return dot_f32_avx2(reinterpret_cast<const float*>(row), x, n);
      case gguf::TensorType::kBF16: return dot_bf16_avx2(row, x, n);
      case gguf::TensorType::kF16: return dot_f16_avx2(row, x, n);
      case gguf::TensorType::kQ8_0: return dot_q8_0_avx2(row, x, n / 32);
    }
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
    case gguf::TensorType::kBF16: {
      float s = 0;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        s += bf16_to_float(h) * x[i];
      }
      return s;
    }
    case gguf::TensorType::kF16: {
      float s = 0;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        s += half_to_float(h) * x[i];
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

void ThreadPool::work(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = n_;
    }
    const int parts = size();
    const int64_t begin = n * index / parts, end = n * (index + 1) / parts;
    if (begin < end) (*job)(begin, end);
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (workers_.empty() || n < 2) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    n_ = n;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_.notify_all();
  const int parts = size();
  const int64_t end = n / parts;  // part 0 is the caller's
  if (end > 0) fn(0, end);
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
}

void matmul(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens) {
  pool.parallel_for(w.rows, [&](int64_t begin, int64_t end) {
    for (int64_t t = 0; t < tokens; ++t) {
      const float* xt = x + t * w.cols;
      float* yt = y + t * w.rows;
      for (int64_t r = begin; r < end; ++r) yt[r] = dot_row(w, r, xt);
    }
  });
}

}  // namespace sluice::kernels
