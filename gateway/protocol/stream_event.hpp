// StreamEvent: one event of a session's stream, as the journal keeps it.
// Each face (WebSocket, SSE) serializes it in its own format.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/common/compact_string.hpp"
#include "gateway/protocol/error_code.hpp"
#include "gateway/protocol/finish_reason.hpp"
#include "gateway/protocol/usage.hpp"

namespace sluice {

// kModeration: a moderator redacted text (action "redact") or stopped the
// answer ("stop"); never carries the original text.
// kToolCall / kToolResult: a plugin tool the model called, and its outcome;
// kSources: what the answer rests on (from tool results), for source cards.
enum class StreamEventType { kDelta, kError, kDone, kModeration, kToolCall, kToolResult, kSources };

// Nearly every event is a delta: it pays for its offset, type and text; the
// fields only other events carry are CompactStrings (one pointer, null when
// empty), so a journal of deltas stays small.
struct StreamEvent {
  uint64_t offset = 0;  // given by the journal
  StreamEventType type = StreamEventType::kDelta;
  FinishReason finish_reason = FinishReason::kStop;  // done
  ErrorCode code = ErrorCode::kInternal;              // error
  bool ok = true;             // tool_result: false with the error in `text`
  std::string text;           // delta: the text; error: the message; moderation: the reason
  CompactString request_id;   // error, done: the chat that started the turn
  Usage usage;                // done
  CompactString action;       // moderation: "redact" | "stop"
  CompactString plugin;       // moderation: the plugin that acted; tool events: the tool's plugin
  CompactString call_id;      // tool_call, tool_result
  CompactString name;         // tool_call, tool_result: the tool
  CompactString json;         // tool_call: arguments; tool_result: result; sources: items (JSON)

  // Bytes this event holds in memory, for the journal's budget.
  size_t footprint() const {
    return sizeof(StreamEvent) + (text.capacity() > 15 ? text.capacity() + 1 : 0) + request_id.capacity() +
           action.capacity() + plugin.capacity() + call_id.capacity() + name.capacity() + json.capacity();
  }
};

}  // namespace sluice
