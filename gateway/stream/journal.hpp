// Journal: the single source of truth of a session's stream. Every event a
// client can see is appended here, with the next offset (1, 2, 3, ... no
// gaps), before any connection sends it; every attached connection reads it
// from its own cursor. Resume, two tabs, slow consumers and replay are all
// "a reader at a cursor".
//
// JournalStore makes journals and holds them to a memory budget and a
// retention time. The in-memory store is the embedded default; a shared
// store (Redis) can replace it behind these interfaces.
//
// Threads: every member is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/protocol/stream_event.hpp"

namespace sluice {

enum class JournalStatus {
  kOk,
  kEvicted,  // events after the cursor were dropped to stay within the memory budget
  kExpired,  // ... or because their turn ended longer ago than the retention
  kAhead,    // the cursor is beyond the last offset
};

struct JournalRead {
  JournalStatus status = JournalStatus::kOk;
  std::vector<StreamEvent> events;
};

class Journal {
 public:
  virtual ~Journal() = default;
  // Appends `event`, giving it the next offset, which is returned.
  virtual uint64_t append(StreamEvent event) = 0;
  // The events appended so far form finished turns: they may be dropped
  // once old (retention) or when memory is short (budget), oldest first.
  virtual void end_turn() = 0;
  // Events with offset > `after`, oldest first, about `max_bytes` of them
  // (at least one when there is one).
  virtual JournalRead read(uint64_t after, size_t max_bytes) const = 0;
  // Whether offset `after` can be read from: kOk, kEvicted, kExpired or kAhead.
  virtual JournalStatus check(uint64_t after) const = 0;
  virtual uint64_t last_offset() const = 0;
};

class JournalStore {
 public:
  virtual ~JournalStore() = default;
  virtual std::shared_ptr<Journal> create(const std::string& session_id) = 0;
  // Drops finished turns that ended before now - retention.
  virtual void expire(std::chrono::steady_clock::time_point now) = 0;
  virtual size_t bytes_used() const = 0;
};

}  // namespace sluice
