// ChunkDecoder: reads one `data:` payload of an OpenAI chat-completions
// stream (as vLLM sends it) with simdjson, and error bodies of failed
// requests. Owns a reusable parser: one per thread of use.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/protocol/server_messages.hpp"

namespace sluice {

// One fragment of a streamed tool call: fragments with the same index are
// one call; id and name come once, arguments arrive in pieces.
struct ToolCallFragment {
  int64_t index = 0;
  std::string id;
  std::string name;
  std::string arguments;
};

struct StreamChunk {
  enum class Kind {
    kData,       // a chat.completion.chunk (content may be empty)
    kDone,       // the literal [DONE]
    kError,      // an error object sent inside the stream
    kMalformed,  // not JSON, or not a chunk
  };
  Kind kind = Kind::kMalformed;
  std::string content;        // choices[0].delta.content, "" if none
  std::vector<ToolCallFragment> tool_calls;  // choices[0].delta.tool_calls
  std::string finish_reason;  // choices[0].finish_reason, "" while null
  std::optional<Usage> usage; // the usage chunk (stream_options.include_usage)
  std::string message;        // kError / kMalformed: what was wrong
};

class ChunkDecoder {
 public:
  ChunkDecoder();
  ~ChunkDecoder();
  ChunkDecoder(const ChunkDecoder&) = delete;
  ChunkDecoder& operator=(const ChunkDecoder&) = delete;

  StreamChunk decode(std::string_view data);

  // The message of an error response body: vLLM's {"object":"error",
  // "message":...}, OpenAI's {"error":{"message":...}}, FastAPI's
  // {"detail":...}, or the start of the body as text. Always valid UTF-8.
  std::string error_body_message(std::string_view body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
