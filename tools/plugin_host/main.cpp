// sluice-plugin-host: runs one plugin's tools (and retrievers) in a process of its own, so
// that a crash, an abort, an exit, a runaway allocation or a hang in the
// plugin ends only this process. Started and supervised by the gateway
// (gateway/plugin/plugin_process.cpp), never by hand: it speaks the framed
// protocol of gateway/plugin/host_protocol.hpp on file descriptor 3.
//
// It loads the plugin the way the gateway does (same checks), answers
// kReady, then runs each kCall on one of its workers and writes the result.
// It exits when the gateway closes the socket or dies (PR_SET_PDEATHSIG).
// The plugin's stdout goes to stderr (the gateway's log), never elsewhere.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/plugin/host_protocol.hpp"
#include "gateway/plugin/loaded_plugin.hpp"

namespace hp = sluice::hostproto;

namespace {

constexpr int kFd = 3;

struct Call {
  uint64_t id = 0;
  uint32_t tool = 0;  // the tool's (or retriever's) place in the descriptor
  std::string args;
  uint64_t ms_left = 0;
  uint32_t kind = hp::kTool;
};

std::mutex write_mutex;

void send(const hp::Writer& w) {
  std::lock_guard lock(write_mutex);
  if (!hp::write_frame(kFd, w.payload())) _exit(0);  // the gateway is gone
}

}  // namespace

int main(int argc, char** argv) {
  // Dies with the gateway, whatever kills it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0;
  signal(SIGPIPE, SIG_IGN);
  close_range(4, ~0U, 0);  // nothing of the gateway's (its listening sockets) stays open here
  dup2(2, 1);  // a plugin's printf lands in the gateway's log, not on a protocol or a terminal
  size_t memory_mb = 0;
  std::string name = "?";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--memory-mb") memory_mb = std::strtoull(argv[i + 1], nullptr, 10);
    if (key == "--name") name = argv[i + 1];
  }
  auto logger = spdlog::stderr_logger_mt("plugin-host");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] [plugin-host " + name + " pid " + std::to_string(getpid()) +
                      "] %v");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // A plugin that allocates without end gets allocation failures (an
  // exception, an error status) or dies here, never the gateway's memory.
  if (memory_mb > 0) {
    const rlim_t bytes = static_cast<rlim_t>(memory_mb) << 20;
    rlimit limit{bytes, bytes};
    setrlimit(RLIMIT_AS, &limit);
  }
#endif

  std::string frame;
  if (!hp::read_frame(kFd, frame)) return 0;
  hp::Reader load(frame);
  uint8_t type = 0;
  std::string path, settings;
  uint32_t workers = 1;
  if (!load.u8(type) || type != hp::kLoad || !load.str(path) || !load.str(settings) || !load.u32(workers)) {
    send(hp::Writer(hp::kLoadFailed).str("the gateway's first message was not kLoad"));
    return 1;
  }
  std::string error;
  auto plugin = sluice::LoadedPlugin::load(path, settings, error);
  if (!plugin) {
    send(hp::Writer(hp::kLoadFailed).str(error));
    return 1;
  }
  send(hp::Writer(hp::kReady));

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Call> calls;
  auto work = [&] {
    for (;;) {
      Call c;
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return !calls.empty(); });
        c = std::move(calls.front());
        calls.pop_front();
      }
      sluice_tool_result r;
      r.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c.ms_left);
      int32_t status = SLUICE_ERR_INTERNAL;
      if (c.kind == hp::kRetriever && c.tool < plugin->retrievers().size()) {
        const sluice_retriever_v1* t = plugin->retrievers()[c.tool];
        status = t->retrieve(plugin->instance(), {c.args.data(), c.args.size()}, &r);
      } else if (c.kind == hp::kTool && c.tool < plugin->tools().size()) {
        const sluice_tool_v1* t = plugin->tools()[c.tool];
        status = t->invoke(plugin->instance(), {c.args.data(), c.args.size()}, &r);
      } else {
        r.error = "no such tool";
      }
      hp::Writer w(hp::kResult);
      w.u64(c.id).i32(status);
      w.str(r.json.size() > hp::kMaxResultBytes ? std::string_view() : std::string_view(r.json));
      w.u64(r.json.size()).str(r.error).u32(static_cast<uint32_t>(r.sources.size()));
      for (const auto& s : r.sources) w.str(s.title).str(s.url).str(s.snippet);
      w.u32(static_cast<uint32_t>(r.passages.size()));
      for (const auto& p : r.passages) w.str(p.id).str(p.title).str(p.url).str(p.text).f64(p.score).str(p.metadata_json);
      // The plugin's counters as they stand (counter_add): the gateway exports them.
      const auto counters = plugin->counters();
      w.u32(static_cast<uint32_t>(counters.size()));
      for (const auto& [name, value] : counters) w.str(name).f64(value);
      send(w);
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, workers); ++i) threads.emplace_back(work);
  // Moderator streams (moderator_isolation = "process"): run here, on this
  // thread, in the order they come (one answer's pieces never overlap).
  struct Stream {
    const sluice_moderator_v1* moderator;
    void* state;
  };
  std::unordered_map<uint64_t, Stream> streams;
  uint64_t next_stream = 1;
  for (;;) {
    if (!hp::read_frame(kFd, frame)) break;  // the gateway closed the socket: stop
    hp::Reader in(frame);
    Call c;
    if (!in.u8(type) || !in.u64(c.id)) break;
    if (type == hp::kModOpen) {
      uint32_t index = 0;
      int32_t status = SLUICE_ERR_INVALID_ARGUMENT;
      uint64_t handle = 0;
      if (in.u32(index) && index < plugin->moderators().size()) {
        const sluice_moderator_v1* m = plugin->moderators()[index];
        void* state = nullptr;
        status = m->stream_open(plugin->instance(), &state);
        if (status == SLUICE_OK) {
          handle = next_stream++;
          streams[handle] = {m, state};
        }
      }
      send(hp::Writer(hp::kModOpened).u64(c.id).i32(status).u64(handle));
      continue;
    }
    if (type == hp::kModText) {
      uint64_t handle = 0, new_from = 0;
      uint32_t flags = 0;
      std::string pending;
      sluice_verdict v;
      int32_t status = SLUICE_ERR_INVALID_ARGUMENT;
      if (in.u64(handle) && in.str(pending) && in.u64(new_from) && in.u32(flags)) {
        if (const auto it = streams.find(handle); it != streams.end()) {
          status = it->second.moderator->on_text(plugin->instance(), it->second.state, {pending.data(), pending.size()},
                                                 new_from, flags, &v);
        }
      }
      send(hp::Writer(hp::kVerdict).u64(c.id).i32(status).i32(v.calls).i32(v.action).u64(v.hold).str(v.text).str(v.reason));
      continue;
    }
    if (type == hp::kModClose) {
      uint64_t handle = 0;
      if (in.u64(handle)) {
        if (const auto it = streams.find(handle); it != streams.end()) {
          it->second.moderator->stream_close(plugin->instance(), it->second.state);
          streams.erase(it);
        }
      }
      continue;
    }
    if (type != hp::kCall || !in.u32(c.tool) || !in.str(c.args) || !in.u64(c.ms_left) || !in.u32(c.kind)) {
      spdlog::error("a message from the gateway is not a call; stopping");
      break;
    }
    {
      std::lock_guard lock(mutex);
      calls.push_back(std::move(c));
    }
    wake.notify_one();
  }
  // Calls may still run inside the plugin: leave without waiting for them,
  // and without destructors or exit handlers that could meet them.
  std::fflush(nullptr);
  _exit(0);
}
