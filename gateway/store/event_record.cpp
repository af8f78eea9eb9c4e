#include "gateway/store/event_record.hpp"

#include <simdjson.h>

#include "gateway/common/json_writer.hpp"

namespace sluice {

namespace {

// Record types: one letter each (a delta is nearly every record).

char type_letter(StreamEventType t) {
  switch (t) {
    case StreamEventType::kDelta: return 'd';
    case StreamEventType::kError: return 'e';
    case StreamEventType::kDone: return 'f';
    case StreamEventType::kModeration: return 'm';
    case StreamEventType::kToolCall: return 'c';
    case StreamEventType::kToolResult: return 'r';
    case StreamEventType::kSources: return 's';
  }
  return 'd';
}

std::optional<StreamEventType> type_of(std::string_view letter) {
  if (letter.size() != 1) return std::nullopt;
  switch (letter[0]) {
    case 'd': return StreamEventType::kDelta;
    case 'e': return StreamEventType::kError;
    case 'f': return StreamEventType::kDone;
    case 'm': return StreamEventType::kModeration;
    case 'c': return StreamEventType::kToolCall;
    case 'r': return StreamEventType::kToolResult;
    case 's': return StreamEventType::kSources;
  }
  return std::nullopt;
}

// Enums travel by name, so that instances of different versions agree.
ErrorCode error_code_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::kInternal); ++i) {
    if (to_string(static_cast<ErrorCode>(i)) == name) return static_cast<ErrorCode>(i);
  }
  return ErrorCode::kInternal;
}

FinishReason finish_reason_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(FinishReason::kError); ++i) {
    if (to_string(static_cast<FinishReason>(i)) == name) return static_cast<FinishReason>(i);
  }
  return FinishReason::kStop;
}

void optional_field(JsonWriter& w, std::string_view key, std::string_view value) {
  if (!value.empty()) w.field(key, value);
}

std::string_view string_or_empty(simdjson::dom::object& o, std::string_view key) {
  std::string_view v;
  if (o[key].get(v) != simdjson::SUCCESS) return {};
  return v;
}

}  // namespace

std::string encode_event_record(const StreamEvent& e) {
  JsonWriter w;
  const char letter[2] = {type_letter(e.type), 0};
  w.begin_object().field("t", std::string_view(letter, 1));
  optional_field(w, "x", e.text);
  switch (e.type) {
    case StreamEventType::kDelta:
      break;
    case StreamEventType::kError:
      w.field("co", to_string(e.code));
      optional_field(w, "q", e.request_id.view());
      break;
    case StreamEventType::kDone:
      w.field("fr", to_string(e.finish_reason));
      optional_field(w, "q", e.request_id.view());
      w.field("pt", e.usage.prompt_tokens).field("ct", e.usage.completion_tokens);
      break;
    case StreamEventType::kModeration:
      optional_field(w, "a", e.action.view());
      optional_field(w, "p", e.plugin.view());
      break;
    case StreamEventType::kToolCall:
    case StreamEventType::kToolResult:
    case StreamEventType::kSources:
      optional_field(w, "p", e.plugin.view());
      optional_field(w, "ci", e.call_id.view());
      optional_field(w, "n", e.name.view());
      optional_field(w, "j", e.json.view());
      if (!e.ok) w.field("ok", false);
      break;
  }
  return w.end_object().take();
}

std::optional<StreamEvent> decode_event_record(std::string_view record) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object o;
  if (parser.parse(record.data(), record.size()).get(doc) != simdjson::SUCCESS ||
      doc.get(o) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  const auto type = type_of(string_or_empty(o, "t"));
  if (!type) return std::nullopt;
  StreamEvent e;
  e.type = *type;
  e.text = std::string(string_or_empty(o, "x"));
  e.request_id = string_or_empty(o, "q");
  if (auto co = string_or_empty(o, "co"); !co.empty()) e.code = error_code_named(co);
  if (auto fr = string_or_empty(o, "fr"); !fr.empty()) e.finish_reason = finish_reason_named(fr);
  int64_t n = 0;
  if (o["pt"].get(n) == simdjson::SUCCESS) e.usage.prompt_tokens = n;
  if (o["ct"].get(n) == simdjson::SUCCESS) e.usage.completion_tokens = n;
  e.action = string_or_empty(o, "a");
  e.plugin = string_or_empty(o, "p");
  e.call_id = string_or_empty(o, "ci");
  e.name = string_or_empty(o, "n");
  e.json = string_or_empty(o, "j");
  bool ok = true;
  if (o["ok"].get(ok) == simdjson::SUCCESS) e.ok = ok;
  return e;
}

std::string encode_history(const std::vector<ChatMessage>& history) {
  JsonWriter w;
  w.begin_array();
  for (const auto& m : history) {
    w.begin_object().field("role", m.role).field("content", m.content);
    optional_field(w, "tool_calls", m.tool_calls_json);
    optional_field(w, "tool_call_id", m.tool_call_id);
    w.end_object();
  }
  return w.end_array().take();
}

std::optional<std::vector<ChatMessage>> decode_history(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array arr;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS || doc.get(arr) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  std::vector<ChatMessage> out;
  for (simdjson::dom::element item : arr) {
    simdjson::dom::object o;
    if (item.get(o) != simdjson::SUCCESS) return std::nullopt;
    ChatMessage m;
    m.role = std::string(string_or_empty(o, "role"));
    m.content = std::string(string_or_empty(o, "content"));
    m.tool_calls_json = std::string(string_or_empty(o, "tool_calls"));
    m.tool_call_id = std::string(string_or_empty(o, "tool_call_id"));
    if (m.role.empty()) return std::nullopt;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace sluice
