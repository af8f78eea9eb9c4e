// FrameSink: where a session's outgoing frames go (a client connection).
// Called on the connection's executor only.
#pragma once

#include <string>

namespace sluice {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void send_frame(std::string frame) = 0;
  // A turn of one of the connection's sessions has ended.
  virtual void on_turn_end() = 0;
};

}  // namespace sluice
