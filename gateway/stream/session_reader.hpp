// SessionReader: a client-facing reader of sessions (a WebSocket connection,
// an SSE response). Sessions tell their readers that new events are in the
// journal; readers pull them from their own cursor at their own pace.
#pragma once

#include <string>

namespace sluice {

class Session;

class SessionReader {
 public:
  virtual ~SessionReader() = default;
  // `session` has new events in its journal. Called from any thread, never
  // under a lock the reader could need; must not block (implementations
  // note which session woke them and post to their own executor).
  virtual void on_session_events(const Session& session) = 0;
};

}  // namespace sluice
