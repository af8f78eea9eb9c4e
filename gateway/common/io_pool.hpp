// IoPool: the gateway's I/O threads, one io_context each. A connection is
// placed on one context when it is accepted and everything it starts stays
// there: the upstream turn (the openai engine keeps a curl multi shard per
// context and picks the caller's), the session's journal appends and the
// connection's frames. A token then crosses no thread from the upstream
// socket to the client frame; another thread is involved only when a reader
// on another context attaches (a second tab, a resume on another connection).
// With one io_context run by several threads, handlers would move between
// threads, and every such hand-off is a wake-up (futex or epoll_ctl).
//
// Threads: context() and next() are thread-safe; run() once, from main.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

namespace sluice {

class IoPool {
 public:
  explicit IoPool(int threads);  // at least one
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  size_t size() const { return contexts_.size(); }
  // Context 0 runs on the thread that calls run(): signals, timers of the
  // process, listeners.
  boost::asio::io_context& context(size_t i) { return *contexts_[i]; }
  // The context for a new connection, round-robin.
  boost::asio::io_context& next();
  // The index of the context the calling thread runs, or -1 off the pool.
  static int current();

  // Runs every context, each on a thread of its own (context 0 on this one),
  // until stop().
  void run();
  void stop();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<Guard> guards_;
  std::atomic<size_t> next_{0};
};

}  // namespace sluice
