// The gateway's side of the CUDA backend: finds and loads libsluice-cuda.so,
// builds each step's image and samples from the candidates the device hands
// back. Built in every configuration; without nvcc it only says why there is
// no GPU.
#include "gateway/engine/local/cuda/cuda_backend.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "gateway/engine/local/cuda/device_runner.hpp"

namespace sluice::cuda {

namespace {

struct Module {
  SluiceCudaProbeFn probe = nullptr;
  SluiceCudaOpenFn open = nullptr;
  std::string error;  // why it is not loaded
};

std::string executable_dir() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  std::string p(path, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

Module load_module(const std::vector<std::string>& paths) {
  Module out;
#ifndef SLUICE_WITH_CUDA
  (void)paths;
  out.error = "this build of Sluice has no CUDA backend (nvcc was not found when it was configured)";
#else
  std::string why;
  for (const std::string& p : paths) {
    if (access(p.c_str(), F_OK) != 0) {
      why += (why.empty() ? "" : "; ") + p + " does not exist";
      continue;
    }
    void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed
    if (!h) {
      why += (why.empty() ? "" : "; ") + std::string(dlerror());
      continue;
    }
    out.probe = reinterpret_cast<SluiceCudaProbeFn>(dlsym(h, kSluiceCudaProbeSymbol));
    out.open = reinterpret_cast<SluiceCudaOpenFn>(dlsym(h, kSluiceCudaOpenSymbol));
    if (out.probe && out.open) return out;
    out.probe = nullptr;
    out.open = nullptr;
    why += (why.empty() ? "" : "; ") + p + " is not a Sluice CUDA module of this version";
  }
  out.error = "the CUDA module cannot be loaded: " + why;
#endif
  return out;
}

// SLUICE_CUDA_MODULE, else beside the executable, else ../lib/sluice/ from it
// (the installed layout). Loaded once.
const Module& module() {
  static const Module m = [] {
    if (const char* env = std::getenv("SLUICE_CUDA_MODULE"); env && *env) return load_module({env});
    const std::string dir = executable_dir();
    return load_module({dir + "/libsluice-cuda.so", dir + "/../lib/sluice/libsluice-cuda.so"});
  }();
  return m;
}

Probe probe_with(const Module& m) {
  Probe p;
  if (!m.probe) {
    p.reason = m.error;
    return p;
  }
  m.probe(&p);
  return p;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const Model> model, const BackendOptions& o, std::unique_ptr<DeviceRunner> runner)
      : model_(std::move(model)), o_(o), runner_(std::move(runner)) {}

  const char* name() const override { return "cuda"; }
  const ModelConfig& config() const override { return model_->config(); }
  int64_t kv_blocks() const override { return o_.kv_blocks; }

  void step(std::span<const StepSeq> seqs, float* logits) override {
    bool decode_only = !seqs.empty();
    for (const StepSeq& s : seqs) decode_only = decode_only && s.count == 1 && s.sampler;
    const int bucket = o_.cuda_graphs && decode_only && !logits
                           ? decode_bucket(static_cast<int>(seqs.size()), o_.max_batch)
                           : 0;
    std::string error;
    // The scratch block past the pool's last takes the padding's keys and values.
    if (!build_step(seqs, runner_->layout(), bucket, static_cast<int32_t>(o_.kv_blocks), image_, error)) {
      throw std::runtime_error(error);
    }
    runner_->run(image_, logits);
    for (int r = 0; r < image_.rows; ++r) {
      const int seq = image_.row_seq[static_cast<size_t>(r)];
      if (seq < 0) continue;  // padding
      top_.clear();
      const float* v = runner_->values(r);
      const int32_t* id = runner_->ids(r);
      for (int i = 0; i < runner_->count(r); ++i) top_.emplace_back(v[i], id[i]);
      const StepSeq& s = seqs[static_cast<size_t>(seq)];
      *s.token_out = s.sampler->sample_top(top_);
    }
  }

 private:
  std::shared_ptr<const Model> model_;
  BackendOptions o_;
  std::unique_ptr<DeviceRunner> runner_;
  StepImage image_;
  std::vector<std::pair<float, int32_t>> top_;
};

}  // namespace

bool built_with_cuda() {
#ifdef SLUICE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

Probe probe() { return probe_with(module()); }

Probe probe_module(const std::string& path) { return probe_with(load_module({path})); }

std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Model> model, const BackendOptions& options,
                                           std::string& error) {
  const Probe p = probe();
  if (!p.available) {
    error = p.reason;
    return nullptr;
  }
  std::unique_ptr<DeviceRunner> runner(module().open(model.get(), &options, &error));
  if (!runner) return nullptr;
  return std::make_unique<CudaBackend>(std::move(model), options, std::move(runner));
}

}  // namespace sluice::cuda
