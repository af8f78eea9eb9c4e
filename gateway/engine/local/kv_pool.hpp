// The local engine's key/value memory in fixed-size blocks (vLLM's paged KV
// cache): a sequence holds a table of blocks and grows by whole blocks; when
// it ends, every block goes back at once.
//   KvBlocks: which blocks are free (the scheduler's accounting, whatever
//     the backend; block ids index the backend's own storage).
//   HostKvStore: the blocks' keys and values in host memory (the CPU
//     backend), and BlockCache, one sequence's view of them through its table.
// Layout of a block, on the host and on a GPU alike: [layer][16 positions]
// [kv_heads * head_dim] floats, keys and values in separate stores.
//
// Threads: the engine thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "gateway/engine/local/model.hpp"

namespace sluice {

inline constexpr int64_t kKvBlockTokens = 16;

class KvBlocks {
 public:
  explicit KvBlocks(int64_t blocks) : total_(blocks) {
    free_.reserve(static_cast<size_t>(blocks));
    for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  }
  int64_t total_blocks() const { return total_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  static int64_t blocks_for(int64_t tokens) { return (tokens + kKvBlockTokens - 1) / kKvBlockTokens; }

  // A sequence's block table.
  class Sequence {
   public:
    explicit Sequence(KvBlocks& pool) : pool_(pool) {}
    ~Sequence() { release(); }
    Sequence(const Sequence&) = delete;
    Sequence& operator=(const Sequence&) = delete;
    // Grows the table to hold `tokens` positions; false when the pool is out.
    bool reserve(int64_t tokens) {
      while (static_cast<int64_t>(blocks_.size()) * kKvBlockTokens < tokens) {
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
    const std::vector<int32_t>& table() const { return blocks_; }

   private:
    KvBlocks& pool_;
    std::vector<int32_t> blocks_;
  };

 private:
  int64_t total_;
  std::vector<int32_t> free_;
};

class HostKvStore {
 public:
  HostKvStore(const ModelConfig& c, int64_t blocks)
      : layers_(c.layers),
        row_(c.kv_heads * c.head_dim),
        k_(static_cast<size_t>(blocks * c.layers * kKvBlockTokens * row_)),
        v_(k_.size()) {}
  float* k(int32_t block, int64_t layer, int64_t pos) { return at(k_, block, layer, pos); }
  float* v(int32_t block, int64_t layer, int64_t pos) { return at(v_, block, layer, pos); }

 private:
  float* at(std::vector<float>& store, int32_t block, int64_t layer, int64_t pos) {
    return store.data() +
           ((static_cast<int64_t>(block) * layers_ + layer) * kKvBlockTokens + pos % kKvBlockTokens) * row_;
  }
  int64_t layers_, row_;
  std::vector<float> k_, v_;
};

class BlockCache final : public KvCache {
 public:
  BlockCache(HostKvStore& store, const int32_t* table) : store_(store), table_(table) {}
  float* k(int64_t layer, int64_t pos) override { return store_.k(table_[pos / kKvBlockTokens], layer, pos); }
  float* v(int64_t layer, int64_t pos) override { return store_.v(table_[pos / kKvBlockTokens], layer, pos); }
  int64_t contiguous(int64_t pos) const override { return kKvBlockTokens - pos % kKvBlockTokens; }

 private:
  HostKvStore& store_;
  const int32_t* table_;
};

}  // namespace sluice
