// The local engine on a CUDA GPU: the same model, scheduler and KV-block
// design as the CPU backend. Weights are uploaded once from the mapped GGUF
// in their own type (Q8_0 repacked: quants apart from scales), the KV blocks
// live in device memory, every kernel of a step runs on one stream, and
// sampling happens on the device: only each sampled row's top candidates
// (token ids and logits, at most kMaxCandidates) come back. Decode steps are
// replayed from a CUDA graph per batch-size bucket.
//
// Without a GPU (or in a build without nvcc) probe() says why and
// make_cuda_backend fails with that reason.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "gateway/engine/local/backend.hpp"

namespace sluice::cuda {

struct Probe {
  bool available = false;
  std::string reason;  // why not, when not
  std::string name;    // the first GPU's
  int major = 0, minor = 0;
  size_t memory_bytes = 0;
};

// True when this build has the CUDA backend (nvcc was found at configure time).
bool built_with_cuda();
// Whether a CUDA GPU can be used, and which (the first), through the module
// found as the gateway finds it: $SLUICE_CUDA_MODULE, else libsluice-cuda.so
// beside the executable, else ../lib/sluice/ from it.
Probe probe();
// The same through the module at `path` (tests, diagnostics).
Probe probe_module(const std::string& path);

// Which backend `local.device` ("cpu" | "cuda" | "auto") gives with what the
// probe found: "cpu" or "cuda", a log line for auto, or an error for "cuda"
// without a GPU.
struct DeviceChoice {
  std::string device;
  std::string log;
  std::string error;
};
DeviceChoice choose_device(const std::string& setting, const Probe& probe);

// Null with `error` when there is no usable GPU or the model does not fit.
std::unique_ptr<Backend> make_cuda_backend(std::shared_ptr<const Model> model, const BackendOptions& options,
                                           std::string& error);

}  // namespace sluice::cuda
