#include "gateway/net/ws_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <charconv>

#include "gateway/auth/authenticator.hpp"
#include "gateway/common/json_writer.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/protocol/server_messages.hpp"
#include "gateway/protocol/stream_event.hpp"
#include "gateway/stream/resume.hpp"
#include "gateway/stream/session_registry.hpp"

namespace sluice {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;

namespace {
constexpr size_t kReadChunk = 16 * 1024;
// Messages above max_frame_bytes are skipped with an error and the
// connection goes on; beyond this many bytes the connection is closed (1009).
constexpr size_t kHardMessageCap = 64 * 1024 * 1024;
// Close code for a reader that stayed behind past slow_consumer_timeout.
constexpr auto kCloseSlowConsumer = static_cast<websocket::close_code>(4008);
// Close code for a connection without valid credentials (none in time, or expired).
constexpr auto kCloseUnauthorized = static_cast<websocket::close_code>(4001);
// Close code for a principal over limits.principal_connections.
constexpr auto kCloseTooMany = static_cast<websocket::close_code>(4029);
// After deciding to close a slow consumer, how long its stuck write may take.
constexpr auto kSlowCloseGrace = std::chrono::seconds(5);

bool is_normal_end(const beast::error_code& ec) {
  return ec == websocket::error::closed || ec == net::error::operation_aborted ||
         ec == net::error::eof || ec == net::error::connection_reset ||
         ec == beast::error::timeout;
}

// ?coalesce_ms=N in the upgrade request's target, if present and valid.
std::optional<std::chrono::milliseconds> coalesce_param(std::string_view target) {
  const auto q = target.find("coalesce_ms=");
  if (q == std::string_view::npos) return std::nullopt;
  const auto v = target.substr(q + 12);
  int ms = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
  if (ec != std::errc() || ms < 0 || ms > 1000) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

std::string_view lost_reason(JournalStatus s) {
  return s == JournalStatus::kExpired ? "expired" : s == JournalStatus::kAhead ? "ahead" : "evicted";
}
}  // namespace

template <class Stream>
WsConnection<Stream>::WsConnection(Stream stream, std::shared_ptr<ServerState> state,
                                   ConnectionTicket ticket, std::string principal,
                                   std::optional<std::chrono::system_clock::time_point> expires,
                                   std::string client)
    : ws_(std::move(stream)),
      state_(std::move(state)),
      id_(state_->next_id()),
      principal_(std::move(principal)),
      client_(std::move(client)),
      coalesce_(state_->config.stream.coalesce),
      coalesce_timer_(ws_.get_executor()),
      slow_(ws_.get_executor(), state_->config.limits.slow_consumer_timeout),
      idle_timer_(ws_.get_executor()),
      expires_(expires),
      expiry_timer_(ws_.get_executor()),
      ticket_(std::move(ticket)) {}

template <class Stream>
void WsConnection<Stream>::add_queued(int64_t bytes) {
  queued_bytes_ = static_cast<size_t>(static_cast<int64_t>(queued_bytes_) + bytes);
  state_->stats.send_queue_bytes->add(static_cast<double>(bytes));
}

template <class Stream>
WsConnection<Stream>::~WsConnection() {
  state_->stats.send_queue_bytes->add(-static_cast<double>(queued_bytes_));
  state_->remove(id_);  // the ticket gives back its places
}

template <class Stream>
bool WsConnection<Stream>::count_principal() {
  const Admission a = ticket_.add_principal(principal_);
  if (!a.ok) {
    send(error_message(a.code, a.message, "", "", 0, a.retry_after.count()));
    close({kCloseTooMany, "too many connections"});
    return false;
  }
  return true;
}

template <class Stream>
void WsConnection<Stream>::run(beast::http::request<beast::http::string_body> upgrade) {
  state_->stats.connections_ws->inc();
  state_->add(id_, this->weak_from_this());
  if (auto c = coalesce_param(upgrade.target())) coalesce_ = *c;
  const auto& limits = state_->config.limits;
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(10);
  // Beast pings a silent peer (at half its timeout) and drops a dead one.
  // Three times the idle timeout: an idle but live client gets the clean
  // 1000 close first, and Beast's ping never coincides with that close.
  timeouts.idle_timeout = 3 * limits.idle_timeout;
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  // A browser that offered subprotocols (the token travels as one) needs
  // one chosen in the answer.
  const std::string_view offered = upgrade[beast::http::field::sec_websocket_protocol];
  const bool v1 = offered.find("sluice.v1") != std::string_view::npos;
  ws_.set_option(websocket::stream_base::decorator([v1](websocket::response_type& res) {
    res.set(beast::http::field::server, "sluice");
    if (v1) res.set(beast::http::field::sec_websocket_protocol, "sluice.v1");
  }));
  ws_.read_message_max(std::max(kHardMessageCap, limits.max_frame_bytes * 4));
  beast::get_lowest_layer(ws_).expires_never();  // the websocket timeouts take over
  auto req = std::make_shared<beast::http::request<beast::http::string_body>>(std::move(upgrade));
  ws_.async_accept(*req, [self = this->shared_from_this(), req](beast::error_code ec) {
    self->on_accept(ec);
  });
}

template <class Stream>
void WsConnection<Stream>::on_accept(beast::error_code ec) {
  if (ec) return end("handshake failed: " + ec.message());
  accepted_ = true;
  if (state_->draining) {
    draining_ = true;
    return close({websocket::close_code::going_away, "server shutting down"});
  }
  if (principal_.empty()) {
    arm_expiry(std::chrono::system_clock::now() + state_->config.auth.hello_timeout);
  } else {
    if (!count_principal()) return;
    if (expires_) arm_expiry(*expires_);
  }
  arm_idle_timer();
  do_read();
}

template <class Stream>
void WsConnection<Stream>::arm_expiry(std::chrono::system_clock::time_point at) {
  expiry_timer_.expires_at(at);
  expiry_timer_.async_wait(
      beast::bind_front_handler(&WsConnection<Stream>::on_credential_expired, this->shared_from_this()));
}

template <class Stream>
void WsConnection<Stream>::on_credential_expired(beast::error_code ec) {
  if (ec || ended_) return;
  // Its sessions stay resumable with a fresh token.
  close({kCloseUnauthorized, principal_.empty() ? "no hello with a token in time" : "token expired"});
}

template <class Stream>
void WsConnection<Stream>::handle_hello(const HelloCommand& h) {
  JsonWriter limits;
  const auto& l = state_->config.limits;
  limits.begin_object()
      .field("max_frame_bytes", static_cast<uint64_t>(l.max_frame_bytes))
      .field("max_sessions_per_connection", static_cast<uint64_t>(l.max_sessions_per_connection))
      .field("send_queue_bytes", static_cast<uint64_t>(l.send_queue_bytes))
      .field("idle_timeout_ms", static_cast<int64_t>(l.idle_timeout.count()))
      .end_object();
  if (h.token.empty()) {
    if (!principal_.empty()) return send(ready_message(principal_, limits.str(), h.request_id));
    send_error(ErrorCode::kUnauthorized, "hello needs a token", "", h.request_id);
    return close({kCloseUnauthorized, "unauthorized"});
  }
  if (!state_->auth->required()) return send(ready_message(principal_, limits.str(), h.request_id));
  const AuthResult r = state_->auth->verify(h.token, std::chrono::system_clock::now());
  if (!r.ok) {
    send_error(ErrorCode::kUnauthorized, r.error, "", h.request_id);
    // A failed refresh leaves the connection on its current token.
    if (principal_.empty()) close({kCloseUnauthorized, "unauthorized"});
    return;
  }
  if (!principal_.empty() && r.principal != principal_) {
    return send_error(ErrorCode::kUnauthorized,
                      "a refresh must be for the same principal as the connection", "",
                      h.request_id);
  }
  const bool first = principal_.empty();
  principal_ = r.principal;
  expires_ = r.expires;
  if (first && !count_principal()) return;
  expiry_timer_.cancel();
  if (expires_) arm_expiry(*expires_);
  send(ready_message(principal_, limits.str(), h.request_id));
}

// ---- reading client frames ----

template <class Stream>
void WsConnection<Stream>::pause_reading() {
  ++read_pauses_;
}

template <class Stream>
void WsConnection<Stream>::resume_reading() {
  // The read loop goes on once nothing waits; on_read does it itself when
  // the wait ended while it was still handling the frame.
  if (--read_pauses_ > 0 || dispatching_ || ended_) return;
  do_read();
}

template <class Stream>
void WsConnection<Stream>::do_read() {
  ws_.async_read_some(buffer_, kReadChunk,
                      beast::bind_front_handler(&WsConnection<Stream>::on_read, this->shared_from_this()));
}

template <class Stream>
void WsConnection<Stream>::on_read(beast::error_code ec, std::size_t) {
  if (ec) {
    if (ec == websocket::error::message_too_big) {
      spdlog::info("connection {}: message over {} bytes, closing", id_, kHardMessageCap);
    } else if (!is_normal_end(ec)) {
      spdlog::debug("connection {}: read: {}", id_, ec.message());
    }
    return end("read ended");
  }
  arm_idle_timer();
  const size_t max = state_->config.limits.max_frame_bytes;
  if (!discarding_ && buffer_.size() > max) discarding_ = true;
  if (discarding_) {
    buffer_.consume(buffer_.size());
    if (ws_.is_message_done()) {
      discarding_ = false;
      send_error(ErrorCode::kFrameTooLarge,
                 "message exceeds limits.max_frame_bytes (" + std::to_string(max) +
                     " bytes) and was ignored",
                 "", "");
    }
    return do_read();
  }
  if (!ws_.is_message_done()) return do_read();
  if (!ws_.got_text()) {
    send_error(ErrorCode::kBadJson, "binary frames are not accepted; send JSON text frames", "",
               "");
  } else {
    const auto data = buffer_.cdata();
    dispatching_ = true;
    handle_frame({static_cast<const char*>(data.data()), data.size()});
  }
  buffer_.consume(buffer_.size());
  dispatching_ = false;
  if (!ended_ && read_pauses_ == 0) do_read();
}

template <class Stream>
bool WsConnection<Stream>::within_message_rate() {
  const uint32_t rate = state_->config.limits.messages_per_second;
  if (rate == 0) return true;
  const auto now = Clock::now();
  const double burst = 2.0 * rate;
  if (message_budget_ < 0) {
    message_budget_ = burst;
  } else {
    message_budget_ = std::min(
        burst, message_budget_ + std::chrono::duration<double>(now - message_budget_at_).count() * rate);
  }
  message_budget_at_ = now;
  if (message_budget_ < 1) return false;
  message_budget_ -= 1;
  return true;
}

template <class Stream>
void WsConnection<Stream>::handle_frame(std::string_view frame) {
  if (!within_message_rate()) {
    const auto wait = std::chrono::milliseconds(1000 / std::max<uint32_t>(1, state_->config.limits.messages_per_second));
    return send(error_message(ErrorCode::kRateLimited,
                              "more than limits.messages_per_second messages; this one was dropped",
                              "", "", 0, std::max<int64_t>(1, wait.count())));
  }
  ClientMessage msg = parser_.parse(frame);
  if (auto* hello = std::get_if<HelloCommand>(&msg)) return handle_hello(*hello);
  if (principal_.empty()) {
    // auth.mode = "token" and no token yet: only hello is accepted.
    send_error(ErrorCode::kUnauthorized, "send hello with a token first", "", request_id_of(msg));
    return close({kCloseUnauthorized, "unauthorized"});
  }
  if (auto* chat = std::get_if<ChatCommand>(&msg)) {
    chat->client = client_;
    return handle_chat(*chat);
  }
  if (auto* resume = std::get_if<ResumeCommand>(&msg)) return handle_resume(*resume);
  if (auto* cancel = std::get_if<CancelCommand>(&msg)) return handle_cancel(*cancel);
  if (auto* ping = std::get_if<PingCommand>(&msg)) return send(pong_message(ping->request_id));
  const auto& err = std::get<ProtocolError>(msg);
  send_error(err.code, err.message, err.session_id, err.request_id);
}

template <class Stream>
void WsConnection<Stream>::handle_chat(const ChatCommand& chat) {
  if (draining_ || state_->draining) {
    return send_error(ErrorCode::kShuttingDown, "the gateway is shutting down; reconnect later",
                      chat.session_id.value_or(""), chat.request_id);
  }
  std::shared_ptr<Session> session;
  if (chat.session_id) {
    auto* cursor = pump_.find(*chat.session_id);
    if (!cursor) {
      return send_error(ErrorCode::kUnknownSession,
                        "no session with this id on this connection (resume it first)",
                        *chat.session_id, chat.request_id);
    }
    cursor->last_used = Clock::now();
    session = cursor->session;
  } else {
    if (!state_->sessions->store().reachable()) {
      return send_error(ErrorCode::kStoreUnavailable,
                        "the session store cannot be reached; no new session can start now", "", chat.request_id);
    }
    if (!make_room(chat.request_id)) return;
    session = state_->sessions->create(principal_);
    // With a shared store the id goes out once the store holds the session,
    // and its events only after the id (the store may hold some of them by
    // then: the record can wait for the turn's fields).
    const bool shared = state_->sessions->store().shared();
    attach(session, 0, shared);
    if (shared) {
      session->when_recorded(ws_.get_executor(), [self = this->shared_from_this(), session, rid = chat.request_id] {
        if (self->ended_) return;
        self->send(session_message(session->id(), session->resume_token(), rid));
        auto* cursor = self->pump_.find(session->id());
        if (!cursor || cursor->session != session) return;
        self->pump_.release(*cursor);
        self->schedule_pull();
      });
    } else {
      send(session_message(session->id(), session->resume_token(), chat.request_id));
    }
  }
  // With a shared store the session is claimed first (another instance may
  // hold it); reading waits meanwhile, so that messages keep their order.
  pause_reading();
  session->prepare_turn(
      ws_.get_executor(), [self = this->shared_from_this(), session, chat](const Admission& claimed) {
        self->start_turn(*session, chat, claimed);
        self->resume_reading();
      });
}

template <class Stream>
void WsConnection<Stream>::start_turn(Session& session, const ChatCommand& chat, const Admission& claimed) {
  if (ended_) {
    if (claimed.ok) session.release_claim();
    return;
  }
  const Admission a = claimed.ok ? session.start_turn(chat) : claimed;
  if (!a.ok) {
    send(error_message(a.code, a.message, session.id(), chat.request_id, 0, a.retry_after.count()));
  }
}

template <class Stream>
void WsConnection<Stream>::handle_resume(const ResumeCommand& r) {
  if (pump_.find(r.session_id)) {
    return finish_resume(r, pump_.find(r.session_id)->session, SessionRegistry::Lookup::kFound);
  }
  pause_reading();
  state_->sessions->find_or_open(
      r.session_id, principal_, ws_.get_executor(),
      [self = this->shared_from_this(), r](std::shared_ptr<Session> session, SessionRegistry::Lookup why) {
        self->finish_resume(r, std::move(session), why);
        self->resume_reading();
      });
}

template <class Stream>
void WsConnection<Stream>::finish_resume(const ResumeCommand& r, std::shared_ptr<Session> session,
                                         SessionRegistry::Lookup why) {
  if (ended_) return;
  // The copy here may lag behind what the client saw on another instance:
  // it catches up with the shared store first (reading waits meanwhile).
  pause_reading();
  check_resume_caught_up(
      std::move(session), why, r.resume_token, r.offset, ws_.get_executor(),
      [self = this->shared_from_this(), r](const ResumeCheck& check) {
        self->admit_resume(r, check);
        self->resume_reading();
      });
}

template <class Stream>
void WsConnection<Stream>::admit_resume(const ResumeCommand& r, const ResumeCheck& check) {
  if (ended_) return;
  if (!check) {
    if (*check.refusal == ResumeRefusal::kUnavailable) {
      return send_error(ErrorCode::kStoreUnavailable, check.message, r.session_id, r.request_id);
    }
    return send(resume_failed_message(r.session_id, to_string(*check.refusal), check.message, r.request_id));
  }
  if (auto* cursor = pump_.find(r.session_id)) {
    pump_.seek(*cursor, r.offset);  // the same connection starts over from `offset`
  } else {
    if (!make_room(r.request_id)) return;
    attach(check.session, r.offset);
  }
  record_resumed(*check.session, r.offset);
  send(resumed_message(r.session_id, r.offset + 1, r.request_id));
  pull();  // replay from the new cursor (nothing woke the pull)
}

template <class Stream>
void WsConnection<Stream>::handle_cancel(const CancelCommand& cancel) {
  if (auto* cursor = pump_.find(cancel.session_id)) {
    return cursor->session->cancel();  // its `done` with "cancelled" answers
  }
  // Another connection of the same principal (its client came back, or a
  // second tab) may stop it with the session's resume token: session ids
  // travel in SSE id lines, headers and logs, the token does not. With a
  // shared store the turn may run on another instance: the cancel reaches it.
  pause_reading();
  state_->sessions->find_or_open(
      cancel.session_id, principal_, ws_.get_executor(),
      [self = this->shared_from_this(), cancel](std::shared_ptr<Session> session, SessionRegistry::Lookup why) {
        self->finish_cancel(cancel, std::move(session), why);
        self->resume_reading();
      });
}

template <class Stream>
void WsConnection<Stream>::finish_cancel(const CancelCommand& cancel, std::shared_ptr<Session> session,
                                         SessionRegistry::Lookup why) {
  if (ended_) return;
  if (!session) {
    if (why == SessionRegistry::Lookup::kUnavailable) {
      return send_error(ErrorCode::kStoreUnavailable, "the session store cannot be reached; try again shortly",
                        cancel.session_id, cancel.request_id);
    }
    return send_error(ErrorCode::kUnknownSession, "no such session", cancel.session_id,
                      cancel.request_id);
  }
  if (cancel.resume_token.empty()) {
    return send_error(ErrorCode::kBadMessage,
                      "cancel of a session not attached to this connection needs its resume_token",
                      cancel.session_id, cancel.request_id);
  }
  if (!session->token_matches(cancel.resume_token)) {
    return send_error(ErrorCode::kBadToken, "resume_token does not match the session",
                      cancel.session_id, cancel.request_id);
  }
  session->cancel();
}

template <class Stream>
bool WsConnection<Stream>::make_room(std::string_view request_id) {
  const size_t max = state_->config.limits.max_sessions_per_connection;
  auto& cursors = pump_.cursors();
  if (cursors.size() < max) return true;
  // Detach the idle session used least recently; it stays resumable.
  auto victim = cursors.end();
  for (auto it = cursors.begin(); it != cursors.end(); ++it) {
    if (it->second.session->busy()) continue;
    if (victim == cursors.end() || it->second.last_used < victim->second.last_used) victim = it;
  }
  if (victim == cursors.end()) {
    send_error(ErrorCode::kTooManySessions,
               "this connection already runs " + std::to_string(max) +
                   " turns (limits.max_sessions_per_connection)",
               "", request_id);
    return false;
  }
  victim->second.session->detach(this);
  cursors.erase(victim);
  return true;
}

template <class Stream>
void WsConnection<Stream>::attach(const std::shared_ptr<Session>& session, uint64_t cursor, bool held) {
  pump_.follow(session, cursor, held);  // the next pull reads what is already past `cursor`
  session->attach(this->shared_from_this());
}

template <class Stream>
void WsConnection<Stream>::send_error(ErrorCode code, std::string_view message,
                              std::string_view session_id, std::string_view request_id) {
  send(error_message(code, message, session_id, request_id));
}

// ---- journal -> send queue ----

template <class Stream>
void WsConnection<Stream>::on_session_events(const Session& session) {
  pump_.mark(session);
  // One pull per burst of events, however many sessions and deltas.
  wakeup_.notify(ws_.get_executor(), [self = this->shared_from_this()] { self->schedule_pull(); });
}

template <class Stream>
void WsConnection<Stream>::schedule_pull() {
  if (coalesce_.count() == 0) return pull();
  if (coalesce_armed_) return;
  coalesce_armed_ = true;
  coalesce_timer_.expires_after(coalesce_);
  coalesce_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    self->coalesce_armed_ = false;
    if (!ec) self->pull();
  });
}

template <class Stream>
void WsConnection<Stream>::pull() {
  if (ended_ || close_reason_) return;
  const size_t limit = state_->config.limits.send_queue_bytes;
  pulling_ = true;  // the frames found go out in one write, started below
  const auto r = pump_.pump(
      queued_bytes_ < limit ? limit - queued_bytes_ : 0, coalesce_.count() > 0,
      [&](const JournalPump::Cursor& c, const JournalEntryPtr& entry) {
        if (entry->event().type == StreamEventType::kDelta) {
          if (const size_t n = send_delta(entry, c.session->id())) return JournalPump::Emitted{n};
        }
        // Encoded once for every WebSocket reader of the session.
        const std::string_view frame = entry->encoded(
            Face::kWebSocket, [&](const StreamEvent& e) { return event_message(c.session->id(), e); });
        send_entry(entry, frame);
        return JournalPump::Emitted{frame.size()};
      },
      [&](const JournalPump::Cursor& c, StreamEvent&& merged) {
        std::string frame = event_message(c.session->id(), merged);
        const size_t bytes = frame.size();
        send(std::move(frame));
        return JournalPump::Emitted{bytes};
      });
  pulling_ = false;
  do_write();
  if (r.outcome == JournalPump::Outcome::kLost) {
    // This reader fell so far behind that its events are gone.
    spdlog::info("connection {}: session {} lost events ({}); closing", id_, r.lost->session->id(),
                 lost_reason(r.status));
    state_->stats.slow_consumer_closes_ws->inc();
    return close({kCloseSlowConsumer, "slow consumer: events " + std::string(lost_reason(r.status))});
  }
  slow_.review(pump_.behind(), [self = this->shared_from_this()] { self->on_stalled(); });
  if (draining_ && pump_.caught_up() && !any_busy()) {
    close({websocket::close_code::going_away, "server shutting down"});
  }
}

template <class Stream>
void WsConnection<Stream>::on_stalled() {
  if (ended_) return;
  if (close_reason_) return end("slow consumer did not take its close frame", true);
  spdlog::info("connection {}: behind for {} ms with a full send queue; closing (4008)", id_,
               state_->config.limits.slow_consumer_timeout.count());
  // Keep only the frame being written; the client resumes from its offsets.
  while (queue_.size() > (writing_ ? 1u : 0u)) {
    add_queued(-static_cast<int64_t>(queue_.back().size()));
    queue_.pop_back();
  }
  state_->stats.slow_consumer_closes_ws->inc();
  close({kCloseSlowConsumer, "slow consumer"});
  slow_.last_chance(kSlowCloseGrace, [self = this->shared_from_this()] {
    if (!self->ended_) self->end("slow consumer did not take its close frame", true);
  });
}

// ---- writing ----

template <class Stream>
void WsConnection<Stream>::send(std::string frame) {
  Outgoing o;
  o.own = std::move(frame);
  enqueue(std::move(o));
}

template <class Stream>
void WsConnection<Stream>::send_entry(const JournalEntryPtr& entry, std::string_view frame) {
  Outgoing o;
  o.entry = entry;  // keeps `frame` alive until it is written
  o.shared = frame;
  enqueue(std::move(o));
}

template <class Stream>
size_t WsConnection<Stream>::send_delta(const JournalEntryPtr& entry, std::string_view session_id) {
  Outgoing o;
  const size_t head = delta_head(session_id, entry->offset(), o.head.data(), o.head.size());
  if (head == 0) return 0;
  o.head_len = static_cast<uint8_t>(head);
  o.entry = entry;  // keeps the text alive until it is written
  o.shared = entry->json_text();
  const size_t size = o.size();
  enqueue(std::move(o));
  return size;
}

template <class Stream>
std::array<net::const_buffer, 3> WsConnection<Stream>::Outgoing::buffers() const {
  if (!entry) return {net::buffer(own), net::const_buffer(), net::const_buffer()};
  if (head_len == 0) return {net::buffer(shared.data(), shared.size()), net::const_buffer(), net::const_buffer()};
  return {net::buffer(head.data(), head_len), net::buffer(shared.data(), shared.size()),
          net::buffer(kDeltaTail.data(), kDeltaTail.size())};
}

template <class Stream>
void WsConnection<Stream>::enqueue(Outgoing o) {
  if (ended_ || close_reason_) return;
  const size_t size = o.size();
  // Replies to the client's own messages are not paced by the journal; a
  // client that sends without reading is cut off at twice the queue limit.
  if (queued_bytes_ + size > 2 * state_->config.limits.send_queue_bytes) {
    spdlog::info("connection {}: send queue over twice limits.send_queue_bytes; closing", id_);
    return end("send queue full", true);
  }
  add_queued(static_cast<int64_t>(size));
  queue_.push_back(std::move(o));
  if (!pulling_) do_write();  // a pull starts the write once it has queued all it found
}

template <class Stream>
void WsConnection<Stream>::do_write() {
  if (writing_ || queue_.empty() || ended_) return;
  writing_ = true;
  // Several frames ready: they go out together, in one write, once the
  // queue is empty (on_write releases them).
  if (queue_.size() > 1) ws_.next_layer().hold();
  ws_.text(true);
  ws_.async_write(queue_.front().buffers(),
                  beast::bind_front_handler(&WsConnection<Stream>::on_write, this->shared_from_this()));
}

template <class Stream>
void WsConnection<Stream>::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (ec) {
    if (!is_normal_end(ec)) spdlog::debug("connection {}: write: {}", id_, ec.message());
    return end("write failed");
  }
  add_queued(-static_cast<int64_t>(queue_.front().size()));
  queue_.pop_front();
  slow_.progress();
  // Room again: catch up from the journal first, so that what it finds joins
  // the batch being gathered (pull's frames start the next write).
  if (!close_reason_) pull();
  if (writing_ || ended_) return;
  if (!queue_.empty()) return do_write();
  ws_.next_layer().release(this->shared_from_this());
  if (close_reason_ && !close_sent_) do_close();
}

template <class Stream>
void WsConnection<Stream>::shutdown() {
  net::post(ws_.get_executor(), [self = this->shared_from_this()] {
    // Before the handshake is done no close may start (Beast allows no
    // write beside the handshake's own); on_accept sees the drain instead.
    if (self->ended_ || !self->accepted_) return;
    self->draining_ = true;
    self->pull();  // closes at once when nothing is running or undelivered
  });
}

template <class Stream>
void WsConnection<Stream>::close(websocket::close_reason reason) {
  if (close_reason_ || ended_) return;
  close_reason_ = std::move(reason);
  if (!writing_ && queue_.empty()) do_close();
}

template <class Stream>
void WsConnection<Stream>::do_close() {
  close_sent_ = true;
  ws_.next_layer().release(this->shared_from_this());  // what was held goes before the close frame
  ws_.async_close(*close_reason_,
                  beast::bind_front_handler(&WsConnection<Stream>::on_close, this->shared_from_this()));
}

template <class Stream>
void WsConnection<Stream>::on_close(beast::error_code) { end("closed"); }

template <class Stream>
void WsConnection<Stream>::arm_idle_timer() {
  idle_timer_.expires_after(state_->config.limits.idle_timeout);
  idle_timer_.async_wait(beast::bind_front_handler(&WsConnection<Stream>::on_idle, this->shared_from_this()));
}

template <class Stream>
void WsConnection<Stream>::on_idle(beast::error_code ec) {
  if (ec || ended_) return;
  if (any_busy()) return arm_idle_timer();  // a running turn is not idleness
  close({websocket::close_code::normal, "idle timeout"});
}

template <class Stream>
bool WsConnection<Stream>::any_busy() const {
  const auto& cursors = pump_.cursors();
  return std::any_of(cursors.begin(), cursors.end(), [](const auto& kv) { return kv.second.session->busy(); });
}

template <class Stream>
void WsConnection<Stream>::end(std::string_view why, bool abortive) {
  if (ended_) return;
  ended_ = true;
  spdlog::debug("connection {}: {}", id_, why);
  idle_timer_.cancel();
  expiry_timer_.cancel();
  slow_.cancel();
  coalesce_timer_.cancel();
  // Detaching does not stop the turns: they run on for resume.grace_ms.
  for (auto& [id, c] : pump_.cursors()) c.session->detach(this);
  pump_.clear();
  if (!writing_) queue_.clear();  // a write in flight still points into the front entry
  beast::error_code ignored;
  auto& socket = beast::get_lowest_layer(ws_).socket();
  if (abortive) {
    // A client we gave up on: reset the connection rather than leave the
    // kernel holding (and retrying) up to a send buffer of data for it.
    socket.set_option(net::socket_base::linger(true, 0), ignored);
  } else {
    socket.shutdown(net::socket_base::shutdown_both, ignored);
  }
  socket.close(ignored);
}

template class WsConnection<PlainStream>;
template class WsConnection<TlsStream>;

}  // namespace sluice
