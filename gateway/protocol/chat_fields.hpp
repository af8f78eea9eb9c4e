// The chat fields that protocol v1 and the OpenAI-compatible HTTP face share:
// messages and sampling parameters, read and validated the same way.
// Internal to the protocol module.
#pragma once

#include <simdjson.h>

#include <optional>
#include <string>
#include <vector>

#include "gateway/protocol/messages.hpp"

namespace sluice {

ProtocolError bad(std::string message);  // a kBadMessage error
std::optional<ProtocolError> read_chat_messages(simdjson::dom::element e, size_t max_messages,
                                                std::vector<ChatMessage>& out);
std::optional<ProtocolError> read_chat_params(simdjson::dom::element e, ChatParams& out);

}  // namespace sluice
