#include "gateway/plugin/tool_runner.hpp"

#include <simdjson.h>

#include <algorithm>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <atomic>
#include <boost/asio/steady_timer.hpp>

#include "gateway/common/json_writer.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/plugin/json_schema.hpp"
#include "gateway/plugin/moderation_chain.hpp"

namespace sluice {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {
constexpr size_t kMaxResultBytes = 64 * 1024;
constexpr auto kShutdownWait = std::chrono::seconds(2);

std::string utf8_or_empty(std::string s) { return valid_utf8(s) ? s : std::string(); }
}  // namespace

ToolRunner::ToolRunner(const std::vector<const LoadedPlugin*>& plugins, ToolsConfig config)
    : config_(config) {
  JsonWriter w;
  w.begin_array();
  for (const auto* p : plugins) {
    for (const auto* t : p->tools()) {
      if (tools_.count(t->name)) {
        spdlog::warn("plugin {}: tool {} is already offered by plugin {}; ignored", p->name(), t->name,
                     tools_[t->name].plugin->name());
        continue;
      }
      tools_[t->name] = {p, t};
      w.begin_object().field("type", "function").key("function").begin_object();
      w.field("name", t->name).field("description", t->description ? t->description : "");
      w.key("parameters").raw(json_or_string(t->parameters_schema_json));  // checked at load: an object
      w.end_object().end_object();
    }
  }
  tools_json_ = w.end_array().take();
  if (tools_.empty()) return;
  for (int i = 0; i < config_.workers; ++i) workers_.emplace_back([this] { work(); });
}

ToolRunner::~ToolRunner() { stop(); }

bool ToolRunner::stop() {
  std::unique_lock lock(mutex_);
  if (stopped_) return settled_;
  stopped_ = true;
  stopping_ = true;
  jobs_.clear();
  wake_.notify_all();
  const bool settled = idle_.wait_for(lock, kShutdownWait, [this] { return busy_ == 0; });
  lock.unlock();
  for (auto& t : workers_) {
    if (settled) {
      t.join();
    } else {
      t.detach();  // a tool that never returns: leave it, the process is ending
    }
  }
  if (!settled) spdlog::warn("tools: {} calls still running at shutdown were abandoned", busy_);
  settled_ = settled;
  return settled;
}

void ToolRunner::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ++busy_;
    lock.unlock();
    job();
    lock.lock();
    --busy_;
    if (busy_ == 0) idle_.notify_all();
  }
}

std::vector<std::pair<std::string, bool>> ToolRunner::breakers() {
  std::vector<std::string> plugins;
  for (const auto& [name, tool] : tools_) plugins.push_back(tool.plugin->name());
  std::sort(plugins.begin(), plugins.end());
  plugins.erase(std::unique(plugins.begin(), plugins.end()), plugins.end());
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& p : plugins) {
    const auto it = states_.find(p);
    const bool open = it != states_.end() && it->second.failures >= config_.breaker_failures &&
                      Clock::now() < it->second.open_until;
    out.emplace_back(p, open);
  }
  return out;
}

void ToolRunner::record(const std::string& plugin, bool ok) {
  auto& s = states_[plugin];
  if (ok) {
    s.failures = 0;
    return;
  }
  if (++s.failures >= config_.breaker_failures) {
    if (s.open_until < Clock::now()) {
      spdlog::warn("plugin {}: {} tool failures in a row; refusing its tools for {} ms", plugin,
                   s.failures, config_.breaker_cooldown.count());
    }
    s.open_until = Clock::now() + config_.breaker_cooldown;
  }
}

void ToolRunner::run(ToolCall call, net::any_io_executor executor,
                     std::function<void(ToolOutcome)> done) {
  ToolOutcome base;
  base.call_id = call.id;
  base.name = call.name;
  // Outcomes are counted once, by tool and result; a name the model made up
  // counts as "unknown" (label values stay a bounded set).
  auto count = [](const std::string& tool, std::string_view result) {
    if (auto* m = metrics::active()) m->tool_calls.with({tool, result}).inc();
  };
  auto fail_now = [&](std::string why, std::string_view result) {
    count(tools_.count(base.name) ? base.name : "unknown", result);
    base.error = std::move(why);
    net::post(executor, [done = std::move(done), o = std::move(base)]() mutable { done(std::move(o)); });
  };
  const auto it = tools_.find(call.name);
  if (it == tools_.end()) return fail_now("there is no tool named \"" + call.name + "\"", "unknown_tool");
  const Tool tool = it->second;
  base.plugin = tool.plugin->name();
  if (call.arguments.empty()) call.arguments = "{}";
  if (auto why = check_json_schema(tool.tool->parameters_schema_json, call.arguments); !why.empty()) {
    return fail_now("invalid arguments: " + why, "invalid_arguments");
  }
  {
    std::lock_guard lock(mutex_);
    auto& s = states_[base.plugin];
    if (s.failures >= config_.breaker_failures && Clock::now() < s.open_until) {
      return fail_now("the tool is unavailable for now (it failed repeatedly); answer without it", "breaker_open");
    }
    if (s.in_flight >= config_.max_in_flight) {
      return fail_now("the tool is busy (tools.max_in_flight calls running); try again later", "busy");
    }
    ++s.in_flight;
  }

  // The first of {the worker's result, the deadline} wins; on the executor.
  struct Pending {
    explicit Pending(net::any_io_executor ex) : timer(ex) {}
    std::atomic<bool> settled{false};
    net::steady_timer timer;
    std::function<void(ToolOutcome)> done;
  };
  auto pending = std::make_shared<Pending>(executor);
  pending->done = std::move(done);
  const auto started = Clock::now();
  pending->timer.expires_after(config_.timeout);
  pending->timer.async_wait([this, pending, base, started](const boost::system::error_code& ec) mutable {
    if (ec || pending->settled.exchange(true)) return;
    {
      std::lock_guard lock(mutex_);
      record(base.plugin, false);
    }
    spdlog::warn("plugin {}: tool {} passed tools.timeout_ms ({} ms)", base.plugin, base.name,
                 config_.timeout.count());
    base.error = "the tool did not answer within " + std::to_string(config_.timeout.count()) + " ms";
    base.ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    if (auto* m = metrics::active()) m->tool_calls.with({base.name, "timeout"}).inc();
    pending->done(std::move(base));
  });

  std::lock_guard lock(mutex_);
  jobs_.push_back([this, tool, args = std::move(call.arguments), base, pending, executor, started]() mutable {
    sluice_tool_result r;
    const int32_t status =
        tool.tool->invoke(tool.plugin->instance(), {args.data(), args.size()}, &r);
    ToolOutcome o = base;
    o.ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    simdjson::dom::parser parser;
    simdjson::dom::element ignored;
    if (status != SLUICE_OK) {
      o.error = r.error.empty() ? "the tool failed (status " + std::to_string(status) + ")"
                                : utf8_or_empty(r.error);
    } else if (r.json.size() > kMaxResultBytes) {
      o.error = "the tool's result is over 64 KiB";
    } else if (r.json.empty() || parser.parse(r.json).get(ignored) != simdjson::SUCCESS) {
      o.error = "the tool returned no valid JSON result";
    } else {
      o.ok = true;
      o.result_json = simdjson::minify(ignored);
      for (auto& s : r.sources) {
        o.sources.push_back({utf8_or_empty(s.title), utf8_or_empty(s.url), utf8_or_empty(s.snippet)});
      }
    }
    {
      std::lock_guard lock(mutex_);
      --states_[o.plugin].in_flight;
    }
    if (auto* m = metrics::active()) {
      m->plugin_call_duration.with({o.plugin, "tool"}).observe(o.ms / 1000);
    }
    net::post(executor, [this, pending, o = std::move(o)]() mutable {
      if (pending->settled.exchange(true)) return;  // the deadline answered already
      pending->timer.cancel();
      {
        std::lock_guard lock(mutex_);
        record(o.plugin, o.ok);
      }
      if (auto* m = metrics::active()) m->tool_calls.with({o.name, o.ok ? "ok" : "error"}).inc();
      pending->done(std::move(o));
    });
  });
  wake_.notify_one();
}

}  // namespace sluice
