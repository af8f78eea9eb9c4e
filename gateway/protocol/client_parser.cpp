#include "gateway/protocol/client_parser.hpp"

#include "gateway/protocol/chat_fields.hpp"

#include "gateway/common/utf8.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace sluice {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

ProtocolError bad(std::string message) {
  return ProtocolError{ErrorCode::kBadMessage, std::move(message), {}, {}};
}

namespace {

// Reads an optional string field; an error when present with another type or
// too long.
std::optional<ProtocolError> read_string(object obj, std::string_view key, size_t max_bytes,
                                         std::optional<std::string>& out) {
  element e;
  if (obj[key].get(e) != simdjson::SUCCESS) return std::nullopt;
  std::string_view s;
  if (e.get(s) != simdjson::SUCCESS) return bad(std::string(key) + " must be a string");
  if (s.size() > max_bytes) {
    return bad(std::string(key) + " must be at most " + std::to_string(max_bytes) + " bytes");
  }
  out = std::string(s);
  return std::nullopt;
}

// Client text quoted back in an error, at most this many bytes.
constexpr size_t kMaxEcho = 64;

struct NumberRule {
  std::string_view name;
  double min;
  double max;
  bool integer;
};

constexpr std::array<NumberRule, 6> kNumberParams = {{
    {"temperature", 0.0, 2.0, false},
    {"top_p", 0.0, 1.0, false},
    {"max_tokens", 1, 1'000'000, true},
    {"seed", -9.2e18, 9.2e18, true},
    {"presence_penalty", -2.0, 2.0, false},
    {"frequency_penalty", -2.0, 2.0, false},
}};

}  // namespace

std::optional<ProtocolError> read_chat_params(element e, ChatParams& out) {
  object obj;
  if (e.get(obj) != simdjson::SUCCESS) return bad("params must be an object");
  for (auto [key, value] : obj) {
    if (key == "stop") {
      std::string_view s;
      simdjson::dom::array arr;
      if (value.get(s) == simdjson::SUCCESS) {
        // one stop string
      } else if (value.get(arr) == simdjson::SUCCESS) {
        if (arr.size() > 4) return bad("params.stop takes at most 4 strings");
        for (element item : arr) {
          if (!item.is_string()) return bad("params.stop must be a string or a list of strings");
        }
      } else {
        return bad("params.stop must be a string or a list of strings");
      }
      out.fields.emplace_back("stop", simdjson::minify(value));
      continue;
    }
    const std::string_view name = key;  // (clang 14 cannot capture a structured binding)
    const auto rule = std::find_if(kNumberParams.begin(), kNumberParams.end(),
                                   [&](const NumberRule& r) { return r.name == name; });
    if (rule == kNumberParams.end()) {
      return bad("params." + utf8_excerpt(key, kMaxEcho) +
                 " is not supported; allowed: temperature, top_p, max_tokens, stop, seed, "
                 "presence_penalty, frequency_penalty");
    }
    double v = 0;
    if (!value.is_number() || value.get_double().get(v) != simdjson::SUCCESS) {
      return bad("params." + std::string(rule->name) + " must be a number");
    }
    if (rule->integer && !(value.is_int64() || value.is_uint64())) {
      return bad("params." + std::string(rule->name) + " must be an integer");
    }
    if (!(v >= rule->min && v <= rule->max)) {
      return bad("params." + std::string(rule->name) + " is out of range");
    }
    out.fields.emplace_back(std::string(key), simdjson::minify(value));
  }
  return std::nullopt;
}

std::optional<ProtocolError> read_chat_messages(element e, size_t max_messages,
                                                std::vector<ChatMessage>& out) {
  simdjson::dom::array arr;
  if (e.get(arr) != simdjson::SUCCESS) return bad("messages must be a list of {role, content}");
  if (arr.size() == 0) return bad("messages must not be empty");
  if (arr.size() > max_messages) {
    return bad("messages may hold at most " + std::to_string(max_messages) + " entries");
  }
  for (element item : arr) {
    object m;
    std::string_view role;
    element content_el;
    if (item.get(m) != simdjson::SUCCESS || m["role"].get(role) != simdjson::SUCCESS ||
        m["content"].get(content_el) != simdjson::SUCCESS) {
      return bad("each entry of messages must be {\"role\": string, \"content\": string}");
    }
    if (role == "developer") role = "system";  // OpenAI's newer name for it
    if (role != "system" && role != "user" && role != "assistant") {
      return bad("messages[].role must be \"system\", \"user\" or \"assistant\"");
    }
    // A string, or OpenAI's list of content parts of which the text ones count.
    std::string content;
    std::string_view text;
    simdjson::dom::array parts;
    if (content_el.get(text) == simdjson::SUCCESS) {
      content = text;
    } else if (content_el.get(parts) == simdjson::SUCCESS) {
      for (element part : parts) {
        std::string_view type;
        if (part["type"].get(type) != simdjson::SUCCESS || type != "text" ||
            part["text"].get(text) != simdjson::SUCCESS) {
          return bad("messages[].content parts must be {\"type\": \"text\", \"text\": string}");
        }
        content += text;
      }
    } else {
      return bad("messages[].content must be a string or a list of text parts");
    }
    out.push_back({std::string(role), std::move(content), {}, {}});
  }
  return std::nullopt;
}

struct ClientParser::Impl {
  ClientParserLimits limits;

  ClientMessage parse_object(object obj, std::string request_id);
};

namespace {
// One simdjson parser per thread, not per connection: its buffers grow to
// the largest frame parsed (about 14 bytes per byte), which is too much to
// keep for each of thousands of idle connections. parse() never suspends,
// so a thread's parser is never used by two frames at once.
simdjson::dom::parser& thread_parser(size_t size, size_t max_depth) {
  thread_local simdjson::dom::parser parser;
  if (parser.capacity() < size || parser.max_depth() != max_depth) {
    // On failure (out of memory) the parse below reports a capacity error.
    if (parser.allocate(std::max<size_t>({size, parser.capacity(), 4096}), max_depth) !=
        simdjson::SUCCESS) {
      return parser;
    }
  }
  return parser;
}
}  // namespace

ClientParser::ClientParser(ClientParserLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
}

ClientParser::~ClientParser() = default;

ClientMessage ClientParser::parse(std::string_view frame) {
  auto& parser = thread_parser(frame.size(), impl_->limits.max_depth);
  element root;
  const auto err = parser.parse(frame.data(), frame.size()).get(root);
  if (err == simdjson::DEPTH_ERROR) {
    return ProtocolError{ErrorCode::kBadJson,
                         "JSON nests deeper than " + std::to_string(impl_->limits.max_depth) +
                             " levels",
                         {}, {}};
  }
  if (err != simdjson::SUCCESS) {
    return ProtocolError{ErrorCode::kBadJson,
                         std::string("frame is not valid JSON: ") + simdjson::error_message(err),
                         {}, {}};
  }
  object obj;
  if (root.get(obj) != simdjson::SUCCESS) {
    return ProtocolError{ErrorCode::kBadJson, "frame must be a JSON object", {}, {}};
  }
  std::optional<std::string> request_id;
  if (auto e = read_string(obj, "request_id", impl_->limits.max_id_bytes, request_id)) return *e;
  auto msg = impl_->parse_object(obj, request_id.value_or(""));
  if (auto* e = std::get_if<ProtocolError>(&msg)) e->request_id = request_id.value_or("");
  return msg;
}

ClientMessage ClientParser::Impl::parse_object(object obj, std::string request_id) {
  std::string_view type;
  element type_el;
  if (obj["type"].get(type_el) != simdjson::SUCCESS) return bad("missing field \"type\"");
  if (type_el.get(type) != simdjson::SUCCESS) return bad("\"type\" must be a string");

  std::optional<std::string> session_id;
  if (auto e = read_string(obj, "session_id", limits.max_id_bytes, session_id)) return *e;
  if (session_id && session_id->empty()) return bad("session_id must not be empty");

  if (type == "ping") return PingCommand{std::move(request_id)};

  if (type == "hello") {
    HelloCommand h;
    h.request_id = std::move(request_id);
    std::optional<std::string> token;
    if (auto e = read_string(obj, "token", 8192, token)) return *e;
    std::optional<std::string> client;
    if (auto e = read_string(obj, "client", 256, client)) return *e;
    h.token = token.value_or("");
    h.client = client.value_or("");
    return h;
  }

  if (type == "resume") {
    if (!session_id) return bad("resume needs \"session_id\"");
    ResumeCommand r;
    r.session_id = std::move(*session_id);
    r.request_id = std::move(request_id);
    element offset;
    if (obj["offset"].get(offset) != simdjson::SUCCESS) return bad("resume needs \"offset\"");
    if (offset.get(r.offset) != simdjson::SUCCESS) {
      return bad("offset must be a non-negative integer");
    }
    std::optional<std::string> token;
    if (auto e = read_string(obj, "resume_token", limits.max_id_bytes, token)) return *e;
    if (!token) return bad("resume needs \"resume_token\"");
    r.resume_token = std::move(*token);
    return r;
  }

  if (type == "cancel") {
    if (!session_id) return bad("cancel needs \"session_id\"");
    std::optional<std::string> token;
    if (auto e = read_string(obj, "resume_token", limits.max_id_bytes, token)) return *e;
    return CancelCommand{std::move(*session_id), std::move(request_id), token.value_or("")};
  }

  if (type == "chat") {
    ChatCommand chat;
    chat.session_id = std::move(session_id);
    chat.request_id = std::move(request_id);
    element input;
    element messages;
    const bool has_input = obj["input"].get(input) == simdjson::SUCCESS;
    const bool has_messages = obj["messages"].get(messages) == simdjson::SUCCESS;
    if (has_input == has_messages) return bad("chat needs exactly one of \"input\" or \"messages\"");
    if (has_input) {
      std::string_view text;
      if (input.get(text) != simdjson::SUCCESS) return bad("input must be a string");
      if (text.empty()) return bad("input must not be empty");
      chat.messages.push_back({"user", std::string(text), {}, {}});
    } else if (auto e = read_chat_messages(messages, limits.max_messages, chat.messages)) {
      return *e;
    }
    std::optional<std::string> model;
    if (auto e = read_string(obj, "model", 256, model)) return *e;
    chat.model = model.value_or("");
    std::optional<std::string> traceparent;
    if (auto e = read_string(obj, "traceparent", 256, traceparent)) return *e;
    chat.traceparent = traceparent.value_or("");
    element params;
    if (obj["params"].get(params) == simdjson::SUCCESS) {
      if (auto e = read_chat_params(params, chat.params)) return *e;
    }
    return chat;
  }

  ProtocolError e{ErrorCode::kUnknownType,
                  "unknown message type \"" + utf8_excerpt(type, kMaxEcho) +
                      "\"; protocol v1 accepts hello, chat, resume, cancel and ping",
                  {}, {}};
  return e;
}

}  // namespace sluice
