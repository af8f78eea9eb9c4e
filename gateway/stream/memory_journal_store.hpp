// MemoryJournalStore: journals in this process's memory (the embedded
// default). Finished turns are kept for `retention` and within `budget`
// bytes over all sessions; past either, the oldest finished turns go first.
// A running turn is never dropped.
#pragma once

#include <chrono>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "gateway/stream/journal.hpp"

namespace sluice {

class MemoryJournal;

class MemoryJournalStore final : public JournalStore,
                                 public std::enable_shared_from_this<MemoryJournalStore> {
 public:
  using Clock = std::chrono::steady_clock;

  MemoryJournalStore(size_t budget_bytes, std::chrono::milliseconds retention);

  std::shared_ptr<Journal> create(const std::string& session_id) override;
  void expire(Clock::time_point now) override;
  size_t bytes_used() const override;

 private:
  friend class MemoryJournal;
  struct FinishedTurn {
    std::weak_ptr<MemoryJournal> journal;
    uint64_t through;  // last offset of the turn
    Clock::time_point ended;
  };
  void add_bytes(size_t n);
  void remove_bytes(size_t n);
  void turn_ended(std::weak_ptr<MemoryJournal> journal, uint64_t through);

  const size_t budget_;
  const std::chrono::milliseconds retention_;
  mutable std::mutex mutex_;  // taken before any journal's own mutex, never after
  std::deque<FinishedTurn> finished_;
  // Appends only add to this counter; the mutex is taken when it passes the
  // budget, never per token.
  std::atomic<size_t> used_{0};
};

}  // namespace sluice
