// The CUDA backend against the CPU backend on the same inputs, as llama.cpp's
// test-backend-ops compares its backends: each kernel (normalized mean
// squared error at most 5e-4 for matmuls, 1e-7 elsewhere), whole-model
// logits (within 2e-3), greedy tokens (identical), a decode token's result
// alone and in a batch (bit for bit), graphs against plain launches. Every
// test needs a GPU and is skipped, saying why, without one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "gateway/engine/local/cuda/cuda_backend.hpp"
#include "gateway/engine/local/cuda/cuda_ops.hpp"
#include "gateway/engine/local/kv_pool.hpp"
#include "gateway/engine/local/scheduler.hpp"
#include "tests/support/random_model.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;

#define REQUIRE_GPU()                                                                        \
  do {                                                                                       \
    static const cuda::Probe probe_ = cuda::probe();                                        \
    if (!probe_.available) GTEST_SKIP() << "no CUDA GPU can be used: " << probe_.reason;    \
  } while (0)

double nmse(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return norm > 0 ? err / norm : err;
}

double max_abs(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

const gguf::TensorType kTypes[] = {gguf::TensorType::kF32, gguf::TensorType::kF16, gguf::TensorType::kBF16,
                                   gguf::TensorType::kQ8_0};

TEST(CudaKernels, MatmulMatchesTheCpuOnBothPathsAndEveryType) {
  REQUIRE_GPU();
  for (auto type : kTypes) {
    // A model's gate matrix: 136 rows (not a multiple of the 32 rows a block takes), 256 columns.
    const auto model = test::random_model({.arch = "llama", .type = type, .dim = 256, .ffn = 136});
    ASSERT_TRUE(model);
    const kernels::Weight& w = model->layers()[0].gate;
    kernels::ThreadPool pool(2);
    for (int tokens : {1, 5, 70}) {
      const auto x = random_floats(static_cast<size_t>(tokens) * 256, 3);
      std::vector<float> cpu(static_cast<size_t>(tokens) * w.rows);
      kernels::matmul(pool, w, x.data(), cpu.data(), tokens);
      const char* paths[] = {"decode", "prompt f32", "prompt bf16"};
      for (int path = 0; path < 3; ++path) {
        const auto gpu = cuda::ops::matmul(w, x, tokens, path > 0, path == 2);
        EXPECT_LE(nmse(gpu, cpu), 5e-4) << gguf::type_name(type) << ", " << tokens << " tokens, " << paths[path];
      }
    }
  }
}

TEST(CudaKernels, ADecodeTokenIsTheSameBitForBitAloneAndInABatch) {
  REQUIRE_GPU();
  for (auto type : kTypes) {
    const auto model = test::random_model({.arch = "llama", .type = type, .dim = 256, .ffn = 136});
    const kernels::Weight& w = model->layers()[0].gate;
    const int tokens = 70;
    const auto x = random_floats(static_cast<size_t>(tokens) * 256, 4);
    const auto batch = cuda::ops::matmul(w, x, tokens, false);
    for (int t : {0, 9, 69}) {
      const std::vector<float> one(x.begin() + t * 256, x.begin() + (t + 1) * 256);
      const auto alone = cuda::ops::matmul(w, one, 1, false);
      EXPECT_EQ(0, std::memcmp(alone.data(), batch.data() + static_cast<size_t>(t) * w.rows, alone.size() * 4))
          << gguf::type_name(type) << ", token " << t;
    }
  }
}

TEST(CudaKernels, NormAndSwiGLUMatchTheCpu) {
  REQUIRE_GPU();
  const int rows = 7, n = 896;
  const auto x = random_floats(static_cast<size_t>(rows) * n, 5, 3.0f);
  const auto w = random_floats(static_cast<size_t>(n), 6);
  std::vector<float> cpu(x.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(x[r * n + i]) * x[r * n + i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(ss / n) + 1e-6f);
    for (int i = 0; i < n; ++i) cpu[r * n + i] = x[r * n + i] * scale * w[i];
  }
  EXPECT_LE(nmse(cuda::ops::rms_norm(x, w, rows, 1e-6f), cpu), 1e-7);
  auto gate = random_floats(4864, 7, 4.0f);
  const auto up = random_floats(4864, 8);
  const auto gpu = cuda::ops::silu_mul(gate, up);
  kernels::silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()));
  EXPECT_LE(nmse(gpu, gate), 1e-7);
}

TEST(CudaKernels, TopKIsTheLargestNotBannedWithTheLowestIdsAmongEquals) {
  REQUIRE_GPU();
  auto logits = random_floats(151936, 9, 3.0f);
  logits[100] = logits[200] = logits[300] = 50.f;  // a three-way tie at the top
  logits[7] = 60.f;                                // the largest, banned
  std::vector<uint8_t> banned(logits.size(), 0);
  banned[7] = 1;
  for (size_t i = 150000; i < logits.size(); ++i) banned[i] = 1;
  std::vector<std::pair<float, int32_t>> cpu;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!banned[i]) cpu.emplace_back(logits[i], static_cast<int32_t>(i));
  }
  std::sort(cpu.begin(), cpu.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  for (int k : {1, 2, 40, 256}) {
    const auto gpu = cuda::ops::top_k(logits, banned, k);
    ASSERT_EQ(gpu.size(), static_cast<size_t>(k));
    for (int i = 0; i < k; ++i) EXPECT_EQ(gpu[i], cpu[i]) << "k " << k << ", place " << i;
  }
  EXPECT_EQ(cuda::ops::top_k(logits, banned, 2)[1].second, 200) << "ties go to the lowest ids";
  // Fewer allowed ids than asked for: all of them.
  std::vector<uint8_t> most(logits.size(), 1);
  most[5] = most[6] = 0;
  EXPECT_EQ(cuda::ops::top_k(logits, most, 40).size(), 2u);
}

// One backend, and a sequence's blocks in its pool.
struct Bench {
  Bench(std::shared_ptr<const Model> model, bool cuda, bool graphs = true) : blocks(256) {
    BackendOptions o;
    o.threads = 2;
    o.kv_blocks = 256;
    o.context = model->config().context;
    o.max_batch = 16;
    o.max_batch_tokens = 1024;
    o.cuda_graphs = graphs;
    std::string error;
    backend = cuda ? cuda::make_cuda_backend(model, o, error) : make_cpu_backend(model, o);
    EXPECT_TRUE(backend) << error;
  }
  // Runs `tokens` at pos0 for `seq`, greedy; returns the last token's logits.
  std::vector<float> run(KvBlocks::Sequence& seq, const std::vector<int32_t>& tokens, int64_t pos0, int32_t* next) {
    EXPECT_TRUE(seq.reserve(pos0 + static_cast<int64_t>(tokens.size())));
    SamplingParams greedy;
    greedy.temperature = 0;
    Sampler sampler(greedy);
    std::vector<float> logits(static_cast<size_t>(backend->config().vocab));
    const StepSeq s{tokens.data(), static_cast<int64_t>(tokens.size()), pos0, seq.table().data(), seq.blocks(),
                    &sampler, {}, next};
    backend->step(std::span<const StepSeq>(&s, 1), logits.data());
    return logits;
  }
  KvBlocks blocks;
  std::unique_ptr<Backend> backend;
};

TEST(CudaBackend, WholeModelLogitsMatchTheCpuForPromptsAndDecoding) {
  REQUIRE_GPU();
  for (const char* arch : {"qwen2", "llama"}) {
    for (auto type : kTypes) {
      const auto model = test::random_model({.arch = arch, .type = type, .dim = 128, .ffn = 256, .heads = 4,
                                             .kv_heads = 2, .vocab = 300, .context = 1024, .tied = type != kTypes[0]});
      ASSERT_TRUE(model);
      Bench cpu(model, false), gpu(model, true);
      ASSERT_TRUE(gpu.backend);
      // 600 prompt tokens: attention over three parts of 256 positions.
      std::vector<int32_t> prompt;
      for (int i = 0; i < 600; ++i) prompt.push_back((i * 37 + 11) % 300);
      KvBlocks::Sequence sc(cpu.blocks), sg(gpu.blocks);
      int32_t next_c = -1, next_g = -1;
      auto lc = cpu.run(sc, prompt, 0, &next_c);
      auto lg = gpu.run(sg, prompt, 0, &next_g);
      const std::string what = std::string(arch) + " " + std::string(gguf::type_name(type));
      EXPECT_LE(max_abs(lg, lc), 2e-3) << what << ", prompt";
      EXPECT_LE(nmse(lg, lc), 5e-4) << what << ", prompt";
      EXPECT_EQ(next_g, next_c) << what;
      // Decoding, each backend fed the CPU's tokens.
      int64_t pos = 600;
      for (int step = 0; step < 8; ++step, ++pos) {
        const std::vector<int32_t> tok{next_c};
        lc = cpu.run(sc, tok, pos, &next_c);
        lg = gpu.run(sg, tok, pos, &next_g);
        EXPECT_LE(max_abs(lg, lc), 2e-3) << what << ", decode step " << step;
        EXPECT_EQ(next_g, next_c) << what << ", decode step " << step;
      }
    }
  }
}

// Tokens of a scheduler's turns.
struct Turn {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  bool ended = false;
  Scheduler::Callbacks callbacks() {
    return {[this](int32_t t) {
              std::lock_guard lock(mutex);
              tokens.push_back(t);
              return true;
            },
            [this](FinishReason, const std::string&, int64_t, int64_t) {
              std::lock_guard lock(mutex);
              ended = true;
              cv.notify_all();
            }};
  }
  bool wait() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 60s, [&] { return ended; });
  }
};

std::vector<std::vector<int32_t>> run_turns(std::shared_ptr<const Model> model, bool cuda, bool graphs,
                                            const std::vector<std::vector<int32_t>>& prompts, int max_tokens) {
  SchedulerConfig sc{2, model->config().context, 16, 64, 0, {}};
  BackendOptions o;
  o.threads = 2;
  o.kv_blocks = KvBlocks::blocks_for(sc.context) * sc.max_batch;
  o.context = sc.context;
  o.max_batch = sc.max_batch;
  o.max_batch_tokens = sc.max_batch_tokens;
  o.cuda_graphs = graphs;
  std::string error;
  auto backend = cuda ? cuda::make_cuda_backend(model, o, error) : make_cpu_backend(model, o);
  EXPECT_TRUE(backend) << error;
  if (!backend) return {};
  Scheduler s(std::move(backend), sc);
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = max_tokens;
  std::vector<std::unique_ptr<Turn>> turns;
  for (const auto& p : prompts) {
    turns.push_back(std::make_unique<Turn>());
    s.submit(p, greedy, turns.back()->callbacks());
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& t : turns) {
    EXPECT_TRUE(t->wait());
    out.push_back(t->tokens);
  }
  return out;
}

TEST(CudaBackend, GreedyTurnsMatchTheCpuAloneInABatchAndWithoutGraphs) {
  REQUIRE_GPU();
  for (auto type : {gguf::TensorType::kBF16, gguf::TensorType::kQ8_0}) {
    const auto model = test::random_model({.type = type, .dim = 128, .ffn = 256, .vocab = 300, .context = 512});
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 16; ++i) {
      std::vector<int32_t> p;
      for (int j = 0; j < 1 + (i * 29) % 120; ++j) p.push_back((i * 7 + j * 13) % 300);
      prompts.push_back(p);
    }
    const auto cpu = run_turns(model, false, true, prompts, 24);
    const auto gpu = run_turns(model, true, true, prompts, 24);
    const auto launches = run_turns(model, true, false, prompts, 24);
    const auto alone = run_turns(model, true, true, {prompts[9]}, 24);
    ASSERT_EQ(gpu.size(), 16u);
    for (size_t i = 0; i < 16; ++i) EXPECT_EQ(gpu[i], cpu[i]) << gguf::type_name(type) << ", turn " << i;
    EXPECT_EQ(launches, gpu) << "graphs and plain launches";
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0], gpu[9]) << "a turn alone and in a batch of 16";
  }
}

TEST(CudaBackend, TheDemoModelAnswersAsOnTheCpu) {
  REQUIRE_GPU();
  std::string error;
  // The checkout's, or where bench/gpu_check.sh says it is on the GPU machine.
  const char* env = std::getenv("SLUICE_DEMO_MODEL");
  std::shared_ptr<const gguf::File> file = gguf::File::open(env && *env ? env : SLUICE_DEMO_MODEL, error);
  ASSERT_TRUE(file) << error;
  std::shared_ptr<const Model> model = Model::load(file, error, WeightLayout::kFile);
  ASSERT_TRUE(model) << error;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> p;
    for (int j = 0; j < 20 + 30 * i; ++j) p.push_back(static_cast<int32_t>((i * 131 + j * 17) % 1000 + 3));
    prompts.push_back(p);
  }
  EXPECT_EQ(run_turns(model, true, true, prompts, 32), run_turns(model, false, true, prompts, 32));
}

}  // namespace
}  // namespace sluice
