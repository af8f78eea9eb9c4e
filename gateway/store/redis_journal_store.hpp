// RedisJournalStore: sessions and their journals in Redis, so that every
// instance given the same Redis serves every session (docs/scale-out.md).
//
// Keys, one hash slot per session (`{id}` is the Redis Cluster hash tag):
//   <prefix>:{<id>}:r  hash: principal, token (SHA-256 of the resume
//                      token), history (JSON), turns, epoch, last
//   <prefix>:{<id>}:j  stream: one entry per journal event, id <offset>-0,
//                      field d = the event's record (event_record.hpp)
//   <prefix>:{<id>}:c  channel: each appended batch, "<first offset>\n"
//                      followed by its records, one per line
// Both keys expire `retention` after the session's last write, and the
// stream keeps at most `stream_max_events` entries (MAXLEN ~).
//
// The journal invariant, fleet-wide: an event is shown to readers (on any
// instance) only once Redis holds it. The owner's appends go into its local
// copy, hidden, and are sent in order by one Lua script per batch (append,
// record fields, publish, expire: atomic), with one batch in flight per
// session and the batches of all sessions flushed together (at once after a
// quiet spell, then at most every flush_interval); when the script's reply comes,
// the batch becomes readable. The script refuses a batch whose epoch is not
// the record's (fencing: an owner that lost the session can never append
// again) and a batch that would leave a gap; a batch sent again after a
// lost reply is recognised and not appended twice.
//
// Running turns are also listed in one sorted set (running_key()), which
// every instance sweeps now and then: a turn whose lease lapsed and that no
// instance watching it took over is taken over by the sweeping instance, so
// an answer finishes even when its client is away.
//
// Other instances open a session (open()): they subscribe to its channel
// and read the record and the stream at the same time, merge what was
// published meanwhile by offset, and read the stream once more when both
// are done, so nothing falls between; a gap in what arrives (a lost
// subscriber connection) is filled from the stream.
//
// Threads: the store runs its own thread and io_context (the Redis
// connections live there, never on an I/O thread); every public member is
// thread-safe.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gateway/store/redis_client.hpp"
#include "gateway/stream/journal.hpp"
#include "gateway/stream/memory_journal_store.hpp"

namespace sluice {

class RedisJournal;

struct RedisStoreSettings {
  RedisEndpoint endpoint;
  std::string key_prefix = "sluice";
  std::chrono::milliseconds retention{600'000};  // the keys' TTL after a session's last write
  size_t stream_max_events = 100'000;            // per session (MAXLEN ~)
  size_t memory_budget_bytes = size_t{256} << 20;  // the local copies of journals
  size_t max_batch_events = 512;                   // per script call
  std::string instance_id;                         // this instance, as the record names its owner
  std::chrono::milliseconds lease{3000};           // an owner's hold on its running turn
  std::chrono::milliseconds write_timeout{10'000};  // a running turn waits this long for Redis
  std::chrono::milliseconds command_timeout{3000};  // a silent connection is dropped after this
  std::chrono::microseconds flush_interval{5000};   // under load, batches go to Redis at most this often
  size_t sessions_per_call = 64;  // the batches of this many sessions share a script call (1: Redis Cluster)
};

class RedisJournalStore final : public JournalStore, public std::enable_shared_from_this<RedisJournalStore> {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RedisJournalStore(RedisStoreSettings settings);
  ~RedisJournalStore() override;

  // Starts the store's thread and connects (in the background: the
  // connection may come later; reachable() says when it is up).
  void start();
  // Waits up to `flush_timeout` for the batches still to be written, then
  // closes the connections and joins the thread.
  void stop(std::chrono::milliseconds flush_timeout = std::chrono::milliseconds(2000));

  std::shared_ptr<Journal> create(const std::string& session_id) override;
  void expire(Clock::time_point now) override { local_->expire(now); }
  size_t bytes_used() const override { return local_->bytes_used(); }
  bool shared() const override { return true; }
  bool reachable() const override;
  std::string unreachable_reason() const override;
  void open(const std::string& id, std::function<void(Opened)> done) override;
  void set_on_orphaned_turn(OrphanedTurn on_orphaned) override;

  std::string record_key(const std::string& id) const;
  std::string stream_key(const std::string& id) const;
  std::string channel(const std::string& id) const;
  // The fleet's index of running turns (a sorted set: session id, scored by
  // when its lease should next be looked at, wall-clock ms). Its own hash
  // slot; written beside the scripts, never inside them.
  std::string running_key() const { return settings_.key_prefix + ":running"; }
  const RedisStoreSettings& settings() const { return settings_; }
  // Batches that appended events, one per session in each script call
  // (tests and the bench: batches, not tokens).
  uint64_t batches_written() const { return batches_written_.load(); }
  // Events sent but not yet held by Redis, over all sessions.
  size_t events_pending() const { return events_pending_.load(); }

 private:
  friend class RedisJournal;
  // Any thread: `journal` has something to write; the next flush writes
  // every such journal's batch (pipelined).
  void schedule(const std::shared_ptr<RedisJournal>& journal);
  // The rest: store thread.
  void flush();
  void tick();
  // Looks for running turns whose lease lapsed with nobody taking them over.
  void sweep();
  void on_commands_connected();
  // A script by its SHA, and by its text if Redis lost its script cache.
  void eval(std::initializer_list<std::string_view> args, const std::string& script,
            std::function<void(const RedisValue&)> done);
  void wait_for_connection(std::weak_ptr<RedisJournal> journal);
  void retry_after_error(std::weak_ptr<RedisJournal> journal);
  // Subscribes `journal` to its channel; `first` runs once the first
  // subscription is confirmed, later confirmations make it catch up.
  void follow(const std::shared_ptr<RedisJournal>& journal, std::function<void()> first);
  void forget(const std::string& id);
  void pause_following(const std::string& id);
  void on_message(std::string_view channel, std::string_view payload);

  const RedisStoreSettings settings_;
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::shared_ptr<MemoryJournalStore> local_;
  std::shared_ptr<RedisClient> commands_;    // the script, reads
  std::shared_ptr<RedisClient> subscriber_;  // SUBSCRIBE only
  const std::string append_sha_;
  const std::string claim_sha_;
  const std::string orphaned_sha_;
  const std::string cancel_sha_;
  const std::string index_sha_;
  boost::asio::steady_timer lease_timer_;  // tick()
  bool stopped_ = false;                   // store thread

  std::mutex dirty_mutex_;
  std::vector<std::shared_ptr<RedisJournal>> dirty_;
  bool flush_posted_ = false;  // a flush is posted or its timer runs
  bool flushes_closed_ = false;  // stop() ran: nothing is listed any more
  boost::asio::steady_timer flush_timer_;  // store thread: the next flush while there is work

  // Store thread only:
  // One script call being formatted: the batches of up to
  // settings_.sessions_per_call sessions (RedisJournal::take_batch).
  struct BatchCall {
    std::string keys;  // RESP: the record and the stream of each session
    std::string args;  // RESP: each session's block
    size_t key_count = 0;
    size_t arg_count = 0;
    std::vector<std::shared_ptr<RedisJournal>> journals;  // whose blocks, in order
  };
  BatchCall call_;
  std::string batch_buffer_;  // the call as sent
  // Sends `call` (then empties it); each journal gets its own reply.
  void send_batches(BatchCall& call);
  std::unordered_map<std::string, std::weak_ptr<RedisJournal>> journals_;  // by channel
  std::vector<std::weak_ptr<RedisJournal>> waiting_;  // a batch to write once connected
  bool logged_write_error_ = false;
  OrphanedTurn on_orphaned_turn_;
  Clock::time_point next_sweep_{};
  bool sweeping_ = false;

  // Redis answered a write with OOM (maxmemory reached, noeviction): until a
  // write succeeds again (a batch, or tick()'s probe), no new session starts.
  std::atomic<bool> refusing_writes_{false};
  void note_write(const RedisValue& reply);  // store thread
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<size_t> events_pending_{0};
};

// The Lua script that appends a batch (for tests that call it directly).
const std::string& redis_append_script();

}  // namespace sluice
