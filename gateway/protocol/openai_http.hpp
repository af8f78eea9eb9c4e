// The OpenAI-compatible HTTP face: POST /v1/chat/completions requests, and
// the chat.completion / chat.completion.chunk JSON that answers them
// (docs/http-api.md). Pure functions; callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "gateway/protocol/messages.hpp"
#include "gateway/protocol/stream_event.hpp"

namespace sluice {

struct OpenAiChatRequest {
  ChatCommand chat;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

std::variant<OpenAiChatRequest, ProtocolError> parse_openai_chat_request(std::string_view body);

// Everything the chunks of one response share.
struct CompletionIds {
  std::string id;  // "chatcmpl-<session id>-<offset of the turn's first event>"
  std::string model;
  int64_t created = 0;
};

// The streaming answer's SSE events. A chunk's JSON starts with what every
// chunk of one response shares (sse_chunk_prefix: id, object, created,
// model) and ends with what is the event's own (sse_event_body: its
// "choices", escaped once and shared by every SSE reader of the journal
// entry; for named events and errors, the whole event). sse_event puts an
// event together, "id: <session>:<offset>" first. Turn errors become
// OpenAI's in-stream error object.
std::string sse_chunk_prefix(const CompletionIds& ids);
std::string sse_role_chunk(const CompletionIds& ids);
std::string sse_event_body(std::string_view session_id, const StreamEvent& event);
void append_sse_event(std::string& out, std::string_view chunk_prefix, std::string_view session_id,
                      const StreamEvent& event, std::string_view body, bool include_usage);
// A delta's event, from its text as it goes between JSON quotes
// (JournalEntry::json_text): the same bytes as append_sse_event's, with no
// body to make.
void append_sse_delta(std::string& out, std::string_view chunk_prefix, std::string_view session_id,
                      uint64_t offset, std::string_view json_text);
std::string sse_event(const CompletionIds& ids, std::string_view session_id,
                      const StreamEvent& event, bool include_usage);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// The non-streaming chat.completion object.
std::string completion_json(const CompletionIds& ids, std::string_view text,
                            std::string_view finish_reason, const Usage& usage,
                            std::string_view sources_json = {});

// {"error":{"message":...,"type":...,"code":...}}, as OpenAI's clients read it.
std::string openai_error_json(std::string_view code, std::string_view message);

}  // namespace sluice
