#include <algorithm>
#include <cmath>

#include "gateway/engine/local/backend.hpp"
#include "gateway/engine/local/kernels.hpp"
#include "gateway/engine/local/kv_pool.hpp"

namespace sluice {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(std::shared_ptr<const Model> model, const BackendOptions& o)
      : model_(std::move(model)), options_(o), pool_(o.threads), store_(model_->config(), o.kv_blocks) {}

  const char* name() const override { return "cpu"; }
  const ModelConfig& config() const override { return model_->config(); }
  int64_t kv_blocks() const override { return options_.kv_blocks; }

  void step(std::span<const StepSeq> seqs, float* logits_out) override {
    const int64_t vocab = model_->config().vocab;
    caches_.clear();
    caches_.reserve(seqs.size());  // BatchChunk points at these
    chunks_.clear();
    size_t sampled = 0;
    for (const StepSeq& s : seqs) sampled += s.sampler != nullptr;
    if (logits_.size() < sampled) logits_.resize(sampled);
    size_t row = 0;
    for (const StepSeq& s : seqs) {
      caches_.emplace_back(store_, s.table);
      float* logits = nullptr;
      if (s.sampler) {
        logits_[row].resize(static_cast<size_t>(vocab));
        logits = logits_[row++].data();
      }
      chunks_.push_back({s.tokens, s.count, s.pos0, &caches_.back(), logits});
    }
    model_->forward_batch(pool_, chunks_);
    // Each sequence samples from its own logits with its own sampler: on
    // the pool's threads, several at a time.
    sampled_.clear();
    for (const StepSeq& s : seqs) {
      if (s.sampler) sampled_.push_back(&s);
    }
    pool_.parallel_chunks(static_cast<int64_t>(sampled_.size()), 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) {
        const StepSeq& s = *sampled_[static_cast<size_t>(i)];
        std::vector<float>& l = logits_[static_cast<size_t>(i)];
        if (logits_out) std::copy(l.begin(), l.end(), logits_out + static_cast<size_t>(i) * static_cast<size_t>(vocab));
        for (int32_t b : options_.banned) {
          if (b >= 0 && b < vocab) l[static_cast<size_t>(b)] = -INFINITY;
        }
        *s.token_out = s.sampler->sample(l, s.recent);
      }
    });
  }

 private:
  std::shared_ptr<const Model> model_;
  BackendOptions options_;
  kernels::ThreadPool pool_;
  HostKvStore store_;
  std::vector<BlockCache> caches_;
  std::vector<BatchChunk> chunks_;
  std::vector<std::vector<float>> logits_;
  std::vector<const StepSeq*> sampled_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(std::shared_ptr<const Model> model, const BackendOptions& options) {
  return std::make_unique<CpuBackend>(std::move(model), options);
}

}  // namespace sluice
