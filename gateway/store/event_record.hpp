// How a journal event and a session's conversation are kept in a shared
// store: compact JSON records (`{"t":"d","x":"你好"}` for a delta), decoded
// back into the same StreamEvent on any instance. The offset is not in the
// record: the store keeps it as the entry's id. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/protocol/messages.hpp"
#include "gateway/protocol/stream_event.hpp"

namespace sluice {

std::string encode_event_record(const StreamEvent& event);
// The event (offset left 0), or nullopt for a record this build cannot read.
std::optional<StreamEvent> decode_event_record(std::string_view record);

// A conversation as a JSON array of {role, content, tool_calls?, tool_call_id?}.
std::string encode_history(const std::vector<ChatMessage>& history);
std::optional<std::vector<ChatMessage>> decode_history(std::string_view json);

}  // namespace sluice
