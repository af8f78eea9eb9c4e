// ClientParser: turns one WebSocket text frame into a ClientMessage, or a
// ProtocolError with a stable code. Cheap to hold (it keeps only its limits;
// the simdjson buffers are per thread); one instance per connection.
#pragma once

#include <memory>
#include <string_view>

#include "gateway/protocol/messages.hpp"

namespace sluice {

struct ClientParserLimits {
  size_t max_messages = 256;       // entries of chat.messages
  size_t max_id_bytes = 128;       // session_id, request_id
  size_t max_depth = 16;           // JSON nesting
};

class ClientParser {
 public:
  explicit ClientParser(ClientParserLimits limits = {});
  ~ClientParser();
  ClientParser(const ClientParser&) = delete;
  ClientParser& operator=(const ClientParser&) = delete;

  ClientMessage parse(std::string_view frame);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
