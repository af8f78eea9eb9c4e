#include "gateway/stream/session.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/container/small_vector.hpp>

#include "gateway/auth/authenticator.hpp"
#include "gateway/common/logging.hpp"
#include "gateway/common/json_writer.hpp"
#include "gateway/common/random_id.hpp"
#include "gateway/common/trace_context.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/plugin/json_schema.hpp"
#include "gateway/stream/conversation.hpp"
#include "gateway/stream/retrieval.hpp"
#include "gateway/stream/turn_log.hpp"

namespace sluice {

namespace net = boost::asio;

struct Session::TurnState {
  uint64_t number = 0;
  uint64_t first_offset = 0;  // of the turn's first event
  bool taken_over = false;    // begun by an instance that was lost
  std::string request_id;
  std::string client;
  std::string trace_id;
  std::string trace_flags = "01";
  size_t input_bytes = 0;
  Clock::time_point started;
  Clock::time_point first_token;
  Clock::time_point last_token;
  bool got_first_token = false;
  metrics::Histogram* inter_token = nullptr;  // this engine's, when metrics are on
  std::string output;  // the answer so far, over all rounds
  std::string round_output;  // the text of the current engine round
  std::string model;   // what the client asked for, for every round
  ChatParams params;
  int round = 1;       // engine rounds: one, plus one after each batch of tool calls
  Usage usage;         // of the rounds before the current one
  bool tools_running = false;
  size_t tools_pending = 0;
  std::vector<ToolCall> calls;           // of the current tool round
  std::vector<ToolOutcome> outcomes;     // by call
  bool retrieving = false;               // asking the retrievers, before the first round
  size_t retrievals_pending = 0;
  std::vector<ToolOutcome> retrieved;    // by retriever
  std::vector<Passage> passages;         // in the prompt (and the sources event), cited from [1]
  int detaches = 0;    // readers that left during the turn
  int attaches = 0;    // readers that came (back) during the turn
  // Shared so that cancel() is called with the session's mutex released.
  std::shared_ptr<TurnHandle> handle;
  bool cancel_pending = false;              // cancelled before the handle was stored
  std::optional<TurnError> cancel_error;   // why it was cancelled, when not by the client
};

// Engine events go to the session (its mutex serializes them), through the
// plugins' moderation chain when there is one: no text reaches the journal
// before every moderator has passed it.
//
// An engine that calls back on its own compute thread (the local engine's
// scheduler) must not wait for a moderator or the journal: one slow
// moderator would stall every sequence of the batch. Its events are queued
// here and handled, in order, on a strand of `deliver` instead.
class Session::Sink final : public TurnSink, public std::enable_shared_from_this<Sink> {
 public:
  Sink(std::shared_ptr<Session> session, uint64_t turn, std::unique_ptr<ModerationChain> chain,
       std::optional<net::strand<net::any_io_executor>> deliver)
      : session_(std::move(session)),
        turn_(turn),
        chain_(std::move(chain)),
        deliver_(std::move(deliver)),
        hold_timer_(session_->executor_) {}

  void on_delta(std::string text) override {
    if (!deliver_) return handle_delta(std::move(text));
    std::lock_guard lock(queue_mutex_);
    queued_.push_back(std::move(text));
    post_drain();
  }

  void on_end(TurnResult result) override {
    if (!deliver_) return handle_end(std::move(result));
    std::lock_guard lock(queue_mutex_);
    queued_end_ = std::move(result);
    post_drain();
  }

 private:
  // Under queue_mutex_: one drain on its way at a time.
  void post_drain() {
    if (drain_posted_) return;
    drain_posted_ = true;
    net::post(*deliver_, [self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    for (;;) {
      std::vector<std::string> texts;
      std::optional<TurnResult> end;
      {
        std::lock_guard lock(queue_mutex_);
        if (queued_.empty() && !queued_end_) {
          drain_posted_ = false;
          return;
        }
        texts.swap(queued_);
        end.swap(queued_end_);
      }
      for (auto& t : texts) handle_delta(std::move(t));
      if (end) handle_end(std::move(*end));
    }
  }

  void handle_delta(std::string text) {
    if (!chain_) return session_->on_delta(turn_, std::move(text));
    std::lock_guard lock(mutex_);
    if (ended_) return;
    std::vector<ModerationOutput> out;
    chain_->feed(text, out);
    deliver(out);
    arm_hold_timer();
  }

  void handle_end(TurnResult result) {
    if (chain_) {
      std::lock_guard lock(mutex_);
      ended_ = true;
      std::vector<ModerationOutput> out;
      chain_->finish(out);
      deliver(out);
      hold_timer_.cancel();
      if (chain_->stopped()) {
        // The cancel that followed the stop is not the client's.
        result.finish_reason = FinishReason::kContentFilter;
        result.error.reset();
      }
    }
    session_->on_end(turn_, std::move(result));
  }

  // Under mutex_, so that outputs reach the journal in order.
  void deliver(std::vector<ModerationOutput>& out) {
    for (auto& o : out) {
      switch (o.kind) {
        case ModerationOutput::Kind::kText:
          session_->on_delta(turn_, std::move(o.text));
          break;
        case ModerationOutput::Kind::kNotice:
          session_->on_moderation(turn_, o);
          break;
        case ModerationOutput::Kind::kStop:
          session_->on_moderation(turn_, o);
          // Not from inside the engine's callback: it may end the turn at once.
          net::post(session_->executor_, [session = session_] { session->cancel(); });
          break;
      }
    }
    out.clear();
  }

  // Text held back longer than moderation.max_hold_ms is decided on.
  void arm_hold_timer() {
    if (timer_armed_ || chain_->held_bytes() == 0 || chain_->stopped()) return;
    timer_armed_ = true;
    hold_timer_.expires_at(chain_->held_since() + chain_->limits().max_hold);
    hold_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      std::lock_guard lock(self->mutex_);
      self->timer_armed_ = false;
      if (ec || self->ended_) return;
      if (self->chain_->held_bytes() > 0 &&
          Clock::now() >= self->chain_->held_since() + self->chain_->limits().max_hold) {
        std::vector<ModerationOutput> out;
        self->chain_->flush(out);
        self->deliver(out);
      }
      self->arm_hold_timer();
    });
  }

  std::shared_ptr<Session> session_;
  uint64_t turn_;
  std::unique_ptr<ModerationChain> chain_;
  std::optional<net::strand<net::any_io_executor>> deliver_;  // set: events are queued for it
  std::mutex queue_mutex_;
  std::vector<std::string> queued_;
  std::optional<TurnResult> queued_end_;
  bool drain_posted_ = false;
  std::mutex mutex_;  // the chain's: engine callbacks and the hold timer
  bool ended_ = false;
  bool timer_armed_ = false;
  net::steady_timer hold_timer_;
};

Session::Session(std::string id, std::string principal, std::shared_ptr<Journal> journal,
                 Engine& engine, SessionSettings settings, net::any_io_executor executor)
    : id_(std::move(id)),
      principal_(std::move(principal)),
      resume_token_(make_random_id("rt_")),
      token_hash_(sha256_hex(resume_token_)),
      journal_(std::move(journal)),
      engine_(engine),
      settings_(settings),
      last_active_(Clock::now()),
      executor_(executor),
      grace_timer_(executor) {
  std::lock_guard lock(mutex_);
  save_record_locked();
}

Session::Session(std::string id, SessionRecord record, std::shared_ptr<Journal> journal, Engine& engine,
                 SessionSettings settings, net::any_io_executor executor)
    : id_(std::move(id)),
      principal_(std::move(record.principal)),
      token_hash_(std::move(record.token_hash)),
      follower_(true),
      journal_(std::move(journal)),
      engine_(engine),
      settings_(settings),
      history_(std::move(record.history)),
      turns_started_(record.turns),
      remote_turn_at_open_(record.turn.has_value()),
      fresh_(false),
      last_active_(Clock::now()),
      executor_(executor),
      grace_timer_(executor) {
  last_appended_ = journal_->last_offset();
}

Session::~Session() = default;

void Session::listen_to_journal() {
  if (journal_->readable_at_append() && !follower_) return;
  std::weak_ptr<Session> weak = weak_from_this();
  journal_->set_listener([weak] {
    if (auto self = weak.lock()) self->notify_readers();
  });
  journal_->set_on_fenced([weak] {
    if (auto self = weak.lock()) net::post(self->executor_, [self] { self->on_fenced(); });
  });
  journal_->set_on_stalled([weak] {
    if (auto self = weak.lock()) {
      net::post(self->executor_, [self] {
        self->cancel(TurnError{ErrorCode::kStoreUnavailable,
                               "the session store could not be reached in time; the answer stops here"});
      });
    }
  });
  journal_->set_on_cancel([weak] {
    if (auto self = weak.lock()) net::post(self->executor_, [self] { self->cancel(); });
  });
}

bool Session::token_matches(std::string_view token) const {
  const std::string hash = sha256_hex(token);
  if (hash.size() != token_hash_.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < hash.size(); ++i) {
    diff |= static_cast<unsigned char>(hash[i] ^ token_hash_[i]);
  }
  return diff == 0;
}

void Session::save_record_locked() {
  if (follower_) return;
  SessionRecord r{principal_, token_hash_, history_, turns_started_, std::nullopt};
  if (turn_) r.turn = RunningTurn{turn_->first_offset, turn_->request_id, turn_->model, turn_->params};
  journal_->save_record(r);
}

uint64_t Session::append_locked(StreamEvent e) {
  last_appended_ = journal_->append(std::move(e));
  return last_appended_;
}

bool Session::prepare_turn(const net::any_io_executor& executor, std::function<void(Admission)> done) {
  bool claim = false;
  {
    std::lock_guard lock(mutex_);
    // A turn running here is refused by start_turn (session_busy): no claim.
    claim = journal_->claims_turns() && !(fresh_ && !follower_) && !turn_;
  }
  if (!claim) {
    done({});  // never under the mutex: it starts the turn
    return true;
  }
  journal_->claim(ClaimKind::kNewTurn, [self = shared_from_this(), executor, done = std::move(done)](TurnClaim c) mutable {
    net::post(self->executor_, [self, executor, c = std::move(c), done = std::move(done)]() mutable {
      Admission a = self->on_claimed(std::move(c));
      net::post(executor, [a = std::move(a), done = std::move(done)] { done(a); });
    });
  });
  return false;
}

Admission Session::on_claimed(TurnClaim c) {
  using O = TurnClaim::Outcome;
  switch (c.outcome) {
    case O::kClaimed: break;
    case O::kBusy:
      return {false, ErrorCode::kSessionBusy,
              "a turn is already running on this session (on another gateway instance); wait for its done "
              "or cancel it",
              {}};
    case O::kUnknown:
    case O::kNotOrphaned: return {false, ErrorCode::kUnknownSession, "no such session", {}};
    case O::kUnavailable:
      return {false, ErrorCode::kStoreUnavailable, "the session store cannot be reached; try again shortly", {}};
  }
  bool appended = false;
  {
    std::lock_guard lock(mutex_);
    // The store's conversation is the truth: other instances may have run turns.
    follower_ = false;
    fresh_ = false;
    history_ = std::move(c.record.history);
    turns_started_ = std::max(turns_started_, c.record.turns);
    last_appended_ = c.last_offset;
    if (c.record.turn && !turn_) {
      // The turn before was running on an instance that was lost, and the
      // client moved on: it ends here, so that every turn has its done.
      StreamEvent e;
      e.type = StreamEventType::kError;
      e.code = ErrorCode::kInstanceLost;
      e.text = "the gateway instance that was generating this answer was lost";
      e.request_id = c.record.turn->request_id;
      append_locked(std::move(e));
      StreamEvent done;
      done.type = StreamEventType::kDone;
      done.request_id = c.record.turn->request_id;
      done.finish_reason = FinishReason::kError;
      append_locked(std::move(done));
      journal_->end_turn();
      appended = true;
    }
  }
  if (appended) after_append();
  return {};
}

void Session::release_claim() {
  std::lock_guard lock(mutex_);
  if (!turn_ && journal_->claims_turns()) save_record_locked();
}

void Session::on_fenced() {
  {
    std::lock_guard lock(mutex_);
    follower_ = true;  // another instance holds the session: the next turn claims it back
    fresh_ = false;
    if (!turn_) return;
    spdlog::warn("session {}: another instance took this session over; its turn here stops", id_);
  }
  cancel(TurnError{ErrorCode::kInstanceLost, "another gateway instance took this session over"});
}

void Session::take_over() {
  {
    std::lock_guard lock(mutex_);
    if (turn_ || taking_over_) return;
    taking_over_ = true;
  }
  journal_->claim(ClaimKind::kTakeOver, [self = shared_from_this()](TurnClaim c) mutable {
    net::post(self->executor_, [self, c = std::move(c)]() mutable { self->on_taken_over(std::move(c)); });
  });
}

void Session::on_taken_over(TurnClaim c) {
  uint64_t number = 0;
  std::optional<TurnRequest> req;
  std::string retrieval;
  bool continued = false;
  {
    std::lock_guard lock(mutex_);
    taking_over_ = false;
    // Another instance won it, or the turn ended meanwhile.
    if (c.outcome != TurnClaim::Outcome::kClaimed || turn_) return;
    if (!c.record.turn) {
      // Claimed for a turn that never began (its instance went between the
      // claim and the turn's first write): nothing runs.
      follower_ = false;
      fresh_ = false;
      history_ = std::move(c.record.history);
      last_appended_ = c.last_offset;
      save_record_locked();
      return;
    }
    follower_ = false;
    fresh_ = false;
    history_ = std::move(c.record.history);
    turns_started_ = std::max(turns_started_, c.record.turns);
    last_appended_ = c.last_offset;
    const RunningTurn& rt = *c.record.turn;
    // What the lost instance had journaled of this turn: all of it, and the
    // text of its last round (after the turn's last tool event).
    std::string turn_text, round_text;
    std::vector<Passage> passages;  // what the model read, from the turn's retrieval sources
    bool journaled = false;         // anything of the turn
    for (const auto& e : journal_->read(rt.first_offset ? rt.first_offset - 1 : 0, size_t{1} << 30).events) {
      const StreamEvent& ev = e->event();
      journaled = true;
      if (ev.type == StreamEventType::kSources && ev.name.view() == "retrieval") passages = passages_from_items(ev.json.view());
      if (ev.type == StreamEventType::kDelta) {
        turn_text += ev.text;
        round_text += ev.text;
      } else if (ev.type == StreamEventType::kToolCall || ev.type == StreamEventType::kToolResult ||
                 ev.type == StreamEventType::kSources) {
        round_text.clear();
      }
    }
    // A round of tool calls without all its results is asked for again
    // (tools run again on this instance: they must be idempotent).
    if (!history_.empty() && history_.back().role == "assistant" && !history_.back().tool_calls_json.empty()) {
      history_.pop_back();
      round_text.clear();
    }
    auto t = std::make_unique<TurnState>();
    t->number = number = ++turns_started_;
    t->first_offset = rt.first_offset;
    t->taken_over = true;
    t->request_id = rt.request_id;
    t->trace_id = make_trace_id();
    t->started = Clock::now();
    t->model = rt.model;
    t->params = rt.params;
    t->output = turn_text;
    t->round_output = round_text;
    t->passages = std::move(passages);
    if (auto* m = metrics::active()) {
      m->turns_active.get().add(1);
      t->inter_token = &m->inter_token.with({engine_.name()});
    }
    last_active_ = t->started;
    turn_ = std::move(t);
    continued = settings_.continue_taken_over_turns;
    // Lost before anything of the turn was journaled (while its retrievers
    // ran): the turn starts here as it would have there.
    if (continued && !journaled) retrieval = begin_retrieval_locked();
    if (continued && retrieval.empty()) {
      req = round_request();
      req->continue_final = round_text;
    }
    save_record_locked();
  }
  if (auto* m = metrics::active()) m->takeovers.with({continued ? "continued" : "ended"}).inc();
  spdlog::info("session {}: took over the turn of a lost instance after offset {}{}", id_, c.last_offset,
               continued ? "" : " (store.continue_taken_over_turns is false: it ends here)");
  if (!continued) {
    TurnResult r;
    r.finish_reason = FinishReason::kError;
    r.error = TurnError{ErrorCode::kInstanceLost, "the gateway instance that was generating this answer was lost"};
    return on_end(number, std::move(r));
  }
  if (!retrieval.empty()) {
    run_retrievers(number, retrieval);
  } else {
    start_round(number, std::move(*req));
  }
  review_grace();
}

void Session::after_append() {
  if (journal_->readable_at_append()) notify_readers();
}

Admission Session::start_turn(const ChatCommand& chat) {
  TurnRequest req;
  std::string retrieval;  // the retrieval request, when the retrievers go first
  uint64_t number = 0;
  {
    std::lock_guard lock(mutex_);
    if (turn_) {
      return {false, ErrorCode::kSessionBusy,
              "a turn is already running on this session; wait for its done or cancel it", {}};
    }

    if (settings_.limits) {
      if (auto a = settings_.limits->start_turn(principal_, Clock::now()); !a.ok) {
        // A claim marked the session running in a shared store: it is not.
        if (journal_->claims_turns()) save_record_locked();
        return a;
      }
    }
    auto t = std::make_unique<TurnState>();
    t->number = number = ++turns_started_;
    t->request_id = chat.request_id;
    t->client = chat.client;
    // The client's trace goes on; without one (or with an invalid one) a new one starts.
    if (auto tp = parse_traceparent(chat.traceparent)) {
      t->trace_id = tp->trace_id;
      t->trace_flags = tp->flags;
    } else {
      t->trace_id = make_trace_id();
    }
    t->started = Clock::now();
    t->first_offset = last_appended_ + 1;
    fresh_ = false;
    for (const auto& m : chat.messages) t->input_bytes += m.content.size();
    history_.insert(history_.end(), chat.messages.begin(), chat.messages.end());
    fit_history(history_, settings_.history_max_bytes);
    t->model = chat.model;
    t->params = chat.params;
    if (auto* m = metrics::active()) {
      m->turns_active.get().add(1);
      t->inter_token = &m->inter_token.with({engine_.name()});
    }
    last_active_ = t->started;
    turn_ = std::move(t);
    retrieval = begin_retrieval_locked();
    if (retrieval.empty()) req = round_request();
    save_record_locked();
  }
  if (!retrieval.empty()) {
    run_retrievers(number, retrieval);
  } else {
    start_round(number, std::move(req));
  }
  review_grace();
  return {};
}

std::string Session::begin_retrieval_locked() {
  const ToolRunner* runner = settings_.plugins ? settings_.plugins->tools() : nullptr;
  if (!settings_.retrieval.enabled || !runner || runner->retriever_count() == 0) return {};
  std::string request = retrieval_request(history_, settings_.retrieval);
  if (request.empty()) return {};
  turn_->retrieving = true;
  turn_->retrievals_pending = runner->retriever_count();
  turn_->retrieved.assign(runner->retriever_count(), {});
  return request;
}

net::any_io_executor Session::outcome_executor() const {
  // A result is moderated when it comes: never on an I/O thread (a
  // moderator in its own process is a round trip away).
  const bool moderated = settings_.plugins && settings_.plugins->moderates() && settings_.engine_events;
  return moderated ? net::any_io_executor(net::make_strand(settings_.engine_events)) : executor_;
}

void Session::run_retrievers(uint64_t turn, const std::string& request) {
  ToolRunner* runner = settings_.plugins->tools();
  const auto outcomes = outcome_executor();
  for (size_t i = 0; i < runner->retriever_count(); ++i) {
    runner->retrieve(i, request, outcomes,
                     [self = shared_from_this(), turn, i](ToolOutcome o) { self->on_retrieved(turn, i, std::move(o)); });
  }
}

void Session::on_retrieved(uint64_t turn, size_t index, ToolOutcome o) {
  std::optional<TurnRequest> next;
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn || !turn_->retrieving) return;
    if (!o.ok) {
      spdlog::warn("session {}: retriever {} of plugin {} failed ({}: {}); the answer goes on without its passages",
                   id_, o.name, o.plugin, o.status, o.error);
    }
    turn_->retrieved[index] = std::move(o);
    if (--turn_->retrievals_pending > 0) return;
    turn_->retrieving = false;
    auto passages = top_passages(turn_->retrieved, static_cast<size_t>(settings_.retrieval.top_k));
    const bool all_failed = std::none_of(turn_->retrieved.begin(), turn_->retrieved.end(),
                                         [](const ToolOutcome& r) { return r.ok; });
    turn_->retrieved.clear();
    // Moderated before the journal and before the model reads them: what
    // the client is shown and what the model is told are the same text.
    bool stopped = false;
    for (auto& p : passages) {
      if (stopped) break;
      stopped = moderate_locked(p.title, false) || moderate_locked(p.text, false);
    }
    if (auto* m = metrics::active()) {
      m->retrieval_turns.with({all_failed ? "failed" : passages.empty() ? "none" : "sources"}).inc();
    }
    if (stopped) {
      TurnResult r;
      r.finish_reason = FinishReason::kContentFilter;
      net::post(executor_, [self = shared_from_this(), turn, r]() mutable { self->on_end(turn, std::move(r)); });
      return;
    }
    if (!passages.empty()) {
      StreamEvent e;
      e.type = StreamEventType::kSources;
      e.name = "retrieval";
      e.json = sources_items_json(passages);
      append_locked(std::move(e));
    }
    turn_->passages = std::move(passages);
    next = round_request();
    save_record_locked();
  }
  after_append();
  start_round(turn, std::move(*next));
}

// Under mutex_: the request of the current round, from the conversation.
TurnRequest Session::round_request() const {
  TurnRequest req;
  req.trace_id = turn_->trace_id;
  req.traceparent = format_traceparent(turn_->trace_id, make_span_id(), turn_->trace_flags);
  req.model = turn_->model;
  req.messages = history_;
  put_sources_into_prompt(req.messages, turn_->passages);
  req.params = turn_->params;
  const ToolRunner* tools = settings_.plugins ? settings_.plugins->tools() : nullptr;
  // The last round offers no tools: the model has to answer.
  if (tools && tools->has_tools() && turn_->round <= tools->config().max_rounds) req.tools_json = tools->tools_json();
  return req;
}

void Session::start_round(uint64_t number, TurnRequest req) {
  // Outside the lock: the engine may call back at once.
  auto chain = settings_.plugins ? settings_.plugins->make_chain() : nullptr;
  std::optional<net::strand<net::any_io_executor>> deliver;
  // An engine's own compute thread must not wait for a moderator or the
  // journal, and neither must an I/O thread wait for a moderator (a slow one
  // would hold up every connection on it): moderated answers, and every
  // answer of such an engine, are handled on a strand of engine_events.
  if (!engine_.calls_back_on_io_threads() || (chain && settings_.engine_events)) {
    deliver.emplace(net::make_strand(settings_.engine_events ? settings_.engine_events : executor_));
  }
  auto handle = engine_.start(std::move(req), std::make_shared<Sink>(shared_from_this(), number,
                                                                     std::move(chain), std::move(deliver)));
  std::shared_ptr<TurnHandle> stored = std::move(handle);
  bool cancel_now = false;
  {
    std::lock_guard lock(mutex_);
    if (turn_ && turn_->number == number) {
      turn_->handle = stored;
      cancel_now = turn_->cancel_pending;
    }
  }
  if (cancel_now) stored->cancel();  // never under the mutex: the engine may call back
}

void Session::cancel(std::optional<TurnError> why) {
  uint64_t ended_in_tools = 0;
  std::shared_ptr<TurnHandle> running;  // cancelled with the mutex released
  bool elsewhere = false;
  {
    std::lock_guard lock(mutex_);
    elsewhere = !turn_ && !why && journal_->claims_turns();
  }
  // The turn may run on another instance (a shared store): it is asked to stop there.
  if (elsewhere) return journal_->request_cancel();
  {
    std::lock_guard lock(mutex_);
    if (!turn_) return;
    if (why) turn_->cancel_error = std::move(why);
    if (turn_->tools_running || turn_->retrieving) {
      // No engine round is running: the turn ends here; late tool (or
      // retriever) outcomes find it gone.
      turn_->tools_running = false;
      turn_->retrieving = false;
      ended_in_tools = turn_->number;
    } else if (turn_->handle) {
      running = turn_->handle;
    } else {
      turn_->cancel_pending = true;  // the round's handle is not stored yet
    }
  }
  if (running) running->cancel();
  if (ended_in_tools) {
    TurnResult r;
    r.finish_reason = FinishReason::kCancelled;
    net::post(executor_, [self = shared_from_this(), ended_in_tools, r]() mutable {
      self->on_end(ended_in_tools, std::move(r));
    });
  }
}

void Session::attach(const std::shared_ptr<SessionReader>& reader) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = std::none_of(readers_.begin(), readers_.end(), [](const auto& w) { return !w.expired(); });
    readers_.push_back(reader);
    if (turn_) ++turn_->attaches;
    last_active_ = Clock::now();
  }
  // Readers here wait on this session: if the instance running its turn is
  // lost, this one takes the turn over.
  if (first) {
    journal_->watch(true, [weak = weak_from_this()] {
      if (auto self = weak.lock()) net::post(self->executor_, [self] { self->take_over(); });
    });
  }
  review_grace();
}

void Session::detach(const SessionReader* reader) {
  bool nobody = false;
  {
    std::lock_guard lock(mutex_);
    std::erase_if(readers_, [&](const std::weak_ptr<SessionReader>& w) {
      auto r = w.lock();
      return !r || r.get() == reader;
    });
    if (turn_) ++turn_->detaches;
    last_active_ = Clock::now();
    nobody = readers_.empty();
  }
  if (nobody) journal_->watch(false, nullptr);
  review_grace();
}

bool Session::busy() const {
  std::lock_guard lock(mutex_);
  if (turn_) return true;
  if (!journal_->claims_turns()) return false;
  // With a shared store the turn may run on another instance: the journal's
  // last event says whether one is under way.
  const uint64_t last = journal_->last_offset();
  if (last == 0) return remote_turn_at_open_;
  const auto tail = journal_->read(last - 1, 1);
  return !tail.events.empty() && tail.events.back()->event().type != StreamEventType::kDone;
}

bool Session::idle_before(Clock::time_point cutoff) const {
  std::lock_guard lock(mutex_);
  const bool anyone = std::any_of(readers_.begin(), readers_.end(),
                                  [](const auto& w) { return !w.expired(); });
  return !anyone && !turn_ && last_active_ < cutoff;
}

void Session::on_delta(uint64_t turn, std::string text) {
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn) return;
    const auto now = Clock::now();
    if (!turn_->got_first_token) {
      turn_->got_first_token = true;
      turn_->first_token = now;
    } else if (turn_->inter_token) {
      turn_->inter_token->observe(std::chrono::duration<double>(now - turn_->last_token).count());
    }
    turn_->last_token = now;
    turn_->output += text;
    turn_->round_output += text;
    StreamEvent e;
    e.type = StreamEventType::kDelta;
    e.text = std::move(text);
    append_locked(std::move(e));
  }
  after_append();
}

void Session::on_moderation(uint64_t turn, const ModerationOutput& what) {
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn) return;
    append_moderation_locked(what);
  }
  after_append();
}

void Session::append_moderation_locked(const ModerationOutput& what) {
  if (auto* m = metrics::active()) m->moderation_actions.with({what.plugin, what.action}).inc();
  StreamEvent e;
  e.type = StreamEventType::kModeration;
  e.action = what.action;
  e.text = what.reason;
  e.plugin = what.plugin;
  append_locked(std::move(e));
}

bool Session::moderate_locked(std::string& text, bool json) {
  if (!settings_.plugins || !settings_.plugins->moderates()) return false;
  auto m = json ? settings_.plugins->moderate_json(text) : settings_.plugins->moderate(text);
  for (const auto& n : m.notices) append_moderation_locked(n);
  text = std::move(m.text);
  return m.stopped;
}

bool Session::begin_tools(uint64_t turn, TurnResult& result) {
  ToolRunner* runner = settings_.plugins ? settings_.plugins->tools() : nullptr;
  if (!runner || result.error || result.tool_calls.empty()) return false;
  std::vector<ToolCall> calls;
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn) return true;  // gone: nothing to finish
    if (turn_->round > runner->config().max_rounds) return false;
    turn_->usage.prompt_tokens += result.usage.prompt_tokens;
    turn_->usage.completion_tokens += result.usage.completion_tokens;
    // The assistant's message that made the calls, for the next round.
    JsonWriter w;
    w.begin_array();
    for (auto& c : result.tool_calls) {
      if (c.id.empty()) c.id = make_random_id("call_");
      w.begin_object().field("id", c.id).field("type", "function").key("function").begin_object();
      w.field("name", c.name).field("arguments", c.arguments).end_object().end_object();
    }
    // The model's own calls stay in its history as it made them; what the
    // client sees of their arguments is moderated.
    history_.push_back({"assistant", std::exchange(turn_->round_output, {}), w.end_array().take(), {}});
    save_record_locked();
    bool stopped = false;
    for (const auto& c : result.tool_calls) {
      StreamEvent e;
      e.type = StreamEventType::kToolCall;
      e.call_id = c.id;
      e.name = c.name;
      e.plugin = runner->plugin_of(c.name);
      std::string arguments = json_or_string(c.arguments);
      if (moderate_locked(arguments, true)) {
        stopped = true;  // neither shown nor run: the answer ends here
        break;
      }
      e.json = std::move(arguments);
      append_locked(std::move(e));
    }
    if (stopped) {
      TurnResult r;
      r.finish_reason = FinishReason::kContentFilter;
      net::post(executor_, [self = shared_from_this(), turn, r]() mutable { self->on_end(turn, std::move(r)); });
      return true;
    }
    turn_->calls = result.tool_calls;
    turn_->outcomes.assign(turn_->calls.size(), {});
    turn_->tools_pending = turn_->calls.size();
    turn_->tools_running = true;
    turn_->handle.reset();
    calls = turn_->calls;
  }
  after_append();
  const auto outcomes = outcome_executor();
  for (size_t i = 0; i < calls.size(); ++i) {
    runner->run(std::move(calls[i]), outcomes,
                [self = shared_from_this(), turn, i](ToolOutcome o) { self->on_tool_outcome(turn, i, std::move(o)); });
  }
  return true;
}

void Session::on_tool_outcome(uint64_t turn, size_t index, ToolOutcome o) {
  std::optional<TurnRequest> next;
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn || !turn_->tools_running) return;
    // Moderated before the journal and before the model reads it: what the
    // client is shown and what the model is told are the same text.
    bool stopped = o.ok ? moderate_locked(o.result_json, true) : moderate_locked(o.error, false);
    for (auto& src : o.sources) {
      if (stopped) break;
      stopped = moderate_locked(src.title, false) || moderate_locked(src.snippet, false);
    }
    if (stopped) {
      // A moderator stopped the answer on the tool's text: nothing of it is
      // shown or read; the turn ends as a filtered answer does.
      turn_->tools_running = false;
      TurnResult r;
      r.finish_reason = FinishReason::kContentFilter;
      net::post(executor_, [self = shared_from_this(), turn, r]() mutable { self->on_end(turn, std::move(r)); });
    } else {
      StreamEvent e;
      e.type = StreamEventType::kToolResult;
      e.call_id = o.call_id;
      e.name = o.name;
      e.plugin = o.plugin;
      e.ok = o.ok;
      if (o.ok) {
        e.json = o.result_json;
      } else {
        e.text = o.error;
      }
      append_locked(std::move(e));
    }
    if (!stopped && o.ok && !o.sources.empty()) {
      JsonWriter w;
      w.begin_array();
      for (const auto& src : o.sources) {
        w.begin_object().field("title", src.title).field("url", src.url).field("snippet", src.snippet).end_object();
      }
      StreamEvent s;
      s.type = StreamEventType::kSources;
      s.name = "tool";
      s.call_id = o.call_id;
      s.json = w.end_array().take();
      append_locked(std::move(s));
    }
    bool all_in = false;  // when stopped, on_end is posted above
    if (!stopped) {
      turn_->outcomes[index] = std::move(o);
      all_in = --turn_->tools_pending == 0;
    }
    if (all_in) {
      // Every result is in: the model reads them in the next round.
      for (const auto& r : turn_->outcomes) {
        JsonWriter err;
        const std::string content =
            r.ok ? r.result_json : err.begin_object().field("error", r.error).end_object().take();
        history_.push_back({"tool", content, {}, r.call_id});
      }
      turn_->tools_running = false;
      turn_->outcomes.clear();
      ++turn_->round;
      next = round_request();
      save_record_locked();
    }
  }
  after_append();
  if (next) start_round(turn, std::move(*next));
}

void Session::on_end(uint64_t turn, TurnResult result) {
  if (result.finish_reason == FinishReason::kToolCalls && begin_tools(turn, result)) return;
  std::unique_ptr<TurnState> t;
  {
    std::lock_guard lock(mutex_);
    if (!turn_ || turn_->number != turn) return;
    t = std::move(turn_);
    result.usage.prompt_tokens += t->usage.prompt_tokens;
    result.usage.completion_tokens += t->usage.completion_tokens;
    // Counted before the `done` is journaled: a client that has its `done`
    // finds the turn in the metrics and its tokens in its limits.
    account_end(*t, result);
    // The conversation first: a shared store holds it before the done, so a
    // client that has the done may send its next chat to any instance.
    if (!t->round_output.empty()) {
      history_.push_back({"assistant", t->round_output, {}, {}});
    }
    fit_history(history_, settings_.history_max_bytes);
    save_record_locked();
    const auto error = result.error ? result.error : t->cancel_error;
    if (error) {
      StreamEvent e;
      e.type = StreamEventType::kError;
      e.code = error->code;
      e.text = error->message;  // an upstream's message may echo text: moderated too
      if (moderate_locked(e.text, false)) e.text = "(the message was withheld by moderation)";
      e.request_id = t->request_id;
      append_locked(std::move(e));
    }
    StreamEvent done;
    done.type = StreamEventType::kDone;
    done.request_id = t->request_id;
    done.finish_reason = result.finish_reason;
    done.usage = result.usage;
    append_locked(std::move(done));
    journal_->end_turn();
    last_active_ = Clock::now();
    if (!result.error && t->cancel_error) result.error = t->cancel_error;
  }
  after_append();
  review_grace();

  using Ms = std::chrono::duration<double, std::milli>;
  TurnLogEntry log;
  log.trace_id = t->trace_id;
  log.session_id = id_;
  log.principal = principal_;
  log.request_id = t->request_id;
  log.client = t->client;
  log.model = result.model;
  log.input_bytes = t->input_bytes;
  log.output_bytes = t->output.size();
  log.ttft_ms = t->got_first_token ? Ms(t->first_token - t->started).count() : -1;
  log.duration_ms = Ms(Clock::now() - t->started).count();
  log.disconnects = t->detaches;
  log.resumes = t->attaches;
  log.client_gone = t->detaches > 0;
  log.result = &result;
  write_access_line(format_turn_log(log));
}

void Session::account_end(const TurnState& t, const TurnResult& result) {
  if (settings_.limits) {
    settings_.limits->end_turn(principal_, result.usage.completion_tokens, Clock::now());
  }
  if (auto* m = metrics::active()) {
    const std::string_view engine = result.engine.empty() ? engine_.name() : std::string_view(result.engine);
    using Seconds = std::chrono::duration<double>;
    m->turns_active.get().add(-1);
    m->turns.with({engine, to_string(result.finish_reason)}).inc();
    m->tokens.with({engine}).inc(static_cast<double>(std::max<int64_t>(0, result.usage.completion_tokens)));
    if (t.got_first_token) m->ttft.with({engine}).observe(Seconds(t.first_token - t.started).count());
    m->turn_duration.with({engine}).observe(Seconds(Clock::now() - t.started).count());
  }
}

void Session::notify_readers() {
  boost::container::small_vector<std::shared_ptr<SessionReader>, 4> readers;  // no allocation per token
  {
    std::lock_guard lock(mutex_);
    for (const auto& w : readers_) {
      if (auto r = w.lock()) readers.push_back(std::move(r));
    }
  }
  for (const auto& r : readers) r->on_session_events(*this);
}

void Session::review_grace() {
  net::post(executor_, [self = shared_from_this()] {
    bool orphaned = false;
    {
      std::lock_guard lock(self->mutex_);
      const bool anyone = std::any_of(self->readers_.begin(), self->readers_.end(),
                                      [](const auto& w) { return !w.expired(); });
      orphaned = self->turn_ && !anyone;
    }
    if (!orphaned) {
      if (self->grace_armed_) self->grace_timer_.cancel();
      self->grace_armed_ = false;
      return;
    }
    if (self->grace_armed_) return;
    self->grace_armed_ = true;
    self->grace_timer_.expires_after(self->settings_.grace);
    self->grace_timer_.async_wait(
        [self](const boost::system::error_code& ec) { self->on_grace_timeout(ec); });
  });
}

void Session::on_grace_timeout(const boost::system::error_code& ec) {
  if (ec) return;
  grace_armed_ = false;
  {
    std::lock_guard lock(mutex_);
    const bool anyone = std::any_of(readers_.begin(), readers_.end(),
                                    [](const auto& w) { return !w.expired(); });
    if (anyone || !turn_) return;
    spdlog::info("session {}: nobody came back within {} ms; stopping its turn", id_,
                 settings_.grace.count());
  }
  cancel();
}

}  // namespace sluice
