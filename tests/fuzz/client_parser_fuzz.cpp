// libFuzzer target: any bytes as a protocol v1 client frame. The parser must
// answer every input with a message or a ProtocolError, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/protocol/client_parser.hpp"
#include "gateway/protocol/openai_http.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sluice::ClientParser parser;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  (void)parser.parse(frame);
  (void)sluice::parse_openai_chat_request(frame);  // the HTTP face's body parser too
  return 0;
}
