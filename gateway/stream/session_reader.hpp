// SessionReader: a client-facing reader of sessions (a WebSocket connection,
// an SSE response). Sessions tell their readers that new events are in the
// journal; readers pull them from their own cursor at their own pace.
#pragma once

#include <string>

namespace sluice {

class SessionReader {
 public:
  virtual ~SessionReader() = default;
  // Called from any thread, never under a lock the reader could need; must
  // not block (implementations post to their own executor).
  virtual void on_session_events(const std::string& session_id) = 0;
};

}  // namespace sluice
