// Session: one chat conversation. It owns the session's journal, runs at
// most one turn at a time and keeps the conversation for the next turn.
// Readers attach and detach freely; with none attached a running turn goes
// on for `grace`, so that its client can come back and resume.
//
// Threads: every public member is thread-safe (one mutex per session, never
// held while calling out). Engine events arrive on the engine's threads.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gateway/auth/principal_limits.hpp"
#include "gateway/engine/engine.hpp"
#include "gateway/plugin/plugin_host.hpp"
#include "gateway/stream/journal.hpp"
#include "gateway/stream/session_reader.hpp"

namespace sluice {

struct SessionSettings {
  std::chrono::milliseconds grace{600'000};
  size_t history_max_bytes = 64 * 1024;
  std::shared_ptr<PrincipalLimits> limits;  // may be null: no per-principal limits
  std::shared_ptr<const PluginHost> plugins;  // may be null: no moderation
  // A turn taken over from a lost instance goes on (the engine continues
  // the partial answer); false: it ends with an instance_lost error.
  bool continue_taken_over_turns = true;
  RetrievalConfig retrieval;  // the plugins' retrievers, before a turn's first round
  // Where a turn's events are moderated and journaled when the engine calls
  // back on its own compute thread (Engine::calls_back_on_io_threads); a
  // strand of it per turn. Empty: on the session's executor.
  boost::asio::any_io_executor engine_events;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;

  // A new session, with a new resume token.
  Session(std::string id, std::string principal, std::shared_ptr<Journal> journal, Engine& engine,
          SessionSettings settings, boost::asio::any_io_executor executor);
  // A session another instance created, as a shared store keeps it
  // (`journal` follows its stream). Its turns run where it was created.
  Session(std::string id, SessionRecord record, std::shared_ptr<Journal> journal, Engine& engine,
          SessionSettings settings, boost::asio::any_io_executor executor);
  ~Session();

  // Readers are told of events the journal makes readable later (a shared
  // store's journal shows an event once the store holds it). Call once,
  // after construction.
  void listen_to_journal();

  const std::string& id() const { return id_; }
  const std::string& principal() const { return principal_; }
  // Empty for a session opened from a shared store: only its hash is kept.
  const std::string& resume_token() const { return resume_token_; }
  bool token_matches(std::string_view token) const;  // constant time, on the token's SHA-256
  Journal& journal() const { return *journal_; }
  // Runs `f` on `executor` once the store holds this session (at once with the memory store).
  void when_recorded(const boost::asio::any_io_executor& executor, std::function<void()> f) {
    journal_->when_recorded([executor, f = std::move(f)]() mutable { boost::asio::post(executor, std::move(f)); });
  }

  // With a shared store a turn first claims the session (another instance
  // may hold it, and may have run turns since): call this before
  // start_turn. Returns true when `done` ran before returning (nothing to
  // claim); otherwise `done` is posted to `executor` with the outcome
  // (kSessionBusy while another instance runs a turn, kStoreUnavailable).
  bool prepare_turn(const boost::asio::any_io_executor& executor, std::function<void(Admission)> done);
  // Starts a turn. Refused with kSessionBusy when one is running, or with the
  // principal's limit that stands in the way.
  Admission start_turn(const ChatCommand& chat);
  // A claim (prepare_turn) that is not followed by start_turn (the client
  // went): the store is told that no turn runs.
  void release_claim();
  // Stops the running turn; its `done` says "cancelled" (with `why` as the
  // error before it when given).
  void cancel(std::optional<TurnError> why = std::nullopt);
  void attach(const std::shared_ptr<SessionReader>& reader);
  void detach(const SessionReader* reader);
  // A turn is running: here, or (a shared store) on another instance.
  bool busy() const;
  // No reader, no turn, and nothing happened since `cutoff`.
  bool idle_before(Clock::time_point cutoff) const;

  // The instance running this session's turn was lost (its lease lapsed):
  // this one claims the turn and continues the answer from the journal
  // (a watching reader here, or the store's sweep). Any thread.
  void take_over();

 private:
  class Sink;
  struct TurnState;

  TurnRequest round_request() const;  // under mutex_
  void start_round(uint64_t turn, TurnRequest request);
  // A round that ended with tool calls: runs them (true), or false when the
  // turn ends here (no tools, or the round cap reached).
  bool begin_tools(uint64_t turn, TurnResult& result);
  void on_tool_outcome(uint64_t turn, size_t index, ToolOutcome outcome);
  // Under mutex_: the retrieval request when this turn asks the
  // retrievers first (marks the turn as retrieving), else "".
  std::string begin_retrieval_locked();
  void run_retrievers(uint64_t turn, const std::string& request);
  void on_retrieved(uint64_t turn, size_t index, ToolOutcome outcome);
  // The executor that tool and retriever outcomes are handled on.
  boost::asio::any_io_executor outcome_executor() const;
  void on_delta(uint64_t turn, std::string text);
  // A moderator redacted text ("redact") or stopped the answer ("stop").
  void on_moderation(uint64_t turn, const ModerationOutput& what);
  void append_moderation_locked(const ModerationOutput& what);  // with mutex_ held
  // Text of an event other than a delta, moderated as a whole before the
  // journal (its notices journaled first); with mutex_ held. JSON: its
  // strings. True when a moderator stopped the answer.
  bool moderate_locked(std::string& text, bool json);
  void on_end(uint64_t turn, TurnResult result);
  void notify_readers();
  // After a journal append, with mutex_ released: readers are told now, or
  // by the journal's listener once a shared store holds the event.
  void after_append();
  // The record a shared store keeps; with mutex_ held.
  void save_record_locked();
  uint64_t append_locked(StreamEvent e);  // with mutex_ held
  Admission on_claimed(TurnClaim claim);  // on executor_
  // Another instance claimed the session while a turn ran here.
  void on_fenced();
  void on_taken_over(TurnClaim claim);
  // A turn's end in the principal's limits and the metrics; with mutex_
  // held (both are leaves: they call nothing back).
  void account_end(const TurnState& t, const TurnResult& result);
  // Arms the grace timer when nobody is attached to a running turn, and
  // disarms it otherwise. Timer operations run on `executor_` (a strand).
  void review_grace();
  void on_grace_timeout(const boost::system::error_code& ec);

  const std::string id_;
  const std::string principal_;
  const std::string resume_token_;
  const std::string token_hash_;
  bool follower_ = false;  // under mutex_: the store says another instance holds it
  const std::shared_ptr<Journal> journal_;
  Engine& engine_;
  const SessionSettings settings_;

  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<SessionReader>> readers_;
  std::vector<ChatMessage> history_;
  std::unique_ptr<TurnState> turn_;
  uint64_t turns_started_ = 0;
  bool remote_turn_at_open_ = false;  // opened from the store while a turn ran elsewhere
  bool fresh_ = true;           // created here, no turn yet: its first turn needs no claim
  bool taking_over_ = false;
  uint64_t last_appended_ = 0;  // the journal offset of the last event appended
  Clock::time_point last_active_;
  boost::asio::any_io_executor executor_;
  boost::asio::steady_timer grace_timer_;  // used on executor_ only
  bool grace_armed_ = false;               // on executor_ only
};

}  // namespace sluice
