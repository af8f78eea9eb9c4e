// The stable error codes of protocol v1 (docs/protocol.md lists each with its
// meaning). Clients switch on these strings; never rename one.
#pragma once

#include <string_view>

namespace sluice {

enum class ErrorCode {
  kBadJson,             // frame is not a JSON object
  kBadMessage,          // a field is missing, of the wrong type or out of range
  kUnknownType,         // `type` names no message of protocol v1
  kFrameTooLarge,       // frame exceeds limits.max_frame_bytes
  kUnknownSession,      // session_id names no session of this connection
  kBadToken,            // a resume_token that is not the session's
  kTooManySessions,     // limits.max_sessions_per_connection reached
  kSessionBusy,         // a turn is already running on the session
  kUpstreamUnavailable, // no upstream could be reached
  kUpstreamError,       // the upstream answered 5xx / 429 or reported an error
  kUpstreamRejected,    // the upstream refused the request (4xx)
  kUpstreamTimeout,     // connect, first-token or inter-token timeout
  kUpstreamDisconnected,// the upstream stream ended before the answer did
  kUpstreamProtocol,    // the upstream sent something that is not an OpenAI stream
  kShuttingDown,        // the gateway is draining
  kUnauthorized,        // no valid token (auth.mode = "token")
  kTooManyConnections,  // limits.max_connections, or the principal's connections
  kTooManyTurns,        // the principal's concurrent turns
  kRateLimited,         // the principal's turns or tokens per minute, or messages per second
  kStoreUnavailable,    // the shared session store (Redis) cannot be reached
  kInstanceLost,        // the gateway instance running the turn was lost; it was not continued
  kInternal,            // a bug: reported, never silent
};

std::string_view to_string(ErrorCode code);

}  // namespace sluice
