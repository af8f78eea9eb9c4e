// UpstreamPool: the configured OpenAI-compatible base URLs, picked
// round-robin; an endpoint that fails `eject_after` times in a row is left
// out for `eject_for`. Thread-safe (a mutex per pick, never per token).
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sluice {

class UpstreamPool {
 public:
  using Clock = std::chrono::steady_clock;

  UpstreamPool(std::vector<std::string> urls, int eject_after, std::chrono::milliseconds eject_for);

  // The next endpoint to try: round-robin over the healthy ones, skipping
  // `avoid` (the one that just failed) when another is healthy. With none
  // healthy, the one whose ejection ends first.
  size_t pick(Clock::time_point now, std::optional<size_t> avoid = std::nullopt);
  void report_success(size_t index);
  void report_failure(size_t index, Clock::time_point now);
  bool any_healthy(Clock::time_point now) const;

  const std::string& url(size_t index) const { return endpoints_[index].url; }
  size_t size() const { return endpoints_.size(); }

 private:
  struct Endpoint {
    std::string url;
    int consecutive_failures = 0;
    Clock::time_point ejected_until{};
  };
  mutable std::mutex mutex_;
  std::vector<Endpoint> endpoints_;
  size_t next_ = 0;
  int eject_after_;
  std::chrono::milliseconds eject_for_;
};

}  // namespace sluice
