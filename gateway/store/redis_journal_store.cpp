#include "gateway/store/redis_journal_store.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <deque>
#include <random>

#include <simdjson.h>

#include "gateway/auth/authenticator.hpp"
#include "gateway/common/json_writer.hpp"
#include "gateway/store/event_record.hpp"

namespace sluice {

namespace net = boost::asio;

namespace {

// Milliseconds of Redis's own clock, inside a script (every instance then
// judges a lease by the same clock).
#define SLUICE_LUA_NOW \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// Appends the batches of one or more sessions, each on its own: KEYS 2k-1
// and 2k the record hash and the stream of the k-th, ARGV its block, the
// blocks one after another. A block: [1] epoch, [2] first offset, [3] TTL
// (ms), [4] stream cap, [5] channel, [6] the creating instance ("" but for
// the first batch: the record must not exist, unless this instance made it
// by a batch whose reply was lost), [7] lease (ms; 0: leave it), [8] n,
// [9] the batch's sequence number within the epoch, [10] m, then n record
// fields and values, then the m events. Events Redis already holds (a batch
// sent again, whole or merged with later events) are skipped; so are the
// fields and the lease of a batch older than one already taken (a copy sent
// on a connection that was dropped, run by Redis after its resend and later
// batches). Returns one reply per session: its record's last offset, or the
// error that refused its batch (the others are taken all the same).
const std::string kAppendScript = SLUICE_LUA_NOW R"lua(
local function append(rk, sk, o)
  local function a(i) return ARGV[o + i] end
  local r = redis.call('HMGET', rk, 'epoch', 'owner', 'last', 'seq')
  local set = {}
  if a(6) ~= '' and not r[1] then
    set = {'epoch', a(1), 'owner', a(6)}
    r = {a(1), a(6), '0', '0'}
  elseif a(6) ~= '' and r[2] ~= a(6) then
    return redis.error_reply('EXISTS session record already exists')
  elseif r[1] ~= a(1) then
    return redis.error_reply('FENCED epoch is ' .. tostring(r[1]) .. ', not ' .. a(1))
  end
  local last = tonumber(r[3])
  local first = tonumber(a(2))
  local n = tonumber(a(8))
  local count = tonumber(a(10))
  local base = o + 11 + 2 * n
  if count > 0 and first > last + 1 then
    return redis.error_reply('GAP the stream ends at ' .. last .. ', the batch starts at ' .. first)
  end
  if tonumber(a(9)) > tonumber(r[4] or '0') then
    set[#set + 1] = 'seq'
    set[#set + 1] = a(9)
    for i = o + 11, base - 1 do set[#set + 1] = ARGV[i] end
    if tonumber(a(7)) > 0 then
      set[#set + 1] = 'lease'
      set[#set + 1] = now + tonumber(a(7))
    end
  end
  local skip = 0
  if count > 0 then skip = last + 1 - first end
  if count > skip then
    for i = skip, count - 1 do
      redis.call('XADD', sk, 'MAXLEN', '~', a(4), (first + i) .. '-0', 'd', ARGV[base + i])
    end
    last = first + count - 1
  end
  if count > skip or r[3] == '0' then
    set[#set + 1] = 'last'
    set[#set + 1] = last
  end
  if #set > 0 then redis.call('HSET', rk, unpack(set)) end
  if count > skip then
    redis.call('PUBLISH', a(5), (first + skip) .. '\n' .. table.concat(ARGV, '\n', base + skip, base + count - 1))
  end
  redis.call('PEXPIRE', rk, a(3))
  redis.call('PEXPIRE', sk, a(3))
  return last
end
local out = {}
local o = 0
for k = 1, #KEYS, 2 do
  out[#out + 1] = append(KEYS[k], KEYS[k + 1], o)
  o = o + 10 + 2 * tonumber(ARGV[o + 8]) + tonumber(ARGV[o + 10])
end
return out
)lua";

// Claims a session for this instance: a new turn (refused while another
// instance's turn is live) or the takeover of a turn whose lease lapsed.
// KEYS[1] the record. ARGV[1] instance, ARGV[2] lease (ms), ARGV[3]
// principal, ARGV[4] "turn" | "takeover", ARGV[5] TTL (ms).
// Returns {new epoch, the record's fields before the claim}.
const std::string kClaimScript = SLUICE_LUA_NOW R"lua(
local all = redis.call('HGETALL', KEYS[1])
local r = {}
for i = 1, #all, 2 do r[all[i]] = all[i + 1] end
if not r['principal'] or r['principal'] ~= ARGV[3] then return redis.error_reply('UNKNOWN no such session') end
local running = r['running'] == '1'
local live = running and tonumber(r['lease'] or '0') > now
-- This instance's own live claim is one whose reply it lost (a dropped
-- connection): it knows that no turn of the session runs here.
if ARGV[4] == 'turn' and live and r['owner'] ~= ARGV[1] then
  return redis.error_reply('BUSY a turn of this session is running on ' .. tostring(r['owner']))
end
if ARGV[4] == 'takeover' and not (running and not live) then
  return redis.error_reply('NOTORPHANED the turn is not orphaned')
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease', now + tonumber(ARGV[2]), 'running', '1', 'seq', '0')
-- A new turn's own fields come with its first batch; the last turn's go now,
-- so that a loss before then is never taken for that turn.
if ARGV[4] == 'turn' then redis.call('HDEL', KEYS[1], 'turn_first', 'turn_request', 'turn_model', 'turn_params') end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {epoch, all}
)lua";

// {state, principal}: state -2: no such session; -1: no turn is running;
// 0: it runs and its owner's lease has lapsed (then the principal comes
// too, for the instance that takes it over); otherwise the lease's
// milliseconds left.
const std::string kOrphanedScript = SLUICE_LUA_NOW R"lua(
local r = redis.call('HMGET', KEYS[1], 'running', 'lease', 'principal')
if not r[3] then return {-2, ''} end
if r[1] ~= '1' then return {-1, ''} end
local left = tonumber(r[2] or '0') - now
if left <= 0 then return {0, r[3]} end
return {left, ''}
)lua";

// Changes the running-turn index entry of ARGV[1] only if its score is
// still ARGV[2] (the one the sweep read): to ARGV[3], or away when ARGV[3]
// is "". An owner that listed its turn again meanwhile keeps its entry.
const std::string kIndexScript = R"lua(
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
)lua";

// The state of an orphaned-check reply; false when it is not one.
bool orphaned_state(const RedisValue& v, long long& state, std::string& principal) {
  if (v.type != RedisValue::Type::kArray || v.elements.size() < 2) return false;
  if (v.elements[0].type != RedisValue::Type::kInteger) return false;
  state = v.elements[0].integer;
  principal = v.elements[1].str;
  return true;
}

// Milliseconds of this machine's wall clock: the running-turn index's
// scores (a hint for the sweep; Redis's clock decides).
long long wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
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

// On an instance's own channel (<prefix>:i:<instance>): "!cancel <session>".
constexpr std::string_view kCancelMessage = "!cancel";

// Tells the owner of KEYS[1]'s session to cancel its turn: ARGV[1] the
// instance channels' prefix, ARGV[2] the message.
const std::string kCancelScript = R"lua(
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return 0 end
return redis.call('PUBLISH', ARGV[1] .. owner, ARGV[2])
)lua";

// How long opening a session may wait for Redis before it is answered as unavailable.
constexpr auto kOpenTimeout = std::chrono::milliseconds(2000);

std::string encode_params(const ChatParams& p) {
  std::string out = "{";
  for (const auto& [k, v] : p.fields) {
    if (out.size() > 1) out += ',';
    append_json_string(out, k);
    out += ':';
    out += v;  // compact, validated JSON (ChatParams)
  }
  return out + "}";
}

ChatParams decode_params(std::string_view json) {
  ChatParams p;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object o;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS || doc.get(o) != simdjson::SUCCESS) {
    return p;
  }
  for (auto field : o) p.fields.emplace_back(std::string(field.key), simdjson::minify(field.value));
  return p;
}

// The record's fields as Redis returns them ([k, v, k, v, ...]); false
// when it is not a session's.
bool parse_record(const RedisValue& fields, SessionRecord& r, uint64_t& last) {
  std::optional<RunningTurn> turn;
  bool running = false;
  for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    const std::string& k = fields.elements[i].str;
    const std::string& v = fields.elements[i + 1].str;
    if (k == "principal") r.principal = v;
    if (k == "token") r.token_hash = v;
    if (k == "turns") parse_u64(v, r.turns);
    if (k == "last") parse_u64(v, last);
    if (k == "running") running = v == "1";
    if (k == "history") {
      if (auto h = decode_history(v)) r.history = std::move(*h);
    }
    if (k.rfind("turn_", 0) == 0 && !turn) turn.emplace();
    if (k == "turn_first") parse_u64(v, turn->first_offset);
    if (k == "turn_request") turn->request_id = v;
    if (k == "turn_model") turn->model = v;
    if (k == "turn_params") turn->params = decode_params(v);
  }
  if (running && turn) r.turn = std::move(turn);
  return !r.principal.empty() && !r.token_hash.empty();
}

}  // namespace

const std::string& redis_append_script() { return kAppendScript; }

// A journal kept in Redis, with its local copy (MemoryJournal) that every
// read goes to. The instance that runs the session's turn is its owner: it
// appends, and its events are shown once Redis holds them. Any other
// instance that has the session open follows the stream. A claim makes a
// follower the owner (and fences the old owner off: its next batch is
// refused, and it becomes a follower again).
class RedisJournal final : public Journal, public std::enable_shared_from_this<RedisJournal> {
 public:
  enum class Role { kOwner, kFollower };
  using Opened = JournalStore::Opened;
  using Clock = std::chrono::steady_clock;
  using BatchCall = RedisJournalStore::BatchCall;

  RedisJournal(std::shared_ptr<RedisJournalStore> store, std::string id, Role role,
               std::shared_ptr<MemoryJournal> local)
      : store_(std::move(store)),
        id_(std::move(id)),
        local_(std::move(local)),
        record_key_(store_->record_key(id_)),
        stream_key_(store_->stream_key(id_)),
        channel_(store_->channel(id_)),
        retention_(std::to_string(store_->settings_.retention.count())),
        max_events_(std::to_string(store_->settings_.stream_max_events)),
        lease_(std::to_string(store_->settings_.lease.count())),
        role_(role) {
    if (role_ == Role::kOwner) local_->show_through(0);  // nothing shown before Redis has it
  }

  ~RedisJournal() override {
    store_->events_pending_ -= pending_.size() + inflight_.size();
    // Weak: a journal that outlives stop() would leave the store held by
    // its own queue, never run, and neither would ever be freed.
    net::post(store_->ioc_, [weak = std::weak_ptr<RedisJournalStore>(store_), id = id_] {
      if (auto store = weak.lock()) store->forget(id);
    });
  }

  const std::string& id() const { return id_; }

  uint64_t append(StreamEvent event) override {
    std::string record = encode_event_record(event);
    bool schedule = false;
    uint64_t offset = 0;
    {
      std::lock_guard lock(mutex_);
      if (role_ != Role::kOwner) {
        // Fenced off meanwhile: the event is never shown, never written.
        spdlog::debug("session {}: an event after this instance lost the session is dropped", id_);
        return local_->last_appended() + 1;
      }
      offset = local_->append(std::move(event));
      note_waiting();
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
  bool claims_turns() const override { return true; }

  void set_listener(std::function<void()> on_readable) override {
    std::lock_guard lock(mutex_);
    listener_ = std::move(on_readable);
  }
  void set_on_fenced(std::function<void()> on_fenced) override {
    std::lock_guard lock(mutex_);
    on_fenced_ = std::move(on_fenced);
  }
  void set_on_stalled(std::function<void()> on_stalled) override {
    std::lock_guard lock(mutex_);
    on_stalled_ = std::move(on_stalled);
  }
  void set_on_cancel(std::function<void()> on_cancel) override {
    std::lock_guard lock(mutex_);
    on_cancel_ = std::move(on_cancel);
  }
  // The cancel goes to the instance the record names as the owner, on that
  // instance's own channel (an owner is off its sessions' channels while it writes).
  void request_cancel() override {
    net::post(store_->ioc_, [self = shared_from_this()] {
      self->store_->eval({"EVALSHA", self->store_->cancel_sha_, "1", self->store_->record_key(self->id_),
                          self->store_->settings_.key_prefix + ":i:", std::string(kCancelMessage) + " " + self->id_},
                         kCancelScript, [](const RedisValue&) {});
    });
  }

  void on_cancel_request() {
    std::function<void()> on_cancel;
    {
      std::lock_guard lock(mutex_);
      if (role_ == Role::kOwner && running_) on_cancel = on_cancel_;
    }
    if (on_cancel) on_cancel();
  }

  void watch(bool watched, std::function<void()> on_orphaned) override {
    std::lock_guard lock(mutex_);
    watched_ = watched;
    on_orphaned_ = std::move(on_orphaned);
  }

  void save_record(const SessionRecord& r) override {
    Fields fields{{"principal", r.principal}, {"token", r.token_hash}, {"history", encode_history(r.history)},
                  {"turns", std::to_string(r.turns)}, {"running", r.turn ? "1" : "0"}};
    if (r.turn) {
      fields.push_back({"turn_first", std::to_string(r.turn->first_offset)});
      fields.push_back({"turn_request", r.turn->request_id});
      fields.push_back({"turn_model", r.turn->model});
      fields.push_back({"turn_params", encode_params(r.turn->params)});
    }
    bool schedule = false;
    std::optional<bool> writing;  // the turn here started (true) or ended (false)
    {
      std::lock_guard lock(mutex_);
      if (role_ != Role::kOwner) return;
      principal_ = r.principal;
      note_waiting();
      fields_ = std::move(fields);
      if (running_ != r.turn.has_value()) writing = r.turn.has_value();
      running_ = r.turn.has_value();
      if (writing) {
        // Listed in the fleet's index of running turns with its first batch;
        // off it once the batch that ends the turn is written.
        last_indexed_ = {};
        unindex_ = !*writing;
      }
      schedule = !std::exchange(scheduled_, true);
    }
    if (schedule) store_->schedule(shared_from_this());
    // While its turn runs here this instance is the session's only writer:
    // it need not hear its own batches published back (one message per
    // batch), so it leaves the channel until the turn ends. A claim by
    // another instance meanwhile shows as a refused batch or renewal.
    if (writing) {
      net::post(store_->ioc_, [self = shared_from_this(), follow = !*writing] {
        if (follow) {
          self->store_->follow(self, nullptr);
        } else {
          self->store_->pause_following(self->id_);
        }
      });
    }
  }

  void catch_up(std::function<void()> then) override {
    net::post(store_->ioc_, [self = shared_from_this(), then = std::move(then)]() mutable {
      const uint64_t before = self->local_->last_appended();
      self->fetch_after(before, [self, before, then = std::move(then)] {
        if (self->local_->last_appended() != before) self->notify();
        then();
      });
    });
  }

  void when_recorded(std::function<void()> f) override {
    {
      std::lock_guard lock(mutex_);
      // Redis holds the record as it stands (a turn just started, say): a
      // client sent to another instance at once finds the turn there.
      if (create_ || fields_ || inflight_fields_) {
        recorded_.push_back(std::move(f));
        return;
      }
    }
    f();
  }

  void claim(ClaimKind kind, std::function<void(TurnClaim)> done) override {
    net::post(store_->ioc_, [self = shared_from_this(), kind, done = std::move(done)]() mutable {
      self->send_claim(kind, std::move(done));
    });
  }

  // ---- the owner's writes (store thread) ----

  // Sends what is pending as a script call of its own, unless a batch is in flight.
  void write_batch() {
    BatchCall& call = store_->call_;
    if (take_batch(call)) store_->send_batches(call);
  }

  // Adds what is pending to `call` (its keys and its block: see
  // kAppendScript), unless a batch is in flight; false when nothing was added.
  bool take_batch(BatchCall& call) {
    bool index = false;  // (re)listed in the running-turn index
    {
      std::lock_guard lock(mutex_);
      scheduled_ = false;
      if (in_flight_ || role_ != Role::kOwner || (pending_.empty() && !fields_ && !renew_due_)) return false;
      const size_t n = std::min(pending_.size(), store_->settings_.max_batch_events);
      inflight_.assign(std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.begin() + n));
      pending_.erase(pending_.begin(), pending_.begin() + n);
      inflight_fields_ = std::move(fields_);
      fields_.reset();
      renew_due_ = false;
      in_flight_ = true;
      const auto& s = store_->settings_;
      const auto now = Clock::now();
      if (running_ && now - last_indexed_ >= s.lease / 3) {
        last_indexed_ = now;
        index = true;
      }
      inflight_unindex_ = std::exchange(unindex_, false);
      const size_t fields = inflight_fields_ ? inflight_fields_->size() : 0;
      RedisClient::append_argument(call.keys, record_key_);
      RedisClient::append_argument(call.keys, stream_key_);
      call.key_count += 2;
      // Formatted in place (no copy of each record of its own); hiredis copies the call into its own buffer.
      std::string& out = call.args;
      size_t bytes = 256 + record_key_.size() * 3;
      for (const auto& p : inflight_) bytes += p.record.size() + 16;
      if (inflight_fields_) {
        for (const auto& [k, v] : *inflight_fields_) bytes += k.size() + v.size() + 32;
      }
      out.reserve(out.size() + bytes);
      RedisClient::append_argument(out, epoch_);
      RedisClient::append_argument(out, std::to_string(inflight_.empty() ? 0 : inflight_.front().offset));
      RedisClient::append_argument(out, retention_);
      RedisClient::append_argument(out, max_events_);
      RedisClient::append_argument(out, channel_);
      RedisClient::append_argument(out, create_ ? s.instance_id.empty() ? std::string_view("-") : s.instance_id
                                                : std::string_view());
      RedisClient::append_argument(out, running_ ? lease_ : std::string_view("0"));
      RedisClient::append_argument(out, std::to_string(fields));
      RedisClient::append_argument(out, std::to_string(++seq_));
      RedisClient::append_argument(out, std::to_string(inflight_.size()));
      if (inflight_fields_) {
        for (const auto& [k, v] : *inflight_fields_) {
          RedisClient::append_argument(out, k);
          RedisClient::append_argument(out, v);
        }
      }
      for (const auto& p : inflight_) RedisClient::append_argument(out, p.record);
      call.arg_count += 10 + 2 * fields + inflight_.size();
    }
    if (index) {
      // Looked at by a sweep once the lease would have lapsed; every lease / 3
      // while the turn runs (a sweep that found it idle may have removed it).
      // Sent before the call that carries the batch.
      store_->commands_->command({"ZADD", store_->running_key(),
                                  std::to_string(wall_ms() + store_->settings_.lease.count()), id_},
                                 [](const RedisValue&) {});
    }
    call.journals.push_back(shared_from_this());
    return true;
  }

  // Redis's answer to this journal's block (the call was answered).
  void on_written(const RedisValue& v) {
    if (v.is_error()) return on_write_failed(v.str);
    uint64_t through = 0;
    std::function<void()> listener;
    std::vector<std::function<void()>> recorded;
    std::vector<DeferredClaim> claims;
    bool more = false;
    bool unindex = false;
    {
      std::lock_guard lock(mutex_);
      in_flight_ = false;
      create_ = false;
      unindex = std::exchange(inflight_unindex_, false);
      if (!fields_) recorded.swap(recorded_);  // else once the fields queued meanwhile are written
      last_write_ = Clock::now();
      waiting_since_ = last_write_;  // what is still pending waits from now
      stall_reported_ = false;
      if (!inflight_.empty()) through = inflight_.back().offset;
      store_->events_pending_ -= inflight_.size();
      inflight_.clear();
      inflight_fields_.reset();
      if (through) local_->show_through(through);
      listener = listener_;
      more = !pending_.empty() || fields_;
      if (more) scheduled_ = true;
      if (!more) claims.swap(deferred_claims_);
    }
    if (through) ++store_->batches_written_;
    if (unindex) store_->commands_->command({"ZREM", store_->running_key(), id_}, [](const RedisValue&) {});
    for (auto& c : claims) send_claim(c.kind, std::move(c.done));
    if (more) store_->schedule(shared_from_this());
    for (auto& f : recorded) f();  // before the listener: a face sends the session before its events
    if (through && listener) listener();
  }

  // `again`: the batch goes again at once (it failed for a reason already dealt with).
  void on_write_failed(const std::string& why, bool again = false) {
    const bool fenced = starts_with(why, "FENCED") || starts_with(why, "EXISTS");
    std::function<void()> on_fenced;
    {
      std::lock_guard lock(mutex_);
      in_flight_ = false;
      if (fenced) {
        store_->events_pending_ -= inflight_.size() + pending_.size();
        inflight_.clear();
        pending_.clear();
        fields_.reset();
        inflight_fields_.reset();
        inflight_unindex_ = unindex_ = false;  // the new owner lists its turn
        role_ = Role::kFollower;
        running_ = false;
        on_fenced = on_fenced_;
      } else {
        // Written again, first, once Redis answers: the script knows a batch it already holds.
        pending_.insert(pending_.begin(), std::make_move_iterator(inflight_.begin()),
                        std::make_move_iterator(inflight_.end()));
        inflight_.clear();
        if (!fields_) fields_ = std::move(inflight_fields_);
        inflight_fields_.reset();
        unindex_ = unindex_ || std::exchange(inflight_unindex_, false);
      }
    }
    if (fenced) {
      spdlog::warn("session {}: another instance holds this session now ({}); this instance follows it", id_, why);
      become_follower();
      if (on_fenced) on_fenced();
      std::vector<DeferredClaim> claims;
      {
        std::lock_guard lock(mutex_);
        claims.swap(deferred_claims_);
      }
      for (auto& c : claims) send_claim(c.kind, std::move(c.done));
      return;
    }
    if (!store_->commands_->connected()) return store_->wait_for_connection(weak_from_this());
    if (again) return write_batch();
    store_->retry_after_error(weak_from_this());
    if (!store_->logged_write_error_) {
      spdlog::warn("session {}: Redis did not take a batch ({}); retrying", id_, why);
      store_->logged_write_error_ = true;
    }
  }

  // Store thread: the owner's lease is renewed when no batch renewed it lately.
  void renew_if_due(Clock::time_point now) {
    bool write = false;
    {
      std::lock_guard lock(mutex_);
      if (role_ != Role::kOwner || !running_ || in_flight_ || now - last_write_ < store_->settings_.lease / 3) return;
      note_waiting();
      renew_due_ = write = true;
    }
    if (write) write_batch();
  }

  // Store thread: events that waited for Redis too long stop the turn (once).
  void check_stalled(Clock::time_point now) {
    std::function<void()> stalled;
    {
      std::lock_guard lock(mutex_);
      if (role_ != Role::kOwner || stall_reported_ || (pending_.empty() && !in_flight_)) return;
      if (now - waiting_since_ < store_->settings_.write_timeout) return;
      stall_reported_ = true;
      stalled = on_stalled_;
    }
    spdlog::warn("session {}: events waited for Redis over {} ms; its turn stops (the rest is written when "
                 "Redis is back)",
                 id_, store_->settings_.write_timeout.count());
    if (stalled) stalled();
  }

  // Store thread: a watched follower asks whether the owner's lease lapsed;
  // while it has not, it asks again the moment it would.
  void check_orphaned() {
    {
      std::lock_guard lock(mutex_);
      if (role_ != Role::kFollower || !watched_ || !on_orphaned_ || checking_) return;
      checking_ = true;
    }
    store_->eval({"EVALSHA", store_->orphaned_sha_, "1", store_->record_key(id_)}, kOrphanedScript,
                 [self = shared_from_this()](const RedisValue& v) {
                   std::function<void()> orphaned;
                   long long state = 0;
                   std::string principal;
                   {
                     std::lock_guard lock(self->mutex_);
                     self->checking_ = false;
                     if (!orphaned_state(v, state, principal) || !self->watched_) return;
                     if (state == 0) orphaned = self->on_orphaned_;
                   }
                   if (orphaned) return orphaned();
                   if (state > 0) self->check_again_in(std::chrono::milliseconds(state + 5));
                 });
  }

  void check_again_in(std::chrono::milliseconds delay) {
    if (delay >= store_->settings_.lease / 3) return;  // the store's tick comes first
    if (!recheck_) recheck_ = std::make_unique<net::steady_timer>(store_->ioc_);
    recheck_->expires_after(delay);
    recheck_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->check_orphaned();
    });
  }

  // ---- claims (store thread) ----

  void send_claim(ClaimKind kind, std::function<void(TurnClaim)> done) {
    std::string principal;
    {
      std::lock_guard lock(mutex_);
      // What this instance still has to write goes first: a claim must see
      // the stream this copy holds (the done of the turn before, say).
      if (in_flight_ || !pending_.empty() || fields_) {
        deferred_claims_.push_back({kind, std::move(done)});
        return;
      }
      principal = principal_;
    }
    const auto& s = store_->settings_;
    store_->eval({"EVALSHA", store_->claim_sha_, "1", store_->record_key(id_), s.instance_id,
                  std::to_string(s.lease.count()), principal, kind == ClaimKind::kTakeOver ? "takeover" : "turn",
                  std::to_string(s.retention.count())},
                 kClaimScript, [self = shared_from_this(), done = std::move(done)](const RedisValue& v) mutable {
                   self->on_claimed(v, std::move(done));
                 });
  }

  void on_claimed(const RedisValue& v, std::function<void(TurnClaim)> done) {
    store_->note_write(v);
    TurnClaim c;
    if (v.is_error()) {
      c.message = v.str;
      if (starts_with(v.str, "BUSY")) c.outcome = TurnClaim::Outcome::kBusy;
      else if (starts_with(v.str, "UNKNOWN")) c.outcome = TurnClaim::Outcome::kUnknown;
      else if (starts_with(v.str, "NOTORPHANED")) c.outcome = TurnClaim::Outcome::kNotOrphaned;
      else c.outcome = TurnClaim::Outcome::kUnavailable;
      return done(std::move(c));
    }
    if (v.type != RedisValue::Type::kArray || v.elements.size() < 2) {
      c.message = "unexpected reply to the claim";
      return done(std::move(c));
    }
    parse_record(v.elements[1], c.record, c.last_offset);
    const std::string epoch = std::to_string(v.elements[0].integer);
    // The local copy must hold everything Redis has, and nothing it does not.
    const uint64_t here = local_->last_appended();
    if (here > c.last_offset) local_->discard_after(c.last_offset);
    auto finish = [self = shared_from_this(), epoch, c = std::move(c), done = std::move(done)](bool whole) mutable {
      if (!whole) {
        // Never append after a copy that lacks events: offsets would clash.
        spdlog::error("session {}: could not read events {}..{} from Redis; the claim is given up", self->id_,
                      self->local_->last_appended() + 1, c.last_offset);
        TurnClaim failed;
        failed.message = "the session's events could not be read from the store";
        return done(std::move(failed));
      }
      {
        std::lock_guard lock(self->mutex_);
        self->role_ = Role::kOwner;
        self->epoch_ = epoch;
        self->seq_ = 0;  // the claim reset the record's
        self->create_ = false;
        self->last_write_ = Clock::now();
        self->local_->show_through(c.last_offset);
      }
      c.outcome = TurnClaim::Outcome::kClaimed;
      done(std::move(c));
    };
    if (local_->last_appended() >= c.last_offset) return finish(true);
    const uint64_t target = c.last_offset;
    fetch_after(local_->last_appended(), [self = shared_from_this(), target, finish = std::move(finish)]() mutable {
      finish(self->local_->last_appended() >= target);
    });
  }

  // Fenced off: what Redis never took is forgotten, and the journal reads
  // the new owner's events like any follower (it is subscribed already).
  void become_follower() {
    const uint64_t shown = local_->last_offset();
    local_->discard_after(shown);
    local_->show_through(UINT64_MAX);
    store_->follow(shared_from_this(), nullptr);  // subscribed again (it left while writing); then it catches up
    catch_up();
  }

  // ---- a follower's reads (store thread) ----

  // Store thread: the open's subscription is confirmed.
  void on_first_subscription() {
    subscribed_ = true;
    bool loaded = false;
    {
      std::lock_guard lock(mutex_);
      loaded = loaded_;
    }
    if (loaded) catch_up();
  }

  // A new session's journal has nothing to load.
  void mark_loaded() {
    std::lock_guard lock(mutex_);
    loaded_ = true;
  }

  // Reads the record and the stream; `done` gets the session.
  void load(std::function<void(Opened)> done) {
    auto self = shared_from_this();
    auto record = std::make_shared<std::optional<RedisValue>>();
    store_->commands_->command({"HGETALL", store_->record_key(id_)}, [record](const RedisValue& v) { *record = v; });
    store_->commands_->command({"XRANGE", store_->stream_key(id_), "-", "+"},
                               [self, record, done = std::move(done)](const RedisValue& v) {
                                 self->loaded(**record, v, done);
                               });
  }

  void loaded(const RedisValue& record, const RedisValue& stream, const std::function<void(Opened)>& done) {
    Opened opened;
    if (record.is_error() || stream.is_error()) {
      opened.outcome = Opened::Outcome::kUnavailable;
      return done(std::move(opened));
    }
    uint64_t last = 0;
    if (record.type != RedisValue::Type::kArray || !parse_record(record, opened.record, last)) {
      return done(std::move(opened));
    }
    {
      std::lock_guard lock(mutex_);
      principal_ = opened.record.principal;
    }
    const auto& entries = stream.elements;
    uint64_t first = last + 1;
    if (!entries.empty() && !entries.front().elements.empty()) stream_id_offset(entries.front().elements[0].str, first);
    if (first > 1) local_->start_at(first, JournalStatus::kEvicted);
    take_entries(stream);
    std::vector<std::string> early;
    {
      std::lock_guard lock(mutex_);
      loaded_ = true;
      early.swap(early_);
    }
    for (const auto& payload : early) apply_published(payload);
    if (subscribed_) catch_up();  // the subscription came first: anything between is in the stream
    opened.outcome = Opened::Outcome::kFound;
    opened.journal = shared_from_this();
    done(std::move(opened));
  }

  // XRANGE entries: [[id, [field, value, ...]], ...], oldest first.
  void take_entries(const RedisValue& stream) {
    for (const auto& e : stream.elements) {
      if (e.elements.size() < 2) continue;
      uint64_t offset = 0;
      if (!stream_id_offset(e.elements[0].str, offset)) continue;
      const auto& fv = e.elements[1].elements;
      for (size_t i = 0; i + 1 < fv.size(); i += 2) {
        if (fv[i].str == "d") take(offset, fv[i + 1].str);
      }
    }
  }

  // Keeps the event at `offset` unless it is already here; false on a gap.
  // An owner's own batches come back on its channel: they are here already.
  // Another instance's events while this one is writing mean it was fenced
  // off: they are taken once the refusal has cleared the way.
  bool take(uint64_t offset, std::string_view record) {
    std::function<void()> fenced;
    {
      std::lock_guard lock(mutex_);
      if (in_flight_ || !pending_.empty()) return offset <= local_->last_appended();
      if (role_ == Role::kOwner && offset > local_->last_appended()) {
        // Another instance appends: it claimed the session. This copy follows it
        // (and shows its events); a turn here claims the session back first.
        role_ = Role::kFollower;
        if (std::exchange(running_, false)) fenced = on_fenced_;
        local_->show_through(UINT64_MAX);
      }
    }
    if (fenced) {
      spdlog::warn("session {}: another instance holds this session now (its events arrived); this instance "
                   "follows it",
                   id_);
      fenced();
    }
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
    if (catching_up_) {
      catch_up_again_ = true;  // what is missing may have been stored after the read in flight
      return;
    }
    {
      std::lock_guard lock(mutex_);
      if (in_flight_ || !pending_.empty()) return;  // writing: nothing can be missing
    }
    catching_up_ = true;
    const uint64_t before = local_->last_appended();
    fetch_after(before, [self = shared_from_this(), before] {
      self->catching_up_ = false;
      if (self->local_->last_appended() != before) self->notify();
      if (std::exchange(self->catch_up_again_, false)) self->catch_up();
    });
  }

  // Appends to the local copy what the stream has after `after`, then `then`.
  void fetch_after(uint64_t after, std::function<void()> then) {
    const std::string from = "(" + std::to_string(after) + "-0";
    store_->commands_->command({"XRANGE", store_->stream_key(id_), from, "+"},
                               [self = shared_from_this(), then = std::move(then)](const RedisValue& v) {
                                 if (!v.is_error()) self->take_entries(v);
                                 then();
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
  // With mutex_ held, before something is queued for Redis: when nothing
  // was waiting, the wait that check_stalled measures begins now (a journal
  // that never wrote, e.g. one that just took a turn over, has no earlier
  // write to count from).
  void note_waiting() {
    if (pending_.empty() && !in_flight_ && !fields_ && !renew_due_) waiting_since_ = Clock::now();
  }

  struct Pending {
    uint64_t offset;
    std::string record;
  };
  using Fields = std::vector<std::pair<std::string, std::string>>;
  struct DeferredClaim {
    ClaimKind kind;
    std::function<void(TurnClaim)> done;
  };

  const std::shared_ptr<RedisJournalStore> store_;
  const std::string id_;
  const std::shared_ptr<MemoryJournal> local_;
  // The batch script's arguments that never change.
  const std::string record_key_;
  const std::string stream_key_;
  const std::string channel_;
  const std::string retention_;
  const std::string max_events_;
  const std::string lease_;

  mutable std::mutex mutex_;
  Role role_;
  std::string epoch_ = "1";   // the owner's fencing token
  uint64_t seq_ = 0;          // the last batch's number within the epoch
  std::string principal_;     // the record's, for claims
  std::function<void()> listener_;
  std::function<void()> on_fenced_;
  std::function<void()> on_orphaned_;
  std::function<void()> on_cancel_;
  std::function<void()> on_stalled_;
  Clock::time_point waiting_since_{};  // the oldest unwritten event's wait began
  bool stall_reported_ = false;
  bool watched_ = false;
  bool checking_ = false;
  std::unique_ptr<net::steady_timer> recheck_;  // store thread: the lease's end, when near
  // The owner's writes, under mutex_: pending_ waits for the next batch,
  // inflight_ is the batch Redis has not answered yet.
  std::deque<Pending> pending_;
  std::optional<Fields> fields_;
  std::vector<Pending> inflight_;
  std::optional<Fields> inflight_fields_;
  bool create_ = true;       // the owner's first batch creates the record
  std::vector<std::function<void()>> recorded_;  // when_recorded, until it is
  std::vector<DeferredClaim> deferred_claims_;    // until what is pending is written
  bool in_flight_ = false;
  bool scheduled_ = false;   // in the store's list for its next flush
  bool running_ = false;     // a turn runs here: batches renew its lease
  bool renew_due_ = false;
  Clock::time_point last_write_{};
  Clock::time_point last_indexed_{};  // listed in the running-turn index
  bool unindex_ = false;              // the turn ended: off the index after the next batch
  bool inflight_unindex_ = false;     // ... after the batch in flight
  // A follower's reads: early_ under mutex_, catching_up_ on the store thread.
  bool loaded_ = false;
  std::vector<std::string> early_;  // published before the load was done
  bool catching_up_ = false;
  bool catch_up_again_ = false;
  bool subscribed_ = false;  // store thread: the open's subscription is confirmed
};

RedisJournalStore::RedisJournalStore(RedisStoreSettings settings)
    : settings_(std::move(settings)),
      local_(std::make_shared<MemoryJournalStore>(settings_.memory_budget_bytes, settings_.retention)),
      commands_(std::make_shared<RedisClient>(ioc_, settings_.endpoint, "commands")),
      subscriber_(std::make_shared<RedisClient>(ioc_, settings_.endpoint, "subscriber")),
      append_sha_(sha1_hex(kAppendScript)),
      claim_sha_(sha1_hex(kClaimScript)),
      orphaned_sha_(sha1_hex(kOrphanedScript)),
      cancel_sha_(sha1_hex(kCancelScript)),
      index_sha_(sha1_hex(kIndexScript)),
      lease_timer_(ioc_),
      flush_timer_(ioc_) {}

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
  commands_->set_reply_timeout(settings_.command_timeout);
  std::weak_ptr<RedisJournalStore> weak = weak_from_this();
  commands_->on_connect([weak] {
    if (auto self = weak.lock()) self->on_commands_connected();
  });
  net::post(ioc_, [self = shared_from_this()] {
    self->commands_->start();
    self->subscriber_->start();
    // This instance's own channel: cancels of the turns it runs.
    std::weak_ptr<RedisJournalStore> weak = self;
    self->subscriber_->subscribe(self->settings_.key_prefix + ":i:" + self->settings_.instance_id,
                                 [weak](std::string_view, std::string_view payload) {
                                   auto s = weak.lock();
                                   if (!s || payload.substr(0, kCancelMessage.size()) != kCancelMessage) return;
                                   const std::string id(payload.substr(std::min(payload.size(), kCancelMessage.size() + 1)));
                                   const auto it = s->journals_.find(s->channel(id));
                                   if (it == s->journals_.end()) return;
                                   if (auto j = it->second.lock()) j->on_cancel_request();
                                 });
    self->tick();
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
  net::post(ioc_, [this] {
    stopped_ = true;
    lease_timer_.cancel();
    flush_timer_.cancel();
    commands_->stop();
    subscriber_->stop();
    // Journals still listed for the next flush (one that never comes) hold
    // the store: let them go, or neither is ever freed.
    std::vector<std::shared_ptr<RedisJournal>> dirty;
    std::lock_guard lock(dirty_mutex_);
    dirty.swap(dirty_);
    flushes_closed_ = true;
  });
  work_.reset();
  // The connections close at once; a retry timer or a wait still pending ends with the context.
  net::steady_timer cap(ioc_);
  net::post(ioc_, [&] {
    cap.expires_after(std::chrono::milliseconds(200));
    cap.async_wait([&](const boost::system::error_code&) { ioc_.stop(); });
  });
  thread_.join();
  // Replies that did not come in time: their callbacks (which hold journals,
  // which hold the store) go now.
  commands_->abandon();
  subscriber_->abandon();
}

bool RedisJournalStore::reachable() const {
  return commands_->connected() && subscriber_->connected() && !refusing_writes_.load();
}

std::string RedisJournalStore::unreachable_reason() const {
  if (commands_->connected() && subscriber_->connected() && refusing_writes_.load()) {
    return "refuses writes (out of memory: maxmemory)";
  }
  return "cannot be reached";
}

void RedisJournalStore::note_write(const RedisValue& reply) {
  // "OOM command not allowed ..." (Redis 7; older ones wrap it in "ERR Error running script").
  const bool oom = reply.is_error() && (starts_with(reply.str, "OOM") || reply.str.find("-OOM ") != std::string::npos);
  if (!reply.is_error() || oom) {
    if (refusing_writes_.exchange(oom) != oom) {
      if (oom) {
        spdlog::error("redis store: Redis refuses writes ({}); running answers wait, new sessions are refused "
                      "until it takes writes again",
                      reply.str);
      } else {
        spdlog::info("redis store: Redis takes writes again");
      }
    }
  }
}

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
  auto journal = std::make_shared<RedisJournal>(shared_from_this(), session_id, RedisJournal::Role::kOwner,
                                                std::make_shared<MemoryJournal>(local_));
  journal->mark_loaded();
  // Subscribed too: when another instance runs a later turn, this copy follows it.
  net::post(ioc_, [self = shared_from_this(), journal] { self->follow(journal, nullptr); });
  return journal;
}

void RedisJournalStore::eval(std::initializer_list<std::string_view> args, const std::string& script,
                             std::function<void(const RedisValue&)> done) {
  auto call = std::make_shared<std::string>();  // kept for a retry
  RedisClient::format_command(*call, args);
  commands_->send(*call, [self = shared_from_this(), call, &script, done = std::move(done)](const RedisValue& v) mutable {
    if (v.is_error() && starts_with(v.str, "NOSCRIPT")) {
      // Redis lost its script cache (a restart): load the script, then the
      // same call again (one connection: in that order).
      self->commands_->command({"SCRIPT", "LOAD", script}, [](const RedisValue&) {});
      return self->commands_->send(*call, std::move(done));
    }
    done(v);
  });
}

void RedisJournalStore::send_batches(BatchCall& call) {
  std::string& resp = batch_buffer_;
  resp.clear();
  resp.reserve(call.keys.size() + call.args.size() + 96);
  RedisClient::begin_command(resp, 3 + call.key_count + call.arg_count);
  RedisClient::append_argument(resp, "EVALSHA");
  RedisClient::append_argument(resp, append_sha_);
  RedisClient::append_argument(resp, std::to_string(call.key_count));
  resp += call.keys;
  resp += call.args;
  commands_->send(resp, [self = shared_from_this(), journals = std::move(call.journals)](const RedisValue& v) {
    self->note_write(v);
    if (v.is_error() && starts_with(v.str, "NOSCRIPT")) {
      // Redis lost its script cache (a restart): the script is loaded and
      // the batches sent again at once (one connection: in that order).
      self->commands_->command({"SCRIPT", "LOAD", kAppendScript}, [](const RedisValue&) {});
      for (const auto& j : journals) j->on_write_failed(v.str, true);
      return;
    }
    if (v.is_error() || v.type != RedisValue::Type::kArray || v.elements.size() != journals.size()) {
      // The whole call failed (the connection dropped, Redis refused the
      // script): every batch goes again; Redis skips what it already holds.
      const std::string why = v.is_error() ? v.str : "unexpected reply to the append script";
      for (const auto& j : journals) j->on_write_failed(why);
      return;
    }
    for (size_t i = 0; i < journals.size(); ++i) journals[i]->on_written(v.elements[i]);
  });
  call.keys.clear();
  call.args.clear();
  call.key_count = call.arg_count = 0;
  call.journals.clear();
}

void RedisJournalStore::schedule(const std::shared_ptr<RedisJournal>& journal) {
  std::lock_guard lock(dirty_mutex_);
  if (flushes_closed_) return;  // stopped
  dirty_.push_back(journal);
  if (std::exchange(flush_posted_, true)) return;  // a flush is on its way
  net::post(ioc_, [self = shared_from_this()] { self->flush(); });
}

// Every journal with something to write sends its batch; hiredis pipelines
// them into one write. Then, while there is work, the next flush comes
// `flush_interval` later: under load the batches of many sessions share one
// write, one read and one wakeup of this thread, and an event after a quiet
// spell goes out at once.
void RedisJournalStore::flush() {
  std::vector<std::shared_ptr<RedisJournal>> dirty;
  {
    std::lock_guard lock(dirty_mutex_);
    dirty.swap(dirty_);
    if (dirty.empty()) {
      flush_posted_ = false;  // quiet: the next schedule() flushes at once
      return;
    }
  }
  const bool interval = settings_.flush_interval.count() > 0;
  if (!interval) {
    std::lock_guard lock(dirty_mutex_);
    flush_posted_ = false;  // no interval: every schedule() posts a flush
  }
  const size_t per_call = std::max<size_t>(1, settings_.sessions_per_call);
  for (const auto& j : dirty) {
    if (j->take_batch(call_) && call_.journals.size() >= per_call) send_batches(call_);
  }
  if (!call_.journals.empty()) send_batches(call_);
  if (!interval) return;
  commands_->write_now();
  flush_timer_.expires_after(settings_.flush_interval);
  flush_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->flush();
  });
}

// Every lease / 3: owners renew the lease of their running turn (when no
// batch did lately), watched followers check whether their owner's lapsed.
void RedisJournalStore::tick() {
  if (stopped_) return;
  const auto now = Clock::now();
  for (auto it = journals_.begin(); it != journals_.end();) {
    auto j = it->second.lock();
    if (!j) {
      it = journals_.erase(it);
      continue;
    }
    j->renew_if_due(now);
    j->check_stalled(now);
    j->check_orphaned();
    ++it;
  }
  if (on_orphaned_turn_ && !sweeping_ && now >= next_sweep_ && commands_->connected()) sweep();
  if (refusing_writes_.load() && commands_->connected()) {
    // Whether Redis takes writes again, when no batch is there to tell.
    commands_->command({"SET", settings_.key_prefix + ":writable", "1", "PX", "60000"},
                       [self = shared_from_this()](const RedisValue& v) { self->note_write(v); });
  }
  lease_timer_.expires_after(std::max(std::chrono::milliseconds(50), settings_.lease / 3));
  lease_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->tick();
  });
}

void RedisJournalStore::set_on_orphaned_turn(OrphanedTurn on_orphaned) {
  net::post(ioc_, [self = shared_from_this(), on_orphaned = std::move(on_orphaned)]() mutable {
    self->on_orphaned_turn_ = std::move(on_orphaned);
  });
}

// About once a lease (jittered, so that the fleet's sweeps spread out): the
// running turns whose lease should have been renewed by now, each checked
// in Redis. Watching instances react to a lapse within milliseconds; the
// sweep waits half a lease more before it steps in.
void RedisJournalStore::sweep() {
  thread_local std::minstd_rand jitter{std::random_device{}()};
  const auto lease = settings_.lease;
  next_sweep_ = Clock::now() + lease * 3 / 4 + std::chrono::milliseconds(jitter() % (lease.count() / 2 + 1));
  sweeping_ = true;
  const std::string due = std::to_string(wall_ms() - lease.count() / 2);
  commands_->command(
      {"ZRANGEBYSCORE", running_key(), "-inf", due, "WITHSCORES", "LIMIT", "0", "64"},
      [self = shared_from_this()](const RedisValue& v) {
        if (v.type != RedisValue::Type::kArray || v.elements.size() < 2) {
          self->sweeping_ = false;
          return;
        }
        auto left = std::make_shared<size_t>(v.elements.size() / 2);
        for (size_t i = 0; i + 1 < v.elements.size(); i += 2) {
          const std::string id = v.elements[i].str;
          const std::string score = v.elements[i + 1].str;
          self->eval({"EVALSHA", self->orphaned_sha_, "1", self->record_key(id)}, kOrphanedScript,
                     [self, id, score, left](const RedisValue& r) {
                       long long state = 0;
                       std::string principal;
                       if (orphaned_state(r, state, principal)) {
                         // Ended (a ZREM that never came) or expired: off the index. Renewed:
                         // looked at again when its lease would lapse. Orphaned: looked at
                         // again a lease from now, should this instance fail to take it over.
                         const long long again = state < 0 ? -1 : state > 0 ? state : self->settings_.lease.count();
                         self->eval({"EVALSHA", self->index_sha_, "1", self->running_key(), id, score,
                                     again < 0 ? std::string() : std::to_string(wall_ms() + again)},
                                    kIndexScript, [](const RedisValue&) {});
                         if (state == 0 && self->on_orphaned_turn_) self->on_orphaned_turn_(id, principal);
                       }
                       if (--*left == 0) self->sweeping_ = false;
                     });
        }
      });
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
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (const auto& w : waiting) {
    if (auto j = w.lock()) j->write_batch();
  }
  // A read of a follower may have failed while this connection was down.
  for (const auto& [channel, weak] : journals_) {
    if (auto j = weak.lock()) j->catch_up();
  }
}

void RedisJournalStore::on_message(std::string_view channel, std::string_view payload) {
  const auto it = journals_.find(std::string(channel));
  if (it == journals_.end()) return;
  if (auto j = it->second.lock()) j->on_published(payload);
}

void RedisJournalStore::follow(const std::shared_ptr<RedisJournal>& journal, std::function<void()> first) {
  const std::string ch = channel(journal->id());
  journals_[ch] = journal;
  std::weak_ptr<RedisJournalStore> weak_store = weak_from_this();
  auto pending_first = std::make_shared<std::function<void()>>(std::move(first));
  subscriber_->subscribe(
      ch,
      [weak_store](std::string_view channel, std::string_view payload) {
        if (auto s = weak_store.lock()) s->on_message(channel, payload);
      },
      [weak = std::weak_ptr<RedisJournal>(journal), pending_first] {
        auto j = weak.lock();
        if (!j) return;
        if (*pending_first) return std::exchange(*pending_first, nullptr)();
        j->catch_up();  // subscribed again after a reconnection: read what was missed
      });
}

void RedisJournalStore::pause_following(const std::string& id) {
  subscriber_->unsubscribe(channel(id));  // the journal stays known to tick()
}

void RedisJournalStore::forget(const std::string& id) {
  const std::string ch = channel(id);
  const auto it = journals_.find(ch);
  if (it == journals_.end() || !it->second.expired()) return;  // opened again meanwhile
  journals_.erase(it);
  subscriber_->unsubscribe(ch);
}

void RedisJournalStore::open(const std::string& id, std::function<void(Opened)> done) {
  net::post(ioc_, [self = shared_from_this(), id, done = std::move(done)]() mutable {
    // Reads work while Redis refuses writes (out of memory): only the connections count.
    if (!self->commands_->connected() || !self->subscriber_->connected()) {
      Opened o;
      o.outcome = Opened::Outcome::kUnavailable;
      return done(std::move(o));
    }
    // Answered once: by the load, or as unavailable if Redis does not answer in time.
    auto answer = std::make_shared<std::function<void(Opened)>>(std::move(done));
    auto timer = std::make_shared<net::steady_timer>(self->ioc_, kOpenTimeout);
    auto journal = std::make_shared<RedisJournal>(self, id, RedisJournal::Role::kFollower,
                                                  std::make_shared<MemoryJournal>(self->local_));
    // Until the subscription is confirmed and the load is done, the journal
    // lives in this wait; then in whatever `done` gives it to.
    timer->async_wait([answer, timer, journal](const boost::system::error_code& ec) {
      if (ec || !*answer) return;
      Opened o;
      o.outcome = Opened::Outcome::kUnavailable;
      std::exchange(*answer, nullptr)(std::move(o));
    });
    // Subscribed and read at once (one round trip, not two): what is
    // published before the read is done is kept and merged by offset
    // (RedisJournal::loaded); what was published after the read but before
    // the subscription took effect is read once both are done.
    self->follow(journal, [weak = std::weak_ptr<RedisJournal>(journal)] {
      if (auto j = weak.lock()) j->on_first_subscription();
    });
    journal->load([answer, timer](Opened o) {
      timer->cancel();
      if (*answer) std::exchange(*answer, nullptr)(std::move(o));
    });
  });
}

}  // namespace sluice
