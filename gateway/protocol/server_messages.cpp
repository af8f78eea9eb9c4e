#include "gateway/protocol/server_messages.hpp"

#include <charconv>
#include <cstring>

#include "gateway/common/json_writer.hpp"
#include "gateway/protocol/stream_event.hpp"

namespace sluice {
namespace {
void maybe(JsonWriter& w, std::string_view key, std::string_view value) {
  if (!value.empty()) w.field(key, value);
}
}  // namespace

std::string session_message(std::string_view session_id, std::string_view resume_token,
                            std::string_view request_id) {
  JsonWriter w;
  w.begin_object()
      .field("type", "session")
      .field("session_id", session_id)
      .field("resume_token", resume_token);
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

std::string event_message(std::string_view session_id, const StreamEvent& event) {
  switch (event.type) {
    case StreamEventType::kDelta:
      return delta_message(session_id, event.offset, event.text);
    case StreamEventType::kError:
      return error_message(event.code, event.text, session_id, event.request_id, event.offset);
    case StreamEventType::kDone:
      return done_message(session_id, event.offset, event.request_id, to_string(event.finish_reason),
                          event.usage);
    case StreamEventType::kModeration:
      return moderation_message(session_id, event.offset, event.action, event.text, event.plugin);
    case StreamEventType::kToolCall:
    case StreamEventType::kToolResult:
    case StreamEventType::kSources:
      return tool_event_message(session_id, event);
  }
  return {};
}

std::string moderation_message(std::string_view session_id, uint64_t offset,
                               std::string_view action, std::string_view reason,
                               std::string_view plugin) {
  JsonWriter w;
  w.begin_object()
      .field("type", "moderation")
      .field("session_id", session_id)
      .field("offset", offset)
      .field("action", action)
      .field("reason", reason)
      .field("plugin", plugin);
  return w.end_object().take();
}

std::string tool_event_message(std::string_view session_id, const StreamEvent& e) {
  JsonWriter w;
  w.begin_object();
  switch (e.type) {
    case StreamEventType::kToolCall:
      w.field("type", "tool_call").field("session_id", session_id).field("offset", e.offset);
      w.field("id", e.call_id).field("name", e.name).field("plugin", e.plugin);
      w.key("arguments").raw(e.json.empty() ? "null" : e.json);
      break;
    case StreamEventType::kToolResult:
      w.field("type", "tool_result").field("session_id", session_id).field("offset", e.offset);
      w.field("id", e.call_id).field("name", e.name).field("plugin", e.plugin).field("ok", e.ok);
      if (e.ok) {
        w.key("result").raw(e.json.empty() ? "null" : e.json);
      } else {
        w.field("error", e.text);
      }
      break;
    default:
      // origin: "retrieval" (the passages in the prompt, before the answer)
      // or "tool" (a tool result's, after it; `id` is the call's).
      w.field("type", "sources").field("session_id", session_id).field("offset", e.offset);
      w.field("origin", e.name.empty() ? std::string_view("tool") : e.name.view());
      if (!e.call_id.empty()) w.field("id", e.call_id);
      w.key("items").raw(e.json.empty() ? "[]" : e.json);
      break;
  }
  return w.end_object().take();
}

std::string resumed_message(std::string_view session_id, uint64_t from_offset,
                            std::string_view request_id) {
  JsonWriter w;
  w.begin_object()
      .field("type", "resumed")
      .field("session_id", session_id)
      .field("from_offset", from_offset);
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

std::string resume_failed_message(std::string_view session_id, std::string_view reason,
                                  std::string_view message, std::string_view request_id) {
  JsonWriter w;
  w.begin_object()
      .field("type", "resume_failed")
      .field("session_id", session_id)
      .field("reason", reason)
      .field("message", message);
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

std::string delta_message(std::string_view session_id, uint64_t offset, std::string_view text) {
  JsonWriter w;
  w.begin_object()
      .field("type", "delta")
      .field("session_id", session_id)
      .field("offset", offset)
      .field("text", text);
  return w.end_object().take();
}

size_t delta_head(std::string_view session_id, uint64_t offset, char* out, size_t capacity) {
  static constexpr std::string_view kStart = R"({"type":"delta","session_id":")";
  static constexpr std::string_view kOffset = R"(","offset":)";
  static constexpr std::string_view kText = R"(,"text":")";
  char number[24];
  const auto [end, ec] = std::to_chars(number, number + sizeof number, offset);
  const size_t digits = static_cast<size_t>(end - number);
  const size_t n = kStart.size() + session_id.size() + kOffset.size() + digits + kText.size();
  if (ec != std::errc() || n > capacity || !json_string_is_plain(session_id)) return 0;
  char* p = out;
  for (std::string_view part : {kStart, session_id, kOffset, std::string_view(number, digits), kText}) {
    std::memcpy(p, part.data(), part.size());
    p += part.size();
  }
  return n;
}

std::string done_message(std::string_view session_id, uint64_t offset, std::string_view request_id,
                         std::string_view finish_reason, const Usage& usage) {
  JsonWriter w;
  w.begin_object().field("type", "done").field("session_id", session_id).field("offset", offset);
  maybe(w, "request_id", request_id);
  w.field("finish_reason", finish_reason);
  w.key("usage")
      .begin_object()
      .field("prompt_tokens", usage.prompt_tokens)
      .field("completion_tokens", usage.completion_tokens)
      .end_object();
  return w.end_object().take();
}

std::string error_message(ErrorCode code, std::string_view message, std::string_view session_id,
                          std::string_view request_id, uint64_t offset, int64_t retry_after_ms) {
  JsonWriter w;
  w.begin_object().field("type", "error").field("code", to_string(code)).field("message", message);
  maybe(w, "session_id", session_id);
  if (offset != 0) w.field("offset", offset);
  if (retry_after_ms > 0) w.field("retry_after_ms", retry_after_ms);
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

std::string ready_message(std::string_view principal, std::string_view limits_json,
                          std::string_view request_id) {
  JsonWriter w;
  w.begin_object().field("type", "ready").field("principal", principal);
  w.key("limits").raw(limits_json);
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

std::string pong_message(std::string_view request_id) {
  JsonWriter w;
  w.begin_object().field("type", "pong");
  maybe(w, "request_id", request_id);
  return w.end_object().take();
}

}  // namespace sluice
