// Journal: the single source of truth of a session's stream. Every event a
// client can see is appended here, with the next offset (1, 2, 3, ... no
// gaps), before any connection sends it; every attached connection reads it
// from its own cursor. Resume, two tabs, slow consumers and replay are all
// "a reader at a cursor".
//
// JournalStore makes journals and holds them to a memory budget and a
// retention time. The in-memory store is the embedded default; a shared
// store (Redis) can replace it behind these interfaces.
//
// Threads: every member is thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/common/json_writer.hpp"
#include "gateway/protocol/messages.hpp"
#include "gateway/protocol/stream_event.hpp"

namespace sluice {

enum class JournalStatus {
  kOk,
  kEvicted,  // events after the cursor were dropped to stay within the memory budget
  kExpired,  // ... or because their turn ended longer ago than the retention
  kAhead,    // the cursor is beyond the last offset
};

// The faces a journal event is encoded for.
enum class Face : uint8_t { kWebSocket, kSse, kCount };

// One event as the journal keeps it: immutable once appended and shared by
// every reader (a read copies pointers, never text). A delta (nearly every
// event) is framed by each face around its text as it goes inside a JSON
// string (json_text: the text itself, or escaped once at the append when it
// has to be), so it costs no encoding and no copy per reader. Other events
// are encoded whole by each face once, the first time a reader of that face
// needs them, and every other reader of the face sends the same bytes.
class JournalEntry {
 public:
  explicit JournalEntry(StreamEvent event) : event_(std::move(event)) {
    if (event_.type == StreamEventType::kDelta && !json_string_is_plain(event_.text)) {
      std::string escaped;
      append_json_string_body(escaped, event_.text);
      escaped_ = escaped;
    }
  }
  ~JournalEntry() {
    for (auto& slot : encoded_) CompactString::free_raw(slot.load(std::memory_order_relaxed));
  }
  JournalEntry(const JournalEntry&) = delete;
  JournalEntry& operator=(const JournalEntry&) = delete;

  const StreamEvent& event() const { return event_; }
  uint64_t offset() const { return event_.offset; }
  // The text as it goes between a JSON string's quotes.
  std::string_view json_text() const {
    return escaped_.empty() ? std::string_view(event_.text) : escaped_.view();
  }

  // The event as `face` sends it; `encode(event)` (a std::string) makes it
  // the first time. The bytes live as long as the entry. Thread-safe: two
  // readers encoding at once keep the first result.
  template <class Encode>
  std::string_view encoded(Face face, Encode&& encode) const {
    auto& slot = encoded_[static_cast<size_t>(face)];
    if (const char* done = slot.load(std::memory_order_acquire)) return CompactString::view_of(done);
    char* made = CompactString(encode(event_)).release();  // one allocation: size and bytes
    char* expected = nullptr;
    if (slot.compare_exchange_strong(expected, made, std::memory_order_acq_rel)) {
      return CompactString::view_of(made);
    }
    CompactString::free_raw(made);
    return CompactString::view_of(expected);
  }

  // Bytes it holds in memory, with the encoding it will get if it is not a
  // delta (one face's: a session's readers are nearly always of one face),
  // for the journal's budget.
  size_t footprint() const {
    size_t n = sizeof(JournalEntry) + 16 + event_.footprint() - sizeof(StreamEvent) + escaped_.capacity();
    if (event_.type != StreamEventType::kDelta) n += sizeof(uint32_t) + event_.text.size() + event_.json.size() + 128;
    return n;
  }

 private:
  StreamEvent event_;
  CompactString escaped_;  // a delta's json_text when it differs from the text
  mutable std::array<std::atomic<char*>, static_cast<size_t>(Face::kCount)> encoded_{};
};

using JournalEntryPtr = std::shared_ptr<const JournalEntry>;

// What a shared store keeps of a session beside its journal, so that any
// instance can serve it: whose it is, its resume token's hash (never the
// token) and the conversation so far.
struct RunningTurn {
  uint64_t first_offset = 0;  // the offset its first event has (or will have)
  std::string request_id;
  std::string model;
  ChatParams params;
};

struct SessionRecord {
  std::string principal;
  std::string token_hash;  // SHA-256 of the resume token, lowercase hex
  std::vector<ChatMessage> history;
  uint64_t turns = 0;      // turns started so far
  std::optional<RunningTurn> turn;  // while a turn runs
};

// A claim on a session kept in a shared store: this instance runs its next
// turn (kNewTurn), or continues the turn of an instance that was lost
// (kTakeOver: its lease lapsed).
enum class ClaimKind { kNewTurn, kTakeOver };
struct TurnClaim {
  enum class Outcome { kClaimed, kBusy, kUnknown, kUnavailable, kNotOrphaned };
  Outcome outcome = Outcome::kUnavailable;
  std::string message;   // why not
  SessionRecord record;  // as the store had it; record.turn set: a turn was running
  uint64_t last_offset = 0;
};

struct JournalRead {
  JournalStatus status = JournalStatus::kOk;
  std::vector<JournalEntryPtr> events;
};

class Journal {
 public:
  virtual ~Journal() = default;
  // Appends `event`, giving it the next offset, which is returned.
  virtual uint64_t append(StreamEvent event) = 0;
  // The events appended so far form finished turns: they may be dropped
  // once old (retention) or when memory is short (budget), oldest first.
  virtual void end_turn() = 0;
  // Appends to `out` the events with offset > `after`, oldest first, about
  // `max_bytes` of them (at least one when there is one). `out` keeps its
  // capacity from read to read: a reader reuses one vector.
  virtual JournalStatus read(uint64_t after, size_t max_bytes, std::vector<JournalEntryPtr>& out) const = 0;
  JournalRead read(uint64_t after, size_t max_bytes) const {
    JournalRead r;
    r.status = read(after, max_bytes, r.events);
    return r;
  }
  // Whether offset `after` can be read from: kOk, kEvicted, kExpired or kAhead.
  virtual JournalStatus check(uint64_t after) const = 0;
  virtual uint64_t last_offset() const = 0;

  // Whether an appended event can be read at once (the memory store), or
  // only once a shared store holds it: then the journal calls its listener
  // whenever events become readable (from a store thread, with no lock held).
  virtual bool readable_at_append() const { return true; }
  virtual void set_listener(std::function<void()> on_readable) {}
  // The session's record, for a shared store: kept with the journal and
  // saved before any event appended after this call. The memory store keeps
  // none (the Session object is the record).
  virtual void save_record(const SessionRecord& record) {}
  // Runs `f` once the store holds the session's record as last saved (a
  // shared store: after the write that carries it; from a store thread),
  // so that no client learns a session id that another instance would not
  // know, or would know without the turn that just started. The memory
  // store runs it at once.
  virtual void when_recorded(std::function<void()> f) { f(); }
  // Reads what the shared store holds beyond this copy (it may lag behind
  // what a client saw on another instance), then runs `then` (from a store
  // thread). The memory store runs it at once.
  virtual void catch_up(std::function<void()> then) { then(); }

  // Shared stores: a turn claims the session first (another instance may
  // own it). `done` runs on a store thread; on kClaimed this journal appends
  // for this instance from then on (and every other owner is fenced off).
  virtual bool claims_turns() const { return false; }
  virtual void claim(ClaimKind kind, std::function<void(TurnClaim)> done) {
    TurnClaim c;
    c.outcome = TurnClaim::Outcome::kClaimed;
    done(std::move(c));
  }
  // Shared stores: whether readers here wait on this session. A watched
  // journal that follows another instance checks that instance's lease on
  // the running turn, and calls `on_orphaned` (from a store thread) once it
  // has lapsed.
  virtual void watch(bool watched, std::function<void()> on_orphaned) {}
  // Shared stores: `on_fenced` runs (from a store thread) when another
  // instance has claimed the session while this one was appending: its
  // turn here must stop; nothing more it appends is kept.
  virtual void set_on_fenced(std::function<void()> on_fenced) {}
  // Shared stores: `on_stalled` runs (from a store thread) when events of a
  // running turn have waited for the store longer than its write timeout.
  virtual void set_on_stalled(std::function<void()> on_stalled) {}
  // Shared stores: asks whichever instance runs the session's turn to stop
  // it; that instance's journal calls its `on_cancel` (from a store thread).
  virtual void request_cancel() {}
  virtual void set_on_cancel(std::function<void()> on_cancel) {}
};

class JournalStore {
 public:
  virtual ~JournalStore() = default;
  virtual std::shared_ptr<Journal> create(const std::string& session_id) = 0;
  // Drops finished turns that ended before now - retention.
  virtual void expire(std::chrono::steady_clock::time_point now) = 0;
  virtual size_t bytes_used() const = 0;

  // A shared store (Redis) serves every instance of a fleet; the memory
  // store only this process.
  virtual bool shared() const { return false; }
  // Whether the store can be reached and takes writes now (/readyz; new
  // sessions are refused while it cannot), and if not, why (for /readyz).
  virtual bool reachable() const { return true; }
  virtual std::string unreachable_reason() const { return "cannot be reached"; }
  struct Opened {
    enum class Outcome { kFound, kUnknown, kUnavailable };
    Outcome outcome = Outcome::kUnknown;
    SessionRecord record;
    std::shared_ptr<Journal> journal;  // follows the shared stream
  };
  // Opens session `id` from a shared store (a session another instance
  // created): its record and a journal that follows its stream. `done` runs
  // on a store thread. The memory store knows no other instance's sessions.
  virtual void open(const std::string& id, std::function<void(Opened)> done) { done(Opened{}); }
  // Shared stores: `on_orphaned` runs (from a store thread) for a running
  // turn whose instance's lease lapsed and that no instance took over in
  // time (nobody there to watch it), so that this instance can: the answer
  // then finishes while its client is away. The memory store has none.
  using OrphanedTurn = std::function<void(const std::string& session_id, const std::string& principal)>;
  virtual void set_on_orphaned_turn(OrphanedTurn on_orphaned) {}
};

}  // namespace sluice
