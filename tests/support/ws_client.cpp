#include "tests/support/ws_client.hpp"

#include <simdjson.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <poll.h>

#include <stdexcept>

namespace sluice::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

Frame parse_frame(std::string_view json) {
  Frame f;
  f.raw = std::string(json);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(f.raw).get(doc) != simdjson::SUCCESS) return f;
  auto str = [&](const char* key, std::string& out) {
    std::string_view v;
    if (doc[key].get(v) == simdjson::SUCCESS) out = v;
  };
  str("type", f.type);
  str("session_id", f.session_id);
  str("request_id", f.request_id);
  str("text", f.text);
  str("code", f.code);
  str("message", f.message);
  str("finish_reason", f.finish_reason);
  str("resume_token", f.resume_token);
  str("reason", f.reason);
  str("action", f.action);
  str("plugin", f.plugin);
  uint64_t offset = 0;
  if (doc["offset"].get(offset) == simdjson::SUCCESS) f.offset = offset;
  if (doc["from_offset"].get(offset) == simdjson::SUCCESS) f.from_offset = offset;
  int64_t n = 0;
  if (doc["usage"]["prompt_tokens"].get(n) == simdjson::SUCCESS) f.prompt_tokens = n;
  if (doc["usage"]["completion_tokens"].get(n) == simdjson::SUCCESS) f.completion_tokens = n;
  return f;
}

struct WsClient::Impl {
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  bool reading = false;     // an async_read is in flight
  bool read_done = false;   // ... and has completed
  beast::error_code read_ec;
  bool closed = false;
  std::optional<uint16_t> code;
  std::string reason;
};

WsClient::WsClient(uint16_t port, std::string target, int receive_buffer,
                   std::vector<std::pair<std::string, std::string>> headers)
    : impl_(std::make_unique<Impl>()) {
  if (!headers.empty()) {
    impl_->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
  }
  auto& socket = beast::get_lowest_layer(impl_->ws).socket();
  socket.open(tcp::v4());
  if (receive_buffer > 0) socket.set_option(net::socket_base::receive_buffer_size(receive_buffer));
  beast::get_lowest_layer(impl_->ws).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  impl_->ws.handshake("127.0.0.1:" + std::to_string(port), target);
  impl_->ws.text(true);
}

WsClient::~WsClient() = default;

void WsClient::send(std::string_view text) {
  impl_->ws.text(true);
  impl_->ws.write(net::buffer(text.data(), text.size()));
}

void WsClient::send_binary(std::string_view bytes) {
  impl_->ws.binary(true);
  impl_->ws.write(net::buffer(bytes.data(), bytes.size()));
  impl_->ws.text(true);
}

std::optional<Frame> WsClient::read(std::chrono::milliseconds timeout) {
  auto& s = *impl_;
  if (s.closed) return std::nullopt;
  if (!s.reading) {
    s.reading = true;
    s.read_done = false;
    s.ws.async_read(s.buffer, [&s](beast::error_code ec, std::size_t) {
      s.read_done = true;
      s.read_ec = ec;
    });
  }
  s.ioc.restart();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!s.read_done && std::chrono::steady_clock::now() < deadline) {
    s.ioc.run_one_until(deadline);
  }
  if (!s.read_done) return std::nullopt;
  s.reading = false;
  if (s.read_ec) {
    s.closed = true;
    if (s.read_ec == websocket::error::closed) {
      s.code = static_cast<uint16_t>(s.ws.reason().code);
      s.reason = std::string(s.ws.reason().reason.c_str());
    }
    return std::nullopt;
  }
  const auto data = s.buffer.cdata();
  Frame f = parse_frame({static_cast<const char*>(data.data()), data.size()});
  s.buffer.consume(s.buffer.size());
  return f;
}

std::optional<Frame> WsClient::read_until(std::string_view type, std::string_view session_id,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto f = read(left);
    if (!f) return std::nullopt;
    if (f->type == type && (session_id.empty() || f->session_id == session_id)) return f;
  }
}

bool WsClient::closed() const { return impl_->closed; }

bool WsClient::wait_peer_closed(std::chrono::milliseconds timeout) {
  pollfd p{beast::get_lowest_layer(impl_->ws).socket().native_handle(), POLLRDHUP, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0 && (p.revents & (POLLRDHUP | POLLHUP));
}
std::optional<uint16_t> WsClient::close_code() const { return impl_->code; }
std::string WsClient::close_reason() const { return impl_->reason; }

void WsClient::close() {
  beast::error_code ec;
  impl_->ws.close(websocket::close_code::normal, ec);
  impl_->closed = true;
}

void WsClient::drop() {
  beast::error_code ec;
  beast::get_lowest_layer(impl_->ws).socket().shutdown(tcp::socket::shutdown_both, ec);
  beast::get_lowest_layer(impl_->ws).socket().close(ec);
  impl_->closed = true;
}

}  // namespace sluice::test
