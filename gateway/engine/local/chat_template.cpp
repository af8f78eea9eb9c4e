#include "gateway/engine/local/chat_template.hpp"

#include <simdjson.h>

#include "gateway/common/json_writer.hpp"
#include "gateway/engine/local/tokenizer.hpp"

namespace sluice {

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
  if (name == "chatml") return ChatFormat::kChatML;
  if (name == "llama3") return ChatFormat::kLlama3;
  if (name == "llama2") return ChatFormat::kLlama2;
  return std::nullopt;
}

std::optional<ChatFormat> detect_chat_format(std::string_view jinja) {
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatFormat::kChatML;
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatFormat::kLlama3;
  if (jinja.find("[INST]") != std::string_view::npos) return ChatFormat::kLlama2;
  return std::nullopt;
}

std::string_view chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::kChatML: return "chatml";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kLlama2: return "llama2";
  }
  return "chatml";
}

namespace {

void add(std::vector<PromptSegment>& out, std::string text, bool special) {
  if (text.empty()) return;
  if (!out.empty() && out.back().special == special) {
    out.back().text += text;
  } else {
    out.push_back({std::move(text), special});
  }
}

// JSON as Python's json.dumps(ensure_ascii=False) writes it, which is how
// chat templates (tojson) and tool-calling models write it.
void python_json(std::string& out, simdjson::dom::element e) {
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT: {
      out += '{';
      bool first = true;
      for (auto field : e.get_object()) {
        if (!first) out += ", ";
        first = false;
        append_json_string(out, field.key);
        out += ": ";
        python_json(out, field.value);
      }
      out += '}';
      return;
    }
    case simdjson::dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      for (auto v : e.get_array()) {
        if (!first) out += ", ";
        first = false;
        python_json(out, v);
      }
      out += ']';
      return;
    }
    case simdjson::dom::element_type::STRING: append_json_string(out, e.get_string().value()); return;
    default: out += simdjson::minify(e); return;
  }
}

constexpr const char* kDefaultSystem = "You are a helpful assistant.";
constexpr const char* kToolsIntro =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr const char* kToolsOutro =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";

void chatml_tool_calls(std::vector<PromptSegment>& out, const ChatMessage& m) {
  simdjson::dom::parser parser;
  simdjson::dom::array calls;
  if (parser.parse(m.tool_calls_json).get(calls) != simdjson::SUCCESS) return;
  bool first = m.content.empty();
  for (auto call : calls) {
    std::string_view name, args;
    if (call["function"]["name"].get(name) != simdjson::SUCCESS) continue;
    if (call["function"]["arguments"].get(args) != simdjson::SUCCESS) args = "{}";
    const auto text = tool_call_text(name, args);
    add(out, first ? "<tool_call>" : "\n<tool_call>", true);
    add(out, "\n" + text.value_or(std::string(args)) + "\n", false);
    add(out, "</tool_call>", true);
    first = false;
  }
}

std::vector<PromptSegment> chatml(const std::vector<ChatMessage>& messages, std::string_view tools_json) {
  std::vector<PromptSegment> out;
  simdjson::dom::parser parser;
  simdjson::dom::array tools;
  const bool with_tools = !tools_json.empty() && parser.parse(tools_json).get(tools) == simdjson::SUCCESS &&
                          tools.size() > 0;
  size_t i = 0;
  if (with_tools) {
    add(out, "<|im_start|>system\n", true);
    if (!messages.empty() && messages[0].role == "system") {
      add(out, messages[0].content, false);
      i = 1;
    } else {
      add(out, kDefaultSystem, true);
    }
    add(out, kToolsIntro, true);
    for (auto tool : tools) {
      std::string line = "\n";
      python_json(line, tool);
      add(out, line, false);  // plugins' text: never special
    }
    add(out, kToolsOutro, true);
  }
  for (; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "tool") {
      // Consecutive results share one user turn.
      if (i == 0 || messages[i - 1].role != "tool") add(out, "<|im_start|>user", true);
      add(out, "\n<tool_response>\n", true);
      add(out, m.content, false);
      add(out, "\n</tool_response>", true);
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") add(out, "<|im_end|>\n", true);
      continue;
    }
    add(out, "<|im_start|>" + m.role + "\n", true);
    add(out, m.content, false);
    if (m.role == "assistant" && !m.tool_calls_json.empty()) chatml_tool_calls(out, m);
    add(out, "<|im_end|>\n", true);
  }
  add(out, "<|im_start|>assistant\n", true);
  return out;
}

std::vector<PromptSegment> llama3(const std::vector<ChatMessage>& messages) {
  std::vector<PromptSegment> out;
  add(out, "<|begin_of_text|>", true);
  for (const auto& m : messages) {
    add(out, "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", true);
    add(out, m.content, false);
    add(out, "<|eot_id|>", true);
  }
  add(out, "<|start_header_id|>assistant<|end_header_id|>\n\n", true);
  return out;
}

// <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
std::vector<PromptSegment> llama2(const std::vector<ChatMessage>& messages) {
  std::vector<PromptSegment> out;
  std::string system;
  bool open = false;  // an [INST] waits for its answer
  for (const auto& m : messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n") + m.content;
      continue;
    }
    if (m.role == "assistant") {
      if (!open) add(out, "<s>[INST]  [/INST]", true);
      add(out, " ", false);
      add(out, m.content, false);
      add(out, " </s>", true);
      open = false;
      continue;
    }
    add(out, "<s>[INST] ", true);
    if (!system.empty()) {
      add(out, "<<SYS>>\n", true);
      add(out, system, false);
      add(out, "\n<</SYS>>\n\n", true);
      system.clear();
    }
    add(out, m.content, false);
    add(out, " [/INST]", true);
    open = true;
  }
  if (!open) add(out, "<s>[INST]  [/INST]", true);
  return out;
}

}  // namespace

std::optional<std::string> tool_call_text(std::string_view name, std::string_view arguments_json) {
  simdjson::dom::parser parser;
  simdjson::dom::element args;
  if (parser.parse(arguments_json.data(), arguments_json.size()).get(args) != simdjson::SUCCESS) return std::nullopt;
  std::string out = "{\"name\": ";
  append_json_string(out, name);
  out += ", \"arguments\": ";
  python_json(out, args);
  out += "}";
  return out;
}

std::optional<ChatFormat> chat_format_of(const Tokenizer& tokenizer) {
  if (auto f = detect_chat_format(tokenizer.chat_template())) return f;
  if (tokenizer.find("<|im_start|>")) return ChatFormat::kChatML;
  return std::nullopt;
}

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const std::vector<PromptSegment>& segments) {
  std::vector<int32_t> ids;
  for (const auto& seg : segments) {
    const auto part = tokenizer.encode(seg.text, false, seg.special);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

std::vector<PromptSegment> render_chat(ChatFormat format, const std::vector<ChatMessage>& messages,
                                       std::string_view tools_json) {
  switch (format) {
    case ChatFormat::kChatML: return chatml(messages, tools_json);
    case ChatFormat::kLlama3: return llama3(messages);
    case ChatFormat::kLlama2: return llama2(messages);
  }
  return chatml(messages, tools_json);
}

}  // namespace sluice
