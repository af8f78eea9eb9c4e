#include "gateway/plugin/moderation_chain.hpp"

#include "gateway/plugin/crash_report.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

ModerationChain::ModerationChain(std::vector<Stage> stages, ModerationLimits limits)
    : limits_(limits) {
  auto* m = metrics::active();
  for (auto& s : stages) {
    Running r;
    r.stage = s;
    if (m) r.duration = &m->plugin_call_duration.with({s.plugin->name(), "moderation"});
    stages_.push_back(std::move(r));
  }
}

ModerationChain::~ModerationChain() {
  for (auto& r : stages_) {
    if (!r.open) continue;
    if (r.stage.process) {
      r.stage.process->close_stream(r.remote);
      continue;
    }
    PluginCallScope scope(r.stage.plugin->name().c_str(), "moderator", r.stage.moderator->name);
    r.stage.moderator->stream_close(r.stage.plugin->instance(), r.stream);
  }
}

size_t ModerationChain::held_bytes() const {
  size_t n = 0;
  for (const auto& r : stages_) n += r.pending.size();
  return n;
}

void ModerationChain::feed(std::string_view text, std::vector<ModerationOutput>& out) {
  if (stopped_ || text.empty()) return;
  if (stages_.empty()) {
    out.push_back({ModerationOutput::Kind::kText, std::string(text), {}, {}, {}});
    return;
  }
  const bool was_holding = held_bytes() > 0;
  run(0, text, 0, out, 0);
  if (held_bytes() == 0) {
    held_since_ = {};
  } else if (!was_holding) {
    held_since_ = std::chrono::steady_clock::now();
  }
}

void ModerationChain::flush(std::vector<ModerationOutput>& out) {
  if (stopped_ || stages_.empty()) return;
  run(0, {}, SLUICE_TEXT_FLUSH, out, SLUICE_TEXT_FLUSH);
  held_since_ = {};
}

void ModerationChain::finish(std::vector<ModerationOutput>& out) {
  if (stopped_ || stages_.empty()) return;
  run(0, {}, SLUICE_TEXT_FINAL, out, SLUICE_TEXT_FINAL);
  held_since_ = {};
}

void ModerationChain::run(size_t i, std::string_view text, uint32_t flags,
                          std::vector<ModerationOutput>& out, uint32_t downstream) {
  if (stopped_) return;
  Running& r = stages_[i];
  const auto* m = r.stage.moderator;
  void* instance = r.stage.plugin->instance();
  PluginCallScope scope(r.stage.plugin->name().c_str(), "moderator", m->name);
  PluginProcess* process = r.stage.process;
  const auto process_deadline = std::chrono::steady_clock::now() + limits_.process_timeout;
  if (!r.open) {
    bool opened = false;
    if (process) {
      const auto remote = process->open_stream(r.stage.index, m->name, process_deadline);
      opened = remote.has_value();
      if (remote) r.remote = *remote;
    } else {
      opened = m->stream_open(instance, &r.stream) == SLUICE_OK;
    }
    if (!opened) {
      spdlog::warn("plugin {}: moderator {} could not open a stream", r.stage.plugin->name(), m->name);
      if (r.stage.fail_open) return release(i, std::string(text), downstream, out);
      return stop(r, "moderation_error", out);
    }
    r.open = true;
  }
  const size_t new_from = r.pending.size();
  r.pending.append(text);
  const bool decide_now = (flags & (SLUICE_TEXT_FINAL | SLUICE_TEXT_FLUSH)) != 0;
  if (r.pending.empty()) {
    if (decide_now) release(i, {}, downstream, out);  // later stages may hold text
    return;
  }
  sluice_verdict v;
  const auto started = r.duration ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  int32_t status = SLUICE_ERR_UNAVAILABLE;  // its process did not answer in time, or is gone
  if (process) {
    if (auto answer = process->moderate(r.remote, m->name, r.pending, new_from, flags, process_deadline)) {
      status = answer->status;
      v = std::move(answer->verdict);
    }
  } else {
    status = m->on_text(instance, r.stream, {r.pending.data(), r.pending.size()}, new_from, flags, &v);
  }
  if (r.duration) {
    r.duration->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  const bool bad_replacement = v.action == SLUICE_REPLACE && !valid_utf8(v.text);
  if (status != SLUICE_OK || v.calls != 1 || v.action < SLUICE_PASS || v.action > SLUICE_STOP ||
      bad_replacement) {
    spdlog::warn("plugin {}: moderator {} failed (status {}, {} verdicts{}); {}",
                 r.stage.plugin->name(), m->name, status, v.calls,
                 bad_replacement ? ", replacement not UTF-8" : "",
                 r.stage.fail_open ? "letting the text through (fail_open)" : "stopping the answer");
    if (!r.stage.fail_open) return stop(r, "moderation_error", out);
    return release(i, std::exchange(r.pending, {}), downstream, out);
  }
  if (v.action == SLUICE_STOP) return stop(r, v.reason.empty() ? "policy" : v.reason, out);
  if (v.action == SLUICE_HOLD && !decide_now) return;

  // PASS, REPLACE (or HOLD when a decision is due): release all but the held tail.
  const size_t hold = decide_now || v.action == SLUICE_HOLD ? 0 : std::min(v.hold, r.pending.size());
  const size_t cut = utf8_floor(r.pending, r.pending.size() - hold);
  std::string released = r.pending.substr(0, cut);
  r.pending.erase(0, cut);
  if (v.action == SLUICE_REPLACE) {
    out.push_back({ModerationOutput::Kind::kNotice, {}, "redact", v.reason.empty() ? "policy" : v.reason,
                   r.stage.plugin->name()});
    released = std::move(v.text);
  }
  release(i, std::move(released), downstream, out);
  if (!stopped_ && !decide_now && r.pending.size() > limits_.max_hold_bytes) {
    // Held too much: this stage decides now; what it releases goes on as
    // usual (the next stages are not forced).
    run(i, {}, SLUICE_TEXT_FLUSH, out, flags);
  }
}

void ModerationChain::release(size_t i, std::string text, uint32_t flags,
                              std::vector<ModerationOutput>& out) {
  if (stopped_) return;
  if (i + 1 < stages_.size()) return run(i + 1, text, flags, out, flags);
  if (!text.empty()) out.push_back({ModerationOutput::Kind::kText, std::move(text), {}, {}, {}});
}

void ModerationChain::stop(const Running& r, std::string reason, std::vector<ModerationOutput>& out) {
  stopped_ = true;
  for (auto& s : stages_) s.pending.clear();
  out.push_back({ModerationOutput::Kind::kStop, {}, "stop", std::move(reason), r.stage.plugin->name()});
}

}  // namespace sluice
