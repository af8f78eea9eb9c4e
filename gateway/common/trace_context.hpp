// W3C trace context (https://www.w3.org/TR/trace-context/): the
// `traceparent` a client may send with a chat, and the one the gateway sends
// upstream, so that one trace id follows a turn into vLLM's logs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct TraceParent {
  std::string trace_id;   // 32 lowercase hex digits, not all zero
  std::string parent_id;  // 16 lowercase hex digits, not all zero
  std::string flags;      // 2 hex digits ("01": sampled)
};

// nullopt for anything that is not a valid traceparent (the caller then
// starts a new trace, as the spec says).
std::optional<TraceParent> parse_traceparent(std::string_view value);
// "00-<trace_id>-<span_id>-<flags>".
std::string format_traceparent(std::string_view trace_id, std::string_view span_id, std::string_view flags);
// A new span id: 16 lowercase hex digits, never all zero.
std::string make_span_id();

}  // namespace sluice
