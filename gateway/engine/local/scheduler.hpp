// Scheduler: continuous batching for the local engine, at the level of
// token ids. Sequences join the running batch at the next step; each step
// runs one token of every decoding sequence first, then prompt tokens of
// new sequences in chunks within a token budget, so a long prompt never
// freezes the streams already running. Keys and values live in a paged
// pool; a sequence's blocks are reserved when it starts (prompt plus its
// token limit) and all go back when it ends or is cancelled.
//
// The step itself runs on a Backend (the CPU's kernels or a CUDA GPU): the
// scheduler is the same above either.
//
// Threads: submit and cancel from any thread; the callbacks run on the
// scheduler's own thread (never an I/O thread), which also drives the
// backend.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "gateway/engine/local/backend.hpp"
#include "gateway/engine/local/kv_pool.hpp"
#include "gateway/engine/local/model.hpp"
#include "gateway/engine/local/sampler.hpp"
#include "gateway/protocol/finish_reason.hpp"

namespace sluice {

struct SchedulerConfig {
  int threads = 1;                // compute threads
  int64_t context = 2048;         // positions per sequence
  int max_batch = 16;             // sequences running at once
  int64_t max_batch_tokens = 256; // tokens per step (decode tokens count first)
  int64_t kv_blocks = 0;          // 0: enough for max_batch full contexts
  std::vector<int32_t> banned;    // token ids never sampled (unused vocabulary entries)
};

class Scheduler {
 public:
  struct Callbacks {
    // A sampled token. Return false to end the sequence here (an end
    // token, a stop string): it ends with kStop.
    std::function<bool(int32_t token)> on_token;
    // Exactly once: kStop, kLength, kCancelled or kError (with `error`).
    std::function<void(FinishReason reason, const std::string& error, int64_t prompt_tokens,
                       int64_t generated)>
        on_end;
  };

  // On the CPU backend.
  Scheduler(std::shared_ptr<const Model> model, SchedulerConfig config);
  // On `backend`, whose kv_blocks() is the pool's size (config.kv_blocks is
  // the CPU constructor's).
  Scheduler(std::unique_ptr<Backend> backend, SchedulerConfig config);
  ~Scheduler();  // ends every sequence (kCancelled) and joins the thread

  uint64_t submit(std::vector<int32_t> prompt, const SamplingParams& params, Callbacks callbacks);
  void cancel(uint64_t id);
  void cancel_all();

  // For tests and metrics (a snapshot).
  int64_t free_blocks() const;
  int64_t total_blocks() const;
  size_t running() const;

 private:
  struct Seq {
    uint64_t id = 0;
    std::vector<int32_t> prompt;
    std::vector<int32_t> generated;
    int64_t cached = 0;  // positions already in the KV cache
    int64_t max_tokens = 0;
    std::unique_ptr<Sampler> sampler;
    Callbacks cb;
    std::unique_ptr<KvBlocks::Sequence> kv;
    std::vector<int32_t> recent;  // what the repetition penalty sees
    int32_t next = 0;             // the token a step sampled
  };

  void run();
  void end(Seq& s, FinishReason reason, const std::string& error = {});

  SchedulerConfig config_;
  std::unique_ptr<Backend> backend_;
  KvBlocks kv_;  // engine thread only; free_blocks_ mirrors it for readers
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Seq>> waiting_;
  std::unordered_set<uint64_t> cancels_;
  bool cancel_all_ = false;
  bool stop_ = false;
  uint64_t next_id_ = 0;
  int64_t free_blocks_ = 0;
  size_t running_count_ = 0;
  std::vector<std::unique_ptr<Seq>> running_;  // engine thread only
  std::thread thread_;
};

}  // namespace sluice
