#include "gateway/common/io_pool.hpp"

#include <algorithm>
#include <thread>

namespace sluice {

namespace {
thread_local int t_current = -1;
}

IoPool::IoPool(int threads) {
  const int n = std::max(1, threads);
  for (int i = 0; i < n; ++i) {
    // One thread per context: Asio skips the wake-ups a shared context needs.
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.emplace_back(contexts_.back()->get_executor());
  }
}

boost::asio::io_context& IoPool::next() {
  return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

int IoPool::current() { return t_current; }

void IoPool::run() {
  std::vector<std::thread> threads;
  for (size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([this, i] {
      t_current = static_cast<int>(i);
      contexts_[i]->run();
    });
  }
  t_current = 0;
  contexts_[0]->run();
  t_current = -1;
  for (auto& t : threads) t.join();
}

void IoPool::stop() {
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
}

}  // namespace sluice
