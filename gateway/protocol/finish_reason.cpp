#include "gateway/protocol/finish_reason.hpp"

namespace sluice {

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kToolCalls: return "tool_calls";
    case FinishReason::kContentFilter: return "content_filter";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "stop";
}

FinishReason finish_reason_from_upstream(std::string_view value) {
  if (value == "length") return FinishReason::kLength;
  if (value == "tool_calls" || value == "function_call") return FinishReason::kToolCalls;
  if (value == "content_filter") return FinishReason::kContentFilter;
  if (value == "abort") return FinishReason::kError;
  return FinishReason::kStop;
}

}  // namespace sluice
