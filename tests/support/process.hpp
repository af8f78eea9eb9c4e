// Process: a child program started by a test (the gateway, the simulator),
// with its output in files and its listening port read from a pipe it
// writes through --port-file /dev/fd/3. Killed when the object goes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

class Process {
 public:
  // Starts `argv`; when `with_port`, appends "--port-file /dev/fd/3" and
  // waits (up to `timeout`) for the port it writes.
  Process(std::vector<std::string> argv, std::vector<std::string> extra_env = {},
          bool with_port = true, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits for exit; the exit status, or nullopt at timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  std::string stdout_text() const;
  std::string stderr_text() const;
  // Waits (up to `timeout`) until stderr contains `needle`. The gateway logs
  // through an asynchronous queue, so a line logged before the port was
  // reported may reach the file a moment after it.
  bool wait_for_stderr(const std::string& needle,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  bool exited_ = false;
  std::string out_path_;
  std::string err_path_;
};

// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
uint16_t unused_port();

}  // namespace sluice::test
