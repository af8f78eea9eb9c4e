#include "gateway/net/ws_connection.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/websocket.hpp>

#include "gateway/common/random_id.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/protocol/server_messages.hpp"

namespace sluice {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;

namespace {
constexpr size_t kReadChunk = 16 * 1024;
// Messages above max_frame_bytes are skipped with an error and the
// connection goes on; beyond this many bytes the connection is closed (1009).
constexpr size_t kHardMessageCap = 64 * 1024 * 1024;

bool is_normal_end(const beast::error_code& ec) {
  return ec == websocket::error::closed || ec == net::error::operation_aborted ||
         ec == net::error::eof || ec == net::error::connection_reset ||
         ec == beast::error::timeout;
}
}  // namespace

WsConnection::WsConnection(beast::tcp_stream stream, std::shared_ptr<ServerState> state)
    : ws_(std::move(stream)),
      state_(std::move(state)),
      id_(state_->next_id()),
      idle_timer_(ws_.get_executor()) {}

WsConnection::~WsConnection() { state_->remove(id_); }

void WsConnection::run(beast::http::request<beast::http::string_body> upgrade) {
  state_->add(id_, weak_from_this());
  const auto& limits = state_->config.limits;
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(10);
  timeouts.idle_timeout = limits.idle_timeout;
  timeouts.keep_alive_pings = true;  // a dead peer is found within idle_timeout
  ws_.set_option(timeouts);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "sluice"); }));
  ws_.read_message_max(std::max(kHardMessageCap, limits.max_frame_bytes * 4));
  beast::get_lowest_layer(ws_).expires_never();  // the websocket timeouts take over
  auto req = std::make_shared<beast::http::request<beast::http::string_body>>(std::move(upgrade));
  ws_.async_accept(*req, [self = shared_from_this(), req](beast::error_code ec) {
    self->on_accept(ec);
  });
}

void WsConnection::on_accept(beast::error_code ec) {
  if (ec) return end("handshake failed: " + ec.message());
  if (state_->draining) {
    draining_ = true;
    return close({websocket::close_code::going_away, "server shutting down"});
  }
  arm_idle_timer();
  do_read();
}

void WsConnection::do_read() {
  ws_.async_read_some(buffer_, kReadChunk,
                      beast::bind_front_handler(&WsConnection::on_read, shared_from_this()));
}

void WsConnection::on_read(beast::error_code ec, std::size_t) {
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
    handle_frame({static_cast<const char*>(data.data()), data.size()});
  }
  buffer_.consume(buffer_.size());
  if (!ended_) do_read();
}

void WsConnection::handle_frame(std::string_view frame) {
  ClientMessage msg = parser_.parse(frame);
  if (auto* chat = std::get_if<ChatCommand>(&msg)) return handle_chat(*chat);
  if (auto* cancel = std::get_if<CancelCommand>(&msg)) return handle_cancel(*cancel);
  if (auto* ping = std::get_if<PingCommand>(&msg)) return send_frame(pong_message(ping->request_id));
  const auto& err = std::get<ProtocolError>(msg);
  send_error(err.code, err.message, err.session_id, err.request_id);
}

void WsConnection::handle_chat(const ChatCommand& chat) {
  if (draining_ || state_->draining) {
    return send_error(ErrorCode::kShuttingDown, "the gateway is shutting down; reconnect later",
                      chat.session_id.value_or(""), chat.request_id);
  }
  std::shared_ptr<Session> session;
  if (chat.session_id) {
    const auto it = sessions_.find(*chat.session_id);
    if (it == sessions_.end()) {
      return send_error(ErrorCode::kUnknownSession, "no session with this id on this connection",
                        *chat.session_id, chat.request_id);
    }
    session = it->second;
    if (session->busy()) {
      return send_error(ErrorCode::kSessionBusy,
                        "a turn is already running on this session; wait for its done or cancel it",
                        *chat.session_id, chat.request_id);
    }
  } else {
    session = new_session(chat.request_id);
    if (!session) return;
  }
  session->start_turn(chat);
}

std::shared_ptr<Session> WsConnection::new_session(std::string_view request_id) {
  const size_t max = state_->config.limits.max_sessions_per_connection;
  if (sessions_.size() >= max) {
    // Make room by forgetting the idle session used least recently.
    auto victim = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->second->busy()) continue;
      if (victim == sessions_.end() || it->second->last_active() < victim->second->last_active()) {
        victim = it;
      }
    }
    if (victim == sessions_.end()) {
      send_error(ErrorCode::kTooManySessions,
                 "this connection already runs " + std::to_string(max) +
                     " turns (limits.max_sessions_per_connection)",
                 "", request_id);
      return nullptr;
    }
    sessions_.erase(victim);
  }
  auto session = std::make_shared<Session>(make_random_id("s_"), ws_.get_executor(),
                                           state_->engine, weak_from_this());
  sessions_.emplace(session->id(), session);
  send_frame(session_message(session->id(), request_id));
  return session;
}

void WsConnection::handle_cancel(const CancelCommand& cancel) {
  const auto it = sessions_.find(cancel.session_id);
  if (it == sessions_.end()) {
    return send_error(ErrorCode::kUnknownSession, "no session with this id on this connection",
                      cancel.session_id, cancel.request_id);
  }
  it->second->cancel();  // its `done` with "cancelled" answers; idle: nothing to do
}

void WsConnection::send_error(ErrorCode code, std::string_view message,
                              std::string_view session_id, std::string_view request_id) {
  send_frame(error_message(code, message, session_id, request_id));
}

void WsConnection::send_frame(std::string frame) {
  if (ended_ || close_reason_) return;
  queued_bytes_ += frame.size();
  if (queued_bytes_ > state_->config.limits.send_queue_bytes) {
    spdlog::warn("connection {}: send queue over {} bytes, closing it",
                 id_, state_->config.limits.send_queue_bytes);
    return end("send queue full");
  }
  queue_.push_back(std::move(frame));
  do_write();
}

void WsConnection::do_write() {
  if (writing_ || queue_.empty() || ended_) return;
  writing_ = true;
  ws_.text(true);
  ws_.async_write(net::buffer(queue_.front()),
                  beast::bind_front_handler(&WsConnection::on_write, shared_from_this()));
}

void WsConnection::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (ec) {
    if (!is_normal_end(ec)) spdlog::debug("connection {}: write: {}", id_, ec.message());
    return end("write failed");
  }
  queued_bytes_ -= queue_.front().size();
  queue_.pop_front();
  if (!queue_.empty()) return do_write();
  if (close_reason_ && !close_sent_) do_close();
}

void WsConnection::on_turn_end() {
  if (draining_ && !any_busy()) close({websocket::close_code::going_away, "server shutting down"});
}

void WsConnection::shutdown() {
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    if (self->ended_) return;
    self->draining_ = true;
    for (auto& [id, s] : self->sessions_) s->cancel();
    if (!self->any_busy()) {
      self->close({websocket::close_code::going_away, "server shutting down"});
    }
  });
}

void WsConnection::close(websocket::close_reason reason) {
  if (close_reason_ || ended_) return;
  close_reason_ = std::move(reason);
  if (!writing_ && queue_.empty()) do_close();
}

void WsConnection::do_close() {
  close_sent_ = true;
  ws_.async_close(*close_reason_,
                  beast::bind_front_handler(&WsConnection::on_close, shared_from_this()));
}

void WsConnection::on_close(beast::error_code) { end("closed"); }

void WsConnection::arm_idle_timer() {
  idle_timer_.expires_after(state_->config.limits.idle_timeout);
  idle_timer_.async_wait(beast::bind_front_handler(&WsConnection::on_idle, shared_from_this()));
}

void WsConnection::on_idle(beast::error_code ec) {
  if (ec || ended_) return;
  if (any_busy()) return arm_idle_timer();  // a running turn is not idleness
  close({websocket::close_code::normal, "idle timeout"});
}

bool WsConnection::any_busy() const {
  return std::any_of(sessions_.begin(), sessions_.end(),
                     [](const auto& kv) { return kv.second->busy(); });
}

void WsConnection::end(std::string_view why) {
  if (ended_) return;
  ended_ = true;
  spdlog::debug("connection {}: {}", id_, why);
  idle_timer_.cancel();
  for (auto& [id, s] : sessions_) s->abandon();
  sessions_.clear();
  if (!writing_) queue_.clear();  // a write in flight still points into the front entry
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().shutdown(net::socket_base::shutdown_both, ignored);
  beast::get_lowest_layer(ws_).socket().close(ignored);
}

}  // namespace sluice
