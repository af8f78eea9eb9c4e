// StreamEvent: one event of a session's stream, as the journal keeps it.
// Each face (WebSocket, SSE) serializes it in its own format.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/protocol/error_code.hpp"
#include "gateway/protocol/finish_reason.hpp"
#include "gateway/protocol/usage.hpp"

namespace sluice {

// kModeration: a moderator redacted text (action "redact") or stopped the
// answer ("stop"); never carries the original text.
// kToolCall / kToolResult: a plugin tool the model called, and its outcome;
// kSources: what the answer rests on (from tool results), for source cards.
enum class StreamEventType { kDelta, kError, kDone, kModeration, kToolCall, kToolResult, kSources };

struct StreamEvent {
  uint64_t offset = 0;  // given by the journal
  StreamEventType type = StreamEventType::kDelta;
  std::string text;           // delta: the text; error: the message; moderation: the reason
  std::string request_id;     // error, done: the chat that started the turn
  FinishReason finish_reason = FinishReason::kStop;  // done
  Usage usage;                // done
  ErrorCode code = ErrorCode::kInternal;  // error
  std::string action;         // moderation: "redact" | "stop"
  std::string plugin;         // moderation: the plugin that acted; tool events: the tool's plugin
  std::string call_id;        // tool_call, tool_result
  std::string name;           // tool_call, tool_result: the tool
  std::string json;           // tool_call: arguments; tool_result: result; sources: items (JSON)
  bool ok = true;             // tool_result: false with the error in `text`

  // Bytes this event holds in memory, for the journal's budget.
  size_t footprint() const {
    return sizeof(StreamEvent) + text.capacity() + request_id.capacity() + action.capacity() + plugin.capacity() + call_id.capacity() +
           name.capacity() + json.capacity();
  }
};

}  // namespace sluice
