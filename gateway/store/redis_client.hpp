// RedisClient: one connection to Redis, driven by an Asio io_context through
// hiredis's async API. hiredis has adapters for libev, libevent, libuv and
// others but none for Asio: this one watches the connection's descriptor
// with `async_wait` (readable / writable, as hiredis asks through its
// addRead/delRead/addWrite/delWrite hooks) and calls redisAsyncHandleRead or
// redisAsyncHandleWrite when it is ready. Nothing blocks: connecting,
// AUTH, SELECT and every command are asynchronous.
//
// The client reconnects by itself (backoff 50 ms doubling to 2 s) and says
// whether it is connected; a command issued while it is not fails at once
// with an error reply, and the commands in flight when the connection drops
// fail with one ("connection lost"): callers decide whether to retry.
// Commands sent before a reply are pipelined (hiredis writes whatever is
// buffered in one write when the socket is writable).
//
// Subscriber connections (subscribe/unsubscribe) keep their channels over a
// reconnect and say so through on_connect, so that their users can catch up
// with what they missed.
//
// Threads: every member is called on the io_context's thread, except
// connected(), which any thread may call.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gateway/store/redis_url.hpp"

struct redisAsyncContext;
struct redisReply;

namespace sluice {

// A reply, copied out of hiredis (whose reply objects die with the callback).
struct RedisValue {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisValue> elements;

  bool is_error() const { return type == Type::kError; }
  static RedisValue error(std::string message) {
    RedisValue v;
    v.type = Type::kError;
    v.str = std::move(message);
    return v;
  }
};

class RedisClient : public std::enable_shared_from_this<RedisClient> {
 public:
  using Callback = std::function<void(const RedisValue&)>;
  using Message = std::function<void(std::string_view channel, std::string_view payload)>;

  RedisClient(boost::asio::io_context& ioc, RedisEndpoint endpoint, std::string name);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Connects, and reconnects whenever the connection drops, until stop().
  void start();
  void stop();
  // Once its thread no longer runs: frees the connection at once, with the
  // callbacks still waiting for a reply, none of them called.
  void abandon();
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  // Called after every (re)connection, once AUTH and SELECT have succeeded.
  void on_connect(std::function<void()> f) { on_connect_ = std::move(f); }
  // A command whose reply has not come within `timeout`, with nothing at
  // all read from the connection meanwhile, means a Redis that is
  // connected but silent (stopped, swapping, a blocked script): the
  // connection is dropped, every command in flight fails ("connection
  // lost") and the client connects again. Zero: no limit. Before start().
  void set_reply_timeout(std::chrono::milliseconds timeout) { reply_timeout_ = timeout; }

  // Sends one command (binary-safe arguments); `done` gets its reply, or an
  // error reply when the client is not connected or the connection drops.
  void command(std::initializer_list<std::string_view> args, Callback done);
  // The same for a command already in Redis's protocol (format_command).
  void send(std::string_view resp, Callback done);
  // Writes the commands sent so far now rather than once the loop sees the
  // socket writable: one write, without another turn of the loop, for a
  // burst of commands just sent.
  void write_now();
  // Appends `args` as one command in Redis's protocol (RESP) to `out`: what
  // send() takes, built without a copy of each argument of its own.
  static void format_command(std::string& out, std::initializer_list<std::string_view> args) {
    begin_command(out, args.size());
    for (const auto a : args) append_argument(out, a);
  }
  static void begin_command(std::string& out, size_t arguments);
  static void append_argument(std::string& out, std::string_view arg);

  // Subscriber connections only: `on_message` gets every message published
  // on `channel`; `subscribed` runs each time Redis confirms the
  // subscription: first, and again after every reconnection (messages
  // published while the connection was down are lost: catch up then).
  void subscribe(const std::string& channel, Message on_message, std::function<void()> subscribed = {});
  void unsubscribe(const std::string& channel);

  const std::string& name() const { return name_; }

 private:
  struct Watch;  // the descriptor and its wanted events (hiredis's ev.data)
  void connect();
  void retry_later();
  void on_connected(int status);
  void on_disconnected(int status);
  void handshake();
  void watch_replies();
  void drop_silent_connection();
  void note_sent() { sent_.push_back(std::chrono::steady_clock::now()); }
  void send_subscribe(const std::string& channel);
  static void command_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void subscriber_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void connect_callback(const redisAsyncContext* ac, int status);
  static void disconnect_callback(const redisAsyncContext* ac, int status);

  boost::asio::io_context& ioc_;
  const RedisEndpoint endpoint_;
  const std::string name_;
  redisAsyncContext* ctx_ = nullptr;  // null between connections
  std::shared_ptr<Watch> watch_;
  boost::asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_{50};
  bool stopped_ = true;
  std::atomic<bool> connected_{false};
  std::function<void()> on_connect_;
  struct Subscription {
    Message on_message;
    std::function<void()> subscribed;
  };
  std::unordered_map<std::string, Subscription> subscriptions_;
  std::unordered_set<std::string> unsubscribing_;  // UNSUBSCRIBE sent, its reply not in yet
  bool logged_down_ = false;  // one log line per outage, not per retry
  std::chrono::milliseconds reply_timeout_{0};
  boost::asio::steady_timer reply_timer_;
  // When each command still waiting for its reply was sent, oldest first
  // (a connection's replies come in order).
  std::deque<std::chrono::steady_clock::time_point> sent_;
  std::chrono::steady_clock::time_point last_read_{};  // the connection last had bytes to read
  std::string scratch_;  // command(): the command being formatted
};

// A RedisValue from hiredis's reply (null: the connection was lost).
RedisValue to_redis_value(const redisReply* reply);

}  // namespace sluice
