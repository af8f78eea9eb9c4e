#include "tests/support/redis_server.hpp"

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace sluice::test {

namespace {

RedisReplyText to_text(const redisReply* r) {
  RedisReplyText t;
  if (!r) {
    t.error = true;
    t.str = "no reply";
    return t;
  }
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: t.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR:
      t.error = true;
      t.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER: t.integer = r->integer; break;
    case REDIS_REPLY_NIL: t.nil = true; break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) t.elements.push_back(to_text(r->element[i]));
      break;
  }
  return t;
}

}  // namespace

bool RedisServer::installed() { return access("/usr/bin/redis-server", X_OK) == 0; }

RedisServer::RedisServer(bool persistent) : persistent_(persistent) {
  char tmpl[] = "/tmp/sluice-redis-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  port_ = unused_port();
  if (installed()) start();
}

RedisServer::~RedisServer() {
  if (ctx_) redisFree(ctx_);
  process_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::start() {
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", persistent_ ? "yes" : "no", "--appendfsync", "always", "--dir", dir_, "--daemonize", "no",
                               "--loglevel", "warning"},
      std::vector<std::string>{}, false);
  connect();
}

void RedisServer::kill() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
  if (process_) {
    process_->signal(SIGKILL);
    process_->wait(std::chrono::seconds(5));
  }
  process_.reset();
}

void RedisServer::pause() {
  if (process_) process_->signal(SIGSTOP);
}

void RedisServer::resume() {
  if (process_) process_->signal(SIGCONT);
}

void RedisServer::connect() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    redisContext* c = redisConnect("127.0.0.1", port_);
    if (c && !c->err) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      const bool ok = r && r->type == REDIS_REPLY_STATUS;
      if (r) freeReplyObject(r);
      if (ok) {
        ctx_ = c;
        return;
      }
    }
    if (c) redisFree(c);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("redis-server did not answer on port " + std::to_string(port_));
}

RedisReplyText RedisServer::call(const std::vector<std::string>& args) {
  if (!ctx_) connect();
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  RedisReplyText t = to_text(r);
  if (r) freeReplyObject(r);
  return t;
}

}  // namespace sluice::test
