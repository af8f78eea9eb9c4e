// KvPool: the local engine's key/value memory in fixed-size blocks
// (vLLM's paged KV cache): a sequence holds a table of blocks and grows by
// whole blocks; when it ends, every block goes back at once.
//
// Threads: the engine thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "gateway/engine/local/model.hpp"

namespace sluice {

class KvPool {
 public:
  static constexpr int64_t kBlockTokens = 16;

  KvPool(const ModelConfig& c, int64_t blocks)
      : layers_(c.layers),
        row_(c.kv_heads * c.head_dim),
        k_(static_cast<size_t>(blocks * c.layers * kBlockTokens * row_)),
        v_(k_.size()) {
    free_.reserve(static_cast<size_t>(blocks));
    for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
    total_ = blocks;
  }

  int64_t total_blocks() const { return total_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  static int64_t blocks_for(int64_t tokens) { return (tokens + kBlockTokens - 1) / kBlockTokens; }

  // A sequence's view of the pool: its block table.
  class Sequence final : public KvCache {
   public:
    explicit Sequence(KvPool& pool) : pool_(pool) {}
    ~Sequence() override { release(); }
    // Grows the table to hold `tokens` positions; false when the pool is out.
    bool reserve(int64_t tokens) {
      while (static_cast<int64_t>(blocks_.size()) * kBlockTokens < tokens) {
        if (pool_.free_.empty()) return false;
        blocks_.push_back(pool_.free_.back());
        pool_.free_.pop_back();
      }
      return true;
    }
    void release() {
      for (int32_t b : blocks_) pool_.free_.push_back(b);
      blocks_.clear();
    }
    int64_t blocks() const { return static_cast<int64_t>(blocks_.size()); }
    float* k(int64_t layer, int64_t pos) override { return pool_.at(pool_.k_, blocks_[pos / kBlockTokens], layer, pos); }
    float* v(int64_t layer, int64_t pos) override { return pool_.at(pool_.v_, blocks_[pos / kBlockTokens], layer, pos); }
    int64_t contiguous(int64_t pos) const override { return kBlockTokens - pos % kBlockTokens; }

   private:
    KvPool& pool_;
    std::vector<int32_t> blocks_;
  };

 private:
  float* at(std::vector<float>& store, int32_t block, int64_t layer, int64_t pos) {
    return store.data() + ((static_cast<int64_t>(block) * layers_ + layer) * kBlockTokens + pos % kBlockTokens) * row_;
  }
  int64_t layers_, row_, total_ = 0;
  std::vector<float> k_, v_;
  std::vector<int32_t> free_;
};

}  // namespace sluice
