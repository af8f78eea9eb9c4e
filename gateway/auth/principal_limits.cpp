#include "gateway/auth/principal_limits.hpp"

#include <algorithm>
#include <cmath>

namespace sluice {

namespace {
using Ms = std::chrono::milliseconds;

// Time until `bucket` holds `need` units at `capacity` per minute.
Ms wait_for(double level, double need, uint32_t capacity) {
  const double missing = need - level;
  return Ms(static_cast<int64_t>(std::ceil(missing * 60'000.0 / capacity)));
}
}  // namespace

void PrincipalLimits::Bucket::refill(uint32_t capacity, Clock::time_point now) {
  if (!used) {
    used = true;
    level = capacity;
    at = now;
    return;
  }
  const double minutes = std::chrono::duration<double>(now - at).count() / 60.0;
  level = std::min<double>(capacity, level + minutes * capacity);
  at = now;
}

Admission PrincipalLimits::open_connection(const std::string& principal) {
  std::lock_guard lock(mutex_);
  auto& u = usage_[principal];
  if (config_.connections && u.connections >= config_.connections) {
    return {false, ErrorCode::kTooManyConnections,
            "principal already holds " + std::to_string(u.connections) +
                " connections (limits.principal_connections)",
            Ms(1000)};
  }
  ++u.connections;
  return {};
}

void PrincipalLimits::close_connection(const std::string& principal) {
  std::lock_guard lock(mutex_);
  const auto it = usage_.find(principal);
  if (it == usage_.end()) return;
  if (it->second.connections > 0) --it->second.connections;
  forget_if_idle(it);
}

Admission PrincipalLimits::start_turn(const std::string& principal, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto& u = usage_[principal];
  if (config_.concurrent_turns && u.turns >= config_.concurrent_turns) {
    return {false, ErrorCode::kTooManyTurns,
            "principal already runs " + std::to_string(u.turns) +
                " turns (limits.principal_concurrent_turns)",
            Ms(1000)};
  }
  if (config_.turns_per_minute) {
    u.turn_bucket.refill(config_.turns_per_minute, now);
    if (u.turn_bucket.level < 1) {
      return {false, ErrorCode::kRateLimited,
              "more than " + std::to_string(config_.turns_per_minute) +
                  " turns per minute (limits.principal_turns_per_minute)",
              wait_for(u.turn_bucket.level, 1, config_.turns_per_minute)};
    }
  }
  if (config_.tokens_per_minute) {
    u.token_bucket.refill(config_.tokens_per_minute, now);
    if (u.token_bucket.level <= 0) {
      return {false, ErrorCode::kRateLimited,
              "more than " + std::to_string(config_.tokens_per_minute) +
                  " output tokens per minute (limits.principal_tokens_per_minute)",
              wait_for(u.token_bucket.level, 1, config_.tokens_per_minute)};
    }
  }
  if (config_.turns_per_minute) u.turn_bucket.level -= 1;
  ++u.turns;
  return {};
}

void PrincipalLimits::end_turn(const std::string& principal, int64_t output_tokens,
                               Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = usage_.find(principal);
  if (it == usage_.end()) return;
  auto& u = it->second;
  if (u.turns > 0) --u.turns;
  if (config_.tokens_per_minute) {
    // Charged when known; the budget may go below zero, and the next turn
    // waits until it is positive again.
    u.token_bucket.refill(config_.tokens_per_minute, now);
    u.token_bucket.level -= static_cast<double>(output_tokens);
  }
  forget_if_idle(it);
}

void PrincipalLimits::forget_if_idle(std::unordered_map<std::string, Usage>::iterator it) {
  const auto& u = it->second;
  // Keep a principal whose budgets are not full again; forget one that
  // holds nothing (the map stays as small as the active principals).
  const bool spent = !u.turn_bucket.full(config_.turns_per_minute) ||
                     !u.token_bucket.full(config_.tokens_per_minute);
  if (u.connections == 0 && u.turns == 0 && !spent) usage_.erase(it);
}

}  // namespace sluice
