// StreamEvent: one event of a session's stream, as the journal keeps it.
// Each face (WebSocket, SSE) serializes it in its own format.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/protocol/error_code.hpp"
#include "gateway/protocol/usage.hpp"

namespace sluice {

enum class StreamEventType { kDelta, kError, kDone };

struct StreamEvent {
  uint64_t offset = 0;  // given by the journal
  StreamEventType type = StreamEventType::kDelta;
  std::string text;           // delta: the text; error: the message
  std::string request_id;     // error, done: the chat that started the turn
  std::string finish_reason;  // done
  Usage usage;                // done
  ErrorCode code = ErrorCode::kInternal;  // error

  // Bytes this event holds in memory, for the journal's budget.
  size_t footprint() const {
    return sizeof(StreamEvent) + text.capacity() + request_id.capacity() +
           finish_reason.capacity();
  }
};

}  // namespace sluice
