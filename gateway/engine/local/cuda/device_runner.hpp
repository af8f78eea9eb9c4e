// The seam between the gateway and its CUDA module (libsluice-cuda.so, built
// where nvcc is found and loaded only when local.device asks for a GPU, so
// the gateway itself never needs the CUDA libraries). The module holds the
// device side: weights, KV blocks, kernels, graphs, and the top candidates of
// each sampled row; the gateway builds each step's image (step_plan.hpp) and
// samples from the candidates. Both sides are one build of the same sources:
// this is not a stable ABI, and the entry points carry a version in their
// names.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/engine/local/backend.hpp"
#include "gateway/engine/local/cuda/cuda_backend.hpp"
#include "gateway/engine/local/cuda/step_plan.hpp"

namespace sluice::cuda {

class DeviceRunner {
 public:
  virtual ~DeviceRunner() = default;
  // The layout step images are built against.
  virtual const StepLayout& layout() const = 0;
  // Runs one step (a graph replay when image.bucket > 0). With `logits`, also
  // copies the sampled rows' raw logits (before penalties), vocab floats each.
  // Throws std::runtime_error on a CUDA error.
  virtual void run(const StepImage& image, float* logits) = 0;
  // Row r's candidates after run(): (value, id) pairs, any order.
  virtual int count(int row) const = 0;
  virtual const float* values(int row) const = 0;
  virtual const int32_t* ids(int row) const = 0;
};

}  // namespace sluice::cuda

extern "C" {
// The module's entry points, looked up by name.
using SluiceCudaProbeFn = void (*)(sluice::cuda::Probe* out);
using SluiceCudaOpenFn = sluice::cuda::DeviceRunner* (*)(const sluice::Model* model,
                                                         const sluice::BackendOptions* options, std::string* error);
}
inline constexpr const char* kSluiceCudaProbeSymbol = "sluice_cuda_probe_v1";
inline constexpr const char* kSluiceCudaOpenSymbol = "sluice_cuda_open_v1";
