// A small Llama or Qwen2 model with random weights of one type (F32, F16,
// BF16 or Q8_0), written as GGUF and loaded, for the backend tests.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "gateway/engine/local/model.hpp"
#include "tests/support/gguf_writer.hpp"

namespace sluice::test {

struct RandomModelShape {
  std::string arch = "qwen2";  // qwen2: QKV biases, rotary halves; llama: adjacent pairs
  gguf::TensorType type = gguf::TensorType::kBF16;
  int64_t dim = 64, ffn = 128, layers = 2, heads = 4, kv_heads = 2, vocab = 96, context = 1024;
  bool tied = true;  // no output.weight: the embeddings double as the output
  uint32_t seed = 7;
};

// The values of `v` in `type`'s bytes (Q8_0: blocks of 32 with a half scale).
inline std::vector<uint8_t> encode_tensor(const std::vector<float>& v, gguf::TensorType type) {
  std::vector<uint8_t> out;
  auto bits = [](float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
  };
  auto half = [&](float f) {  // round to nearest, normal range only (these weights are small)
    const uint32_t b = bits(f);
    const uint32_t sign = (b >> 16) & 0x8000u;
    const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
    if (exp <= 0) return static_cast<uint16_t>(sign);
    const uint32_t mant = b & 0x7fffffu;
    uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
    if ((mant >> 12) & 1u) ++h;
    return static_cast<uint16_t>(h);
  };
  switch (type) {
    case gguf::TensorType::kF32:
      out.resize(v.size() * 4);
      std::memcpy(out.data(), v.data(), out.size());
      break;
    case gguf::TensorType::kF16:
      for (float f : v) {
        const uint16_t h = half(f);
        out.push_back(static_cast<uint8_t>(h & 0xff));
        out.push_back(static_cast<uint8_t>(h >> 8));
      }
      break;
    case gguf::TensorType::kBF16:
      for (float f : v) {
        const uint32_t b = bits(f);
        const uint16_t h = static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
        out.push_back(static_cast<uint8_t>(h & 0xff));
        out.push_back(static_cast<uint8_t>(h >> 8));
      }
      break;
    case gguf::TensorType::kQ8_0:
      for (size_t b = 0; b + 32 <= v.size(); b += 32) {
        float amax = 0;
        for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[b + i]));
        const float d = amax / 127.f;
        const uint16_t h = half(d);
        out.push_back(static_cast<uint8_t>(h & 0xff));
        out.push_back(static_cast<uint8_t>(h >> 8));
        for (size_t i = 0; i < 32; ++i) {
          const float q = d > 0 ? std::nearbyint(v[b + i] / d) : 0.f;
          out.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::max(-127.f, std::min(127.f, q)))));
        }
      }
      break;
  }
  return out;
}

inline std::shared_ptr<const Model> random_model(const RandomModelShape& s) {
  GgufWriter w;
  const std::string a = s.arch;
  w.kv_string("general.architecture", a);
  w.kv(a + ".embedding_length", 4, static_cast<uint32_t>(s.dim));
  w.kv(a + ".block_count", 4, static_cast<uint32_t>(s.layers));
  w.kv(a + ".attention.head_count", 4, static_cast<uint32_t>(s.heads));
  w.kv(a + ".attention.head_count_kv", 4, static_cast<uint32_t>(s.kv_heads));
  w.kv(a + ".feed_forward_length", 4, static_cast<uint32_t>(s.ffn));
  w.kv(a + ".context_length", 4, static_cast<uint32_t>(s.context));
  std::mt19937 rng(s.seed);
  auto tensor = [&](const std::string& name, int64_t rows, int64_t cols, float scale, float base = 0) {
    std::normal_distribution<float> n(0, scale);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (auto& x : v) x = base + n(rng);
    if (rows == 1) {
      w.tensor(name, {static_cast<uint64_t>(cols)}, 0, encode_tensor(v, gguf::TensorType::kF32));
    } else {
      w.tensor(name, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}, static_cast<uint32_t>(s.type),
               encode_tensor(v, s.type));
    }
  };
  const int64_t kv = s.kv_heads * (s.dim / s.heads);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.dim));
  tensor("token_embd.weight", s.vocab, s.dim, 1.0f);
  if (!s.tied) tensor("output.weight", s.vocab, s.dim, scale);
  tensor("output_norm.weight", 1, s.dim, 0.1f, 1.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    tensor(p + "attn_norm.weight", 1, s.dim, 0.1f, 1.0f);
    tensor(p + "ffn_norm.weight", 1, s.dim, 0.1f, 1.0f);
    tensor(p + "attn_q.weight", s.dim, s.dim, scale);
    tensor(p + "attn_k.weight", kv, s.dim, scale);
    tensor(p + "attn_v.weight", kv, s.dim, scale);
    tensor(p + "attn_output.weight", s.dim, s.dim, scale);
    tensor(p + "ffn_gate.weight", s.ffn, s.dim, scale);
    tensor(p + "ffn_up.weight", s.ffn, s.dim, scale);
    tensor(p + "ffn_down.weight", s.dim, s.ffn, 1.0f / std::sqrt(static_cast<float>(s.ffn)));
    if (a == "qwen2") {
      tensor(p + "attn_q.bias", 1, s.dim, 0.1f);
      tensor(p + "attn_k.bias", 1, kv, 0.1f);
      tensor(p + "attn_v.bias", 1, kv, 0.1f);
    }
  }
  static std::atomic<int> serial{0};
  const auto bytes = w.bytes();
  const std::string path = "/tmp/sluice-random-model-" + std::to_string(getpid()) + "-" +
                           std::to_string(serial++) + ".gguf";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::string error;
  std::shared_ptr<const gguf::File> file = gguf::File::open(path, error);
  unlink(path.c_str());  // the mapping stays
  if (!file) return nullptr;
  auto m = Model::load(file, error);
  return std::shared_ptr<const Model>(std::move(m));
}

}  // namespace sluice::test
