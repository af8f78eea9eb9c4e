// PluginHost: the plugins listed in the config ([[plugins]]), loaded at
// start. It hands each answer a moderation chain over every loaded
// moderator, in config order, and runs their tools.
//
// Threads: constructed on the main thread before the server starts; then
// read-only, so make_chain may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <unordered_map>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/moderation_chain.hpp"
#include "gateway/plugin/tool_runner.hpp"

namespace sluice {

class PluginHost {
 public:
  // Loads every plugin of `config`. A plugin that fails with on_error =
  // "fail_start" makes this return null with `error`; with "skip" it is
  // logged and left out.
  static std::unique_ptr<PluginHost> load(const Config& config, std::string& error);

  // An empty host (no plugins).
  PluginHost() = default;
  // Stops the tool workers, then destroys the plugins' instances (not when a
  // hung tool call is still inside one: that plugin is left alive).
  ~PluginHost();

  // A chain for one answer; null when no plugin moderates.
  std::unique_ptr<ModerationChain> make_chain() const;
  bool moderates() const { return !stages_.empty(); }

  // A whole text that is not streamed (a tool result, an error message),
  // through every moderator: one stream, fed the text and finished at once.
  // `notices` gets the redactions and a stop (then `stopped` is true and
  // the text is what was released before it, if anything).
  struct Moderated {
    std::string text;
    std::vector<ModerationOutput> notices;
    bool stopped = false;
  };
  Moderated moderate(std::string_view text) const;
  // A JSON value: every string in it (not the keys) moderated as above;
  // the rest kept as is, so that it stays the same valid JSON.
  Moderated moderate_json(std::string_view json) const;
  // The tools of every plugin; null when none offers any.
  ToolRunner* tools() const { return tools_.get(); }
  const std::vector<std::unique_ptr<LoadedPlugin>>& plugins() const { return plugins_; }
  // A plugin's counters (counter_add), from the gateway's instance and from
  // its host process's, added up.
  std::map<std::string, double> counters(const LoadedPlugin& plugin) const;

 private:
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::vector<ModerationChain::Stage> stages_;
  std::vector<std::unique_ptr<PluginProcess>> processes_;  // plugins whose tools run in their own process
  std::unordered_map<const LoadedPlugin*, const PluginProcess*> process_of_;
  std::unique_ptr<ToolRunner> tools_;  // declared after plugins_: stops before they go
  ModerationLimits limits_;
};

}  // namespace sluice
