// Model: a Llama-family decoder read from GGUF: the `llama` and `qwen2`
// architectures (RMSNorm, rotary embeddings with adjacent pairs for llama
// and split halves for qwen2, grouped-query attention, SwiGLU, Qwen2's QKV
// biases, tied embeddings when there is no output.weight). Weights stay in
// the mapped file in their own type (F32, F16, BF16, Q8_0).
//
// Threads: a Model is immutable; forward() uses the thread pool it is given
// and the caller's KV cache, so one caller at a time per cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/engine/local/gguf.hpp"
#include "gateway/engine/local/kernels.hpp"

namespace sluice {

struct ModelConfig {
  std::string arch;  // "llama" | "qwen2"
  int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  int64_t context = 0;
  float eps = 1e-5f;
  float rope_base = 10000.f;
  bool rope_halves = false;  // qwen2 (NEOX): pairs (i, i + head_dim/2); llama: (2i, 2i+1)
  bool qkv_bias = false;
};

// Where a sequence's keys and values live, position by position.
class KvCache {
 public:
  virtual ~KvCache() = default;
  virtual float* k(int64_t layer, int64_t pos) = 0;
  virtual float* v(int64_t layer, int64_t pos) = 0;
  // How many positions from `pos` on are stored one after the other (keys
  // and values alike), so attention can read them as one run.
  virtual int64_t contiguous(int64_t pos) const = 0;
};

// One sequence's cache in one allocation (tools and tests).
class FlatKvCache final : public KvCache {
 public:
  FlatKvCache(const ModelConfig& c, int64_t capacity);
  float* k(int64_t layer, int64_t pos) override { return k_.data() + (layer * capacity_ + pos) * row_; }
  float* v(int64_t layer, int64_t pos) override { return v_.data() + (layer * capacity_ + pos) * row_; }
  int64_t contiguous(int64_t pos) const override { return capacity_ - pos; }

 private:
  int64_t capacity_, row_;
  std::vector<float> k_, v_;
};

// Tokens of one sequence in a batch: `count` tokens at pos0, pos0 + 1, ...
struct BatchChunk {
  const int32_t* tokens = nullptr;
  int64_t count = 0;
  int64_t pos0 = 0;
  KvCache* cache = nullptr;
  float* logits = nullptr;  // vocab floats for the chunk's last token; null: none wanted
};

// Where the weight matrices are read from.
enum class WeightLayout {
  // In place in the mapped file (a GPU backend uploads them from there).
  kFile,
  // For the CPU kernels: where the AVX-512 kernels run (at load), the
  // matrices are copied into their packed layout and the file's pages of
  // them released; otherwise in place.
  kCpuKernels,
};

class Model {
 public:
  // Checks the architecture, hyper-parameters and every tensor's shape;
  // null with `error` naming what is missing or wrong.
  static std::unique_ptr<Model> load(std::shared_ptr<const gguf::File> file, std::string& error,
                                     WeightLayout layout = WeightLayout::kCpuKernels);

  const ModelConfig& config() const { return c_; }
  // Runs `tokens` at positions pos0, pos0 + 1, ... through the model,
  // storing their keys and values in `cache`. Writes vocab logits for every
  // token to `logits` (tokens x vocab) when `all_logits`, else for the last.
  void forward(kernels::ThreadPool& pool, const int32_t* tokens, int64_t count, int64_t pos0, KvCache& cache,
               float* logits, bool all_logits) const;
  // One step of continuous batching: every chunk's tokens go through each
  // weight matrix together (the weights are read once for the whole batch);
  // attention reads each token's own sequence cache.
  void forward_batch(kernels::ThreadPool& pool, const std::vector<BatchChunk>& chunks) const;

  // The weights, for another backend to upload (they point into the mapping).
  struct Layer {
    kernels::Weight wq, wk, wv, wo, gate, up, down;
    std::vector<float> attn_norm, ffn_norm, bq, bk, bv;
  };
  const kernels::Weight& embedding() const { return embed_; }
  const kernels::Weight& output() const { return output_; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const std::vector<Layer>& layers() const { return layers_; }

 private:
  Model() = default;

  std::shared_ptr<const gguf::File> file_;
  ModelConfig c_;
  kernels::Weight embed_, output_;
  std::vector<float> output_norm_;
  std::vector<Layer> layers_;
  std::vector<std::unique_ptr<kernels::PackedWeight>> packed_;  // what the weights' `packed` point at
};

}  // namespace sluice
