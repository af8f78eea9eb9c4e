#include "gateway/plugin/plugin_host.hpp"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_map>

#include "gateway/common/json_writer.hpp"
#include "gateway/common/utf8.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

namespace {
// `name` in the directory of the running executable (/proc/self/exe).
std::string beside_this_executable(const std::string& name) {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return name;
  std::string path(buf, static_cast<size_t>(n));
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? name : path.substr(0, slash + 1) + name;
}
}  // namespace

std::unique_ptr<PluginHost> PluginHost::load(const Config& config, std::string& error) {
  auto host = std::make_unique<PluginHost>();
  host->limits_ = {config.moderation.max_hold_bytes, config.moderation.max_hold, config.moderation.process_timeout};
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
    spdlog::info("plugin {} {} loaded from {}: {} tools, {} moderators, {} retrievers", plugin->name(),
                 plugin->version(), pc.path, plugin->tools().size(), plugin->moderators().size(),
                 plugin->retrievers().size());
    for (const auto* m : plugin->moderators()) {
      host->stages_.push_back({plugin.get(), m, pc.fail_open});
    }
    host->plugins_.push_back(std::move(plugin));
  }
  std::vector<const LoadedPlugin*> loaded;
  std::unordered_map<const LoadedPlugin*, PluginProcess*> processes;
  for (size_t i = 0; i < host->plugins_.size(); ++i) {
    const LoadedPlugin* p = host->plugins_[i].get();
    loaded.push_back(p);
    const PluginConfig& pc = *std::find_if(config.plugins.begin(), config.plugins.end(),
                                           [&](const PluginConfig& c) { return c.path == p->path(); });
    const bool tools_out = (!p->tools().empty() || !p->retrievers().empty()) && pc.isolation == "process";
    const bool moderators_out = !p->moderators().empty() && pc.moderator_isolation == "process";
    if (!tools_out && !moderators_out) continue;
    PluginProcess::Options o;
    o.binary = config.tools.host_binary.empty() ? beside_this_executable("sluice-plugin-host") : config.tools.host_binary;
    o.path = pc.path;
    o.settings = pc.settings_json;
    o.name = p->name();
    o.workers = config.tools.workers;
    o.memory_mb = config.tools.process_memory_mb;
    auto process = std::make_unique<PluginProcess>(o);
    std::string why;
    if (!process->start(why)) {
      error = "plugin " + pc.path + ": it cannot run in a process of its own: " + why +
              " (isolation = \"in_process\" runs its tools in the gateway)";
      return nullptr;
    }
    if (tools_out) processes[p] = process.get();
    if (moderators_out) {
      for (auto& stage : host->stages_) {
        if (stage.plugin != p) continue;
        stage.process = process.get();
        const auto& ms = p->moderators();
        stage.index = static_cast<uint32_t>(std::find(ms.begin(), ms.end(), stage.moderator) - ms.begin());
      }
    }
    host->process_of_[p] = process.get();
    host->processes_.push_back(std::move(process));
  }
  auto runner = std::make_unique<ToolRunner>(loaded, config.tools, processes, config.retrieval.timeout);
  if (!runner->empty()) host->tools_ = std::move(runner);
  return host;
}

PluginHost::~PluginHost() {
  // Host processes first: calls waiting on them end, so the workers are free.
  for (auto& p : processes_) p->stop();
  if (tools_ && !tools_->stop()) {
    // An abandoned call is still running inside a plugin and will touch the
    // runner when it returns: both stay alive until the process ends.
    for (auto& p : plugins_) (void)p.release();
    (void)tools_.release();
  }
}

std::map<std::string, double> PluginHost::counters(const LoadedPlugin& plugin) const {
  auto out = plugin.counters();
  if (const auto it = process_of_.find(&plugin); it != process_of_.end()) {
    for (const auto& [name, value] : it->second->counters()) out[name] += value;
  }
  return out;
}

std::unique_ptr<ModerationChain> PluginHost::make_chain() const {
  if (stages_.empty()) return nullptr;
  return std::make_unique<ModerationChain>(stages_, limits_);
}

namespace {
void moderate_into(const ModerationChain::Stage* begin, size_t n, const ModerationLimits& limits,
                   std::string_view text, PluginHost::Moderated& m, std::string& out) {
  if (text.empty()) return;
  if (!valid_utf8(text)) {
    out += "(text withheld: not UTF-8)";
    return;
  }
  ModerationChain chain(std::vector<ModerationChain::Stage>(begin, begin + n), limits);
  std::vector<ModerationOutput> outputs;
  chain.feed(text, outputs);
  if (!chain.stopped()) chain.finish(outputs);
  for (auto& o : outputs) {
    if (o.kind == ModerationOutput::Kind::kText) {
      out += o.text;
    } else {
      if (o.kind == ModerationOutput::Kind::kStop) m.stopped = true;
      m.notices.push_back(std::move(o));
    }
  }
}

void moderate_element(const ModerationChain::Stage* stages, size_t n, const ModerationLimits& limits,
                      simdjson::dom::element e, PluginHost::Moderated& m, JsonWriter& w) {
  switch (e.type()) {
    case simdjson::dom::element_type::STRING: {
      std::string out;
      std::string_view text;
      if (e.get(text) != simdjson::SUCCESS) break;
      moderate_into(stages, n, limits, text, m, out);
      w.value(out);
      break;
    }
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array array;
      if (e.get(array) != simdjson::SUCCESS) break;
      w.begin_array();
      for (auto child : array) moderate_element(stages, n, limits, child, m, w);
      w.end_array();
      break;
    }
    case simdjson::dom::element_type::OBJECT: {
      simdjson::dom::object object;
      if (e.get(object) != simdjson::SUCCESS) break;
      w.begin_object();
      for (auto field : object) {
        w.key(field.key);
        moderate_element(stages, n, limits, field.value, m, w);
      }
      w.end_object();
      break;
    }
    default:
      w.raw(simdjson::minify(e));
  }
}
}  // namespace

PluginHost::Moderated PluginHost::moderate(std::string_view text) const {
  Moderated m;
  if (stages_.empty()) {
    m.text = text;
    return m;
  }
  moderate_into(stages_.data(), stages_.size(), limits_, text, m, m.text);
  return m;
}

PluginHost::Moderated PluginHost::moderate_json(std::string_view json) const {
  Moderated m;
  if (stages_.empty()) {
    m.text = json;
    return m;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root) != simdjson::SUCCESS) return moderate(json);  // not JSON: as text
  JsonWriter w;
  moderate_element(stages_.data(), stages_.size(), limits_, root, m, w);
  m.text = w.take();
  return m;
}

}  // namespace sluice
