#include "gateway/stream/memory_journal_store.hpp"

#include <deque>

namespace sluice {

class MemoryJournal final : public Journal, public std::enable_shared_from_this<MemoryJournal> {
 public:
  explicit MemoryJournal(std::shared_ptr<MemoryJournalStore> store) : store_(std::move(store)) {}
  ~MemoryJournal() override { store_->remove_bytes(bytes_); }

  uint64_t append(StreamEvent event) override {
    uint64_t offset = 0;
    size_t n = 0;
    {
      std::lock_guard lock(mutex_);
      offset = next_++;
      event.offset = offset;
      auto entry = std::make_shared<const JournalEntry>(std::move(event));
      n = entry->footprint();
      events_.push_back(std::move(entry));
      bytes_ += n;
    }
    store_->add_bytes(n);  // may drop other sessions' old turns
    return offset;
  }

  void end_turn() override {
    uint64_t through = 0;
    {
      std::lock_guard lock(mutex_);
      through = next_ - 1;
    }
    store_->turn_ended(weak_from_this(), through);
  }

  using Journal::read;
  JournalStatus read(uint64_t after, size_t max_bytes, std::vector<JournalEntryPtr>& out) const override {
    std::lock_guard lock(mutex_);
    const JournalStatus status = check_locked(after);
    if (status != JournalStatus::kOk) return status;
    size_t bytes = 0;
    bool any = false;
    for (size_t i = after + 1 - first_; i < events_.size(); ++i) {
      if (any && bytes >= max_bytes) break;
      const StreamEvent& e = events_[i]->event();
      bytes += e.text.size() + e.json.size() + 64;
      out.push_back(events_[i]);
      any = true;
    }
    return status;
  }

  JournalStatus check(uint64_t after) const override {
    std::lock_guard lock(mutex_);
    return check_locked(after);
  }

  uint64_t last_offset() const override {
    std::lock_guard lock(mutex_);
    return next_ - 1;
  }

  // Drops every event up to `through`; the bytes freed. Called by the store
  // with its own mutex held.
  size_t drop_through(uint64_t through, JournalStatus why) {
    std::lock_guard lock(mutex_);
    size_t freed = 0;
    while (!events_.empty() && events_.front()->offset() <= through) {
      freed += events_.front()->footprint();
      events_.pop_front();
    }
    if (through + 1 > first_) {
      first_ = through + 1;
      dropped_because_ = why;
    }
    bytes_ -= freed;
    return freed;
  }

 private:
  JournalStatus check_locked(uint64_t after) const {
    if (after > next_ - 1) return JournalStatus::kAhead;
    if (after + 1 < first_) return dropped_because_;
    return JournalStatus::kOk;
  }

  std::shared_ptr<MemoryJournalStore> store_;
  mutable std::mutex mutex_;
  std::deque<JournalEntryPtr> events_;
  uint64_t first_ = 1;  // offset of events_.front() (or next_ when empty)
  uint64_t next_ = 1;
  size_t bytes_ = 0;
  JournalStatus dropped_because_ = JournalStatus::kEvicted;
};

MemoryJournalStore::MemoryJournalStore(size_t budget_bytes, std::chrono::milliseconds retention)
    : budget_(budget_bytes), retention_(retention) {}

std::shared_ptr<Journal> MemoryJournalStore::create(const std::string&) {
  return std::make_shared<MemoryJournal>(shared_from_this());
}

size_t MemoryJournalStore::bytes_used() const { return used_.load(); }

void MemoryJournalStore::add_bytes(size_t n) {
  if (used_.fetch_add(n) + n <= budget_) return;
  std::vector<std::shared_ptr<MemoryJournal>> touched;  // released after the lock
  std::lock_guard lock(mutex_);
  while (used_.load() > budget_ && !finished_.empty()) {
    FinishedTurn t = finished_.front();
    finished_.pop_front();
    if (auto j = t.journal.lock()) {
      used_ -= j->drop_through(t.through, JournalStatus::kEvicted);
      touched.push_back(std::move(j));
    }
  }
}

void MemoryJournalStore::remove_bytes(size_t n) { used_.fetch_sub(n); }

void MemoryJournalStore::turn_ended(std::weak_ptr<MemoryJournal> journal, uint64_t through) {
  std::lock_guard lock(mutex_);
  finished_.push_back({std::move(journal), through, Clock::now()});
}

void MemoryJournalStore::expire(Clock::time_point now) {
  std::vector<std::shared_ptr<MemoryJournal>> touched;
  std::lock_guard lock(mutex_);
  while (!finished_.empty() && finished_.front().ended + retention_ <= now) {
    FinishedTurn t = finished_.front();
    finished_.pop_front();
    if (auto j = t.journal.lock()) {
      used_ -= j->drop_through(t.through, JournalStatus::kExpired);
      touched.push_back(std::move(j));
    }
  }
}

}  // namespace sluice
