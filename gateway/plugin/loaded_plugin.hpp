// LoadedPlugin: one plugin shared object, opened with dlopen, checked against
// ABI v1 (sdk/include/sluice/plugin.h) and instantiated with its settings.
// Also the host side of the ABI: the host table and the objects behind its
// opaque handles (sluice_plugin_ctx, sluice_tool_result, sluice_verdict).
//
// Threads: load and the destructor on the main thread; tools and moderators
// are called from the threads the ABI names; counters() from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <atomic>
#include <chrono>

#include "sluice/plugin.h"

// The host's objects behind the ABI's opaque handles.
struct sluice_plugin_ctx {
  std::string plugin;  // name, once known; the path before
  std::string config_json;
  std::mutex mutex;
  std::string error;  // set_error's last message
  std::map<std::string, double> counters;
};

struct sluice_tool_result {
  struct Source {
    std::string title, url, snippet;
  };
  // A retriever's passage (ABI 1.2).
  struct Passage {
    std::string id, title, url, text;
    double score = 0;
    std::string metadata_json;  // an object, or empty
  };
  std::string json;
  std::vector<Source> sources;
  std::vector<Passage> passages;
  std::string error;
  // When the call's result stops mattering (result_cancelled, result_time_left_ms).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* stopping = nullptr;  // the host is stopping (may be null)
};

struct sluice_verdict {
  int calls = 0;  // verdict functions called; exactly one is valid
  int32_t action = SLUICE_PASS;
  size_t hold = 0;
  std::string text;    // REPLACE
  std::string reason;  // REPLACE, STOP
};

namespace sluice {

// The host table every plugin gets.
const sluice_host_v1& plugin_host_table();

class LoadedPlugin {
 public:
  // Opens, checks and creates the plugin at `path`; null with `error` (one
  // sentence naming the file and what is wrong) when any step fails.
  static std::unique_ptr<LoadedPlugin> load(const std::string& path, const std::string& settings_json,
                                            std::string& error);
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::string& path() const { return path_; }
  std::string description() const;
  uint32_t abi_version() const { return plugin_->abi_version; }
  void* instance() const { return instance_; }
  const std::vector<const sluice_tool_v1*>& tools() const { return tools_; }
  const std::vector<const sluice_moderator_v1*>& moderators() const { return moderators_; }
  const std::vector<const sluice_retriever_v1*>& retrievers() const { return retrievers_; }

  // Runs the plugin's self-test, if it has one; false with `error`.
  bool self_test(std::string& error);
  std::map<std::string, double> counters() const;

 private:
  LoadedPlugin() = default;
  // Returns "" or what is wrong with the descriptor.
  std::string check_descriptor();

  std::string path_;
  std::string name_;
  std::string version_;
  void* handle_ = nullptr;
  const sluice_plugin_v1* plugin_ = nullptr;
  std::unique_ptr<sluice_plugin_ctx> ctx_;
  void* instance_ = nullptr;
  std::vector<const sluice_tool_v1*> tools_;
  std::vector<const sluice_moderator_v1*> moderators_;
  std::vector<const sluice_retriever_v1*> retrievers_;
};

}  // namespace sluice
