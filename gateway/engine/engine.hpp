// The Engine interface: what produces an answer, token by token. Two engines
// implement it: openai (a remote OpenAI-compatible stream, such as vLLM) and,
// later, local (an in-process model).
//
// Threads: Engine::start and TurnHandle::cancel may be called from any
// thread. A TurnSink is called on the engine's own threads, never two calls
// at once for one turn; on_end is called exactly once and is the last call.
// A sink must not block: it hands the event to its session's executor.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/protocol/error_code.hpp"
#include "gateway/protocol/finish_reason.hpp"
#include "gateway/protocol/messages.hpp"
#include "gateway/protocol/server_messages.hpp"

namespace sluice {

struct TurnRequest {
  std::string trace_id;
  std::string model;  // empty: the engine's configured model
  std::vector<ChatMessage> messages;
  ChatParams params;
  std::string tools_json;  // an OpenAI "tools" array offered to the model; "" for none
  std::string traceparent; // W3C trace context for the upstream request ("" for none)
  // Set when another instance began this answer and was lost: the engine
  // continues this partial assistant message instead of starting a new one
  // (OpenAI-compatible upstreams: vLLM's continue_final_message).
  std::string continue_final;
};

// A tool call the model asked for, gathered from the stream's fragments.
struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as the model wrote it (not yet checked)
};

struct TurnError {
  ErrorCode code;
  std::string message;
};

struct TurnResult {
  // As the model reported it; kCancelled after TurnHandle::cancel; kError
  // when `error` is set.
  FinishReason finish_reason = FinishReason::kStop;
  std::vector<ToolCall> tool_calls;  // with kToolCalls
  Usage usage;
  bool has_usage = false;  // false: usage is the gateway's own count
  std::optional<TurnError> error;
  std::string engine;    // "openai", "local"
  std::string model;     // the model that answered
  std::string upstream;  // the endpoint that served the turn, for logs
  int attempts = 0;
};

class TurnSink {
 public:
  virtual ~TurnSink() = default;
  virtual void on_delta(std::string text) = 0;
  virtual void on_end(TurnResult result) = 0;
};

class TurnHandle {
 public:
  virtual ~TurnHandle() = default;
  // Stops the turn and releases the upstream at once. Idempotent; on_end
  // follows with FinishReason::kCancelled unless the turn had already ended.
  virtual void cancel() = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::unique_ptr<TurnHandle> start(TurnRequest request,
                                            std::shared_ptr<TurnSink> sink) = 0;
  // "openai", "local": the engine label of metrics and logs.
  virtual std::string_view name() const = 0;
  // False while the engine cannot serve turns (every upstream ejected).
  virtual bool ready() const = 0;
  // Cancels every running turn; called once when the gateway drains.
  virtual void shutdown() = 0;
  // True when the sink's callbacks come on I/O threads (the openai engine's
  // shards); false when they come on the engine's own compute thread (the
  // local engine's scheduler), which must never wait for a moderator or a
  // journal: the session then hands each event to a thread of its own.
  virtual bool calls_back_on_io_threads() const { return true; }
};

}  // namespace sluice
