// ReaderWakeup: turns a burst of "new events" notifications, from any
// threads, into one call on the reader's executor. Readers pull everything
// new when woken, so one wake-up per burst is enough.
#pragma once

#include <atomic>
#include <utility>

#include "gateway/common/post_batch.hpp"

namespace sluice {

class ReaderWakeup {
 public:
  // Posts `pull` to `executor` unless a wake-up is already on its way
  // (in a PostBatch scope, with the thread's other posts to that context).
  // `pull` must keep its reader alive (capture a shared_ptr) and be copyable.
  template <typename Executor, typename Pull>
  void notify(const Executor& executor, Pull pull) {
    if (posted_.exchange(true)) return;
    PostBatch::post(executor, [this, pull = std::move(pull)]() mutable {
      posted_ = false;
      pull();
    });
  }

 private:
  std::atomic<bool> posted_{false};
};

}  // namespace sluice
