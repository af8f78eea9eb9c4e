// WsConnection: one client WebSocket at /v1/ws speaking protocol v1
// (docs/protocol.md). It parses client frames, runs the sessions
// multiplexed on it, and writes their frames through one bounded queue.
//
// Threads: all members run on the connection's strand. shutdown() may be
// called from any thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "gateway/protocol/client_parser.hpp"
#include "gateway/stream/frame_sink.hpp"
#include "gateway/stream/session.hpp"

namespace sluice {

struct ServerState;

class WsConnection : public std::enable_shared_from_this<WsConnection>, public FrameSink {
 public:
  // `socket` already counted by ServerState::try_admit.
  WsConnection(boost::beast::tcp_stream stream, std::shared_ptr<ServerState> state);
  ~WsConnection() override;

  void run(boost::beast::http::request<boost::beast::http::string_body> upgrade);
  // Drain: cancel every turn, then close with 1001.
  void shutdown();

  void send_frame(std::string frame) override;
  void on_turn_end() override;

 private:
  void on_accept(boost::beast::error_code ec);
  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void handle_frame(std::string_view frame);
  void handle_chat(const ChatCommand& chat);
  void handle_cancel(const CancelCommand& cancel);
  void send_error(ErrorCode code, std::string_view message, std::string_view session_id,
                  std::string_view request_id);
  std::shared_ptr<Session> new_session(std::string_view request_id);

  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);
  void close(boost::beast::websocket::close_reason reason);
  void do_close();
  void on_close(boost::beast::error_code ec);
  void arm_idle_timer();
  void on_idle(boost::beast::error_code ec);
  void end(std::string_view why);
  bool any_busy() const;

  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  std::shared_ptr<ServerState> state_;
  const uint64_t id_;
  boost::beast::flat_buffer buffer_;
  bool discarding_ = false;  // skipping the rest of an oversized message
  ClientParser parser_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;

  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;

  std::optional<boost::beast::websocket::close_reason> close_reason_;  // closing once flushed
  bool close_sent_ = false;
  bool draining_ = false;
  bool ended_ = false;
  boost::asio::steady_timer idle_timer_;
};

}  // namespace sluice
