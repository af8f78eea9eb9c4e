// PostBatch: holds the posts that a thread makes to other threads' executors
// while a scope runs, and sends them at its end with one post per execution
// context (io_context) instead of one each.
//
// Why: a post to an idle io_context wakes its thread (an epoll_ctl on its
// reactor, then a context switch). The Redis store's thread reads the
// replies to many sessions' batches at once, and each reply wakes that
// session's readers on their I/O threads: one wakeup per reply made the I/O
// threads switch twice as often as with the memory store. In a scope around
// that read, an I/O thread wakes once per read and runs every reader's pull.
//
// Order is kept per executor; a strand's handlers still run on its strand
// (dispatched from the context's thread). Handlers must be copyable
// (std::function). Outside a scope, post() is boost::asio::post.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/container/small_vector.hpp>
#include <functional>
#include <utility>
#include <vector>

namespace sluice {

class PostBatch {
 public:
  PostBatch() : outer_(current()) { current() = this; }
  ~PostBatch() {
    current() = outer_;
    send();
  }
  PostBatch(const PostBatch&) = delete;
  PostBatch& operator=(const PostBatch&) = delete;

  // boost::asio::post(executor, f), held until the innermost open scope of
  // this thread ends.
  template <typename Executor, typename F>
  static void post(const Executor& executor, F&& f) {
    if (PostBatch* batch = current()) {
      batch->add(boost::asio::any_io_executor(executor), std::function<void()>(std::forward<F>(f)));
    } else {
      boost::asio::post(executor, std::forward<F>(f));
    }
  }

 private:
  struct Item {
    boost::asio::any_io_executor executor;
    std::function<void()> f;
  };
  struct Group {
    const void* context;
    std::vector<Item> items;
  };

  static PostBatch*& current() {
    static thread_local PostBatch* batch = nullptr;
    return batch;
  }

  void add(boost::asio::any_io_executor executor, std::function<void()> f) {
    const void* context = &boost::asio::query(executor, boost::asio::execution::context);
    Group* group = nullptr;
    for (auto& g : groups_) {
      if (g.context == context) group = &g;
    }
    if (!group) group = &groups_.emplace_back(Group{context, {}});
    group->items.push_back(Item{std::move(executor), std::move(f)});
  }

  void send() {
    for (auto& g : groups_) {
      if (g.items.size() == 1) {
        boost::asio::post(g.items.front().executor, std::move(g.items.front().f));
        continue;
      }
      // Run on the first item's executor; the others are dispatched from
      // there: their strands run them on this context's thread, in order.
      auto first = g.items.front().executor;
      boost::asio::post(first, [items = std::move(g.items)]() mutable {
        for (auto& i : items) boost::asio::dispatch(i.executor, std::move(i.f));
      });
    }
  }

  PostBatch* const outer_;
  boost::container::small_vector<Group, 4> groups_;
};

}  // namespace sluice
