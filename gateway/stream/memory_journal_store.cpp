#include "gateway/stream/memory_journal_store.hpp"

#include <deque>

namespace sluice {

MemoryJournal::MemoryJournal(std::shared_ptr<MemoryJournalStore> store) : store_(std::move(store)) {}

MemoryJournal::~MemoryJournal() { store_->remove_bytes(bytes_); }

void MemoryJournal::keep_locked(StreamEvent&& event, size_t& bytes) {
  auto entry = std::make_shared<const JournalEntry>(std::move(event));
  bytes = entry->footprint();
  events_.push_back(std::move(entry));
  bytes_ += bytes;
  ++next_;
}

uint64_t MemoryJournal::append(StreamEvent event) {
  uint64_t offset = 0;
  size_t n = 0;
  {
    std::lock_guard lock(mutex_);
    offset = next_;
    event.offset = offset;
    keep_locked(std::move(event), n);
  }
  store_->add_bytes(n);  // may drop other sessions' old turns
  return offset;
}

bool MemoryJournal::append_existing(StreamEvent event) {
  size_t n = 0;
  {
    std::lock_guard lock(mutex_);
    if (event.offset != next_) return false;
    keep_locked(std::move(event), n);
  }
  store_->add_bytes(n);
  return true;
}

void MemoryJournal::start_at(uint64_t first, JournalStatus why) {
  std::lock_guard lock(mutex_);
  if (!events_.empty() || first < next_) return;
  first_ = next_ = first;
  dropped_because_ = why;
}

void MemoryJournal::show_through(uint64_t through) {
  std::lock_guard lock(mutex_);
  shown_ = through;
}

uint64_t MemoryJournal::last_appended() const {
  std::lock_guard lock(mutex_);
  return next_ - 1;
}

void MemoryJournal::discard_after(uint64_t through) {
  size_t freed = 0;
  {
    std::lock_guard lock(mutex_);
    while (!events_.empty() && events_.back()->offset() > through) {
      freed += events_.back()->footprint();
      events_.pop_back();
    }
    if (next_ > through + 1 && through + 1 >= first_) next_ = through + 1;
    bytes_ -= freed;
  }
  store_->remove_bytes(freed);
}

void MemoryJournal::end_turn() {
  uint64_t through = 0;
  {
    std::lock_guard lock(mutex_);
    through = next_ - 1;
  }
  store_->turn_ended(weak_from_this(), through);
}

JournalStatus MemoryJournal::read(uint64_t after, size_t max_bytes, std::vector<JournalEntryPtr>& out) const {
  std::lock_guard lock(mutex_);
  const JournalStatus status = check_locked(after);
  if (status != JournalStatus::kOk) return status;
  size_t bytes = 0;
  bool any = false;
  const uint64_t last = visible_last_locked();
  for (size_t i = after + 1 - first_; i < events_.size() && events_[i]->offset() <= last; ++i) {
    if (any && bytes >= max_bytes) break;
    const StreamEvent& e = events_[i]->event();
    bytes += e.text.size() + e.json.size() + 64;
    out.push_back(events_[i]);
    any = true;
  }
  return status;
}

JournalStatus MemoryJournal::check(uint64_t after) const {
  std::lock_guard lock(mutex_);
  return check_locked(after);
}

uint64_t MemoryJournal::last_offset() const {
  std::lock_guard lock(mutex_);
  return visible_last_locked();
}

size_t MemoryJournal::drop_through(uint64_t through, JournalStatus why) {
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

JournalStatus MemoryJournal::check_locked(uint64_t after) const {
  if (after > visible_last_locked()) return JournalStatus::kAhead;
  if (after + 1 < first_) return dropped_because_;
  return JournalStatus::kOk;
}

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
