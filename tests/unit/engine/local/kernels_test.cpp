#include "gateway/engine/local/kernels.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

namespace sluice::kernels {
namespace {

// Q8_0 blocks for rows x cols random weights.
std::vector<uint8_t> q8_0_matrix(int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols / 32 * 34));
  std::uniform_int_distribution<int> q(-127, 127);
  for (size_t b = 0; b < out.size() / 34; ++b) {
    const uint16_t scale = 0x2C00 + static_cast<uint16_t>(b % 64);  // about 1/16, f16
    std::memcpy(&out[b * 34], &scale, 2);
    for (int j = 0; j < 32; ++j) out[b * 34 + 2 + static_cast<size_t>(j)] = static_cast<uint8_t>(static_cast<int8_t>(q(rng)));
  }
  return out;
}

struct PortableGuard {
  explicit PortableGuard(bool on) { force_portable(on); }
  ~PortableGuard() { force_portable(false); }
};

TEST(Kernels, Q8_0MatmulMatchesTheQuantizedReferenceOnEveryPathAndBatchSize) {
  std::mt19937 rng(7);
  const int64_t rows = 37, cols = 96;
  const auto data = q8_0_matrix(rows, cols, rng);
  const Weight w{gguf::TensorType::kQ8_0, data.data(), rows, cols};
  std::normal_distribution<float> n(0, 1);
  for (const int64_t tokens : {1, 2, 3, 5, 9}) {
    std::vector<float> x(static_cast<size_t>(tokens * cols));
    for (auto& v : x) v = n(rng);
    // Reference: dequantized weights against dequantized activations, in double.
    QuantizedActivations xq;
    quantize_activations(x.data(), tokens, cols, xq);
    std::vector<float> row(static_cast<size_t>(cols));
    ThreadPool pool(3);
    for (const bool portable : {false, true}) {
      PortableGuard guard(portable);
      std::vector<float> y(static_cast<size_t>(tokens * rows));
      matmul(pool, w, x.data(), y.data(), tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          dequantize_row(w, r, row.data());
          double ref = 0;
          for (int64_t i = 0; i < cols; ++i) {
            ref += static_cast<double>(row[static_cast<size_t>(i)]) * xq.q[static_cast<size_t>(t * cols + i)] *
                   xq.d[static_cast<size_t>((t * cols + i) / 32)];
          }
          ASSERT_NEAR(y[static_cast<size_t>(t * rows + r)], ref, 1e-4 * (1 + std::fabs(ref)))
              << "tokens " << tokens << " row " << r << (portable ? " portable" : " native");
        }
      }
    }
  }
}

TEST(Kernels, ResultsDoNotDependOnTheBatchForEveryTypeAndPath) {
  // A token's outputs are bit-identical alone and inside a batch: the
  // continuous-batching scheduler relies on it for reproducible turns.
  std::mt19937 rng(3);
  const int64_t rows = 64, tokens = 7;
  const int64_t float_cols = 136;  // 8 past a multiple of 16: the scalar tail runs too
  std::normal_distribution<float> n(0, 1);
  std::vector<float> f32(static_cast<size_t>(rows * float_cols));
  for (auto& v : f32) v = n(rng);
  std::vector<uint8_t> f16(f32.size() * 2), bf16(f32.size() * 2);
  for (size_t i = 0; i < f32.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &f32[i], 4);
    const auto b = static_cast<uint16_t>(bits >> 16);
    std::memcpy(&bf16[i * 2], &b, 2);
    const auto h = static_cast<uint16_t>(0x3000 + (bits >> 20) % 0x0C00);  // f16 in [1/8, 2)
    std::memcpy(&f16[i * 2], &h, 2);
  }
  const auto q8 = q8_0_matrix(rows, 128, rng);
  const Weight weights[] = {{gguf::TensorType::kF32, reinterpret_cast<const uint8_t*>(f32.data()), rows, float_cols},
                            {gguf::TensorType::kF16, f16.data(), rows, float_cols},
                            {gguf::TensorType::kBF16, bf16.data(), rows, float_cols},
                            {gguf::TensorType::kQ8_0, q8.data(), rows, 128}};
  ThreadPool pool(2);
  for (const bool portable : {false, true}) {
    PortableGuard guard(portable);
    for (const auto& w : weights) {
      std::vector<float> x(static_cast<size_t>(tokens * w.cols));
      for (auto& v : x) v = n(rng);
      std::vector<float> batched(static_cast<size_t>(tokens * rows)), alone(static_cast<size_t>(rows));
      matmul(pool, w, x.data(), batched.data(), tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        matmul(pool, w, x.data() + t * w.cols, alone.data(), 1);
        EXPECT_EQ(0, std::memcmp(alone.data(), batched.data() + t * rows, alone.size() * 4))
            << "type " << static_cast<int>(w.type) << " token " << t << (portable ? " portable" : " native");
        // And the batched result is the row's dot product (Q8_0 quantizes
        // the activations first: the test above checks it).
        for (int64_t r = 0; r < rows && w.type != gguf::TensorType::kQ8_0; r += 9) {
          const float ref = dot_row(w, r, x.data() + t * w.cols);
          EXPECT_NEAR(batched[static_cast<size_t>(t * rows + r)], ref, 1e-4f * (1 + std::fabs(ref)))
              << "type " << static_cast<int>(w.type) << " row " << r;
        }
      }
    }
  }
}

TEST(Kernels, QuantizedActivationsRoundHalfToEvenAndKeepZeroBlocks) {
  std::vector<float> x(64, 0.0f);
  x[0] = 127.0f;  // scale 1
  x[1] = 2.5f;
  x[2] = -3.5f;
  x[3] = 0.5f;
  QuantizedActivations q;
  quantize_activations(x.data(), 1, 64, q);
  EXPECT_FLOAT_EQ(q.d[0], 1.0f);
  EXPECT_EQ(q.q[1], 2);
  EXPECT_EQ(q.q[2], -4);
  EXPECT_EQ(q.q[3], 0);
  EXPECT_EQ(q.d[1], 0.0f);  // an all-zero block
  EXPECT_EQ(q.q[40], 0);
}

TEST(Kernels, PortableAndNativeDotProductsAgreeForEveryType) {
  if (!native_kernels_active()) {
    GTEST_SKIP() << "no native kernels here (no AVX2/FMA/F16C, or SLUICE_CPU_KERNELS=portable): "
                    "nothing to compare the portable ones with";
  }
  std::mt19937 rng(5);
  const int64_t cols = 80 * 32 / 32 + 16;  // 96: a tail past the vector width for the float types
  std::normal_distribution<float> n(0, 1);
  std::vector<float> x(static_cast<size_t>(cols)), f32(static_cast<size_t>(cols));
  for (auto& v : x) v = n(rng);
  for (auto& v : f32) v = n(rng);
  std::vector<uint8_t> f16(static_cast<size_t>(cols) * 2), bf16(static_cast<size_t>(cols) * 2);
  for (int64_t i = 0; i < cols; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &f32[static_cast<size_t>(i)], 4);
    const auto b = static_cast<uint16_t>(bits >> 16);
    std::memcpy(&bf16[static_cast<size_t>(i) * 2], &b, 2);
    const uint16_t h = 0x3C00 + static_cast<uint16_t>(i);  // 1.0 and up, f16
    std::memcpy(&f16[static_cast<size_t>(i) * 2], &h, 2);
  }
  const auto q8 = q8_0_matrix(1, cols, rng);
  const Weight weights[] = {{gguf::TensorType::kF32, reinterpret_cast<const uint8_t*>(f32.data()), 1, cols},
                            {gguf::TensorType::kF16, f16.data(), 1, cols},
                            {gguf::TensorType::kBF16, bf16.data(), 1, cols},
                            {gguf::TensorType::kQ8_0, q8.data(), 1, cols}};
  for (const auto& w : weights) {
    const float native = dot_row(w, 0, x.data());
    float portable;
    {
      PortableGuard guard(true);
      portable = dot_row(w, 0, x.data());
    }
    EXPECT_NEAR(native, portable, 1e-3f * (1 + std::fabs(native))) << static_cast<int>(w.type);
  }
}

TEST(ThreadPool, EveryIndexRunsOnceWhetherThreadsSpinOrSleep) {
  ThreadPool pool(3);
  for (int round = 0; round < 400; ++round) {
    const int64_t n = 1 + round % 50;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "round " << round;
    // Now and then wait long enough that the workers go to sleep, so the
    // next call must wake them.
    if (round % 40 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace
}  // namespace sluice::kernels
