// PrincipalLimits: what one principal may use at once and per minute,
// counted once across WebSocket and HTTP: open connections, concurrent turns,
// turns per minute and output tokens per minute. 0 means unlimited.
//
// Threads: every member is thread-safe (one mutex; called per connection and
// per turn, never per token).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gateway/protocol/error_code.hpp"

namespace sluice {

struct PrincipalLimitsConfig {
  uint32_t connections = 0;
  uint32_t concurrent_turns = 0;
  uint32_t turns_per_minute = 0;
  uint32_t tokens_per_minute = 0;
};

struct Admission {
  bool ok = true;
  ErrorCode code = ErrorCode::kInternal;  // kTooManyConnections, kTooManyTurns, kRateLimited
  std::string message;
  std::chrono::milliseconds retry_after{0};
};

class PrincipalLimits {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PrincipalLimits(PrincipalLimitsConfig config) : config_(config) {}

  Admission open_connection(const std::string& principal);
  void close_connection(const std::string& principal);
  // A turn may start; on success end_turn must follow.
  Admission start_turn(const std::string& principal, Clock::time_point now);
  void end_turn(const std::string& principal, int64_t output_tokens, Clock::time_point now);

 private:
  // A budget that refills continuously to `capacity` over a minute.
  struct Bucket {
    bool used = false;  // false: full
    double level = 0;   // may go below zero: tokens are charged after the turn
    Clock::time_point at;
    void refill(uint32_t capacity, Clock::time_point now);
    bool full(uint32_t capacity) const { return !used || level >= capacity; }
  };
  struct Usage {
    uint32_t connections = 0;
    uint32_t turns = 0;
    Bucket turn_bucket;
    Bucket token_bucket;
  };
  void forget_if_idle(std::unordered_map<std::string, Usage>::iterator it);

  const PrincipalLimitsConfig config_;
  std::mutex mutex_;
  std::unordered_map<std::string, Usage> usage_;
};

}  // namespace sluice
