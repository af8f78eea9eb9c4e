#include "gateway/store/redis_journal_store.hpp"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <deque>

#include "gateway/store/event_record.hpp"

namespace sluice {

namespace net = boost::asio;

namespace {

// KEYS[1] the record hash, KEYS[2] the stream.
// ARGV[1] epoch, ARGV[2] first offset, ARGV[3] TTL (ms), ARGV[4] stream cap,
// ARGV[5] channel, ARGV[6] "1": create the record (it must not exist),
// ARGV[7] n, ARGV[8 .. 7+2n] record fields and values, then the events.
// Returns the record's last offset.
const std::string kAppendScript = R"lua(
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if ARGV[6] == '1' then
  if epoch then return redis.error_reply('EXISTS session record already exists') end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'last', '0')
elseif epoch ~= ARGV[1] then
  return redis.error_reply('FENCED epoch is ' .. tostring(epoch) .. ', not ' .. ARGV[1])
end
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
local first = tonumber(ARGV[2])
local n = tonumber(ARGV[7])
local base = 8 + 2 * n
local count = #ARGV - base + 1
local again = count > 0 and first + count - 1 <= last
if count > 0 and not again and first ~= last + 1 then
  return redis.error_reply('GAP the stream ends at ' .. last .. ', the batch starts at ' .. first)
end
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + 2 * n)) end
if count > 0 and not again then
  for i = 0, count - 1 do
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], (first + i) .. '-0', 'd', ARGV[base + i])
  end
  last = first + count - 1
  redis.call('HSET', KEYS[1], 'last', last)
  redis.call('PUBLISH', ARGV[5], ARGV[2] .. '\n' .. table.concat(ARGV, '\n', base))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return last
)lua";

std::string sha1_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// "<ms>-<seq>" -> ms (the journal's offset).
bool stream_id_offset(std::string_view id, uint64_t& offset) {
  const auto dash = id.find('-');
  return parse_u64(id.substr(0, dash), offset);
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// How long opening a session may wait for Redis before it is answered as unavailable.
constexpr auto kOpenTimeout = std::chrono::milliseconds(2000);

}  // namespace

const std::string& redis_append_script() { return kAppendScript; }

// A journal kept in Redis. The owner (the instance that created the
// session) appends; a follower (another instance that opened it) mirrors
// the stream. Both read from their local copy (MemoryJournal).
class RedisJournal final : public Journal, public std::enable_shared_from_this<RedisJournal> {
 public:
  enum class Role { kOwner, kFollower };
  using Opened = JournalStore::Opened;

  RedisJournal(std::shared_ptr<RedisJournalStore> store, std::string id, Role role,
               std::shared_ptr<MemoryJournal> local)
      : store_(std::move(store)), id_(std::move(id)), role_(role), local_(std::move(local)) {
    if (role_ == Role::kOwner) local_->show_through(0);  // nothing shown before Redis has it
  }

  ~RedisJournal() override {
    store_->events_pending_ -= pending_.size() + inflight_.size();
    if (role_ == Role::kFollower) {
      net::post(store_->ioc_, [store = store_, channel = store_->channel(id_)] { store->forget_follower(channel); });
    }
  }

  uint64_t append(StreamEvent event) override {
    if (role_ != Role::kOwner) {
      spdlog::error("session {}: an event was appended to a journal this instance only follows", id_);
      return 0;
    }
    std::string record = encode_event_record(event);
    bool schedule = false;
    uint64_t offset = 0;
    {
      std::lock_guard lock(mutex_);
      offset = local_->append(std::move(event));
      if (fenced_) return offset;  // never shown, never written
      pending_.push_back({offset, std::move(record)});
      ++store_->events_pending_;
      schedule = !std::exchange(scheduled_, true);
    }
    if (schedule) store_->schedule(shared_from_this());
    return offset;
  }

  void end_turn() override { local_->end_turn(); }
  using Journal::read;
  JournalStatus read(uint64_t after, size_t max_bytes, std::vector<JournalEntryPtr>& out) const override {
    return local_->read(after, max_bytes, out);
  }
  JournalStatus check(uint64_t after) const override { return local_->check(after); }
  uint64_t last_offset() const override { return local_->last_offset(); }
  bool readable_at_append() const override { return false; }

  void set_listener(std::function<void()> on_readable) override {
    std::lock_guard lock(mutex_);
    listener_ = std::move(on_readable);
  }

  void save_record(const SessionRecord& r) override {
    if (role_ != Role::kOwner) return;
    std::vector<std::pair<std::string, std::string>> fields{
        {"principal", r.principal}, {"token", r.token_hash}, {"history", encode_history(r.history)},
        {"turns", std::to_string(r.turns)}};
    bool schedule = false;
    {
      std::lock_guard lock(mutex_);
      if (fenced_) return;
      fields_ = std::move(fields);
      schedule = !std::exchange(scheduled_, true);
    }
    if (schedule) store_->schedule(shared_from_this());
  }

  // ---- the owner's writes (store thread) ----

  // Sends what is pending as one script call, unless a batch is in flight.
  void write_batch() {
    std::vector<std::string> args;
    {
      std::lock_guard lock(mutex_);
      scheduled_ = false;
      if (in_flight_ || fenced_ || (pending_.empty() && !fields_)) return;
      const size_t n = std::min(pending_.size(), store_->settings_.max_batch_events);
      inflight_.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + n));
      pending_.erase(pending_.begin(), pending_.begin() + n);
      inflight_fields_ = std::move(fields_);
      fields_.reset();
      inflight_create_ = create_;
      in_flight_ = true;
      const auto& s = store_->settings_;
      args = {"EVALSHA",
              store_->script_sha_,
              "2",
              store_->record_key(id_),
              store_->stream_key(id_),
              "1",
              std::to_string(inflight_.empty() ? 0 : inflight_.front().offset),
              std::to_string(s.retention.count()),
              std::to_string(s.stream_max_events),
              store_->channel(id_),
              inflight_create_ ? "1" : "0",
              std::to_string(inflight_fields_ ? inflight_fields_->size() : 0)};
      if (inflight_fields_) {
        for (const auto& [k, v] : *inflight_fields_) {
          args.push_back(k);
          args.push_back(v);
        }
      }
      for (const auto& p : inflight_) args.push_back(p.record);
    }
    send(std::move(args));
  }

  void send(std::vector<std::string> args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    store_->commands_->command(views, [self = shared_from_this(), args = std::move(args)](const RedisValue& v) mutable {
      self->on_written(v, std::move(args));
    });
  }

  void on_written(const RedisValue& v, std::vector<std::string> args) {
    if (v.is_error() && starts_with(v.str, "NOSCRIPT")) {
      // Redis lost its script cache (a restart): the same call with the script itself loads it.
      args[0] = "EVAL";
      args[1] = kAppendScript;
      return send(std::move(args));
    }
    if (v.is_error()) return on_write_failed(v.str);
    uint64_t through = 0;
    std::function<void()> listener;
    bool more = false;
    {
      std::lock_guard lock(mutex_);
      in_flight_ = false;
      create_ = false;
      if (!inflight_.empty()) through = inflight_.back().offset;
      store_->events_pending_ -= inflight_.size();
      inflight_.clear();
      inflight_fields_.reset();
      if (through) local_->show_through(through);
      listener = listener_;
      more = !pending_.empty() || fields_;
      if (more) scheduled_ = true;
    }
    store_->batches_written_ += through ? 1 : 0;
    if (more) store_->schedule(shared_from_this());
    if (through && listener) listener();
  }

  void on_write_failed(const std::string& why) {
    const bool fenced = starts_with(why, "FENCED") || starts_with(why, "EXISTS");
    {
      std::lock_guard lock(mutex_);
      in_flight_ = false;
      if (fenced) {
        fenced_ = true;
        store_->events_pending_ -= inflight_.size() + pending_.size();
        inflight_.clear();
        pending_.clear();
        fields_.reset();
        inflight_fields_.reset();
      } else {
        // Written again, first, once Redis answers: the script knows a batch it already holds.
        pending_.insert(pending_.begin(), std::make_move_iterator(inflight_.begin()),
                        std::make_move_iterator(inflight_.end()));
        inflight_.clear();
        if (!fields_) fields_ = std::move(inflight_fields_);
        inflight_fields_.reset();
      }
    }
    if (fenced) {
      spdlog::error("session {}: Redis refused this instance's appends ({}); its events are dropped", id_, why);
      return;
    }
    if (!store_->commands_->connected()) return store_->wait_for_connection(weak_from_this());
    store_->retry_after_error(weak_from_this());
    if (!store_->logged_write_error_) {
      spdlog::warn("session {}: Redis did not take a batch ({}); retrying", id_, why);
      store_->logged_write_error_ = true;
    }
  }

  bool has_pending() {
    std::lock_guard lock(mutex_);
    return !pending_.empty() || fields_ || in_flight_;
  }

  // ---- a follower's reads (store thread) ----

  // Reads the record and the stream; `done` gets the session.
  void load(std::function<void(Opened)> done) {
    auto self = shared_from_this();
    auto record = std::make_shared<std::optional<RedisValue>>();
    const std::string rkey = store_->record_key(id_);
    const std::string skey = store_->stream_key(id_);
    store_->commands_->command({"HGETALL", rkey}, [record](const RedisValue& v) { *record = v; });
    store_->commands_->command({"XRANGE", skey, "-", "+"}, [self, record, done = std::move(done)](const RedisValue& v) {
      self->loaded(**record, v, done);
    });
  }

  void loaded(const RedisValue& record, const RedisValue& stream, const std::function<void(Opened)>& done) {
    Opened opened;
    if (record.is_error() || stream.is_error()) {
      opened.outcome = Opened::Outcome::kUnavailable;
      return done(std::move(opened));
    }
    if (record.type != RedisValue::Type::kArray || record.elements.empty()) return done(std::move(opened));
    uint64_t last = 0;
    for (size_t i = 0; i + 1 < record.elements.size(); i += 2) {
      const std::string& k = record.elements[i].str;
      const std::string& v = record.elements[i + 1].str;
      if (k == "principal") opened.record.principal = v;
      if (k == "token") opened.record.token_hash = v;
      if (k == "turns") parse_u64(v, opened.record.turns);
      if (k == "last") parse_u64(v, last);
      if (k == "history") {
        if (auto h = decode_history(v)) opened.record.history = std::move(*h);
      }
    }
    if (opened.record.principal.empty() || opened.record.token_hash.empty()) return done(std::move(opened));
    const auto& entries = stream.elements;
    uint64_t first = last + 1;
    if (!entries.empty()) stream_id_offset(entries.front().elements.empty() ? "" : entries.front().elements[0].str, first);
    if (first > 1) local_->start_at(first, JournalStatus::kEvicted);
    take_entries(stream);
    std::vector<std::string> early;
    {
      std::lock_guard lock(mutex_);
      loaded_ = true;
      early.swap(early_);
    }
    for (const auto& payload : early) apply_published(payload);
    opened.outcome = Opened::Outcome::kFound;
    opened.journal = shared_from_this();
    done(std::move(opened));
  }

  // XRANGE / XREAD entries: [[id, [field, value, ...]], ...], oldest first.
  void take_entries(const RedisValue& stream) {
    for (const auto& e : stream.elements) {
      if (e.elements.size() < 2) continue;
      uint64_t offset = 0;
      if (!stream_id_offset(e.elements[0].str, offset)) continue;
      const auto& fv = e.elements[1].elements;
      for (size_t i = 0; i + 1 < fv.size(); i += 2) {
        if (fv[i].str != "d") continue;
        take(offset, fv[i + 1].str);
      }
    }
  }

  // Keeps the event at `offset` unless it is already here; false on a gap.
  bool take(uint64_t offset, std::string_view record) {
    const uint64_t last = local_->last_appended();
    if (offset <= last) return true;
    if (offset != last + 1) return false;
    auto event = decode_event_record(record);
    if (!event) {
      spdlog::error("session {}: event {} in Redis is not a record this build reads; the journal stops there",
                    id_, offset);
      return false;
    }
    event->offset = offset;
    return local_->append_existing(std::move(*event));
  }

  // A batch published by the owner: "<first>\n<record>\n<record>...".
  void on_published(std::string_view payload) {
    {
      std::lock_guard lock(mutex_);
      if (!loaded_) {
        early_.emplace_back(payload);
        return;
      }
    }
    apply_published(payload);
  }

  void apply_published(std::string_view payload) {
    const auto nl = payload.find('\n');
    uint64_t offset = 0;
    if (nl == std::string_view::npos || !parse_u64(payload.substr(0, nl), offset)) return;
    const uint64_t before = local_->last_appended();
    std::string_view rest = payload.substr(nl + 1);
    bool gap = false;
    while (!rest.empty() && !gap) {
      const auto end = rest.find('\n');
      gap = !take(offset++, rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    }
    if (gap) catch_up();
    if (local_->last_appended() != before) notify();
  }

  // Reads what the stream has after the local copy's last event.
  void catch_up() {
    if (catching_up_) return;
    catching_up_ = true;
    const std::string from = "(" + std::to_string(local_->last_appended()) + "-0";
    store_->commands_->command({"XRANGE", store_->stream_key(id_), from, "+"},
                               [self = shared_from_this()](const RedisValue& v) {
                                 self->catching_up_ = false;
                                 if (v.is_error()) return;
                                 const uint64_t before = self->local_->last_appended();
                                 self->take_entries(v);
                                 if (self->local_->last_appended() != before) self->notify();
                               });
  }

  void notify() {
    std::function<void()> listener;
    {
      std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) listener();
  }

 private:
  struct Pending {
    uint64_t offset;
    std::string record;
  };
  using Fields = std::vector<std::pair<std::string, std::string>>;

  const std::shared_ptr<RedisJournalStore> store_;
  const std::string id_;
  const Role role_;
  const std::shared_ptr<MemoryJournal> local_;

  std::mutex mutex_;
  std::function<void()> listener_;
  // The owner's writes, under mutex_: pending_ waits for the next batch,
  // inflight_ is the batch Redis has not answered yet.
  std::deque<Pending> pending_;
  std::optional<Fields> fields_;
  std::vector<Pending> inflight_;
  std::optional<Fields> inflight_fields_;
  bool inflight_create_ = false;
  bool create_ = true;     // the first batch creates the record
  bool in_flight_ = false;
  bool scheduled_ = false;  // in the store's list for its next flush
  bool fenced_ = false;
  // A follower's reads: early_ under mutex_, catching_up_ on the store thread.
  bool loaded_ = false;
  std::vector<std::string> early_;  // published before the load was done
  bool catching_up_ = false;
};

RedisJournalStore::RedisJournalStore(RedisStoreSettings settings)
    : settings_(std::move(settings)),
      local_(std::make_shared<MemoryJournalStore>(settings_.memory_budget_bytes, settings_.retention)),
      commands_(std::make_shared<RedisClient>(ioc_, settings_.endpoint, "commands")),
      subscriber_(std::make_shared<RedisClient>(ioc_, settings_.endpoint, "subscriber")),
      script_sha_(sha1_hex(kAppendScript)) {}

RedisJournalStore::~RedisJournalStore() {
  if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id()) {
    // Only when stop() was never called and a callback held the last reference.
    spdlog::error("redis store: destroyed on its own thread without stop()");
    ioc_.stop();
    thread_.detach();
    return;
  }
  stop(std::chrono::milliseconds(0));
}

void RedisJournalStore::start() {
  if (thread_.joinable()) return;
  work_.emplace(ioc_.get_executor());
  std::weak_ptr<RedisJournalStore> weak = weak_from_this();
  commands_->on_connect([weak] {
    if (auto self = weak.lock()) self->on_commands_connected();
  });
  net::post(ioc_, [c = commands_, s = subscriber_] {
    c->start();
    s->start();
  });
  thread_ = std::thread([this] { ioc_.run(); });
}

void RedisJournalStore::stop(std::chrono::milliseconds flush_timeout) {
  if (!thread_.joinable()) return;
  const auto deadline = Clock::now() + flush_timeout;
  while (events_pending_.load() > 0 && commands_->connected() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (events_pending_.load() > 0) {
    spdlog::warn("redis store: {} events were not written to Redis before the stop", events_pending_.load());
  }
  net::post(ioc_, [c = commands_, s = subscriber_] {
    c->stop();
    s->stop();
  });
  work_.reset();
  // The connections close at once; a retry timer or a wait still pending ends with the context.
  net::steady_timer cap(ioc_);
  net::post(ioc_, [&] {
    cap.expires_after(std::chrono::milliseconds(200));
    cap.async_wait([&](const boost::system::error_code&) { ioc_.stop(); });
  });
  thread_.join();
}

bool RedisJournalStore::reachable() const { return commands_->connected() && subscriber_->connected(); }

std::string RedisJournalStore::record_key(const std::string& id) const {
  return settings_.key_prefix + ":{" + id + "}:r";
}
std::string RedisJournalStore::stream_key(const std::string& id) const {
  return settings_.key_prefix + ":{" + id + "}:j";
}
std::string RedisJournalStore::channel(const std::string& id) const {
  return settings_.key_prefix + ":{" + id + "}:c";
}

std::shared_ptr<Journal> RedisJournalStore::create(const std::string& session_id) {
  return std::make_shared<RedisJournal>(shared_from_this(), session_id, RedisJournal::Role::kOwner,
                                        std::make_shared<MemoryJournal>(local_));
}

void RedisJournalStore::schedule(const std::shared_ptr<RedisJournal>& journal) {
  std::lock_guard lock(dirty_mutex_);
  dirty_.push_back(journal);
  if (std::exchange(flush_posted_, true)) return;
  net::post(ioc_, [self = shared_from_this()] { self->flush(); });
}

// One turn of the store's loop: every journal with something to write
// sends its batch; hiredis pipelines them into one write.
void RedisJournalStore::flush() {
  std::vector<std::shared_ptr<RedisJournal>> dirty;
  {
    std::lock_guard lock(dirty_mutex_);
    dirty.swap(dirty_);
    flush_posted_ = false;
  }
  for (const auto& j : dirty) j->write_batch();
}

void RedisJournalStore::wait_for_connection(std::weak_ptr<RedisJournal> journal) {
  waiting_.push_back(std::move(journal));
}

void RedisJournalStore::retry_after_error(std::weak_ptr<RedisJournal> journal) {
  auto timer = std::make_shared<net::steady_timer>(ioc_, std::chrono::milliseconds(100));
  timer->async_wait([self = shared_from_this(), timer, journal](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto j = journal.lock()) j->write_batch();
  });
}

void RedisJournalStore::on_commands_connected() {
  logged_write_error_ = false;
  // A read of a follower may have failed while this connection was down.
  for (const auto& [channel, weak] : followers_) {
    if (auto j = weak.lock()) j->catch_up();
  }
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (const auto& w : waiting) {
    if (auto j = w.lock()) j->write_batch();
  }
}

void RedisJournalStore::on_message(std::string_view channel, std::string_view payload) {
  const auto it = followers_.find(std::string(channel));
  if (it == followers_.end()) return;
  if (auto j = it->second.lock()) j->on_published(payload);
}

void RedisJournalStore::forget_follower(const std::string& channel) {
  const auto it = followers_.find(channel);
  if (it == followers_.end() || !it->second.expired()) return;  // opened again meanwhile
  followers_.erase(it);
  subscriber_->unsubscribe(channel);
}

void RedisJournalStore::open(const std::string& id, std::function<void(Opened)> done) {
  net::post(ioc_, [self = shared_from_this(), id, done = std::move(done)]() mutable {
    if (!self->reachable()) {
      Opened o;
      o.outcome = Opened::Outcome::kUnavailable;
      return done(std::move(o));
    }
    // Answered once: by the load, or as unavailable if Redis does not answer in time.
    auto answer = std::make_shared<std::function<void(Opened)>>(std::move(done));
    auto timer = std::make_shared<net::steady_timer>(self->ioc_, kOpenTimeout);
    timer->async_wait([answer, timer](const boost::system::error_code& ec) {
      if (ec || !*answer) return;
      Opened o;
      o.outcome = Opened::Outcome::kUnavailable;
      std::exchange(*answer, nullptr)(std::move(o));
    });
    auto journal = std::make_shared<RedisJournal>(self, id, RedisJournal::Role::kFollower,
                                                  std::make_shared<MemoryJournal>(self->local_));
    const std::string ch = self->channel(id);
    self->followers_[ch] = journal;
    std::weak_ptr<RedisJournalStore> weak = self;
    // Subscribed first, read second: what is published in between is kept
    // and merged by offset (RedisJournal::loaded).
    self->subscriber_->subscribe(
        ch,
        [weak](std::string_view channel, std::string_view payload) {
          if (auto s = weak.lock()) s->on_message(channel, payload);
        },
        [weak_journal = std::weak_ptr<RedisJournal>(journal), answer, timer] {
          auto journal = weak_journal.lock();
          if (!journal) return;
          if (!*answer) return journal->catch_up();  // subscribed again after a reconnection
          journal->load([answer, timer](Opened o) {
            timer->cancel();
            if (*answer) std::exchange(*answer, nullptr)(std::move(o));
          });
        });
    // Until the subscription is confirmed, the journal lives in this
    // handler; then in whatever `done` gives it to.
    timer->async_wait([journal](const boost::system::error_code&) {});
  });
}

}  // namespace sluice
