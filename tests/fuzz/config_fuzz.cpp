// libFuzzer target: any bytes as the TOML configuration file. The loader must
// accept it or give an error naming what is wrong, never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gateway/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sluice::ConfigSources sources;
  sources.text.assign(reinterpret_cast<const char*>(data), size);
  if (sources.text.empty()) return 0;
  const auto r = sluice::load_config(sources);
  if (!r.ok && r.error.empty()) std::abort();  // every refusal says why
  return 0;
}
