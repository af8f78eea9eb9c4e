#include "gateway/protocol/error_code.hpp"

namespace sluice {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kBadJson: return "bad_json";
    case ErrorCode::kBadMessage: return "bad_message";
    case ErrorCode::kUnknownType: return "unknown_type";
    case ErrorCode::kFrameTooLarge: return "frame_too_large";
    case ErrorCode::kUnknownSession: return "unknown_session";
    case ErrorCode::kBadToken: return "bad_token";
    case ErrorCode::kTooManySessions: return "too_many_sessions";
    case ErrorCode::kSessionBusy: return "session_busy";
    case ErrorCode::kUpstreamUnavailable: return "upstream_unavailable";
    case ErrorCode::kUpstreamError: return "upstream_error";
    case ErrorCode::kUpstreamRejected: return "upstream_rejected";
    case ErrorCode::kUpstreamTimeout: return "upstream_timeout";
    case ErrorCode::kUpstreamDisconnected: return "upstream_disconnected";
    case ErrorCode::kUpstreamProtocol: return "upstream_protocol";
    case ErrorCode::kShuttingDown: return "shutting_down";
    case ErrorCode::kUnauthorized: return "unauthorized";
    case ErrorCode::kTooManyConnections: return "too_many_connections";
    case ErrorCode::kTooManyTurns: return "too_many_turns";
    case ErrorCode::kRateLimited: return "rate_limited";
    case ErrorCode::kStoreUnavailable: return "store_unavailable";
    case ErrorCode::kInstanceLost: return "instance_lost";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace sluice
