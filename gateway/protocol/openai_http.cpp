#include "gateway/protocol/openai_http.hpp"

#include <simdjson.h>

#include "gateway/common/json_writer.hpp"
#include "gateway/protocol/chat_fields.hpp"
#include "gateway/protocol/server_messages.hpp"

namespace sluice {

namespace {
constexpr size_t kMaxMessages = 1024;

void chunk_head(JsonWriter& w, const CompletionIds& ids) {
  w.begin_object()
      .field("id", ids.id)
      .field("object", "chat.completion.chunk")
      .field("created", ids.created)
      .field("model", ids.model);
}
}  // namespace

std::variant<OpenAiChatRequest, ProtocolError> parse_openai_chat_request(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS ||
      root.get(obj) != simdjson::SUCCESS) {
    return ProtocolError{ErrorCode::kBadJson, "the request body must be a JSON object", {}, {}};
  }
  OpenAiChatRequest r;
  simdjson::dom::element messages;
  if (obj["messages"].get(messages) != simdjson::SUCCESS) return bad("missing field \"messages\"");
  if (auto e = read_chat_messages(messages, kMaxMessages, r.chat.messages)) return *e;
  // A field of the wrong type is refused, never read as its default: a
  // "stream": "yes" silently answered as one JSON body would hang a client
  // waiting for events.
  simdjson::dom::element field;
  if (obj["model"].get(field) == simdjson::SUCCESS && !field.is_null()) {
    std::string_view model;
    if (field.get(model) != simdjson::SUCCESS) return bad("model must be a string");
    r.chat.model = model;
  }
  if (obj["stream"].get(field) == simdjson::SUCCESS && !field.is_null()) {
    if (field.get(r.stream) != simdjson::SUCCESS) return bad("stream must be true or false");
  }
  if (obj["stream_options"].get(field) == simdjson::SUCCESS && !field.is_null()) {
    simdjson::dom::object options;
    if (field.get(options) != simdjson::SUCCESS) return bad("stream_options must be an object");
    simdjson::dom::element usage;
    if (options["include_usage"].get(usage) == simdjson::SUCCESS && !usage.is_null() &&
        usage.get(r.include_usage) != simdjson::SUCCESS) {
      return bad("stream_options.include_usage must be true or false");
    }
  }
  if (obj["n"].get(field) == simdjson::SUCCESS && !field.is_null()) {
    int64_t n = 0;
    if (field.get(n) != simdjson::SUCCESS || n != 1) return bad("only n = 1 is supported");
  }
  // The sampling parameters protocol v1 accepts; other OpenAI fields (user,
  // logprobs, ...) are ignored rather than refused, as OpenAI's clients
  // send some by default.
  std::string params_json = "{";
  for (auto [key, value] : obj) {
    static constexpr std::string_view kParams[] = {"temperature", "top_p", "max_tokens",
                                                    "stop", "seed", "presence_penalty",
                                                    "frequency_penalty"};
    for (auto p : kParams) {
      if (key != p || value.is_null()) continue;
      if (params_json.size() > 1) params_json += ',';
      append_json_string(params_json, key);
      params_json += ':';
      params_json += simdjson::minify(value);
    }
    if (key == "max_completion_tokens" && !value.is_null()) {
      if (params_json.size() > 1) params_json += ',';
      params_json += "\"max_tokens\":" + simdjson::minify(value);
    }
  }
  params_json += '}';
  simdjson::dom::parser params_parser;
  simdjson::dom::element params;
  if (params_parser.parse(params_json).get(params) == simdjson::SUCCESS) {
    if (auto e = read_chat_params(params, r.chat.params)) return *e;
  }
  return r;
}

std::string sse_chunk_prefix(const CompletionIds& ids) {
  JsonWriter w;
  chunk_head(w, ids);
  w.key("choices");  // the writer's separator after "model"; cut below
  std::string head = w.take();
  head.resize(head.size() - std::string_view("\"choices\":").size());
  return head;
}

std::string sse_role_chunk(const CompletionIds& ids) {
  JsonWriter w;
  chunk_head(w, ids);
  w.key("choices").begin_array().begin_object().field("index", 0);
  w.key("delta").begin_object().field("role", "assistant").field("content", "").end_object();
  w.key("finish_reason").null().end_object().end_array().end_object();
  return "data: " + w.take() + "\n\n";
}

namespace {
bool is_chunk(const StreamEvent& e) {
  return e.type == StreamEventType::kDelta || e.type == StreamEventType::kDone;
}

constexpr std::string_view kDeltaChoicesHead = R"("choices":[{"index":0,"delta":{"content":")";
constexpr std::string_view kDeltaChoicesTail = R"("},"finish_reason":null}]})";

void append_event_id(std::string& out, std::string_view session_id, uint64_t offset) {
  out += "id: ";
  out += session_id;
  out += ':';
  out += std::to_string(offset);
  out += '\n';
}

// "choices":[...]} of a chunk: the rest of the object after the prefix.
std::string choices_tail(const StreamEvent& event) {
  std::string out;
  if (event.type == StreamEventType::kDelta) {
    out = kDeltaChoicesHead;
    append_json_string_body(out, event.text);
    out += kDeltaChoicesTail;
  } else {
    out = R"("choices":[{"index":0,"delta":)";
    out += R"({},"finish_reason":)";
    append_json_string(out, to_string(event.finish_reason));
    out += "}]}";
  }
  return out;
}
}  // namespace

std::string sse_event_body(std::string_view session_id, const StreamEvent& event) {
  if (is_chunk(event)) return choices_tail(event);
  JsonWriter w;
  std::string out;
  switch (event.type) {
    case StreamEventType::kModeration:
      // A named event: OpenAI clients skip it, an EventSource can listen for it.
      w.begin_object()
          .field("action", event.action)
          .field("reason", event.text)
          .field("plugin", event.plugin)
          .end_object();
      out = "event: moderation\ndata: " + w.take();
      break;
    case StreamEventType::kToolCall:
    case StreamEventType::kToolResult:
    case StreamEventType::kSources:
      // Named events, as for moderation; the data is the WebSocket message.
      out = event.type == StreamEventType::kToolCall     ? "event: tool_call\ndata: "
            : event.type == StreamEventType::kToolResult ? "event: tool_result\ndata: "
                                                         : "event: sources\ndata: ";
      out += tool_event_message(session_id, event);
      break;
    case StreamEventType::kError:
      w.begin_object().key("error").begin_object()
          .field("message", event.text)
          .field("type", "upstream_error")
          .field("code", to_string(event.code))
          .end_object().end_object();
      out = "data: " + w.take();
      break;
    case StreamEventType::kDelta:
    case StreamEventType::kDone:
      break;
  }
  out += "\n\n";
  return out;
}

void append_sse_delta(std::string& out, std::string_view chunk_prefix, std::string_view session_id,
                      uint64_t offset, std::string_view json_text) {
  append_event_id(out, session_id, offset);
  out += "data: ";
  out += chunk_prefix;
  out += kDeltaChoicesHead;
  out += json_text;
  out += kDeltaChoicesTail;
  out += "\n\n";
}

void append_sse_event(std::string& out, std::string_view chunk_prefix, std::string_view session_id,
                      const StreamEvent& event, std::string_view body, bool include_usage) {
  append_event_id(out, session_id, event.offset);
  if (!is_chunk(event)) {
    out += body;
    return;
  }
  out += "data: ";
  out += chunk_prefix;
  out += body;
  out += "\n\n";
  if (event.type != StreamEventType::kDone || !include_usage) return;
  JsonWriter u;
  u.begin_object().key("choices").begin_array().end_array();
  u.key("usage").begin_object()
      .field("prompt_tokens", event.usage.prompt_tokens)
      .field("completion_tokens", event.usage.completion_tokens)
      .field("total_tokens", event.usage.prompt_tokens + event.usage.completion_tokens)
      .end_object();
  const std::string usage = u.end_object().take();  // {"choices":[],"usage":{...}}
  out += "data: ";
  out += chunk_prefix;
  out.append(usage, 1);
  out += "\n\n";
}

std::string sse_event(const CompletionIds& ids, std::string_view session_id,
                      const StreamEvent& event, bool include_usage) {
  std::string out;
  append_sse_event(out, sse_chunk_prefix(ids), session_id, event, sse_event_body(session_id, event),
                   include_usage);
  return out;
}

std::string completion_json(const CompletionIds& ids, std::string_view text,
                            std::string_view finish_reason, const Usage& usage, std::string_view sources_json) {
  JsonWriter w;
  w.begin_object()
      .field("id", ids.id)
      .field("object", "chat.completion")
      .field("created", ids.created)
      .field("model", ids.model);
  w.key("choices").begin_array().begin_object().field("index", 0);
  w.key("message").begin_object().field("role", "assistant").field("content", text).end_object();
  w.field("finish_reason", finish_reason).end_object().end_array();
  w.key("usage").begin_object()
      .field("prompt_tokens", usage.prompt_tokens)
      .field("completion_tokens", usage.completion_tokens)
      .field("total_tokens", usage.prompt_tokens + usage.completion_tokens)
      .end_object();
  // An extension OpenAI clients ignore: the passages the [n] markers cite.
  if (!sources_json.empty()) w.key("sources").raw(sources_json);
  return w.end_object().take();
}

std::string openai_error_json(std::string_view code, std::string_view message) {
  JsonWriter w;
  w.begin_object().key("error").begin_object()
      .field("message", message)
      .field("type", code == "bad_json" || code == "bad_message" ? "invalid_request_error"
                                                                  : "api_error")
      .field("code", code)
      .end_object();
  return w.end_object().take();
}

}  // namespace sluice
