// libFuzzer target: the GGUF reader on arbitrary bytes. It must either accept
// the file (and then every tensor lies inside it) or name what is wrong.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "gateway/engine/local/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto f = sluice::gguf::File::parse(data, size, error, "fuzz.gguf");
  if (!f) {
    if (error.empty()) std::abort();
    return 0;
  }
  for (const auto& t : f->tensors()) {
    const uint8_t* p = f->data(t);
    if (p < data || p + t.bytes > data + size) std::abort();
    volatile uint8_t sink = t.bytes ? p[t.bytes - 1] : 0;  // in bounds, or ASan says so
    (void)sink;
  }
  for (const auto& [key, v] : f->metadata()) {
    for (auto s : v.strings) {
      volatile char c = s.empty() ? 0 : s.back();
      (void)c;
    }
  }
  return 0;
}
