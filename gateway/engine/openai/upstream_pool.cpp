#include "gateway/engine/openai/upstream_pool.hpp"

#include <spdlog/spdlog.h>

namespace sluice {

UpstreamPool::UpstreamPool(std::vector<std::string> urls, int eject_after,
                           std::chrono::milliseconds eject_for)
    : eject_after_(eject_after), eject_for_(eject_for) {
  for (auto& u : urls) endpoints_.push_back({std::move(u)});
}

size_t UpstreamPool::pick(Clock::time_point now, std::optional<size_t> avoid) {
  std::lock_guard lock(mutex_);
  const size_t n = endpoints_.size();
  std::optional<size_t> fallback;  // healthy but to be avoided
  for (size_t i = 0; i < n; ++i) {
    const size_t idx = (next_ + i) % n;
    if (endpoints_[idx].ejected_until > now) continue;
    if (avoid && *avoid == idx && n > 1) {
      fallback = idx;
      continue;
    }
    next_ = idx + 1;
    return idx;
  }
  if (fallback) return *fallback;
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (endpoints_[i].ejected_until < endpoints_[best].ejected_until) best = i;
  }
  return best;
}

void UpstreamPool::report_success(size_t index) {
  std::lock_guard lock(mutex_);
  auto& e = endpoints_[index];
  if (e.consecutive_failures >= eject_after_) spdlog::info("upstream {} is healthy again", e.url);
  e.consecutive_failures = 0;
  e.ejected_until = {};
}

void UpstreamPool::report_failure(size_t index, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto& e = endpoints_[index];
  if (++e.consecutive_failures >= eject_after_) {
    e.ejected_until = now + eject_for_;
    spdlog::warn("upstream {} ejected for {} ms after {} consecutive failures", e.url,
                 eject_for_.count(), e.consecutive_failures);
  }
}

bool UpstreamPool::any_healthy(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  for (const auto& e : endpoints_) {
    if (e.ejected_until <= now) return true;
  }
  return false;
}

}  // namespace sluice
