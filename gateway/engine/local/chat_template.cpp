#include "gateway/engine/local/chat_template.hpp"

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

std::vector<PromptSegment> chatml(const std::vector<ChatMessage>& messages) {
  std::vector<PromptSegment> out;
  for (const auto& m : messages) {
    add(out, "<|im_start|>" + m.role + "\n", true);
    add(out, m.content, false);
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

std::vector<PromptSegment> render_chat(ChatFormat format, const std::vector<ChatMessage>& messages) {
  switch (format) {
    case ChatFormat::kChatML: return chatml(messages);
    case ChatFormat::kLlama3: return llama3(messages);
    case ChatFormat::kLlama2: return llama2(messages);
  }
  return chatml(messages);
}

}  // namespace sluice
