// PluginProcess: one plugin's tools running in a sluice-plugin-host process,
// started and supervised by the gateway. A crash, abort, exit, runaway
// allocation (the host's address space is capped) or hang of the plugin
// ends that process only: the calls in flight end with status "crash" and a
// message the model can read, the log names the plugin, the tools that were
// running and the signal or exit status, and the process is started again
// with backoff (100 ms, doubling to 30 s; back to 100 ms after a minute of
// good health). A call still running a second past its deadline has hung:
// the process is killed (and restarted) to free what it holds.
//
// Threads: call() from the tool runner's workers (it blocks, as an
// in-process invoke does); a reader thread of its own reads the replies and
// restarts the process.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/plugin/host_protocol.hpp"
#include "gateway/plugin/loaded_plugin.hpp"

namespace sluice {

class PluginProcess {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::string binary;    // sluice-plugin-host
    std::string path;      // the plugin's .so
    std::string settings;  // its settings JSON
    std::string name;      // its name (for the log)
    int workers = 4;
    size_t memory_mb = 0;  // the host's address-space cap; 0: none
  };
  struct Result {
    int32_t status = SLUICE_ERR_INTERNAL;
    sluice_tool_result result;
    size_t json_size = 0;  // the result's size, also when it was too large to travel
    // Set when the process gave no answer: "crash" (it died, or was killed
    // for a hang) or "unavailable" (it is being started again); the message
    // is for the model.
    std::string failure;
    std::string failure_message;
  };

  explicit PluginProcess(Options options);
  ~PluginProcess();  // stop()
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  // Starts the process and waits until the plugin is loaded there (or says
  // why not). Then the supervisor keeps it running until stop().
  bool start(std::string& error);
  void stop();

  // Runs tool `index` (its place in the plugin's descriptor; a retriever's
  // when `retriever`) with `args`, blocking until the answer, the process's
  // death, or stop().
  Result call(uint32_t index, const std::string& tool, const std::string& args, Clock::time_point deadline,
              bool retriever = false);

  // Moderators in the process (moderator_isolation = "process"): a stream
  // per answer, then one verdict per piece of text. Null / false when the
  // process did not answer by `deadline` (it is then killed and started
  // again) or is gone: the caller fails closed or open.
  // A stream lives in one process: a call for it after a restart fails.
  struct RemoteStream {
    uint64_t generation = 0;
    uint64_t id = 0;
  };
  std::optional<RemoteStream> open_stream(uint32_t moderator, const std::string& name, Clock::time_point deadline);
  struct Verdict {
    int32_t status = SLUICE_ERR_INTERNAL;
    sluice_verdict verdict;
  };
  std::optional<Verdict> moderate(const RemoteStream& stream, const std::string& name, std::string_view pending,
                                  size_t new_from, uint32_t flags, Clock::time_point deadline);
  void close_stream(const RemoteStream& stream);

  pid_t pid() const;
  int restarts() const { return restarts_.load(); }
  // The plugin's counters (counter_add) in its host processes: those of the
  // ones that ended, plus the running one's as of its last answer.
  std::map<std::string, double> counters() const;

 private:
  // A request waiting for its reply: the reply's frame, or why none came.
  struct Pending {
    std::string what;  // "tool NAME", "moderator NAME"
    bool done = false;
    std::string frame;    // the reply, when one came
    std::string failure;  // else "crash" / "unavailable"
    std::string failure_message;
    uint64_t generation = 0;  // of the process it went to
  };
  // Sends `message` (its id first, from next_id) and waits for the reply
  // with that id, killing the process when none comes by `deadline` + `grace`.
  // `generation` (when not 0): only to that process (a stream's).
  Pending request(hostproto::Type type, const std::string& what, const std::function<void(hostproto::Writer&)>& body,
                  Clock::time_point deadline, Clock::duration grace, uint64_t generation = 0);
  // Writes a message to process `generation`, unless it is gone (its
  // socket closed: the descriptor may already be another's).
  bool send_to(uint64_t generation, const std::string& payload);

  bool spawn(std::string& error);  // with mutex_ released; sets fd_, pid_
  void supervise();                // the reader thread
  void fail_pending(const std::string& why);  // with mutex_ held

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int fd_ = -1;
  pid_t pid_ = -1;
  uint64_t generation_ = 0;  // which process: a kill for a hang aims at the one that hangs
  bool ready_ = false;
  bool stopping_ = false;
  std::string killed_for_;   // why the gateway killed it, if it did
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Pending*> pending_;
  std::mutex write_mutex_;
  std::thread reader_;
  std::atomic<int> restarts_{0};
  std::map<std::string, double> counters_;  // under mutex_: the running process's
  std::map<std::string, double> carried_;   // under mutex_: the ended ones'

};

}  // namespace sluice
