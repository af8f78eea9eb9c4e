// ToolRunner: runs the tools of loaded plugins for the model, never on an
// I/O thread. Each plugin has a lane of its own: its worker threads
// (tools.workers), its queue, its cap on calls in flight (tools.max_in_flight)
// and its circuit breaker, so a plugin whose calls hang or fail uses up only
// its own lane. A call's deadline (tools.timeout_ms) starts when a worker
// takes it up; time spent queued behind the plugin's own calls is bounded by
// the same timeout but charged to neither the deadline nor the breaker.
//
// Statuses (ToolOutcome::status): not_found and invalid_argument are answers
// the model reads ("no such city"), not failures; unavailable, internal
// (an invalid or oversized result too), timeout and crash count toward the
// breaker. Every error is logged at warn with plugin, tool and status. Every
// failure (unknown tool, arguments that break the schema, an error, a
// timeout, an open breaker) becomes an outcome with an error the model
// reads; the turn goes on.
//
// Threads: run() from any thread; the callback runs on the executor given,
// which must be a strand (the call's deadline timer lives there).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"
#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/plugin_process.hpp"

namespace sluice {

struct ToolSource {
  std::string title, url, snippet;
};

using Passage = sluice_tool_result::Passage;

struct ToolOutcome {
  std::string call_id;
  std::string name;
  std::string plugin;
  bool ok = false;
  // "ok", "invalid_argument", "not_found", "unavailable", "internal",
  // "timeout", and before any call: "unknown_tool", "invalid_arguments"
  // (the schema), "busy", "breaker_open". Also the metric's `result`.
  std::string status;
  std::string result_json;  // ok: the tool's JSON result
  std::string error;        // !ok: why, in a sentence the model can act on
  std::vector<ToolSource> sources;
  std::vector<Passage> passages;  // a retriever's (ABI 1.2)
  double ms = 0;
};

class ToolRunner {
 public:
  // `processes`: the plugins whose tools run in a host process of their own.
  // `retrieval_timeout`: a retriever's deadline (retrieval.timeout_ms),
  // from the request on: its wait in the queue counts.
  ToolRunner(const std::vector<const LoadedPlugin*>& plugins, ToolsConfig config,
             const std::unordered_map<const LoadedPlugin*, PluginProcess*>& processes = {},
             std::chrono::milliseconds retrieval_timeout = std::chrono::milliseconds(1500));
  ~ToolRunner();  // stop()
  // Stops the workers, waiting briefly for calls still running; false when a
  // hung call was left behind (its plugin must then stay alive).
  bool stop();

  bool empty() const { return tools_.empty() && retrievers_.empty(); }
  bool has_tools() const { return !tools_.empty(); }
  // The OpenAI "tools" array offered to the model.
  const std::string& tools_json() const { return tools_json_; }
  const ToolsConfig& config() const { return config_; }
  // The plugin offering `tool` ("" for none).
  std::string plugin_of(const std::string& tool) const {
    const auto it = tools_.find(tool);
    return it == tools_.end() ? std::string() : it->second.plugin->name();
  }

  // Per plugin with tools: whether its circuit breaker is open now.
  std::vector<std::pair<std::string, bool>> breakers();

  void run(ToolCall call, boost::asio::any_io_executor executor,
           std::function<void(ToolOutcome)> done);

  // Retrievers (ABI 1.2), in the order the plugins were loaded.
  size_t retriever_count() const { return retrievers_.size(); }
  // Asks retriever `index` for passages (`request_json`: plugin.h's
  // retrieval request). The outcome's `name` is the retriever's; `passages`
  // are valid UTF-8, best first as the retriever ranked them. It runs in
  // its plugin's lane (workers, breaker, host process) as tools do.
  void retrieve(size_t index, std::string request_json, boost::asio::any_io_executor executor,
                std::function<void(ToolOutcome)> done);

 private:
  struct Lane;
  struct Tool {
    const LoadedPlugin* plugin;
    const sluice_tool_v1* tool;
    Lane* lane;
    std::chrono::milliseconds timeout;  // tools.timeout_ms, or the tool's own when shorter (ABI 1.1)
    PluginProcess* process;  // its tools run there; null: in the gateway
    uint32_t index;          // its place in the plugin's descriptor
    const sluice_retriever_v1* retriever = nullptr;  // set: a retriever, not a tool (`tool` is null)
  };
  // One plugin's share: its workers, queue, calls in flight and breaker.
  struct Lane {
    std::string plugin;
    std::deque<std::function<void()>> jobs;
    std::vector<std::thread> workers;
    int in_flight = 0;  // queued or running, until invoke returns
    int busy = 0;       // running on a worker
    int failures = 0;   // consecutive, of the kinds that count
    std::chrono::steady_clock::time_point open_until{};
  };

  // With mutex_ held: a finished call of `lane`'s, by status.
  void record(Lane& lane, const std::string& status);
  // Queues a call of `tool` (a tool's or a retriever's) in its lane.
  void dispatch(const Tool& tool, std::string args, ToolOutcome base, boost::asio::any_io_executor executor,
                std::function<void(ToolOutcome)> done);
  Lane* lane_of(const LoadedPlugin* plugin);
  void work(Lane& lane);

  ToolsConfig config_;
  std::unordered_map<std::string, Tool> tools_;
  std::vector<Tool> retrievers_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::string tools_json_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  bool stopping_ = false;
  std::atomic<bool> abandoning_{false};  // stop(): calls still running are told so (result_cancelled)
  bool stopped_ = false;
  bool settled_ = true;
};

}  // namespace sluice
