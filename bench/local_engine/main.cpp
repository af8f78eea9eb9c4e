// sluice-engine-bench: decode speed of the local engine on a GGUF model:
// tokens/s at batch 1 and aggregate at larger batches (continuous batching,
// greedy), beside the machine's memory read bandwidth and the batch-1
// ceiling it sets (every weight byte is read once per decode step).
// Then prompt processing: 1 and several prompts of --prompt tokens submitted
// at once, the time to the first token of the last one (TTFT).
//   sluice-engine-bench MODEL.gguf [--threads N] [--batches 1,8,32] [--tokens 32]
//                       [--prompt 512] [--prompts 1,8] [--step-tokens 512]
//                       [--device cpu|cuda] [--cuda-graphs 1] [--prompt-gemm f32|bf16] [--bandwidth-gbs GB/s]
// On CUDA the ceiling is the GPU's memory bandwidth as given (an H200's
// HBM3e: 4800 GB/s), and each batch size runs once untimed first (its CUDA
// graph is captured then).
#include <CLI/CLI.hpp>
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "gateway/engine/local/cuda/cuda_backend.hpp"
#include "gateway/engine/local/scheduler.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Read bandwidth over a buffer far larger than the caches, all threads.
double read_bandwidth_gbs(int threads) {
  const size_t bytes = size_t{1} << 30;
  std::vector<float> buf(bytes / 4, 1.0f);
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    std::atomic<double> sink{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t n = buf.size() / static_cast<size_t>(threads);
        const float* p = buf.data() + n * static_cast<size_t>(t);
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
          s0 += p[i];
          s1 += p[i + 1];
          s2 += p[i + 2];
          s3 += p[i + 3];
        }
        double cur = sink.load();
        while (!sink.compare_exchange_weak(cur, cur + s0 + s1 + s2 + s3)) {
        }
      });
    }
    for (auto& th : pool) th.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / secs / 1e9);
  }
  return best;
}

// Counts the sequences that ended; wait(n) returns when n have.
class Countdown {
 public:
  std::function<void(sluice::FinishReason, const std::string&, int64_t, int64_t)> callback() {
    return [this](sluice::FinishReason, const std::string&, int64_t, int64_t) {
      std::lock_guard lock(mutex_);
      ++ended_;
      cv_.notify_all();
    };
  }
  void wait(int n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return ended_ == n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int ended_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-engine-bench: local engine decode speed"};
  std::string path;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string batches = "1,8,32";
  int tokens = 32;
  int prompt_tokens = 512;
  std::string prompt_batches = "1,8";
  int64_t step_tokens = 512;
  app.add_option("model", path)->required();
  app.add_option("--prompt", prompt_tokens, "tokens per prompt for the prompt-processing run");
  app.add_option("--prompts", prompt_batches, "prompts submitted at once (empty: no prompt-processing run)");
  app.add_option("--step-tokens", step_tokens, "tokens per scheduler step while prompts are processed");
  app.add_option("--threads", threads);
  app.add_option("--batches", batches);
  app.add_option("--tokens", tokens, "tokens decoded per sequence");
  std::string device = "cpu", prompt_gemm = "f32";
  bool cuda_graphs = true;
  double device_gbs = 0;
  app.add_option("--device", device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--cuda-graphs", cuda_graphs, "CUDA: decode steps replayed from graphs");
  app.add_option("--prompt-gemm", prompt_gemm, "CUDA: prompt GEMMs in f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}));
  app.add_option("--bandwidth-gbs", device_gbs, "CUDA: the GPU's memory bandwidth, for the batch-1 ceiling");
  CLI11_PARSE(app, argc, argv);
  const bool on_gpu = device == "cuda";
  const std::string engine = on_gpu ? "sluice-cuda" : "sluice";
  std::string error;
  std::shared_ptr<const sluice::gguf::File> file = sluice::gguf::File::open(path, error);
  if (!file) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::shared_ptr<const sluice::Model> model = sluice::Model::load(file, error);
  if (!model) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), error.c_str());
    return 1;
  }
  const auto& c = model->config();
  // Bytes one decode step reads: every tensor but the embedding table (one
  // row of it), plus the output matrix (the tied table, read whole).
  double step_bytes = 0;
  for (const auto& t : file->tensors()) {
    if (t.name != "token_embd.weight") step_bytes += static_cast<double>(t.bytes);
  }
  if (!file->tensor("output.weight")) step_bytes += static_cast<double>(file->tensor("token_embd.weight")->bytes);
  if (on_gpu) {
    const sluice::cuda::Probe probe = sluice::cuda::probe();
    if (!probe.available) {
      std::fprintf(stderr, "--device cuda: no CUDA GPU can be used: %s\n", probe.reason.c_str());
      return 1;
    }
    std::printf("GPU: %s (sm_%d%d, %.0f GiB), graphs %s, prompt GEMMs %s\n", probe.name.c_str(), probe.major,
                probe.minor, static_cast<double>(probe.memory_bytes) / (1ull << 30), cuda_graphs ? "on" : "off",
                prompt_gemm.c_str());
  }
  // Each run's scheduler, on the chosen backend.
  const auto scheduler = [&](const sluice::SchedulerConfig& sc) {
    sluice::BackendOptions o;
    o.threads = sc.threads;
    o.kv_blocks = sluice::KvBlocks::blocks_for(sc.context) * sc.max_batch;
    o.context = sc.context;
    o.max_batch = sc.max_batch;
    o.max_batch_tokens = sc.max_batch_tokens;
    o.cuda_graphs = cuda_graphs;
    o.cuda_prompt_bf16 = prompt_gemm == "bf16";
    std::string why;
    std::unique_ptr<sluice::Backend> b =
        on_gpu ? sluice::cuda::make_cuda_backend(model, o, why) : sluice::make_cpu_backend(model, o);
    if (!b) {
      std::fprintf(stderr, "the CUDA backend cannot start: %s\n", why.c_str());
      std::exit(1);
    }
    return std::make_unique<sluice::Scheduler>(std::move(b), sc);
  };
  const double gbs = on_gpu && device_gbs > 0 ? device_gbs : read_bandwidth_gbs(threads);
  std::printf("model: %s (%s, %lld layers, dim %lld, %s weights), %.0f MB read per decode step\n", path.c_str(),
              c.arch.c_str(), static_cast<long long>(c.layers), static_cast<long long>(c.dim),
              std::string(sluice::gguf::type_name(file->tensor("blk.0.ffn_up.weight")->type)).c_str(), step_bytes / 1e6);
  std::printf("memory read bandwidth: %.1f GB/s%s -> batch-1 ceiling %.1f tokens/s\n\n", gbs,
              on_gpu ? " (the GPU's, as given)" : (" with " + std::to_string(threads) + " threads").c_str(),
              gbs * 1e9 / step_bytes);
  std::printf("| engine | threads | sessions | tokens | tokens/s | tokens/s per session | %% of ceiling (batch 1) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  std::stringstream ss(batches);
  for (std::string item; std::getline(ss, item, ',');) {
    const int batch = std::stoi(item);
    sluice::SchedulerConfig sc;
    sc.threads = threads;
    sc.context = 256;
    sc.max_batch = batch;
    sc.max_batch_tokens = 64 * batch;
    Countdown ends;  // outlives the scheduler that calls it
    auto owned = scheduler(sc);
    sluice::Scheduler& sched = *owned;
    if (on_gpu) {  // untimed: the graph of this batch size is captured
      Countdown warm;
      for (int s = 0; s < batch; ++s) {
        sluice::SamplingParams p;
        p.temperature = 0;
        p.max_tokens = 4;
        sched.submit({1 + s % 50, 2, 3, 4}, p, {[](int32_t) { return true; }, warm.callback()});
      }
      warm.wait(batch);
    }
    std::mutex mutex;  // guards generated, first_decode, started
    int64_t generated = 0;
    Clock::time_point first_decode{};
    bool started = false;
    for (int s = 0; s < batch; ++s) {
      std::vector<int32_t> prompt = {1 + s % 50, 2, 3, 4};
      sluice::SamplingParams p;
      p.temperature = 0;
      p.max_tokens = tokens + 1;
      sluice::Scheduler::Callbacks cb;
      cb.on_token = [&](int32_t) {
        std::lock_guard lock(mutex);
        // The first token comes from the prompt; decode time starts there.
        if (!started) {
          started = true;
          first_decode = Clock::now();
        } else {
          ++generated;
        }
        return true;
      };
      cb.on_end = ends.callback();
      sched.submit(prompt, p, cb);
    }
    ends.wait(batch);
    const double secs = std::chrono::duration<double>(Clock::now() - first_decode).count();
    const double tps = static_cast<double>(generated) / secs;
    const double ceiling = gbs * 1e9 / step_bytes;
    std::printf("| %s | %d | %d | %lld | %.1f | %.1f | %s |\n", engine.c_str(), threads, batch,
                static_cast<long long>(generated), tps,
                tps / batch, batch == 1 ? (std::to_string(static_cast<int>(100 * tps / ceiling)) + "%").c_str() : "");
    std::fflush(stdout);
  }
  // Prompt processing: `count` prompts at once, until each has its first token.
  const auto prefill = [&](int count) {
    sluice::SchedulerConfig sc;
    sc.threads = threads;
    sc.context = prompt_tokens + 16;
    sc.max_batch = count;
    sc.max_batch_tokens = step_tokens;
    Countdown ends;  // outlives the scheduler that calls it
    auto owned = scheduler(sc);
    sluice::Scheduler& sched = *owned;
    const auto t0 = Clock::now();
    for (int s = 0; s < count; ++s) {
      std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
      for (int i = 0; i < prompt_tokens; ++i) prompt[static_cast<size_t>(i)] = 1 + (i * 7 + s) % 1000;
      sluice::SamplingParams p;
      p.temperature = 0;
      p.max_tokens = 1;
      sluice::Scheduler::Callbacks cb;
      cb.on_token = [](int32_t) { return true; };
      cb.on_end = ends.callback();
      sched.submit(prompt, p, cb);
    }
    ends.wait(count);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::stringstream ps(prompt_batches);
  bool header = false, header_warm = false;
  for (std::string item; std::getline(ps, item, ',');) {
    if (item.empty()) continue;
    if (!header) {
      std::printf("\n| engine | threads | prompts x tokens | prompt tokens/s | TTFT of the last (ms) |\n");
      std::printf("|---|---:|---:|---:|---:|\n");
      header = true;
    }
    const int count = std::stoi(item);
    if (!header_warm) prefill(1);  // warm-up: the scratch buffers of a full step
    header_warm = true;
    const double secs = prefill(count);
    std::printf("| %s | %d | %d x %d | %.0f | %.1f |\n", engine.c_str(), threads, count, prompt_tokens,
                count * prompt_tokens / secs, secs * 1000);
    std::fflush(stdout);
  }
  return 0;
}
