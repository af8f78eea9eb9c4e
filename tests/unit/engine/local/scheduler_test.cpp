// Continuous batching on a small random model: a turn alone and the same
// turn inside a batch of 16 mixed-length turns give the same greedy tokens;
// cancels free every KV block.
#include "gateway/engine/local/scheduler.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <random>
#include <thread>

#include "tests/support/gguf_writer.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const Model> random_model() {
  static std::shared_ptr<const Model> model = [] {
    const int64_t dim = 32, ffn = 64, vocab = 64, kv = 16;
    test::GgufWriter w;
    w.kv_string("general.architecture", "llama");
    w.kv("llama.embedding_length", 4, uint32_t{dim});
    w.kv("llama.block_count", 4, uint32_t{2});
    w.kv("llama.attention.head_count", 4, uint32_t{4});
    w.kv("llama.attention.head_count_kv", 4, uint32_t{2});
    w.kv("llama.feed_forward_length", 4, uint32_t{ffn});
    w.kv("llama.context_length", 4, uint32_t{256});
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0, 0.3f);
    auto tensor = [&](const std::string& name, int64_t rows, int64_t cols, float base = 0) {
      std::vector<float> v(static_cast<size_t>(rows * cols));
      for (auto& x : v) x = base + n(rng);
      std::vector<uint8_t> bytes(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
      if (rows == 1) {
        w.tensor(name, {static_cast<uint64_t>(cols)}, 0, bytes);
      } else {
        w.tensor(name, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)}, 0, bytes);
      }
    };
    tensor("token_embd.weight", vocab, dim);
    tensor("output_norm.weight", 1, dim, 1);
    for (int l = 0; l < 2; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      tensor(p + "attn_norm.weight", 1, dim, 1);
      tensor(p + "ffn_norm.weight", 1, dim, 1);
      tensor(p + "attn_q.weight", dim, dim);
      tensor(p + "attn_k.weight", kv, dim);
      tensor(p + "attn_v.weight", kv, dim);
      tensor(p + "attn_output.weight", dim, dim);
      tensor(p + "ffn_gate.weight", ffn, dim);
      tensor(p + "ffn_up.weight", ffn, dim);
      tensor(p + "ffn_down.weight", dim, ffn);
    }
    const auto bytes = w.bytes();
    const std::string path = "/tmp/sluice-sched-model-" + std::to_string(getpid()) + ".gguf";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
    std::string error;
    std::shared_ptr<const gguf::File> file = gguf::File::open(path, error);
    unlink(path.c_str());  // the mapping stays
    auto m = Model::load(file, error);
    EXPECT_TRUE(m) << error;
    return std::shared_ptr<const Model>(std::move(m));
  }();
  return model;
}

// Collects one sequence's tokens and end.
struct Result {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  FinishReason reason = FinishReason::kStop;
  std::string error;
  bool ended = false;
  int64_t cancel_after = -1;  // tokens, then the test cancels
  // At this many tokens the scheduler thread waits in on_token until
  // release(): the whole batch stands still while the test acts.
  size_t hold_at = 0;
  bool released = false;
  Scheduler::Callbacks callbacks() {
    return {[this](int32_t t) {
              std::unique_lock lock(mutex);
              tokens.push_back(t);
              cv.notify_all();
              if (tokens.size() == hold_at) cv.wait(lock, [&] { return released; });
              return true;
            },
            [this](FinishReason r, const std::string& e, int64_t, int64_t) {
              std::lock_guard lock(mutex);
              reason = r;
              error = e;
              ended = true;
              cv.notify_all();
            }};
  }
  bool wait_tokens(size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 20s, [&] { return tokens.size() >= n || ended; });
  }
  bool wait_end() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 30s, [&] { return ended; });
  }
  void release() {
    std::lock_guard lock(mutex);
    released = true;
    cv.notify_all();
  }
};

std::vector<int32_t> prompt(int length, int seed) {
  std::vector<int32_t> p;
  for (int i = 0; i < length; ++i) p.push_back((seed * 7 + i * 13) % 64);
  return p;
}

SamplingParams greedy(int max_tokens) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  return p;
}

TEST(Scheduler, ATurnAloneAndInABatchOf16GivesTheSameGreedyTokens) {
  const auto model = random_model();
  ASSERT_TRUE(model);
  const auto turn = prompt(37, 3);
  std::vector<int32_t> alone;
  {
    Scheduler s(model, {2, 256, 16, 24, 0, {}});
    Result r;
    s.submit(turn, greedy(20), r.callbacks());
    ASSERT_TRUE(r.wait_end());
    EXPECT_EQ(r.reason, FinishReason::kLength);
    alone = r.tokens;
    ASSERT_EQ(alone.size(), 20u);
  }
  // 16 turns of mixed lengths (1 to 120 tokens) at once; prefill is chunked
  // (24 tokens a step) while the shorter ones already decode.
  Scheduler s(model, {2, 256, 16, 24, 0, {}});
  std::vector<std::unique_ptr<Result>> results;
  for (int i = 0; i < 16; ++i) {
    results.push_back(std::make_unique<Result>());
    const auto p = i == 9 ? turn : prompt(1 + (i * 29) % 120, i);
    s.submit(p, greedy(20), results.back()->callbacks());
  }
  for (auto& r : results) ASSERT_TRUE(r->wait_end());
  EXPECT_EQ(results[9]->tokens, alone);
  EXPECT_EQ(s.free_blocks(), s.total_blocks());
}

TEST(Scheduler, CancelsFreeEveryBlockAndOthersGoOn) {
  const auto model = random_model();
  ASSERT_TRUE(model);
  Scheduler s(model, {2, 256, 8, 64, 0, {}});
  std::vector<std::unique_ptr<Result>> results;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 12; ++i) {  // more than max_batch: some wait for a slot
    results.push_back(std::make_unique<Result>());
    if (i == 0) results[0]->hold_at = 5;
    ids.push_back(s.submit(prompt(10 + i, i), greedy(150), results.back()->callbacks()));
  }
  // The batch stands still at the first sequence's fifth token while the
  // cancels go in, so none of them can finish first, however slow this
  // thread is scheduled (the test was timing-dependent).
  ASSERT_TRUE(results[0]->wait_tokens(5));
  for (int i = 0; i < 12; i += 2) s.cancel(ids[i]);
  results[0]->release();
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(results[i]->wait_end()) << i;
    EXPECT_EQ(results[i]->reason, i % 2 == 0 ? FinishReason::kCancelled : FinishReason::kLength) << i;
    if (i % 2) {
      EXPECT_EQ(results[i]->tokens.size(), 150u);
    }
  }
  EXPECT_EQ(s.free_blocks(), s.total_blocks());
  for (int i = 0; i < 200 && s.running() != 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s.running(), 0u);
}

TEST(Scheduler, PromptsThatCannotFitEndWithAClearError) {
  const auto model = random_model();
  ASSERT_TRUE(model);
  Scheduler s(model, {1, 64, 4, 32, 0, {}});
  Result too_long, empty;
  s.submit(prompt(64, 1), greedy(4), too_long.callbacks());
  s.submit({}, greedy(4), empty.callbacks());
  ASSERT_TRUE(too_long.wait_end());
  ASSERT_TRUE(empty.wait_end());
  EXPECT_EQ(too_long.reason, FinishReason::kError);
  EXPECT_NE(too_long.error.find("local.context_length is 64"), std::string::npos) << too_long.error;
  EXPECT_EQ(empty.reason, FinishReason::kError);
}

// A backend that fails its steps while `fail` is set (a GPU error), else
// samples token 1 for everyone.
class FlakyBackend final : public Backend {
 public:
  explicit FlakyBackend(std::shared_ptr<const Model> m) : model_(std::move(m)) {}
  const char* name() const override { return "flaky"; }
  const ModelConfig& config() const override { return model_->config(); }
  int64_t kv_blocks() const override { return 64; }
  void step(std::span<const StepSeq> seqs, float*) override {
    if (fail) throw std::runtime_error("an illegal memory access was encountered");
    for (const StepSeq& s : seqs) {
      if (s.token_out) *s.token_out = 1;
    }
  }
  std::atomic<bool> fail{true};

 private:
  std::shared_ptr<const Model> model_;
};

TEST(Scheduler, AFailedStepEndsItsSequencesWithTheErrorAndTheEngineGoesOn) {
  const auto model = random_model();
  ASSERT_TRUE(model);
  auto backend = std::make_unique<FlakyBackend>(model);
  FlakyBackend* flaky = backend.get();
  Scheduler s(std::move(backend), {1, 256, 4, 32, 0, {}});
  Result failed;
  s.submit(prompt(5, 1), greedy(4), failed.callbacks());
  ASSERT_TRUE(failed.wait_end());
  EXPECT_EQ(failed.reason, FinishReason::kError);
  EXPECT_NE(failed.error.find("the local engine's step failed: an illegal memory access"), std::string::npos)
      << failed.error;
  EXPECT_EQ(s.free_blocks(), s.total_blocks());
  flaky->fail = false;
  Result next;
  s.submit(prompt(5, 2), greedy(4), next.callbacks());
  ASSERT_TRUE(next.wait_end());
  EXPECT_EQ(next.reason, FinishReason::kLength);
  EXPECT_EQ(next.tokens, (std::vector<int32_t>{1, 1, 1, 1}));
}

}  // namespace
}  // namespace sluice
