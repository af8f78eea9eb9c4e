// FinishReason: why a turn ended. Typed inside the gateway; the strings are
// the protocol edge's (done.finish_reason, the OpenAI face, metrics labels,
// the turn log), and docs/protocol.md lists them. Never rename one.
#pragma once

#include <string_view>

namespace sluice {

enum class FinishReason {
  kStop,           // the model ended its answer (an end token, a stop string)
  kLength,         // max_tokens, or the context, was reached
  kToolCalls,      // the model asked for tools (the session's tool loop runs them)
  kContentFilter,  // a moderator stopped the answer
  kCancelled,      // the client (or the gateway's drain) cancelled the turn
  kError,          // the turn failed; an error event came first
};

std::string_view to_string(FinishReason reason);

// An upstream's choices[0].finish_reason. OpenAI's and vLLM's values map to
// their own; "function_call" (OpenAI's older name) is kToolCalls, "abort"
// (vLLM's, for a request it dropped) is kError; anything else an upstream
// invents ends the answer normally (kStop).
FinishReason finish_reason_from_upstream(std::string_view value);

}  // namespace sluice
