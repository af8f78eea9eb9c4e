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

struct PathGuard {
  explicit PathGuard(KernelPath cap) { limit_kernels(cap); }
  ~PathGuard() { limit_kernels(KernelPath::kAvx512); }
};

constexpr KernelPath kEveryPath[] = {KernelPath::kAvx512, KernelPath::kAvx2, KernelPath::kPortable};

// float -> bfloat16 -> float, to nearest even (what the AVX-512 path does to
// a BF16 matmul's activations).
float round_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<uint8_t> bf16_matrix(int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> n(0, 1);
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols * 2));
  for (size_t i = 0; i < out.size() / 2; ++i) {
    const float f = n(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const auto b = static_cast<uint16_t>(bits >> 16);
    std::memcpy(&out[i * 2], &b, 2);
  }
  return out;
}

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
  // 67 rows: register tiles of 4 rows and one of 3; 70 tokens: tiles of 3,
  // 2 and 1 tokens, and more than one block of 64 tokens.
  const int64_t rows = 67, tokens = 70;
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
  // Each also packed for the AVX-512 path (67 rows: 4 groups of 16 and 3
  // rows in a fifth); where the CPU has no AVX-512, that path is the AVX2
  // one.
  std::vector<std::unique_ptr<PackedWeight>> packs;
  std::vector<Weight> all(std::begin(weights), std::end(weights));
  for (const auto& w : weights) {
    if (auto p = pack_for_avx512(w)) {
      all.push_back(w);
      all.back().packed = p.get();
      packs.push_back(std::move(p));
    }
  }
  ThreadPool pool(2);
  for (const KernelPath path : kEveryPath) {
    PathGuard guard(path);
    for (const auto& w : all) {
      std::vector<float> x(static_cast<size_t>(tokens * w.cols));
      for (auto& v : x) v = n(rng);
      std::vector<float> batched(static_cast<size_t>(tokens * rows)), alone(static_cast<size_t>(rows));
      matmul(pool, w, x.data(), batched.data(), tokens);
      for (int64_t t = 0; t < tokens; ++t) {
        matmul(pool, w, x.data() + t * w.cols, alone.data(), 1);
        EXPECT_EQ(0, std::memcmp(alone.data(), batched.data() + t * rows, alone.size() * 4))
            << "type " << static_cast<int>(w.type) << (w.packed ? " packed" : "") << " token " << t << " path "
            << kernel_path_name(active_kernels());
        // And the batched result is the row's dot product (Q8_0 quantizes
        // the activations first, packed BF16 rounds them: the tests around
        // this one check those).
        const bool exact_activations = w.type != gguf::TensorType::kQ8_0 &&
                                       !(w.packed && active_kernels() == KernelPath::kAvx512);
        for (int64_t r = 0; r < rows && exact_activations; r += 9) {
          const float ref = dot_row(w, r, x.data() + t * w.cols);
          EXPECT_NEAR(batched[static_cast<size_t>(t * rows + r)], ref, 1e-4f * (1 + std::fabs(ref)))
              << "type " << static_cast<int>(w.type) << " row " << r;
        }
      }
    }
  }
}

TEST(Kernels, PackedAvx512MatmulsMatchTheirReferenceAndTheOtherPaths) {
  std::mt19937 rng(17);
  std::normal_distribution<float> n(0, 1);
  // 37 rows: two groups of 16 and 5 rows in a third (a tile of two groups
  // and one of one); BF16 with 136 columns (padded to 144), Q8_0 with 3
  // blocks, F16 with 40 columns.
  const int64_t rows = 37;
  const auto bf16 = bf16_matrix(rows, 136, rng);
  const auto q8 = q8_0_matrix(rows, 96, rng);
  std::vector<uint8_t> f16(static_cast<size_t>(rows * 40 * 2));
  for (size_t i = 0; i < f16.size() / 2; ++i) {
    const auto h = static_cast<uint16_t>(0x3000 + (i * 2654435761u >> 20) % 0x0C00 + ((i % 3) == 0 ? 0x8000 : 0));
    std::memcpy(&f16[i * 2], &h, 2);
  }
  for (Weight w : {Weight{gguf::TensorType::kBF16, bf16.data(), rows, 136}, Weight{gguf::TensorType::kQ8_0, q8.data(), rows, 96},
                   Weight{gguf::TensorType::kF16, f16.data(), rows, 40}}) {
    const auto packed = pack_for_avx512(w);
    if (!packed) {
      GTEST_SKIP() << "this CPU has no AVX-512 BF16 and VNNI (or no AVX2): the packed kernels cannot run here";
    }
    const bool q8_0 = w.type == gguf::TensorType::kQ8_0;
    Weight p = w;
    p.packed = packed.get();
    ThreadPool pool(2);
    std::vector<float> row(static_cast<size_t>(w.cols));
    for (const int64_t tokens : {1, 2, 3, 7, 8, 9, 70}) {
      std::vector<float> x(static_cast<size_t>(tokens * w.cols));
      for (auto& v : x) v = n(rng);
      QuantizedActivations xq;
      if (q8_0) quantize_activations(x.data(), tokens, w.cols, xq);
      std::vector<float> y(static_cast<size_t>(tokens * rows)), portable(y.size());
      matmul(pool, p, x.data(), y.data(), tokens);
      {
        PortableGuard guard(true);
        matmul(pool, w, x.data(), portable.data(), tokens);
      }
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          // In double: the dequantized weights against the activations as
          // the path sees them (Q8_0 blocks; bfloat16).
          dequantize_row(w, r, row.data());
          double ref = 0, magnitude = 0;
          for (int64_t i = 0; i < w.cols; ++i) {
            const auto k = static_cast<size_t>(t * w.cols + i);
            const double a = q8_0 ? static_cast<double>(xq.q[k]) * xq.d[k / 32]
                             : w.type == gguf::TensorType::kBF16 ? round_bf16(x[k]) : x[k];
            ref += static_cast<double>(row[static_cast<size_t>(i)]) * a;
            magnitude += std::fabs(static_cast<double>(row[static_cast<size_t>(i)]) * x[k]);
          }
          const auto at = static_cast<size_t>(t * rows + r);
          ASSERT_NEAR(y[at], ref, 1e-4 * (1 + std::fabs(ref))) << "type " << static_cast<int>(w.type) << " tokens " << tokens
                                                               << " token " << t << " row " << r;
          // Q8_0: the same integer block sums and scales as the portable
          // kernel, summed in another order; F16: the same products; BF16:
          // rounding an activation moves it by at most 2^-9 of itself.
          ASSERT_NEAR(y[at], portable[at], w.type == gguf::TensorType::kBF16 ? magnitude / 512 + 1e-4 : 1e-5 * (1 + std::fabs(ref)))
              << "row " << r;
        }
      }
    }
  }
}

TEST(Kernels, TheKernelPathCanBeCappedAndNamed) {
  {
    PathGuard guard(KernelPath::kPortable);
    EXPECT_EQ(active_kernels(), KernelPath::kPortable);
    EXPECT_FALSE(native_kernels_active());
  }
  {
    PathGuard guard(KernelPath::kAvx2);
    EXPECT_NE(active_kernels(), KernelPath::kAvx512);
  }
  std::mt19937 rng(1);
  const auto q8 = q8_0_matrix(16, 32, rng);
  const bool packs = pack_for_avx512({gguf::TensorType::kQ8_0, q8.data(), 16, 32}) != nullptr;
  // Uncapped, the AVX-512 path runs exactly where packing is possible.
  EXPECT_EQ(active_kernels() == KernelPath::kAvx512, packs);
  EXPECT_STREQ(kernel_path_name(KernelPath::kAvx512), "avx512");
  // Every type has a packed form there.
  const std::vector<float> f32(32 * 16, 1.0f);
  EXPECT_EQ(pack_for_avx512({gguf::TensorType::kF32, reinterpret_cast<const uint8_t*>(f32.data()), 16, 32}) != nullptr, packs);
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

TEST(Kernels, QuantizedActivationsAreTheSameBytesOnEveryPath) {
  std::mt19937 rng(13);
  std::normal_distribution<float> n(0, 3);
  std::vector<float> x(32 * 40);
  for (auto& v : x) v = n(rng);
  for (int j = 0; j < 32; ++j) x[static_cast<size_t>(32 + j)] = static_cast<float>(j - 16) * 0.5f;  // ties
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block
  x[100] = -1e30f;
  QuantizedActivations native, portable;
  quantize_activations(x.data(), 2, 640, native);
  {
    PortableGuard guard(true);
    quantize_activations(x.data(), 2, 640, portable);
  }
  EXPECT_EQ(native.q, portable.q);
  EXPECT_EQ(native.d, portable.d);
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

// softmax(q . k * scale) . v for one head, in double.
std::vector<double> attention_reference(const float* q, int64_t hd, const std::vector<float>& k,
                                        const std::vector<float>& v, int64_t stride, int64_t positions, float scale) {
  std::vector<double> s(static_cast<size_t>(positions)), out(static_cast<size_t>(hd), 0.0);
  double max = -INFINITY, sum = 0;
  for (int64_t p = 0; p < positions; ++p) {
    double dot = 0;
    for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(q[i]) * k[static_cast<size_t>(p * stride + i)];
    s[static_cast<size_t>(p)] = dot * scale;
    max = std::max(max, s[static_cast<size_t>(p)]);
  }
  for (auto& e : s) sum += (e = std::exp(e - max));
  for (int64_t p = 0; p < positions; ++p) {
    for (int64_t i = 0; i < hd; ++i) out[static_cast<size_t>(i)] += s[static_cast<size_t>(p)] / sum * v[static_cast<size_t>(p * stride + i)];
  }
  return out;
}

TEST(Kernels, AttentionMatchesTheReferenceAndDoesNotDependOnHowTheCacheIsSplit) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0, 1);
  // 64 and 128: whole vectors; 72: a 64-wide part and an 8-wide one; 12: not
  // a multiple of the vector width (the portable kernel on every path).
  for (const int64_t hd : {16, 64, 72, 128, 12}) {
    for (const int64_t positions : {1, 7, 16, 37, 300}) {
      const int64_t heads = 7, stride = 2 * hd;  // two KV heads per position; this is the first
      std::vector<float> q(static_cast<size_t>(heads * hd)), k(static_cast<size_t>(positions * stride)), v(k.size());
      for (auto& e : q) e = 2 * n(rng);
      for (auto& e : k) e = n(rng);
      for (auto& e : v) e = n(rng);
      const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
      const std::vector<KvRun> whole = {{k.data(), v.data(), positions}};
      std::vector<KvRun> blocks;  // 16-position blocks, as the KV pool holds them
      for (int64_t p = 0; p < positions; p += 16) {
        blocks.push_back({k.data() + p * stride, v.data() + p * stride, std::min<int64_t>(16, positions - p)});
      }
      for (const bool portable : {false, true}) {
        PortableGuard guard(portable);
        std::vector<float> scores(static_cast<size_t>(heads * positions)), a(q.size()), b(q.size());
        attention(q.data(), heads, hd, whole.data(), whole.size(), stride, scale, scores.data(), a.data());
        attention(q.data(), heads, hd, blocks.data(), blocks.size(), stride, scale, scores.data(), b.data());
        ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4)) << "head_dim " << hd << " positions " << positions;
        // One head alone gives the same bits as inside its group.
        std::vector<float> one(static_cast<size_t>(hd));
        attention(q.data() + 3 * hd, 1, hd, blocks.data(), blocks.size(), stride, scale, scores.data(), one.data());
        ASSERT_EQ(0, std::memcmp(one.data(), a.data() + 3 * hd, one.size() * 4)) << "head_dim " << hd;
        for (int64_t h = 0; h < heads; ++h) {
          const auto ref = attention_reference(q.data() + h * hd, hd, k, v, stride, positions, scale);
          for (int64_t i = 0; i < hd; ++i) {
            ASSERT_NEAR(a[static_cast<size_t>(h * hd + i)], ref[static_cast<size_t>(i)], 2e-5)
                << "head_dim " << hd << " positions " << positions << " head " << h << (portable ? " portable" : " native");
          }
        }
      }
    }
  }
}

TEST(Kernels, ArgmaxIsMaxElementOnEveryPath) {
  std::mt19937 rng(23);
  std::normal_distribution<float> n(0, 4);
  for (const KernelPath path : kEveryPath) {
    PathGuard guard(path);
    for (const int64_t size : {1, 7, 16, 17, 151936}) {
      std::vector<float> x(static_cast<size_t>(size));
      for (auto& v : x) v = n(rng);
      EXPECT_EQ(argmax(x.data(), size), std::max_element(x.begin(), x.end()) - x.begin()) << size;
      // Ties: the lowest index, in the vector part and in the tail.
      x[static_cast<size_t>(size / 2)] = 1e9f;
      x[static_cast<size_t>(size - 1)] = 1e9f;
      EXPECT_EQ(argmax(x.data(), size), size / 2) << size;
      x[0] = NAN;  // passed over (max_element never picks a NaN after the first either)
      if (size > 1) {
        EXPECT_EQ(argmax(x.data(), size), size / 2 == 0 ? size - 1 : size / 2) << size;
      }
    }
    const std::vector<float> banned(40, -INFINITY);
    EXPECT_EQ(argmax(banned.data(), 40), 0);
  }
}

TEST(Kernels, TiledAttentionRowsMatchTheReferenceAndNotTheirNeighbours) {
  for (const int64_t hd : {16, 64, 80, 128}) {
    if (!attention_rows_available(hd)) {
      GTEST_SKIP() << "the tiled attention runs on the AVX-512 path only (this CPU, or the cap, has none)";
    }
    std::mt19937 rng(29);
    std::normal_distribution<float> n(0, 1);
    const int64_t positions = 75, stride = 2 * hd;  // two KV heads per position; this is the first
    std::vector<float> k(static_cast<size_t>(positions * stride)), v(k.size());
    for (auto& e : k) e = n(rng);
    for (auto& e : v) e = n(rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // A prompt chunk's rows: 11 tokens at positions 60..70, 3 heads each
    // (33 rows: tiles of 8 rows and single rows).
    const int64_t heads = 3, tokens = 11;
    std::vector<float> q(static_cast<size_t>(tokens * heads * hd));
    for (auto& e : q) e = 2 * n(rng);
    std::vector<const float*> qp;
    std::vector<int64_t> pos;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        qp.push_back(q.data() + (t * heads + h) * hd);
        pos.push_back(60 + t);
      }
    }
    const auto rows = static_cast<int64_t>(qp.size());
    // The cache in 16-position blocks (the KV pool), and in runs of 7.
    std::vector<KvRun> blocks, sevens;
    for (int64_t p = 0; p < positions; p += 16) blocks.push_back({k.data() + p * stride, v.data() + p * stride, std::min<int64_t>(16, positions - p)});
    for (int64_t p = 0; p < positions; p += 7) sevens.push_back({k.data() + p * stride, v.data() + p * stride, std::min<int64_t>(7, positions - p)});
    std::vector<float> scratch(attention_rows_scratch(rows, positions, hd)), all(static_cast<size_t>(rows * hd)),
        split(all.size()), one(static_cast<size_t>(hd));
    std::vector<float*> out, out_split;
    for (int64_t r = 0; r < rows; ++r) {
      out.push_back(all.data() + r * hd);
      out_split.push_back(split.data() + r * hd);
    }
    attention_rows(qp.data(), out.data(), pos.data(), rows, hd, blocks.data(), blocks.size(), stride, scale, scratch.data());
    attention_rows(qp.data(), out_split.data(), pos.data(), rows, hd, sevens.data(), sevens.size(), stride, scale, scratch.data());
    ASSERT_EQ(0, std::memcmp(all.data(), split.data(), all.size() * 4)) << "head_dim " << hd;
    for (int64_t r = 0; r < rows; ++r) {
      // Alone, over only its own positions: the same bits.
      float* o = one.data();
      attention_rows(&qp[static_cast<size_t>(r)], &o, &pos[static_cast<size_t>(r)], 1, hd, blocks.data(), blocks.size(), stride,
                     scale, scratch.data());
      ASSERT_EQ(0, std::memcmp(one.data(), all.data() + r * hd, one.size() * 4)) << "head_dim " << hd << " row " << r;
      // Causal: positions past the row's own are not attended.
      const auto ref = attention_reference(qp[static_cast<size_t>(r)], hd, k, v, stride, pos[static_cast<size_t>(r)] + 1, scale);
      for (int64_t i = 0; i < hd; ++i) {
        ASSERT_NEAR(all[static_cast<size_t>(r * hd + i)], ref[static_cast<size_t>(i)], 2e-5) << "head_dim " << hd << " row " << r;
      }
    }
  }
}

TEST(Kernels, SiluMulMatchesTheDefinitionOnEveryPath) {
  std::vector<float> g, u;
  for (float x = -100.0f; x <= 100.0f; x += 0.37f) {
    g.push_back(x);
    u.push_back(0.5f + x / 300.0f);
  }
  g.push_back(-0.0f);
  u.push_back(1.0f);
  for (const bool portable : {false, true}) {
    PortableGuard guard(portable);
    std::vector<float> out = g;
    silu_mul(out.data(), u.data(), static_cast<int64_t>(out.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const double ref = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
      ASSERT_NEAR(out[i], ref, 1e-6 * (1 + std::fabs(ref))) << "silu(" << g[i] << ")" << (portable ? " portable" : "");
    }
  }
}

TEST(ThreadPool, ChunksCoverEveryIndexOnceAndAreHandedOutAsThreadsFreeUp) {
  ThreadPool pool(3);
  for (const int64_t grain : {1, 3, 64}) {
    for (const int64_t n : {1, 2, 10, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> parts{0};
      std::vector<std::atomic<int>> busy(static_cast<size_t>(pool.size()));
      pool.parallel_chunks(n, grain, [&](int64_t begin, int64_t end, int worker) {
        EXPECT_LE(end - begin, grain);
        ASSERT_GE(worker, 0);
        ASSERT_LT(worker, pool.size());
        // No two threads hold the same worker index at once.
        EXPECT_EQ(busy[static_cast<size_t>(worker)].fetch_add(1), 0);
        parts.fetch_add(1);
        for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        busy[static_cast<size_t>(worker)].fetch_sub(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << "/" << grain;
      EXPECT_EQ(parts.load(), (n + grain - 1) / grain);
    }
  }
  // One thread held up in its first part: the others take the rest.
  std::atomic<int> slow_parts{0}, total{0};
  std::atomic<bool> slow_taken{false};
  pool.parallel_chunks(200, 1, [&](int64_t, int64_t, int) {
    thread_local bool slow = false;
    if (!slow_taken.exchange(true)) {
      slow = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (slow) slow_parts.fetch_add(1);
    total.fetch_add(1);
  });
  EXPECT_EQ(total.load(), 200);
  EXPECT_LT(slow_parts.load(), 100) << "the held-up thread should not have done half the parts";
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
