// A session's conversation: the messages of its turns so far, kept within a
// byte budget by dropping the oldest first (system messages stay).
#pragma once

#include <cstddef>
#include <vector>

#include "gateway/protocol/messages.hpp"

namespace sluice {

// Trims `messages` in place to at most `max_bytes` of content: leading
// system messages are kept, then the newest messages that fit. The last
// message is always kept, even alone over the budget.
void fit_history(std::vector<ChatMessage>& messages, size_t max_bytes);

}  // namespace sluice
