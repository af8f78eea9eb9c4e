// libFuzzer target: an upstream byte stream, split at positions the input
// chooses, through the SSE parser and the chunk decoder. The first byte picks
// the split size; whatever the split, the events must equal those of the
// whole stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/engine/openai/chunk_decoder.hpp"
#include "gateway/engine/openai/sse_parser.hpp"

namespace {
std::vector<std::string> events_of(std::string_view bytes, size_t piece) {
  std::vector<std::string> out;
  sluice::SseParser parser(64 * 1024);
  for (size_t i = 0; i < bytes.size(); i += piece) {
    if (parser.feed(bytes.substr(i, piece), [&](const sluice::SseEvent& e) {
          out.push_back(e.event + '\x01' + e.id + '\x01' + e.data);
        }) != sluice::SseParser::Status::kOk) {
      out.push_back("<too large>");
      break;
    }
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 17;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto whole = events_of(bytes, bytes.size() + 1);
  const auto split = events_of(bytes, piece);
  if (whole != split) std::abort();  // the parser must not depend on the split
  static sluice::ChunkDecoder decoder;
  for (const auto& e : whole) {
    const auto data_start = e.rfind('\x01');
    (void)decoder.decode(std::string_view(e).substr(data_start == std::string::npos ? 0 : data_start + 1));
  }
  (void)decoder.error_body_message(bytes);
  return 0;
}
