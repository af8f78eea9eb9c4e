// Device choice, in every build; the probe and the backend are in
// cuda_backend.cpp (built with CUDA) or cuda_absent.cpp (without).
#include <cstdio>

#include "gateway/engine/local/cuda/cuda_backend.hpp"

namespace sluice::cuda {

DeviceChoice choose_device(const std::string& setting, const Probe& probe) {
  DeviceChoice c;
  if (setting == "cpu") {
    c.device = "cpu";
  } else if (probe.available) {
    c.device = "cuda";
    char line[256];
    std::snprintf(line, sizeof line, "local engine on CUDA: %s (sm_%d%d, %.1f GiB)", probe.name.c_str(), probe.major,
                  probe.minor, static_cast<double>(probe.memory_bytes) / (1ull << 30));
    c.log = line;
  } else if (setting == "cuda") {
    c.error = "local.device = \"cuda\", but no CUDA GPU can be used: " + probe.reason;
  } else {
    c.device = "cpu";
    c.log = "local.device = \"auto\": running on the CPU, no CUDA GPU can be used: " + probe.reason;
  }
  return c;
}

}  // namespace sluice::cuda
