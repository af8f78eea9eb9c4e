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
                       const std::unordered_map<const LoadedPlugin*, PluginProcess*>& processes,
                       std::chrono::milliseconds retrieval_timeout)
    : config_(config) {
  JsonWriter w;
  w.begin_array();
  for (const auto* p : plugins) {
    const auto process = processes.find(p);
    PluginProcess* in_process = process == processes.end() ? nullptr : process->second;
    uint32_t index = 0;
    for (const auto* t : p->tools()) {
      const uint32_t at = index++;
      if (tools_.count(t->name)) {
        spdlog::warn("plugin {}: tool {} is already offered by plugin {}; ignored", p->name(), t->name,
                     tools_[t->name].plugin->name());
        continue;
      }
      auto timeout = config_.timeout;
      if (SLUICE_HAS_FIELD(t, sluice_tool_v1, timeout_ms) && t->timeout_ms > 0) {
        timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(t->timeout_ms));
      }
      tools_[t->name] = {p, t, lane_of(p), timeout, in_process, at};
      w.begin_object().field("type", "function").key("function").begin_object();
      w.field("name", t->name).field("description", t->description ? t->description : "");
      w.key("parameters").raw(json_or_string(t->parameters_schema_json));  // checked at load: an object
      w.end_object().end_object();
    }
    index = 0;
    for (const auto* r : p->retrievers()) {
      auto timeout = retrieval_timeout;
      if (r->timeout_ms > 0) timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::milliseconds(r->timeout_ms));
      retrievers_.push_back({p, nullptr, lane_of(p), timeout, in_process, index++, r});
    }
  }
  tools_json_ = w.end_array().take();
  for (auto& lane : lanes_) {
    for (int i = 0; i < config_.workers; ++i) lane->workers.emplace_back([this, l = lane.get()] { work(*l); });
  }
}

ToolRunner::Lane* ToolRunner::lane_of(const LoadedPlugin* plugin) {
  for (auto& lane : lanes_) {
    if (lane->plugin == plugin->name()) return lane.get();
  }
  lanes_.push_back(std::make_unique<Lane>());
  lanes_.back()->plugin = plugin->name();
  return lanes_.back().get();
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
  auto fail_now = [&](std::string why, std::string status) {
    // A name the model made up counts as "unknown" (label values stay a bounded set).
    if (auto* m = metrics::active()) m->tool_calls.with({tools_.count(base.name) ? base.name : "unknown", status}).inc();
    base.error = std::move(why);
    base.status = std::move(status);
    net::post(executor, [done = std::move(done), o = std::move(base)]() mutable { done(std::move(o)); });
  };
  const auto it = tools_.find(call.name);
  if (it == tools_.end()) return fail_now("there is no tool named \"" + call.name + "\"", "unknown_tool");
  const Tool& tool = it->second;
  if (call.arguments.empty()) call.arguments = "{}";
  if (auto why = check_json_schema(tool.tool->parameters_schema_json, call.arguments); !why.empty()) {
    return fail_now("invalid arguments: " + why, "invalid_arguments");
  }
  dispatch(tool, std::move(call.arguments), std::move(base), std::move(executor), std::move(done));
}

void ToolRunner::retrieve(size_t index, std::string request_json, net::any_io_executor executor,
                          std::function<void(ToolOutcome)> done) {
  const Tool& tool = retrievers_.at(index);
  ToolOutcome base;
  base.name = tool.retriever->name;
  dispatch(tool, std::move(request_json), std::move(base), std::move(executor), std::move(done));
}

namespace {
// Counted once per call, by tool (or retriever) and status.
void count_outcome(bool retriever, const std::string& name, std::string_view status) {
  if (auto* m = metrics::active()) (retriever ? m->retrievals : m->tool_calls).with({name, status}).inc();
}
}  // namespace

void ToolRunner::dispatch(const Tool& tool_ref, std::string args, ToolOutcome base, net::any_io_executor executor,
                          std::function<void(ToolOutcome)> done) {
  const Tool tool = tool_ref;
  const bool retriever = tool.retriever != nullptr;
  const char* what = retriever ? "retriever" : "tool";
  Lane& lane = *tool.lane;
  base.plugin = tool.plugin->name();
  {
    std::lock_guard lock(mutex_);
    std::string refusal, status;
    if (lane.failures >= config_.breaker_failures && Clock::now() < lane.open_until) {
      refusal = std::string("the ") + what + " is unavailable for now (it failed repeatedly); answer without it";
      status = "breaker_open";
    } else if (lane.in_flight >= config_.max_in_flight) {
      refusal = std::string("the ") + what + " is busy (tools.max_in_flight calls running); try again later";
      status = "busy";
    } else {
      ++lane.in_flight;
    }
    if (!status.empty()) {
      count_outcome(retriever, base.name, status);
      base.error = std::move(refusal);
      base.status = std::move(status);
      net::post(executor, [done = std::move(done), o = std::move(base)]() mutable { done(std::move(o)); });
      return;
    }
  }

  // The call waits in its plugin's queue, then runs. One timer, on the
  // executor: for a tool, first the wait in the queue (bounded, charged to
  // nobody), then, once a worker takes the call up, its deadline; for a
  // retriever, one deadline from the request on (a turn waits for it
  // before its answer starts). The first of {the worker's result, the
  // timer} settles the call.
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
  const auto requested = Clock::now();
  // `wait`: which wait this is (a queue wait that expired just as a worker
  // took the call up may still complete after the deadline was armed).
  const auto deadline = tool.timeout;
  auto on_timer = [this, pending, base, &lane, deadline, retriever, what](const boost::system::error_code& ec,
                                                                          int wait) mutable {
    if (ec || wait != pending->wait) return;
    if (wait == 0) {
      int queued = kQueued;
      if (!pending->phase.compare_exchange_strong(queued, kSettled)) return;  // a worker took it: its deadline comes
      spdlog::warn("plugin {}: {} {} waited {} ms for one of the plugin's {} workers (all busy); refused",
                   base.plugin, what, base.name, (retriever ? deadline : config_.timeout).count(), config_.workers);
      base.status = retriever ? "timeout" : "busy";
      base.error = retriever ? "the retriever did not answer within " + std::to_string(deadline.count()) + " ms"
                             : "the tool is busy with other calls; try again later";
      count_outcome(retriever, base.name, base.status);
      return pending->done(std::move(base));
    }
    if (pending->phase.exchange(kSettled) == kSettled) return;
    {
      std::lock_guard lock(mutex_);
      record(lane, "timeout");
    }
    spdlog::warn("plugin {}: {} {} status timeout: no answer within its deadline ({} ms); the call is "
                 "abandoned (its worker stays busy until it returns)",
                 base.plugin, what, base.name, deadline.count());
    base.status = "timeout";
    base.error = std::string("the ") + what + " did not answer within " + std::to_string(deadline.count()) + " ms";
    base.ms = static_cast<double>(deadline.count());
    count_outcome(retriever, base.name, "timeout");
    pending->done(std::move(base));
  };
  pending->timer.expires_after(retriever ? deadline : config_.timeout);
  pending->timer.async_wait([on_timer](const boost::system::error_code& ec) mutable { on_timer(ec, 0); });

  std::lock_guard lock(mutex_);
  lane.jobs.push_back([this, tool, &lane, args = std::move(args), base, pending, executor, on_timer, retriever,
                       what, requested]() mutable {
    int queued = kQueued;
    if (!pending->phase.compare_exchange_strong(queued, kRunning)) {
      std::lock_guard lock(mutex_);
      --lane.in_flight;  // answered as busy (or timed out) while it waited
      return;
    }
    const auto started = Clock::now();
    const auto due = retriever ? requested + tool.timeout : started + tool.timeout;
    net::post(executor, [pending, on_timer, due]() mutable {
      if (pending->phase.load() == kSettled) return;
      pending->wait = 1;
      pending->timer.expires_at(due);  // the wait in the queue is over
      pending->timer.async_wait([on_timer](const boost::system::error_code& ec) mutable { on_timer(ec, 1); });
    });
    sluice_tool_result r;
    r.deadline = due;
    r.stopping = &abandoning_;
    int32_t status = SLUICE_ERR_INTERNAL;
    size_t json_size = 0;
    std::string failure, failure_message;  // no answer: the plugin's process died, or is restarting
    if (tool.process) {
      auto answer = tool.process->call(tool.index, base.name, args, r.deadline, retriever);
      status = answer.status;
      r = std::move(answer.result);
      json_size = answer.json_size;
      failure = std::move(answer.failure);
      failure_message = std::move(answer.failure_message);
    } else if (retriever) {
      PluginCallScope scope(tool.plugin->name().c_str(), "retriever", tool.retriever->name);
      status = tool.retriever->retrieve(tool.plugin->instance(), {args.data(), args.size()}, &r);
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
      if (o.error.empty()) o.error = std::string("the ") + what + " failed (" + o.status + ")";
      spdlog::warn("plugin {}: {} {} status {}: {}", o.plugin, what, o.name, o.status, excerpt(o.error));
    } else if (retriever) {
      o.ok = true;
      o.status = "ok";
      for (auto& p : r.passages) {
        // A passage that is not UTF-8, or has no text, is not one.
        if (p.text.empty() || !valid_utf8(p.text) || !valid_utf8(p.id) || p.id.empty()) continue;
        p.title = utf8_or_empty(std::move(p.title));
        p.url = utf8_or_empty(std::move(p.url));
        if (!p.metadata_json.empty() &&
            (parser.parse(p.metadata_json).get(parsed) != simdjson::SUCCESS || !parsed.is_object())) {
          p.metadata_json.clear();
        }
        o.passages.push_back(std::move(p));
      }
      if (o.passages.size() < r.passages.size()) {
        spdlog::warn("plugin {}: retriever {} returned {} passages without an id or valid UTF-8 text; ignored", o.plugin,
                     o.name, r.passages.size() - o.passages.size());
      }
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
      m->plugin_call_duration.with({o.plugin, what}).observe(o.ms / 1000);
    }
    net::post(executor, [this, pending, &lane, o = std::move(o), retriever]() mutable {
      if (pending->phase.exchange(kSettled) == kSettled) return;  // the deadline answered already
      pending->timer.cancel();
      {
        std::lock_guard lock(mutex_);
        record(lane, o.status);
      }
      count_outcome(retriever, o.name, o.status);
      pending->done(std::move(o));
    });
  });
  wake_.notify_all();  // one condition for every lane: the lane's own worker must wake
}

}  // namespace sluice
