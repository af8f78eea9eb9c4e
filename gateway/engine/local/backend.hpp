// Backend: where the local engine's steps run, the CPU or a CUDA GPU. The
// scheduler above it is the same for both: it decides which tokens go into a
// step and owns the KV block accounting (KvBlocks); a backend holds the
// weights and the keys and values of every block (block ids index its own
// storage), runs a step's tokens through the model and samples one token for
// every sequence whose chunk ends the prompt or decodes.
//
// Threads: one caller at a time (the scheduler's thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gateway/engine/local/model.hpp"
#include "gateway/engine/local/sampler.hpp"

namespace sluice {

// One sequence's tokens in a step: `count` tokens at pos0, pos0 + 1, ...,
// whose keys and values go to (and whose attention reads) the blocks of
// `table`. Decoding sequences come first in a step, one token each.
struct StepSeq {
  const int32_t* tokens = nullptr;
  int64_t count = 0;
  int64_t pos0 = 0;
  const int32_t* table = nullptr;
  int64_t table_blocks = 0;
  // Set when the chunk's last token is to be sampled: the sequence's sampler,
  // the ids its repetition penalty sees, and where the token goes.
  Sampler* sampler = nullptr;
  std::span<const int32_t> recent;
  int32_t* token_out = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "cpu" | "cuda"
  virtual const ModelConfig& config() const = 0;
  // KV blocks the backend's storage holds (the scheduler's pool size).
  virtual int64_t kv_blocks() const = 0;
  // One step; token ids in BackendOptions::banned are never sampled. With
  // `logits` (tests, tools): also the raw logits of every sampled sequence,
  // in step order, vocab floats each.
  virtual void step(std::span<const StepSeq> seqs, float* logits = nullptr) = 0;
};

struct BackendOptions {
  int threads = 1;                // CPU compute threads (the CPU backend; the CUDA one samples on one)
  int64_t kv_blocks = 0;          // blocks of kKvBlockTokens positions
  int64_t context = 2048;         // positions per sequence
  int max_batch = 16;             // sequences in a step
  int64_t max_batch_tokens = 256; // tokens in a step
  std::vector<int32_t> banned;    // token ids never sampled
  bool cuda_graphs = true;        // the CUDA backend: decode steps replayed from graphs
  bool cuda_prompt_bf16 = false;  // the CUDA backend: prompt GEMMs in bfloat16 on the tensor cores, else FP32
};

// The CPU backend: Model::forward_batch over host KV blocks.
std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Model> model, const BackendOptions& options);

}  // namespace sluice
