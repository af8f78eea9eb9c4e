// PluginHost: the plugins listed in the config ([[plugins]]), loaded at
// start. It hands each answer a moderation chain over every loaded
// moderator, in config order.
//
// Threads: constructed on the main thread before the server starts; then
// read-only, so make_chain may be called from any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gateway/config/config.hpp"
#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/moderation_chain.hpp"

namespace sluice {

class PluginHost {
 public:
  // Loads every plugin of `config`. A plugin that fails with on_error =
  // "fail_start" makes this return null with `error`; with "skip" it is
  // logged and left out.
  static std::unique_ptr<PluginHost> load(const Config& config, std::string& error);

  // An empty host (no plugins).
  PluginHost() = default;

  // A chain for one answer; null when no plugin moderates.
  std::unique_ptr<ModerationChain> make_chain() const;
  bool moderates() const { return !stages_.empty(); }
  const std::vector<std::unique_ptr<LoadedPlugin>>& plugins() const { return plugins_; }

 private:
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::vector<ModerationChain::Stage> stages_;
  ModerationLimits limits_;
};

}  // namespace sluice
