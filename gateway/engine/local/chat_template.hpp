// Chat templates of the local engine: ChatML (Qwen), Llama 3 and Llama 2,
// chosen by config or recognised from the model's tokenizer.chat_template.
// A prompt is rendered as segments: the template's own text (whose special
// tokens are tokenized as such) and the messages' content (tokenized as
// plain text, so that no user can write a control token).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/protocol/messages.hpp"

namespace sluice {

enum class ChatFormat { kChatML, kLlama3, kLlama2 };

struct PromptSegment {
  std::string text;
  bool special = false;  // template text: special tokens in it count
};

// "chatml", "llama3", "llama2"; nullopt for anything else.
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
// Recognises a Jinja chat template by its markers; nullopt when unknown.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);
std::string_view chat_format_name(ChatFormat f);

// The prompt for `messages`, ending where the assistant's answer starts.
std::vector<PromptSegment> render_chat(ChatFormat format, const std::vector<ChatMessage>& messages);

}  // namespace sluice
