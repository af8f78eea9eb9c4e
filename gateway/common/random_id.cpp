#include "gateway/common/random_id.hpp"

#include "gateway/common/base64url.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <vector>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace sluice {

void fill_random(void* data, size_t size) {
  auto* p = static_cast<unsigned char*>(data);
  while (size > 0) {
    const ssize_t n = getrandom(p, size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("getrandom failed");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

std::string make_random_id(std::string_view prefix) {
  std::array<unsigned char, 16> bytes{};
  fill_random(bytes.data(), bytes.size());
  return std::string(prefix) +
         base64url_encode({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

std::string make_random_hex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::vector<unsigned char> raw(bytes);
  do {
    fill_random(raw.data(), raw.size());
  } while (std::all_of(raw.begin(), raw.end(), [](unsigned char b) { return b == 0; }));
  std::string out;
  out.reserve(2 * bytes);
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

std::string make_trace_id() { return make_random_hex(16); }

}  // namespace sluice
