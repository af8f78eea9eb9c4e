#include "gateway/stream/conversation.hpp"

namespace sluice {

namespace {
size_t size_of(const ChatMessage& m) { return m.content.size() + m.tool_calls_json.size(); }
}  // namespace

void fit_history(std::vector<ChatMessage>& messages, size_t max_bytes) {
  if (messages.empty()) return;
  size_t system = 0;  // leading system messages
  size_t used = 0;
  while (system < messages.size() - 1 && messages[system].role == "system") {
    used += size_of(messages[system]);
    ++system;
  }
  // Walk back from the newest message while it fits.
  size_t keep_from = messages.size() - 1;
  used += size_of(messages.back());
  while (keep_from > system && used + size_of(messages[keep_from - 1]) <= max_bytes) {
    --keep_from;
    used += size_of(messages[keep_from]);
  }
  // A tool result without the assistant message that called it is refused
  // upstream: drop results whose call went.
  while (keep_from < messages.size() - 1 && messages[keep_from].role == "tool") ++keep_from;
  messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(system),
                 messages.begin() + static_cast<std::ptrdiff_t>(keep_from));
}

}  // namespace sluice
