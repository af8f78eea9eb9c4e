#include "gateway/stream/journal_pump.hpp"

#include <algorithm>

namespace sluice {

void JournalPump::mark(const Session& session) {
  std::lock_guard lock(marked_mutex_);
  const bool listed =
      std::any_of(marked_.begin(), marked_.end(), [&](const auto& s) { return s.get() == &session; });
  if (!listed) marked_.push_back(session.shared_from_this());
}

JournalPump::Cursor& JournalPump::follow(std::shared_ptr<Session> session, uint64_t offset, bool held) {
  std::string id = session->id();
  Cursor& c = cursors_[std::move(id)];
  c = Cursor{std::move(session), offset, Clock::now(), held};
  read_all_ = true;  // what the journal already holds past `offset` marked nobody
  return c;
}

void JournalPump::release(Cursor& cursor) {
  cursor.held = false;
  read_all_ = true;  // what came meanwhile marked it while it was held
}

void JournalPump::seek(Cursor& cursor, uint64_t offset) {
  cursor.offset = offset;
  read_all_ = true;
}

void JournalPump::unfollow(const std::string& session_id) { cursors_.erase(session_id); }

JournalPump::Cursor* JournalPump::find(const std::string& session_id) {
  const auto it = cursors_.find(session_id);
  return it == cursors_.end() ? nullptr : &it->second;
}

void JournalPump::clear() {
  cursors_.clear();
  std::lock_guard lock(marked_mutex_);
  marked_.clear();
}

bool JournalPump::caught_up() const {
  return std::all_of(cursors_.begin(), cursors_.end(), [](const auto& kv) {
    return kv.second.offset >= kv.second.session->journal().last_offset();
  });
}

SlowConsumerRule::SlowConsumerRule(const boost::asio::any_io_executor& executor, Clock::duration timeout)
    : timer_(executor), timeout_(timeout) {}

void SlowConsumerRule::review(bool behind, std::function<void()> on_stalled) {
  if (final_) return;
  if (!behind) {
    if (armed_) timer_.cancel();
    armed_ = false;
    return;
  }
  if (armed_) return;
  armed_ = true;
  on_stalled_ = std::move(on_stalled);
  last_progress_ = Clock::now();
  wait(timeout_);
}

void SlowConsumerRule::last_chance(Clock::duration grace, std::function<void()> on_late) {
  final_ = true;
  armed_ = true;
  on_stalled_ = nullptr;
  timer_.expires_after(grace);  // progress no longer postpones it
  timer_.async_wait([late = std::move(on_late)](const boost::system::error_code& ec) {
    if (!ec) late();
  });
}

void SlowConsumerRule::cancel() {
  armed_ = false;
  final_ = true;
  timer_.cancel();
  on_stalled_ = nullptr;
}

void SlowConsumerRule::wait(Clock::duration d) {
  timer_.expires_after(d);
  // The face's callback keeps the face (and so this rule) alive.
  timer_.async_wait([this, keep = on_stalled_](const boost::system::error_code& ec) {
    if (ec || !armed_ || final_) return;
    // Behind but still taking frames is catching up, not stalled.
    const auto since = Clock::now() - last_progress_;
    if (since < timeout_) return wait(timeout_ - since);
    armed_ = false;
    keep();
  });
}

}  // namespace sluice
