#include "gateway/store/redis_client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <charconv>

#include "gateway/common/post_batch.hpp"

namespace sluice {

namespace net = boost::asio;

// The connection's descriptor as hiredis's event hooks see it. hiredis owns
// the descriptor (it closes it): the stream_descriptor only waits on it and
// lets go of it at cleanup. A wait in flight keeps the Watch alive; `dead`
// tells it that hiredis has freed the context meanwhile.
struct RedisClient::Watch : std::enable_shared_from_this<Watch> {
  Watch(net::io_context& ioc, redisAsyncContext* context, int fd) : ac(context), sd(ioc, fd) {}

  void arm_read() {
    if (reading || dead || !want_read) return;
    reading = true;
    sd.async_wait(net::posix::stream_descriptor::wait_read,
                  [self = shared_from_this()](const boost::system::error_code& ec) {
                    self->reading = false;
                    if (ec || self->dead) return;
                    if (auto* client = static_cast<RedisClient*>(self->ac->data)) {
                      client->last_read_ = std::chrono::steady_clock::now();
                    }
                    if (self->want_read) {
                      // The readers that the replies of this read wake are
                      // woken with one post per I/O thread.
                      PostBatch batch;
                      redisAsyncHandleRead(self->ac);  // may free the context
                    }
                    self->arm_read();
                  });
  }

  void arm_write() {
    if (writing || dead || !want_write) return;
    writing = true;
    sd.async_wait(net::posix::stream_descriptor::wait_write,
                  [self = shared_from_this()](const boost::system::error_code& ec) {
                    self->writing = false;
                    if (ec || self->dead) return;
                    if (self->want_write) redisAsyncHandleWrite(self->ac);  // may free the context
                    self->arm_write();
                  });
  }

  void release() {
    dead = true;
    want_read = want_write = false;
    boost::system::error_code ignored;
    sd.cancel(ignored);
    sd.release();  // hiredis closes the descriptor itself
  }

  static void add_read(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_read = true;
    w->arm_read();
  }
  static void del_read(void* p) { static_cast<Watch*>(p)->want_read = false; }
  static void add_write(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_write = true;
    w->arm_write();
  }
  static void del_write(void* p) { static_cast<Watch*>(p)->want_write = false; }
  static void cleanup(void* p) { static_cast<Watch*>(p)->release(); }

  redisAsyncContext* ac;
  net::posix::stream_descriptor sd;
  bool want_read = false;
  bool want_write = false;
  bool reading = false;
  bool writing = false;
  bool dead = false;
};

namespace {
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);
}

RedisValue to_redis_value(const redisReply* r) {
  if (!r) return RedisValue::error("connection lost");
  RedisValue v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = RedisValue::Type::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = RedisValue::Type::kStatus;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = RedisValue::Type::kError;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = RedisValue::Type::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = RedisValue::Type::kArray;
      v.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) v.elements.push_back(to_redis_value(r->element[i]));
      break;
    default:
      v.type = RedisValue::Type::kNil;
      break;
  }
  return v;
}

RedisClient::RedisClient(net::io_context& ioc, RedisEndpoint endpoint, std::string name)
    : ioc_(ioc), endpoint_(std::move(endpoint)), name_(std::move(name)), retry_timer_(ioc), reply_timer_(ioc) {}

RedisClient::~RedisClient() { abandon(); }

void RedisClient::abandon() {
  stopped_ = true;
  connected_ = false;
  if (ctx_) {
    redisAsyncContext* ac = ctx_;
    ctx_ = nullptr;
    ac->data = nullptr;  // its callbacks must not reach this object any more
    redisAsyncFree(ac);
  }
}

void RedisClient::start() {
  stopped_ = false;
  connect();
  watch_replies();
}

void RedisClient::stop() {
  stopped_ = true;
  retry_timer_.cancel();
  reply_timer_.cancel();
  connected_ = false;
  if (ctx_) redisAsyncDisconnect(ctx_);  // replies in flight still arrive; then it is freed
}

void RedisClient::connect() {
  if (stopped_ || ctx_) return;
  redisAsyncContext* ac = endpoint_.unix_path.empty()
                              ? redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port)
                              : redisAsyncConnectUnix(endpoint_.unix_path.c_str());
  if (!ac) return retry_later();
  if (ac->err) {
    if (!logged_down_) {
      spdlog::warn("redis ({}): cannot connect: {}; retrying", name_, ac->errstr);
      logged_down_ = true;
    }
    redisAsyncFree(ac);
    return retry_later();
  }
  ac->data = this;
  sent_.clear();  // a new connection: nothing of the old one is awaited
  watch_ = std::make_shared<Watch>(ioc_, ac, ac->c.fd);
  ac->ev.data = watch_.get();
  ac->ev.addRead = &Watch::add_read;
  ac->ev.delRead = &Watch::del_read;
  ac->ev.addWrite = &Watch::add_write;
  ac->ev.delWrite = &Watch::del_write;
  ac->ev.cleanup = &Watch::cleanup;
  redisAsyncSetConnectCallback(ac, &RedisClient::connect_callback);
  redisAsyncSetDisconnectCallback(ac, &RedisClient::disconnect_callback);
  ctx_ = ac;
  // The non-blocking connect completes when the socket turns writable.
  Watch::add_write(watch_.get());
  handshake();
}

// Checks, a few times per reply timeout, whether the oldest command has waited too long.
void RedisClient::watch_replies() {
  if (stopped_ || reply_timeout_.count() <= 0) return;
  reply_timer_.expires_after(std::max(std::chrono::milliseconds(10), reply_timeout_ / 4));
  reply_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    // Silent: the oldest command has waited that long, and nothing at all
    // came meanwhile (a large reply still arriving is not silence).
    if (ctx_ && !sent_.empty() &&
        std::chrono::steady_clock::now() - std::max(sent_.front(), last_read_) > reply_timeout_) {
      drop_silent_connection();
    }
    watch_replies();
  });
}

void RedisClient::drop_silent_connection() {
  spdlog::warn("redis ({}): nothing heard for over {} ms ({} commands waiting); dropping the connection and "
               "connecting again",
               name_, reply_timeout_.count(), sent_.size());
  logged_down_ = true;  // the reconnection says when it is back
  redisAsyncContext* const ac = ctx_;
  connected_ = false;  // commands issued by the failing callbacks fail at once
  // Every command in flight gets its callback with no reply ("connection
  // lost"); a connection that was up reports its loss (disconnect_callback).
  redisAsyncFree(ac);
  sent_.clear();
  if (ctx_ == ac) {  // it never was connected: no disconnect callback came
    ctx_ = nullptr;
    retry_later();
  }
}

void RedisClient::retry_later() {
  if (stopped_) return;
  retry_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) connect();
  });
}

// AUTH and SELECT go out behind the connect, then a PING: once it answers,
// the connection is usable. Replies of an older connection are ignored.
void RedisClient::handshake() {
  redisAsyncContext* const ac = ctx_;
  auto send = [this, ac](std::vector<std::string> args, Callback done) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* cb = new Callback(std::move(done));
    if (redisAsyncCommandArgv(ac, &RedisClient::command_reply, cb, static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      delete cb;
      return;
    }
    note_sent();
  };
  auto failed = [this, ac](const char* what, const RedisValue& v) {
    if (ctx_ != ac || v.str == "connection lost") return;
    spdlog::error("redis ({}): {} failed: {}", name_, what, v.str);
    redisAsyncDisconnect(ac);
  };
  if (!endpoint_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!endpoint_.username.empty()) auth.push_back(endpoint_.username);
    auth.push_back(endpoint_.password);
    send(std::move(auth), [failed](const RedisValue& v) {
      if (v.is_error()) failed("AUTH", v);
    });
  }
  if (endpoint_.db != 0) {
    send({"SELECT", std::to_string(endpoint_.db)}, [failed](const RedisValue& v) {
      if (v.is_error()) failed("SELECT", v);
    });
  }
  send({"PING"}, [this, ac, failed](const RedisValue& v) {
    if (ctx_ != ac) return;
    // LOADING (a restarted Redis reading its data) and the like: try again later.
    if (v.is_error()) return failed("PING", v);
    backoff_ = std::chrono::milliseconds(50);
    if (logged_down_) spdlog::info("redis ({}): connected again", name_);
    logged_down_ = false;
    connected_ = true;
    unsubscribing_.clear();  // a new connection has no subscriptions
    for (const auto& [channel, sub] : subscriptions_) send_subscribe(channel);
    if (on_connect_) on_connect_();
  });
}

void RedisClient::connect_callback(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self || status == REDIS_OK) return;
  // hiredis frees the context after this callback.
  if (!self->logged_down_) {
    spdlog::warn("redis ({}): cannot connect: {}; retrying", self->name_, ac->errstr);
    self->logged_down_ = true;
  }
  self->ctx_ = nullptr;
  self->connected_ = false;
  net::post(self->ioc_, [self] { self->retry_later(); });
}

void RedisClient::disconnect_callback(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self) return;
  self->ctx_ = nullptr;
  self->connected_ = false;
  if (self->stopped_) return;
  if (!self->logged_down_) {
    spdlog::warn("redis ({}): connection lost{}{}; reconnecting", self->name_, status == REDIS_OK ? "" : ": ",
                 status == REDIS_OK ? "" : ac->errstr);
    self->logged_down_ = true;
  }
  net::post(self->ioc_, [self] { self->retry_later(); });
}

void RedisClient::command_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<Callback> cb(static_cast<Callback*>(privdata));
  auto* self = static_cast<RedisClient*>(ac->data);
  if (!self) return;  // abandoned: nobody waits for it any more
  if (self->ctx_ == ac && !self->sent_.empty()) self->sent_.pop_front();
  if (*cb) (*cb)(to_redis_value(static_cast<redisReply*>(reply)));
}

void RedisClient::begin_command(std::string& out, size_t arguments) {
  char digits[24];
  out += '*';
  out.append(digits, std::to_chars(digits, digits + sizeof digits, arguments).ptr);
  out += "\r\n";
}

void RedisClient::append_argument(std::string& out, std::string_view arg) {
  char digits[24];
  out += '$';
  out.append(digits, std::to_chars(digits, digits + sizeof digits, arg.size()).ptr);
  out += "\r\n";
  out += arg;
  out += "\r\n";
}

void RedisClient::command(std::initializer_list<std::string_view> args, Callback done) {
  scratch_.clear();
  format_command(scratch_, args);
  send(scratch_, std::move(done));
}

void RedisClient::send(std::string_view resp, Callback done) {
  if (!ctx_ || !connected()) {
    // Never inline: a caller that retries on error must not recurse.
    net::post(ioc_, [done = std::move(done)] { done(RedisValue::error("not connected to redis")); });
    return;
  }
  auto* cb = new Callback(std::move(done));
  if (redisAsyncFormattedCommand(ctx_, &RedisClient::command_reply, cb, resp.data(), resp.size()) != REDIS_OK) {
    std::unique_ptr<Callback> owned(cb);
    net::post(ioc_, [done = std::move(*owned)] { done(RedisValue::error("connection lost")); });
    return;
  }
  note_sent();
}

void RedisClient::write_now() {
  // As the Watch's handler would, a turn later (a failed write frees the context).
  if (ctx_ && connected() && watch_ && watch_->want_write) redisAsyncHandleWrite(ctx_);
}

void RedisClient::subscribe(const std::string& channel, Message on_message, std::function<void()> subscribed) {
  subscriptions_[channel] = {std::move(on_message), std::move(subscribed)};
  // After an UNSUBSCRIBE still on its way, its reply would drop the new
  // subscription's callback inside hiredis: it is sent once that reply is in.
  if (ctx_ && connected() && !unsubscribing_.count(channel)) send_subscribe(channel);
}

void RedisClient::unsubscribe(const std::string& channel) {
  if (subscriptions_.erase(channel) == 0) return;
  if (!ctx_ || !connected()) return;
  if (!unsubscribing_.insert(channel).second) return;  // one on its way already
  const char* argv[] = {"UNSUBSCRIBE", channel.data()};
  const size_t lens[] = {11, channel.size()};
  redisAsyncCommandArgv(ctx_, &RedisClient::subscriber_reply, this, 2, argv, lens);
}

void RedisClient::send_subscribe(const std::string& channel) {
  const char* argv[] = {"SUBSCRIBE", channel.data()};
  const size_t lens[] = {9, channel.size()};
  redisAsyncCommandArgv(ctx_, &RedisClient::subscriber_reply, this, 2, argv, lens);
}

// Every reply of a subscriber connection: ["subscribe", channel, count],
// ["message", channel, payload] or ["unsubscribe", channel, count].
void RedisClient::subscriber_reply(redisAsyncContext*, void* reply, void* privdata) {
  const auto* r = static_cast<const redisReply*>(reply);
  auto* self = static_cast<RedisClient*>(privdata);
  if (!r || !self || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const redisReply* kind = r->element[0];
  const redisReply* channel = r->element[1];
  if (kind->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING) return;
  const std::string_view k(kind->str, kind->len);
  const std::string name(channel->str, channel->len);
  if (k == "unsubscribe") {
    self->unsubscribing_.erase(name);
    // Subscribed again meanwhile: now it can go.
    if (self->subscriptions_.count(name) && self->ctx_ && self->connected()) self->send_subscribe(name);
    return;
  }
  const auto it = self->subscriptions_.find(name);
  if (it == self->subscriptions_.end()) return;
  if (k == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
    auto on_message = it->second.on_message;  // the handler may unsubscribe
    on_message(name, std::string_view(r->element[2]->str, r->element[2]->len));
  } else if (k == "subscribe" && it->second.subscribed) {
    auto subscribed = it->second.subscribed;  // it may unsubscribe
    subscribed();
  }
}

}  // namespace sluice
