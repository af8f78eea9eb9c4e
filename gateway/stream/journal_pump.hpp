// JournalPump: how every face (the WebSocket connection, an SSE response,
// and whatever comes next) moves a session's events to its client. A face is
// a reader of the sessions it follows; the pump holds its cursor in each
// session's journal, remembers which sessions said they have news, and, when
// the face has room, hands it what the journals hold past those cursors, in
// offset order, shared (JournalEntryPtr: no copy per reader) and, when the
// face coalesces, with consecutive deltas merged into one at the last one's
// offset. The face encodes and sends; the pump never blocks and never
// touches a socket.
//
// One slow-consumer rule for every face (SlowConsumerRule): a reader whose
// last pump stopped for room (its queue is full, events wait behind it) and
// whose face finished no write for limits.slow_consumer_timeout is given up
// on; it resumes from its offsets. A reader whose events are gone from the
// journal before it read them (the budget evicted them, or they expired) is
// told so by pump() (Outcome::kLost).
//
// Threads: mark() from any thread; everything else on the face's executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/stream/journal.hpp"
#include "gateway/stream/session.hpp"

namespace sluice {

class JournalPump {
 public:
  using Clock = std::chrono::steady_clock;

  struct Cursor {
    std::shared_ptr<Session> session;
    uint64_t offset = 0;         // the last offset handed to the face
    Clock::time_point last_used;  // the face's own bookkeeping (which to let go first)
    bool held = false;            // nothing handed to the face until release()
  };

  // What a face's emit returns: the bytes it queued (counted against the
  // room), and whether it takes nothing more (an SSE answer at its done).
  struct Emitted {
    size_t bytes = 0;
    bool last = false;
  };

  enum class Outcome {
    kCaughtUp,  // every cursor read is at its journal's end
    kFull,      // stopped for room: behind() is true
    kLast,      // the face took its last event (Emitted::last)
    kLost,      // a cursor's events are gone: `lost` and `status` say which and why
  };
  struct Result {
    Outcome outcome = Outcome::kCaughtUp;
    const Cursor* lost = nullptr;
    JournalStatus status = JournalStatus::kOk;
  };

  // Any thread: `session` has new events. Sessions are listed once until
  // the next pump; the face wakes itself (ReaderWakeup).
  void mark(const Session& session);

  // Follows `session` from `offset`: the next pump reads what is already
  // past it (nothing will mark it). Replaces a cursor of the same id.
  // A `held` cursor hands nothing until release(): a face that must tell
  // its client about the session first (its id) follows it held.
  Cursor& follow(std::shared_ptr<Session> session, uint64_t offset, bool held = false);
  void release(Cursor& cursor);
  // Moves a cursor (a resume of a followed session starts over there).
  void seek(Cursor& cursor, uint64_t offset);
  void unfollow(const std::string& session_id);
  Cursor* find(const std::string& session_id);
  std::unordered_map<std::string, Cursor>& cursors() { return cursors_; }
  const std::unordered_map<std::string, Cursor>& cursors() const { return cursors_; }
  void clear();

  // Hands the face what the marked sessions' journals hold past their
  // cursors (every cursor's after follow, seek, or a pump cut short), while
  // `room` bytes last. `emit(const Cursor&, const JournalEntryPtr&)` and,
  // with `coalesce`, `merged(const Cursor&, StreamEvent&&)` (consecutive
  // deltas as one) return Emitted; the cursor moves past what was handed.
  template <class Emit, class Merged>
  Result pump(size_t room, bool coalesce, Emit&& emit, Merged&& merged);
  template <class Emit>
  Result pump(size_t room, Emit&& emit) {
    return pump(room, false, std::forward<Emit>(emit), [](const Cursor&, StreamEvent&&) { return Emitted{}; });
  }

  // The last pump stopped before the journals' end: the face is behind.
  bool behind() const { return read_all_; }
  // Every cursor is at its journal's last offset.
  bool caught_up() const;

 private:
  template <class Emit, class Merged>
  bool drain(Cursor& c, size_t& room, bool coalesce, Emit& emit, Merged& merged, Result& result);

  std::unordered_map<std::string, Cursor> cursors_;
  std::mutex marked_mutex_;
  std::vector<std::shared_ptr<const Session>> marked_;  // alive until the pump
  std::vector<std::shared_ptr<const Session>> woken_;   // the pump's copy
  std::vector<JournalEntryPtr> read_;                   // reused from pump to pump
  bool read_all_ = false;
};

template <class Emit, class Merged>
JournalPump::Result JournalPump::pump(size_t room, bool coalesce, Emit&& emit, Merged&& merged) {
  woken_.clear();
  {
    std::lock_guard lock(marked_mutex_);
    woken_.swap(marked_);
  }
  struct Release {
    std::vector<std::shared_ptr<const Session>>& v;
    ~Release() { v.clear(); }  // holds no session past the pump
  } release{woken_};
  Result result;
  const bool all = std::exchange(read_all_, false);
  if (all) {
    for (auto& [id, c] : cursors_) {
      if (!drain(c, room, coalesce, emit, merged, result)) return result;
    }
    return result;
  }
  for (const auto& s : woken_) {
    const auto it = cursors_.find(s->id());
    // It may have been let go (and another session followed under the same
    // id) since it marked itself.
    if (it == cursors_.end() || it->second.session != s) continue;
    if (!drain(it->second, room, coalesce, emit, merged, result)) return result;
  }
  return result;
}

template <class Emit, class Merged>
bool JournalPump::drain(Cursor& c, size_t& room, bool coalesce, Emit& emit, Merged& merged,
                        Result& result) {
  if (c.held) return true;
  auto full = [&] {
    read_all_ = true;  // this cursor, and those after it, wait for room
    result.outcome = Outcome::kFull;
    return false;
  };
  for (;;) {
    if (room == 0) {
      // Out of room: behind only if this journal holds more.
      if (c.offset >= c.session->journal().last_offset()) return true;
      return full();
    }
    read_.clear();
    const JournalStatus status = c.session->journal().read(c.offset, room, read_);
    if (status != JournalStatus::kOk) {
      result.outcome = Outcome::kLost;
      result.lost = &c;
      result.status = status;
      return false;
    }
    if (read_.empty()) return true;
    for (size_t i = 0; i < read_.size(); ++i) {
      const StreamEvent& e = read_[i]->event();
      Emitted out;
      if (coalesce && e.type == StreamEventType::kDelta && i + 1 < read_.size() &&
          read_[i + 1]->event().type == StreamEventType::kDelta) {
        StreamEvent m;
        m.type = StreamEventType::kDelta;
        m.text = e.text;
        while (i + 1 < read_.size() && read_[i + 1]->event().type == StreamEventType::kDelta) {
          m.text += read_[++i]->event().text;
        }
        m.offset = read_[i]->offset();
        c.offset = m.offset;
        out = merged(c, std::move(m));
      } else {
        c.offset = e.offset;
        out = emit(c, read_[i]);
      }
      room -= std::min(room, out.bytes);
      if (out.last) {
        result.outcome = Outcome::kLast;
        return false;
      }
    }
  }
}

// The slow-consumer rule (see the top of this file), on the face's
// executor. `on_stalled` runs when a face stayed behind without progress for
// the timeout; it should keep the face alive (capture a shared_ptr).
class SlowConsumerRule {
 public:
  using Clock = std::chrono::steady_clock;
  SlowConsumerRule(const boost::asio::any_io_executor& executor, Clock::duration timeout);

  // After each pump: behind starts the clock (once), caught up stops it.
  void review(bool behind, std::function<void()> on_stalled);
  // A write finished: the face is taking frames, so it is catching up.
  void progress() { last_progress_ = Clock::now(); }
  // After giving up: `on_late` runs if the face has not ended within `grace`.
  void last_chance(Clock::duration grace, std::function<void()> on_late);
  void cancel();

 private:
  void wait(Clock::duration d);

  boost::asio::steady_timer timer_;
  const Clock::duration timeout_;
  std::function<void()> on_stalled_;
  Clock::time_point last_progress_{};
  bool armed_ = false;
  bool final_ = false;  // last_chance: no more reviews, the grace runs out
};

}  // namespace sluice
