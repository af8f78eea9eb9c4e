// Client-to-gateway messages of protocol v1, as plain structs (docs/protocol.md).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "gateway/protocol/error_code.hpp"

namespace sluice {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" | "tool"
  std::string content;
  std::string tool_calls_json;  // assistant: the OpenAI "tool_calls" array it made
  std::string tool_call_id;     // tool: the call this result answers
};

struct ChatParams {
  // Each entry is a whitelisted sampling parameter and its value as compact,
  // validated JSON, forwarded to the engine as is.
  std::vector<std::pair<std::string, std::string>> fields;
};

struct ChatCommand {
  std::optional<std::string> session_id;  // absent: create a session
  std::string request_id;
  std::vector<ChatMessage> messages;
  std::string model;  // empty: the configured model
  ChatParams params;
  std::string traceparent;  // W3C trace context from the client, as sent ("" if none)
  std::string client;       // the client's address, for the access log (set by the face)
};

struct CancelCommand {
  std::string session_id;
  std::string request_id;
  // Needed to cancel a session that is not attached to this connection.
  std::string resume_token;
};

struct ResumeCommand {
  std::string session_id;
  uint64_t offset = 0;  // the last offset the client saw; 0: from the start
  std::string resume_token;
  std::string request_id;
};

struct HelloCommand {
  std::string token;   // "" when the connection authenticated at the upgrade
  std::string client;  // free text naming the client, for logs
  std::string request_id;
};

struct PingCommand {
  std::string request_id;
};

struct ProtocolError {
  ErrorCode code;
  std::string message;
  std::string request_id;  // echoed when the frame had a readable one
  std::string session_id;
};

using ClientMessage =
    std::variant<ChatCommand, CancelCommand, ResumeCommand, HelloCommand, PingCommand,
                 ProtocolError>;

// The request_id of any client message ("" when it had none).
inline const std::string& request_id_of(const ClientMessage& m) {
  return std::visit([](const auto& v) -> const std::string& { return v.request_id; }, m);
}

}  // namespace sluice
