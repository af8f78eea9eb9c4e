// MemoryJournalStore: journals in this process's memory (the embedded
// default). Finished turns are kept for `retention` and within `budget`
// bytes over all sessions; past either, the oldest finished turns go first.
// A running turn is never dropped.
#pragma once

#include <chrono>
#include <atomic>
#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "gateway/stream/journal.hpp"

namespace sluice {

class MemoryJournalStore;

// A journal in this process's memory. Besides the memory store's own
// journals, it is the local copy of a journal kept in a shared store
// (redis_journal_store.hpp): the owner's copy shows its events only once
// the store holds them (show_through), a follower's copy takes events that
// already have their offsets (append_existing).
class MemoryJournal final : public Journal, public std::enable_shared_from_this<MemoryJournal> {
 public:
  explicit MemoryJournal(std::shared_ptr<MemoryJournalStore> store);
  ~MemoryJournal() override;

  uint64_t append(StreamEvent event) override;
  void end_turn() override;
  using Journal::read;
  JournalStatus read(uint64_t after, size_t max_bytes, std::vector<JournalEntryPtr>& out) const override;
  JournalStatus check(uint64_t after) const override;
  uint64_t last_offset() const override;

  // An event that has its offset already: it must be last appended + 1.
  // Returns false (and keeps nothing) otherwise.
  bool append_existing(StreamEvent event);
  // An empty journal starts at `first` (an older part of the stream was
  // trimmed): offsets before it read as `why`.
  void start_at(uint64_t first, JournalStatus why);
  // Readers see events up to `through` only (the rest is not yet held by
  // the shared store); unlimited unless called.
  void show_through(uint64_t through);
  // The offset of the last event appended, shown or not.
  uint64_t last_appended() const;
  // Forgets the events after `through` that were never shown (appended by
  // an owner that lost the session before the shared store held them).
  void discard_after(uint64_t through);

  // Drops every event up to `through`; the bytes freed. Called by the store
  // with its own mutex held.
  size_t drop_through(uint64_t through, JournalStatus why);

 private:
  JournalStatus check_locked(uint64_t after) const;
  uint64_t visible_last_locked() const { return std::min(next_ - 1, shown_); }
  void keep_locked(StreamEvent&& event, size_t& bytes);

  std::shared_ptr<MemoryJournalStore> store_;
  mutable std::mutex mutex_;
  std::deque<JournalEntryPtr> events_;
  uint64_t first_ = 1;  // offset of events_.front() (or next_ when empty)
  uint64_t next_ = 1;
  uint64_t shown_ = UINT64_MAX;  // readers see offsets <= shown_
  size_t bytes_ = 0;
  JournalStatus dropped_because_ = JournalStatus::kEvicted;
};

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
