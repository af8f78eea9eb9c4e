#include "gateway/plugin/plugin_host.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

std::unique_ptr<PluginHost> PluginHost::load(const Config& config, std::string& error) {
  auto host = std::make_unique<PluginHost>();
  host->limits_ = {config.moderation.max_hold_bytes, config.moderation.max_hold};
  for (const auto& pc : config.plugins) {
    std::string why;
    auto plugin = LoadedPlugin::load(pc.path, pc.settings_json, why);
    if (!plugin) {
      if (pc.on_error == "skip") {
        spdlog::error("{} (skipped: on_error = \"skip\")", why);
        continue;
      }
      error = why;
      return nullptr;
    }
    for (const auto& p : host->plugins_) {
      if (p->name() == plugin->name()) {
        error = "plugin " + pc.path + ": a plugin named \"" + plugin->name() + "\" is already loaded";
        return nullptr;
      }
    }
    spdlog::info("plugin {} {} loaded from {}: {} tools, {} moderators", plugin->name(),
                 plugin->version(), pc.path, plugin->tools().size(), plugin->moderators().size());
    for (const auto* m : plugin->moderators()) {
      host->stages_.push_back({plugin.get(), m, pc.fail_open});
    }
    host->plugins_.push_back(std::move(plugin));
  }
  std::vector<const LoadedPlugin*> loaded;
  for (const auto& p : host->plugins_) loaded.push_back(p.get());
  auto runner = std::make_unique<ToolRunner>(loaded, config.tools);
  if (!runner->empty()) host->tools_ = std::move(runner);
  return host;
}

PluginHost::~PluginHost() {
  if (tools_ && !tools_->stop()) {
    // An abandoned call is still running inside a plugin and will touch the
    // runner when it returns: both stay alive until the process ends.
    for (auto& p : plugins_) (void)p.release();
    (void)tools_.release();
  }
}

std::unique_ptr<ModerationChain> PluginHost::make_chain() const {
  if (stages_.empty()) return nullptr;
  return std::make_unique<ModerationChain>(stages_, limits_);
}

}  // namespace sluice
