// Gateway-to-client messages of protocol v1, serialized to JSON text frames.
// Pure functions; callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/protocol/error_code.hpp"
#include "gateway/protocol/usage.hpp"

namespace sluice {

struct StreamEvent;

std::string session_message(std::string_view session_id, std::string_view resume_token,
                            std::string_view request_id);
// A journal event as its protocol v1 frame (delta, error or done).
std::string event_message(std::string_view session_id, const StreamEvent& event);
std::string resumed_message(std::string_view session_id, uint64_t from_offset,
                            std::string_view request_id);
std::string resume_failed_message(std::string_view session_id, std::string_view reason,
                                  std::string_view message, std::string_view request_id);
std::string delta_message(std::string_view session_id, uint64_t offset, std::string_view text);
// The same frame in three parts, for a face that sends a journal entry's
// text without copying it: delta_head() (everything up to the opening quote
// of "text"), the text as it goes between quotes (JournalEntry::json_text),
// then kDeltaTail. delta_head writes into `out` and returns its length, or 0
// when it does not fit (or `session_id` would need escaping): then use
// delta_message.
size_t delta_head(std::string_view session_id, uint64_t offset, char* out, size_t capacity);
inline constexpr std::string_view kDeltaTail = "\"}";
std::string moderation_message(std::string_view session_id, uint64_t offset,
                               std::string_view action, std::string_view reason,
                               std::string_view plugin);
// tool_call, tool_result and sources events (their JSON parts are kept
// already serialized and checked).
std::string tool_event_message(std::string_view session_id, const StreamEvent& event);
std::string done_message(std::string_view session_id, uint64_t offset, std::string_view request_id,
                         std::string_view finish_reason, const Usage& usage);
// `offset` 0 means the error is not part of a session's stream;
// `retry_after_ms` > 0 tells a rate-limited client when to try again.
std::string error_message(ErrorCode code, std::string_view message, std::string_view session_id,
                          std::string_view request_id, uint64_t offset = 0,
                          int64_t retry_after_ms = 0);
std::string pong_message(std::string_view request_id);
// `limits_json` is a JSON object of the limits that apply to the connection.
std::string ready_message(std::string_view principal, std::string_view limits_json,
                          std::string_view request_id);

}  // namespace sluice
