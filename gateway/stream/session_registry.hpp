// SessionRegistry: every live session of this gateway, by id. Sessions that
// nobody uses for `retention` are forgotten (a resume then says "expired");
// the journal store's old turns are expired on the same sweep.
//
// Threads: every public member is thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/stream/journal.hpp"
#include "gateway/stream/session.hpp"

namespace sluice {

class SessionRegistry : public std::enable_shared_from_this<SessionRegistry> {
 public:
  using Clock = std::chrono::steady_clock;

  SessionRegistry(boost::asio::io_context& ioc, std::shared_ptr<JournalStore> store, Engine& engine,
                  SessionSettings settings, std::chrono::milliseconds retention);

  std::shared_ptr<Session> create(const std::string& principal);
  // Forgets a session that was created for a turn that was then refused,
  // with no tombstone: it never existed for anyone.
  void discard(const std::string& id);

  enum class Lookup { kFound, kUnknown, kExpired, kUnavailable };
  // The session `id` of `principal`. Another principal's session, live or
  // expired, is kUnknown, exactly like a session that never existed.
  std::shared_ptr<Session> find(const std::string& id, const std::string& principal,
                                Lookup& why) const;

  // Like find; when this instance has no such session and the journal store
  // is shared, the session is opened from the store (another instance
  // created it) and kept here as a follower. Returns true when `done` was
  // called before returning (the session was here, or the store is not
  // shared); otherwise `done` is posted to `executor` later, with kUnavailable
  // when the store cannot be reached.
  using Found = std::function<void(std::shared_ptr<Session>, Lookup)>;
  bool find_or_open(const std::string& id, const std::string& principal,
                    const boost::asio::any_io_executor& executor, Found done);

  // Starts the periodic sweep, and (a shared store) the taking over of
  // orphaned turns that nobody here watches; stop() ends it.
  void start();
  void stop();
  // Drain: ends every running turn with `why`.
  void cancel_all(const TurnError& why);
  // One sweep now (tests, and the timer); one thread at a time. After a
  // sweep that let go of much memory, the free heap pages are handed back
  // to the kernel (malloc_trim), so the resident size follows the load down.
  void sweep(Clock::time_point now);
  size_t size() const;
  JournalStore& store() const { return *store_; }

 private:
  void schedule();
  // A shared store found a turn whose instance was lost: opened here and taken over.
  void adopt_orphaned_turn(const std::string& id, const std::string& principal);
  // With mutex_ held: moves the sessions idle since before `now - retention`
  // out, leaving tombstones.
  void forget_idle(Clock::time_point now, std::vector<std::shared_ptr<Session>>& forgotten);
  void return_memory(Clock::time_point now, size_t held);  // on the sweeping thread

  boost::asio::io_context& ioc_;
  std::shared_ptr<JournalStore> store_;
  Engine& engine_;
  const SessionSettings settings_;
  const std::chrono::milliseconds retention_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;  // on strand_
  bool stopped_ = false;             // on strand_
  std::atomic<bool> adopting_{true};  // orphaned turns are taken over (not once stopping or draining)
  // Memory handed back after expiry (return_memory), on the sweeping thread.
  size_t journal_peak_since_trim_ = 0;
  size_t forgotten_since_trim_ = 0;
  size_t sessions_peak_since_trim_ = 0;
  Clock::time_point last_trim_{};
  boost::asio::thread_pool trim_thread_{1};  // malloc_trim runs here

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
  struct OpenWaiter {
    std::string principal;
    boost::asio::any_io_executor executor;
    Found done;
  };
  std::unordered_map<std::string, std::vector<OpenWaiter>> opening_;  // opens from the store in flight
  // Forgotten session ids and their principals, so that a late resume by
  // the same principal can say "expired" (to anyone else it is unknown).
  std::unordered_map<std::string, std::string> tombstones_;
  std::deque<std::pair<std::string, Clock::time_point>> tombstone_order_;
};

}  // namespace sluice
