// ModerationChain: the moderators of every loaded plugin, applied in config
// order to one answer's text before anything reaches the journal. Each stage
// owns a hold-back buffer: text its moderator is not ready to release
// (a possible partial match). What a stage releases is the next stage's
// input; what the last stage releases may be journaled.
//
// Threads: not thread-safe; one answer's owner serializes the calls.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/common/utf8.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/plugin_process.hpp"

namespace sluice {

struct ModerationLimits {
  size_t max_hold_bytes = 1024;
  std::chrono::milliseconds max_hold{500};
  std::chrono::milliseconds process_timeout{1000};  // a moderator in its own process answers within
};

// One thing the chain produced, in order.
struct ModerationOutput {
  enum class Kind { kText, kNotice, kStop };
  Kind kind = Kind::kText;
  std::string text;    // kText: moderated text, ready for the journal
  std::string action;  // kNotice: "redact"; kStop: "stop"
  std::string reason;  // the moderator's reason ("email", "banned_phrase", ...)
  std::string plugin;  // which plugin acted
};

class ModerationChain {
 public:
  struct Stage {
    const LoadedPlugin* plugin = nullptr;
    const sluice_moderator_v1* moderator = nullptr;
    bool fail_open = false;
    // moderator_isolation = "process": the moderator runs there (`index`
    // in the plugin's descriptor); a call unanswered within
    // ModerationLimits::process_timeout fails (closed, or open).
    PluginProcess* process = nullptr;
    uint32_t index = 0;
  };

  ModerationChain(std::vector<Stage> stages, ModerationLimits limits);
  ~ModerationChain();  // closes every stream
  ModerationChain(const ModerationChain&) = delete;
  ModerationChain& operator=(const ModerationChain&) = delete;

  // New text of the answer (complete UTF-8 characters).
  void feed(std::string_view text, std::vector<ModerationOutput>& out);
  // The hold limit passed (max_hold_ms): every stage must decide now.
  void flush(std::vector<ModerationOutput>& out);
  // The answer ends: every stage decides on all it holds.
  void finish(std::vector<ModerationOutput>& out);

  bool stopped() const { return stopped_; }
  // Bytes held back over all stages; when they were first held.
  size_t held_bytes() const;
  std::chrono::steady_clock::time_point held_since() const { return held_since_; }
  const ModerationLimits& limits() const { return limits_; }

 private:
  struct Running {
    Stage stage;
    void* stream = nullptr;
    PluginProcess::RemoteStream remote;  // the stream, in the plugin's process
    bool open = false;
    metrics::Histogram* duration = nullptr;  // plugin_call_duration{plugin, "moderation"}
    std::string pending;
  };

  // Gives `text` to stage `i` (new_from = what it held), with `flags`; what
  // it releases goes to the next stage with `downstream` flags.
  void run(size_t i, std::string_view text, uint32_t flags, std::vector<ModerationOutput>& out,
           uint32_t downstream);
  void release(size_t i, std::string text, uint32_t flags, std::vector<ModerationOutput>& out);
  void stop(const Running& r, std::string reason, std::vector<ModerationOutput>& out);

  std::vector<Running> stages_;
  ModerationLimits limits_;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point held_since_{};
};

}  // namespace sluice
