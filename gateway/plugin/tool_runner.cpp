#include "gateway/plugin/tool_runner.hpp"

#include <simdjson.h>

#include <algorithm>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <atomic>
#include <boost/asio/steady_timer.hpp>

#include "gateway/common/json_writer.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/plugin/crash_report.hpp"
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

ToolRunner::ToolRunner(const std::vector<const LoadedPlugin*>& plugins, ToolsConfig config,
                       const std::unordered_map<const LoadedPlugin*, PluginProcess*>& processes)
    : config_(config) {
  JsonWriter w;
  w.begin_array();
  for (const auto* p : plugins) {
    Lane* lane = nullptr;
    const auto process = processes.find(p);
    uint32_t index = 0;
    for (const auto* t : p->tools()) {
      const uint32_t at = index++;
      if (tools_.count(t->name)) {
        spdlog::warn("plugin {}: tool {} is already offered by plugin {}; ignored", p->name(), t->name,
                     tools_[t->name].plugin->name());
        continue;
      }
      if (!lane) {
        lanes_.push_back(std::make_unique<Lane>());
        lane = lanes_.back().get();
        lane->plugin = p->name();
      }
      auto timeout = config_.timeout;
      if (SLUICE_HAS_FIELD(t, sluice_tool_v1, timeout_ms) && t->timeout_ms > 0) {
        timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(t->timeout_ms));
      }
      tools_[t->name] = {p, t, lane, timeout, process == processes.end() ? nullptr : process->second, at};
      w.begin_object().field("type", "function").key("function").begin_object();
      w.field("name", t->name).field("description", t->description ? t->description : "");
      w.key("parameters").raw(json_or_string(t->parameters_schema_json));  // checked at load: an object
      w.end_object().end_object();
    }
  }
  tools_json_ = w.end_array().take();
  for (auto& lane : lanes_) {
    for (int i = 0; i < config_.workers; ++i) lane->workers.emplace_back([this, l = lane.get()] { work(*l); });
  }
}

ToolRunner::~ToolRunner() { stop(); }

bool ToolRunner::stop() {
  std::unique_lock lock(mutex_);
  if (stopped_) return settled_;
  stopped_ = true;
  stopping_ = true;
  abandoning_ = true;
  for (auto& lane : lanes_) lane->jobs.clear();
  wake_.notify_all();
  auto running = [this] {
    int n = 0;
    for (const auto& lane : lanes_) n += lane->busy;
    return n;
  };
  const bool settled = idle_.wait_for(lock, kShutdownWait, [&] { return running() == 0; });
  const int left = running();
  lock.unlock();
  for (auto& lane : lanes_) {
    for (auto& t : lane->workers) {
      if (settled) {
        t.join();
      } else {
        t.detach();  // a tool that never returns: leave it, the process is ending
      }
    }
  }
  if (!settled) spdlog::warn("tools: {} calls still running at shutdown were abandoned", left);
  settled_ = settled;
  return settled;
}

void ToolRunner::work(Lane& lane) {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !lane.jobs.empty(); });
    if (stopping_) return;
    auto job = std::move(lane.jobs.front());
    lane.jobs.pop_front();
    ++lane.busy;
    lock.unlock();
    job();
    lock.lock();
    --lane.busy;
    if (lane.busy == 0) idle_.notify_all();
  }
}

std::vector<std::pair<std::string, bool>> ToolRunner::breakers() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& lane : lanes_) {
    const bool open = lane->failures >= config_.breaker_failures && Clock::now() < lane->open_until;
    out.emplace_back(lane->plugin, open);
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {
// The statuses that say the tool (or what it depends on) is unwell: they
// count toward its plugin's breaker. The others are answers.
bool counts_as_failure(const std::string& status) {
  return status == "unavailable" || status == "internal" || status == "timeout" || status == "crash";
}

std::string status_name(int32_t status) {
  switch (status) {
    case SLUICE_ERR_INVALID_ARGUMENT: return "invalid_argument";
    case SLUICE_ERR_NOT_FOUND: return "not_found";
    case SLUICE_ERR_UNAVAILABLE: return "unavailable";
    default: return "internal";
  }
}

// At most `n` bytes of `s` for a log line, cut on a character boundary.
std::string excerpt(std::string_view s, size_t n = 120) {
  if (s.size() <= n) return valid_utf8(s) ? std::string(s) : std::string("(not UTF-8)");
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  const std::string head(s.substr(0, n));
  return (valid_utf8(head) ? head : std::string("(not UTF-8)")) + "...";
}
}  // namespace

void ToolRunner::record(Lane& lane, const std::string& status) {
  if (!counts_as_failure(status)) {
    lane.failures = 0;
    return;
  }
  if (++lane.failures >= config_.breaker_failures) {
    if (lane.open_until < Clock::now()) {
      spdlog::warn("plugin {}: {} tool failures in a row; refusing its tools for {} ms", lane.plugin,
                   lane.failures, config_.breaker_cooldown.count());
    }
    lane.open_until = Clock::now() + config_.breaker_cooldown;
  }
}

void ToolRunner::run(ToolCall call, net::any_io_executor executor,
                     std::function<void(ToolOutcome)> done) {
  ToolOutcome base;
  base.call_id = call.id;
  base.name = call.name;
  // Outcomes are counted once, by tool and status; a name the model made up
  // counts as "unknown" (label values stay a bounded set).
  auto count = [](const std::string& tool, std::string_view result) {
    if (auto* m = metrics::active()) m->tool_calls.with({tool, result}).inc();
  };
  auto fail_now = [&](std::string why, std::string status) {
    count(tools_.count(base.name) ? base.name : "unknown", status);
    base.error = std::move(why);
    base.status = std::move(status);
    net::post(executor, [done = std::move(done), o = std::move(base)]() mutable { done(std::move(o)); });
  };
  const auto it = tools_.find(call.name);
  if (it == tools_.end()) return fail_now("there is no tool named \"" + call.name + "\"", "unknown_tool");
  const Tool tool = it->second;
  Lane& lane = *tool.lane;
  base.plugin = tool.plugin->name();
  if (call.arguments.empty()) call.arguments = "{}";
  if (auto why = check_json_schema(tool.tool->parameters_schema_json, call.arguments); !why.empty()) {
    return fail_now("invalid arguments: " + why, "invalid_arguments");
  }
  {
    std::lock_guard lock(mutex_);
    if (lane.failures >= config_.breaker_failures && Clock::now() < lane.open_until) {
      return fail_now("the tool is unavailable for now (it failed repeatedly); answer without it", "breaker_open");
    }
    if (lane.in_flight >= config_.max_in_flight) {
      return fail_now("the tool is busy (tools.max_in_flight calls running); try again later", "busy");
    }
    ++lane.in_flight;
  }

  // The call waits in its plugin's queue, then runs. One timer, on the
  // executor: first the wait in the queue (bounded, charged to nobody),
  // then, once a worker takes the call up, its deadline. The first of
  // {the worker's result, the timer} settles the call.
  enum Phase : int { kQueued, kRunning, kSettled };
  struct Pending {
    explicit Pending(net::any_io_executor ex) : timer(ex) {}
    std::atomic<int> phase{kQueued};
    int wait = 0;  // on the executor: 0 the wait in the queue, 1 the deadline
    net::steady_timer timer;
    std::function<void(ToolOutcome)> done;
  };
  auto pending = std::make_shared<Pending>(executor);
  pending->done = std::move(done);
  // `wait`: which wait this is (a queue wait that expired just as a worker
  // took the call up may still complete after the deadline was armed).
  const auto deadline = tool.timeout;
  auto on_timer = [this, pending, base, &lane, deadline](const boost::system::error_code& ec, int wait) mutable {
    if (ec || wait != pending->wait) return;
    if (wait == 0) {
      int queued = kQueued;
      if (!pending->phase.compare_exchange_strong(queued, kSettled)) return;  // a worker took it: its deadline comes
      spdlog::warn("plugin {}: tool {} waited {} ms for one of the plugin's {} workers (all busy); refused",
                   base.plugin, base.name, config_.timeout.count(), config_.workers);
      base.status = "busy";
      base.error = "the tool is busy with other calls; try again later";
      if (auto* m = metrics::active()) m->tool_calls.with({base.name, "busy"}).inc();
      return pending->done(std::move(base));
    }
    if (pending->phase.exchange(kSettled) == kSettled) return;
    {
      std::lock_guard lock(mutex_);
      record(lane, "timeout");
    }
    spdlog::warn("plugin {}: tool {} status timeout: no answer within its deadline ({} ms); the call is "
                 "abandoned (its worker stays busy until it returns)",
                 base.plugin, base.name, deadline.count());
    base.status = "timeout";
    base.error = "the tool did not answer within " + std::to_string(deadline.count()) + " ms";
    base.ms = static_cast<double>(deadline.count());
    if (auto* m = metrics::active()) m->tool_calls.with({base.name, "timeout"}).inc();
    pending->done(std::move(base));
  };
  pending->timer.expires_after(config_.timeout);
  pending->timer.async_wait([on_timer](const boost::system::error_code& ec) mutable { on_timer(ec, 0); });

  std::lock_guard lock(mutex_);
  lane.jobs.push_back([this, tool, &lane, args = std::move(call.arguments), base, pending, executor,
                       on_timer]() mutable {
    int queued = kQueued;
    if (!pending->phase.compare_exchange_strong(queued, kRunning)) {
      std::lock_guard lock(mutex_);
      --lane.in_flight;  // answered as busy while it waited
      return;
    }
    net::post(executor, [pending, on_timer, timeout = tool.timeout]() mutable {
      if (pending->phase.load() == kSettled) return;
      pending->wait = 1;
      pending->timer.expires_after(timeout);  // the wait in the queue is over
      pending->timer.async_wait([on_timer](const boost::system::error_code& ec) mutable { on_timer(ec, 1); });
    });
    const auto started = Clock::now();
    sluice_tool_result r;
    r.deadline = started + tool.timeout;
    r.stopping = &abandoning_;
    int32_t status = SLUICE_ERR_INTERNAL;
    size_t json_size = 0;
    std::string failure, failure_message;  // no answer: the plugin's process died, or is restarting
    if (tool.process) {
      auto answer = tool.process->call(tool.index, base.name, args, r.deadline);
      status = answer.status;
      r = std::move(answer.result);
      json_size = answer.json_size;
      failure = std::move(answer.failure);
      failure_message = std::move(answer.failure_message);
    } else {
      PluginCallScope scope(tool.plugin->name().c_str(), "tool", tool.tool->name);
      status = tool.tool->invoke(tool.plugin->instance(), {args.data(), args.size()}, &r);
      json_size = r.json.size();
    }
    ToolOutcome o = base;
    o.ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    simdjson::dom::parser parser;
    simdjson::dom::element parsed;
    if (!failure.empty()) {
      o.status = failure;
      o.error = failure_message;  // logged by the process's supervisor, with the signal
    } else if (status != SLUICE_OK) {
      o.status = status_name(status);
      o.error = utf8_or_empty(r.error);
      if (o.error.empty()) o.error = "the tool failed (" + o.status + ")";
      spdlog::warn("plugin {}: tool {} status {}: {}", o.plugin, o.name, o.status, excerpt(o.error));
    } else if (json_size > kMaxResultBytes) {
      o.status = "internal";
      o.error = "the tool's result is over 64 KiB";
      spdlog::warn("plugin {}: tool {} status internal: its result is {} bytes, over the 64 KiB limit", o.plugin,
                   o.name, json_size);
    } else if (const auto parse = r.json.empty() ? simdjson::EMPTY : parser.parse(r.json).get(parsed);
               parse != simdjson::SUCCESS) {
      o.status = "internal";
      o.error = "the tool returned no valid JSON result";
      spdlog::warn("plugin {}: tool {} status internal: its result is not JSON ({}; {} bytes: {})", o.plugin,
                   o.name, simdjson::error_message(parse), r.json.size(), excerpt(r.json));
    } else {
      o.ok = true;
      o.status = "ok";
      o.result_json = simdjson::minify(parsed);
      for (auto& s : r.sources) {
        o.sources.push_back({utf8_or_empty(s.title), utf8_or_empty(s.url), utf8_or_empty(s.snippet)});
      }
    }
    {
      std::lock_guard lock(mutex_);
      --lane.in_flight;
    }
    if (auto* m = metrics::active()) {
      m->plugin_call_duration.with({o.plugin, "tool"}).observe(o.ms / 1000);
    }
    net::post(executor, [this, pending, &lane, o = std::move(o)]() mutable {
      if (pending->phase.exchange(kSettled) == kSettled) return;  // the deadline answered already
      pending->timer.cancel();
      {
        std::lock_guard lock(mutex_);
        record(lane, o.status);
      }
      if (auto* m = metrics::active()) m->tool_calls.with({o.name, o.status}).inc();
      pending->done(std::move(o));
    });
  });
  wake_.notify_all();  // one condition for every lane: the lane's own worker must wake
}

}  // namespace sluice
