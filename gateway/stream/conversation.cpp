#include "gateway/stream/conversation.hpp"

namespace sluice {

void fit_history(std::vector<ChatMessage>& messages, size_t max_bytes) {
  if (messages.empty()) return;
  size_t system = 0;  // leading system messages
  size_t used = 0;
  while (system < messages.size() - 1 && messages[system].role == "system") {
    used += messages[system].content.size();
    ++system;
  }
  // Walk back from the newest message while it fits.
  size_t keep_from = messages.size() - 1;
  used += messages.back().content.size();
  while (keep_from > system && used + messages[keep_from - 1].content.size() <= max_bytes) {
    --keep_from;
    used += messages[keep_from].content.size();
  }
  messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(system),
                 messages.begin() + static_cast<std::ptrdiff_t>(keep_from));
}

}  // namespace sluice
