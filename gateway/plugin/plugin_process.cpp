#include "gateway/plugin/plugin_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "gateway/plugin/host_protocol.hpp"

extern char** environ;

namespace sluice {

namespace hp = hostproto;

namespace {
constexpr auto kReadyTimeout = std::chrono::seconds(10);
constexpr auto kHangGrace = std::chrono::seconds(1);  // past the deadline, a call has hung
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(30);
constexpr auto kHealthy = std::chrono::seconds(60);  // lived this long: the backoff starts over

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + " (SIG" + (name ? name : "?") + ", " +
           (sigdescr_np(sig) ? sigdescr_np(sig) : "?") + ")";
  }
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// Reaps `pid`: it closed its end, so it is exiting; one that lingers is killed.
int reap(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}
}  // namespace

PluginProcess::PluginProcess(Options options) : options_(std::move(options)) {}

PluginProcess::~PluginProcess() { stop(); }

std::map<std::string, double> PluginProcess::counters() const {
  std::lock_guard lock(mutex_);
  auto out = carried_;
  for (const auto& [name, value] : counters_) out[name] += value;
  return out;
}

pid_t PluginProcess::pid() const {
  std::lock_guard lock(mutex_);
  return pid_;
}

bool PluginProcess::spawn(std::string& error) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    error = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  int child_end = sv[1];
  if (child_end == 3) {  // dup2(3, 3) would leave it close-on-exec
    child_end = fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
    close(sv[1]);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_end, 3);
  const std::string memory = std::to_string(options_.memory_mb);
  std::vector<char*> argv{const_cast<char*>(options_.binary.c_str()), const_cast<char*>("--name"),
                          const_cast<char*>(options_.name.c_str()), const_cast<char*>("--memory-mb"),
                          const_cast<char*>(memory.c_str()), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, options_.binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(child_end);
  if (rc != 0) {
    close(sv[0]);
    error = "cannot start " + options_.binary + ": " + std::strerror(rc);
    return false;
  }
  hp::Writer load(hp::kLoad);
  load.str(options_.path).str(options_.settings).u32(static_cast<uint32_t>(std::max(1, options_.workers)));
  std::string frame;
  const bool sent = hp::write_frame(sv[0], load.payload());
  const bool answered =
      sent && hp::read_frame(sv[0], frame,
                             static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kReadyTimeout).count()));
  uint8_t type = 0;
  hp::Reader in(frame);
  if (!answered || !in.u8(type) || type != hp::kReady) {
    std::string why;
    if (answered && type == hp::kLoadFailed) {
      in.str(why);
    } else if (!answered) {
      kill(pid, SIGKILL);
      why = "its host process " + describe_exit(reap(pid)) + " before the plugin was loaded";
      pid = -1;
    }
    if (pid > 0) reap(pid);
    close(sv[0]);
    error = why.empty() ? "its host process gave no answer" : why;
    return false;
  }
  std::lock_guard lock(mutex_);
  fd_ = sv[0];
  pid_ = pid;
  ++generation_;
  ready_ = true;
  killed_for_.clear();
  changed_.notify_all();
  return true;
}

bool PluginProcess::start(std::string& error) {
  if (!spawn(error)) return false;
  spdlog::info("plugin {}: runs in host process {} ({})", options_.name, pid(), options_.binary);
  reader_ = std::thread([this] { supervise(); });
  return true;
}

void PluginProcess::stop() {
  pid_t pid = -1;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    pid = pid_;
    if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);  // the host sees EOF and leaves; the reader wakes
    changed_.notify_all();
  }
  if (reader_.joinable()) reader_.join();
  (void)pid;
}

void PluginProcess::fail_pending(const std::string& why) {
  for (auto& [id, p] : pending_) {
    if (p->done) continue;
    p->done = true;
    p->failure = "crash";
    p->failure_message = "the tool's process " + why + "; answer without it or try again later";
  }
  changed_.notify_all();
}

void PluginProcess::supervise() {
  auto backoff = kFirstBackoff;
  auto started = Clock::now();
  std::string frame;
  for (;;) {
    int fd = -1;
    {
      std::lock_guard lock(mutex_);
      fd = fd_;
    }
    // Replies, until the process ends (or stop() shuts the socket).
    while (hp::read_frame(fd, frame)) {
      // Every reply starts with its type and the id of its request.
      hp::Reader in(frame);
      uint8_t type = 0;
      uint64_t id = 0;
      if (!in.u8(type) || (type != hp::kResult && type != hp::kModOpened && type != hp::kVerdict) || !in.u64(id)) {
        spdlog::error("plugin {}: its host process sent a message that is not a reply; it is restarted", options_.name);
        break;
      }
      std::lock_guard lock(mutex_);
      if (auto it = pending_.find(id); it != pending_.end() && !it->second->done) {
        it->second->done = true;
        it->second->frame = std::move(frame);
        changed_.notify_all();
      }
    }
    pid_t pid = -1;
    std::string killed_for;
    std::vector<std::string> running;
    {
      std::lock_guard write_lock(write_mutex_);  // no write is under way to the descriptor closed here
      std::lock_guard lock(mutex_);
      ready_ = false;
      pid = pid_;
      pid_ = -1;
      killed_for = killed_for_;
      for (const auto& [name, value] : counters_) carried_[name] += value;  // they start over in the next one
      counters_.clear();
      for (const auto& [id, p] : pending_) {
        if (!p->done) running.push_back(p->what);
      }
      close(fd_);
      fd_ = -1;
    }
    const int status = pid > 0 ? reap(pid) : 0;
    std::string how = killed_for.empty() ? describe_exit(status) : killed_for;
    {
      std::lock_guard lock(mutex_);
      fail_pending(killed_for.empty() ? "crashed (" + how + ")" : "was stopped: " + killed_for);
      if (stopping_) return;
    }
    if (Clock::now() - started >= kHealthy) backoff = kFirstBackoff;
    std::string tools;
    for (const auto& t : running) tools += (tools.empty() ? "" : ", ") + t;
    spdlog::error("plugin {}: its host process (pid {}) {}{}; other plugins and sessions are unaffected; "
                  "starting it again in {} ms",
                  options_.name, pid, how, running.empty() ? std::string() : " while running " + tools,
                  backoff.count());
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        if (changed_.wait_for(lock, backoff, [&] { return stopping_; })) return;
      }
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
      std::string error;
      started = Clock::now();
      if (spawn(error)) {
        ++restarts_;
        spdlog::info("plugin {}: its host process is back (pid {})", options_.name, this->pid());
        break;
      }
      spdlog::error("plugin {}: its host process could not be started again: {}; next try in {} ms", options_.name,
                    error, backoff.count());
    }
  }
}

PluginProcess::Pending PluginProcess::request(hp::Type type, const std::string& what,
                                              const std::function<void(hp::Writer&)>& body,
                                              Clock::time_point deadline, Clock::duration grace,
                                              uint64_t only) {
  Pending p;
  p.what = what;
  uint64_t id = 0;
  uint64_t generation = 0;
  {
    std::unique_lock lock(mutex_);
    // Being started again: wait for it, within the deadline.
    if (only == 0) changed_.wait_until(lock, deadline, [&] { return ready_ || stopping_; });
    if (!ready_ || stopping_ || (only != 0 && only != generation_)) {
      p.done = true;
      p.failure = "unavailable";
      p.failure_message = "the tool's process is being started again; try again later";
      return p;
    }
    id = next_id_++;
    pending_[id] = &p;
    generation = generation_;
    p.generation = generation;
  }
  hp::Writer w(type);
  w.u64(id);
  body(w);
  send_to(generation, w.payload());  // a failure shows as the process's end, to the reader
  std::unique_lock lock(mutex_);
  if (!changed_.wait_until(lock, deadline + grace, [&] { return p.done; })) {
    // Hung: the process is killed to get its threads back (the reader restarts it).
    if (generation_ == generation && pid_ > 0 && killed_for_.empty()) {
      killed_for_ = "killed by the gateway: " + what + " hung past its deadline";
      spdlog::error("plugin {}: {} still runs {} ms past its deadline; killing its host process (pid {})",
                    options_.name, what, std::chrono::duration_cast<std::chrono::milliseconds>(grace).count(), pid_);
      kill(pid_, SIGKILL);
    }
    changed_.wait(lock, [&] { return p.done; });  // the reader fails it once the process is gone
  }
  pending_.erase(id);
  return p;
}

PluginProcess::Result PluginProcess::call(uint32_t index, const std::string& tool, const std::string& args,
                                          Clock::time_point deadline, bool retriever) {
  const auto now = Clock::now();
  const uint64_t ms_left =
      deadline > now ? static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count())
                     : 0;
  Pending p = request(
      hp::kCall, (retriever ? "retriever " : "tool ") + tool,
      [&](hp::Writer& w) { w.u32(index).str(args).u64(ms_left).u32(retriever ? hp::kRetriever : hp::kTool); }, deadline,
      kHangGrace);
  Result r;
  if (!p.failure.empty()) {
    r.failure = std::move(p.failure);
    r.failure_message = std::move(p.failure_message);
    return r;
  }
  hp::Reader in(p.frame);
  uint8_t type = 0;
  uint64_t id = 0, size = 0;
  uint32_t sources = 0;
  if (!in.u8(type) || type != hp::kResult || !in.u64(id) || !in.i32(r.status) || !in.str(r.result.json) ||
      !in.u64(size) || !in.str(r.result.error) || !in.u32(sources)) {
    r.failure = "crash";
    r.failure_message = "the tool's process gave a reply that is not a result";
    return r;
  }
  r.json_size = size;
  for (uint32_t i = 0; i < sources; ++i) {
    sluice_tool_result::Source s;
    if (!in.str(s.title) || !in.str(s.url) || !in.str(s.snippet)) return r;
    r.result.sources.push_back(std::move(s));
  }
  uint32_t passages = 0;
  if (!in.u32(passages)) return r;
  for (uint32_t i = 0; i < passages; ++i) {
    sluice_tool_result::Passage s;
    if (!in.str(s.id) || !in.str(s.title) || !in.str(s.url) || !in.str(s.text) || !in.f64(s.score) ||
        !in.str(s.metadata_json)) {
      return r;
    }
    r.result.passages.push_back(std::move(s));
  }
  uint32_t counters = 0;
  std::map<std::string, double> snapshot;
  if (!in.u32(counters)) return r;
  for (uint32_t i = 0; i < counters; ++i) {
    std::string name;
    double value = 0;
    if (!in.str(name) || !in.f64(value)) return r;
    snapshot[std::move(name)] = value;
  }
  std::lock_guard lock(mutex_);
  if (generation_ == p.generation) counters_ = std::move(snapshot);
  return r;
}

bool PluginProcess::send_to(uint64_t generation, const std::string& payload) {
  std::lock_guard write_lock(write_mutex_);
  int fd = -1;
  {
    std::lock_guard lock(mutex_);
    if (generation != generation_ || fd_ < 0) return false;
    fd = fd_;
  }
  return hp::write_frame(fd, payload);
}

std::optional<PluginProcess::RemoteStream> PluginProcess::open_stream(uint32_t moderator, const std::string& name,
                                                                      Clock::time_point deadline) {
  Pending p = request(hp::kModOpen, "moderator " + name, [&](hp::Writer& w) { w.u32(moderator); }, deadline,
                      std::chrono::milliseconds(0));
  hp::Reader in(p.frame);
  uint8_t type = 0;
  uint64_t id = 0, stream = 0;
  int32_t status = 0;
  if (!p.failure.empty() || !in.u8(type) || type != hp::kModOpened || !in.u64(id) || !in.i32(status) ||
      !in.u64(stream) || status != SLUICE_OK) {
    return std::nullopt;
  }
  return RemoteStream{p.generation, stream};
}

std::optional<PluginProcess::Verdict> PluginProcess::moderate(const RemoteStream& stream, const std::string& name,
                                                              std::string_view pending, size_t new_from,
                                                              uint32_t flags, Clock::time_point deadline) {
  Pending p = request(
      hp::kModText, "moderator " + name,
      [&](hp::Writer& w) { w.u64(stream.id).str(pending).u64(new_from).u32(flags); }, deadline,
      std::chrono::milliseconds(0), stream.generation);
  hp::Reader in(p.frame);
  uint8_t type = 0;
  uint64_t id = 0, hold = 0;
  Verdict v;
  int32_t calls = 0, action = 0;
  if (!p.failure.empty() || !in.u8(type) || type != hp::kVerdict || !in.u64(id) || !in.i32(v.status) ||
      !in.i32(calls) || !in.i32(action) || !in.u64(hold) || !in.str(v.verdict.text) || !in.str(v.verdict.reason)) {
    return std::nullopt;
  }
  v.verdict.calls = calls;
  v.verdict.action = action;
  v.verdict.hold = hold;
  return v;
}

void PluginProcess::close_stream(const RemoteStream& stream) {
  hp::Writer w(hp::kModClose);
  w.u64(0).u64(stream.id);
  send_to(stream.generation, w.payload());  // gone with its process otherwise
}

}  // namespace sluice
