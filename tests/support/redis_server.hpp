// RedisServer: a real redis-server (Debian's) started by a test on a free
// port, with no persistence, in a scratch directory; stopped, restarted or
// paused by the test. `call` runs one command synchronously (hiredis's
// blocking API: fine in a test, never in the gateway).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

struct redisContext;

namespace sluice::test {

struct RedisReplyText {
  bool error = false;
  bool nil = false;
  long long integer = 0;
  std::string str;                       // string, status or error
  std::vector<RedisReplyText> elements;  // array
};

class RedisServer {
 public:
  // Skips the test (GTEST_SKIP from the caller: check available()) when
  // redis-server is not installed.
  // `persistent`: an append-only file, fsynced on every write, so that a
  // kill and start loses nothing (as a production Redis with AOF).
  explicit RedisServer(bool persistent = false);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  static bool installed();
  uint16_t port() const { return port_; }
  std::string url(int db = 0) const { return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db); }
  // Stops it (SIGKILL: as a crash would), and starts it again on the same
  // port: empty, or with its data when persistent.
  void kill();
  void start();
  void restart() { kill(); start(); }
  // SIGSTOP / SIGCONT: a Redis that is connected but answers nothing.
  void pause();
  void resume();
  RedisReplyText call(const std::vector<std::string>& args);

 private:
  void connect();
  uint16_t port_ = 0;
  bool persistent_ = false;
  std::string dir_;
  std::unique_ptr<Process> process_;
  redisContext* ctx_ = nullptr;
};

}  // namespace sluice::test
