// ReaderWakeup: turns a burst of "new events" notifications, from any
// threads, into one call on the reader's executor. Readers pull everything
// new when woken, so one wake-up per burst is enough.
#pragma once

#include <atomic>
#include <boost/asio/post.hpp>
#include <utility>

namespace sluice {

class ReaderWakeup {
 public:
  // Posts `pull` to `executor` unless a wake-up is already on its way.
  // `pull` must keep its reader alive (capture a shared_ptr).
  template <typename Executor, typename Pull>
  void notify(const Executor& executor, Pull pull) {
    if (posted_.exchange(true)) return;
    boost::asio::post(executor, [this, pull = std::move(pull)]() mutable {
      posted_ = false;
      pull();
    });
  }

 private:
  std::atomic<bool> posted_{false};
};

}  // namespace sluice
