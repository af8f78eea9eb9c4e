// ToolRunner: runs the tools of loaded plugins for the model, on a bounded
// pool of worker threads (never an I/O thread), with a deadline per call, a
// cap on calls in flight per plugin and a circuit breaker per plugin. Every
// failure (unknown tool, arguments that break the schema, an error, an
// exception, a timeout, an open breaker) becomes an outcome with an error the
// model reads; the turn goes on.
//
// Threads: run() from any thread; the callback runs on the executor given,
// which must be a strand (the call's deadline timer lives there).
#pragma once

#include <boost/asio/any_io_executor.hpp>
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

namespace sluice {

struct ToolSource {
  std::string title, url, snippet;
};

struct ToolOutcome {
  std::string call_id;
  std::string name;
  std::string plugin;
  bool ok = false;
  std::string result_json;  // ok: the tool's JSON result
  std::string error;        // !ok: why, in a sentence the model can act on
  std::vector<ToolSource> sources;
  double ms = 0;
};

class ToolRunner {
 public:
  ToolRunner(const std::vector<const LoadedPlugin*>& plugins, ToolsConfig config);
  ~ToolRunner();  // stop()
  // Stops the workers, waiting briefly for calls still running; false when a
  // hung call was left behind (its plugin must then stay alive).
  bool stop();

  bool empty() const { return tools_.empty(); }
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

 private:
  struct Tool {
    const LoadedPlugin* plugin;
    const sluice_tool_v1* tool;
  };
  struct PluginState {
    int in_flight = 0;
    int failures = 0;  // consecutive
    std::chrono::steady_clock::time_point open_until{};
  };

  void record(const std::string& plugin, bool ok);
  void work();

  ToolsConfig config_;
  std::unordered_map<std::string, Tool> tools_;
  std::string tools_json_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> jobs_;
  std::unordered_map<std::string, PluginState> states_;
  int busy_ = 0;
  bool stopping_ = false;
  bool stopped_ = false;
  bool settled_ = true;
  std::vector<std::thread> workers_;
};

}  // namespace sluice
