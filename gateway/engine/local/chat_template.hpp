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

class Tokenizer;

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

// The model's own format: recognised from its chat template, or ChatML when
// it has <|im_start|>; nullopt when neither.
std::optional<ChatFormat> chat_format_of(const Tokenizer& tokenizer);

// The prompt for `messages`, ending where the assistant's answer starts.
// `tools_json`: an OpenAI "tools" array offered to the model ("" for none).
// ChatML renders tools, tool calls and tool results as Qwen2.5 and Hermes
// do: the tools listed in the system message inside <tools></tools>, a call
// as <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, results as a
// user turn of <tool_response> blocks. Llama 3 and Llama 2 ignore tools.
std::vector<PromptSegment> render_chat(ChatFormat format, const std::vector<ChatMessage>& messages,
                                       std::string_view tools_json = {});

// Token ids for rendered segments (special tokens only in template text).
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const std::vector<PromptSegment>& segments);

// One tool call as the model writes it inside <tool_call>: {"name": N,
// "arguments": A}, with Python's json.dumps spacing (", " and ": ").
// `arguments_json` must be JSON; nullopt if it is not.
std::optional<std::string> tool_call_text(std::string_view name, std::string_view arguments_json);

}  // namespace sluice
