#include "gateway/net/http_session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <optional>

#include "gateway/common/json_writer.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/net/ws_connection.hpp"
#include "gateway/protocol/server_messages.hpp"

namespace sluice {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr size_t kMaxBody = 64 * 1024;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(net::ip::tcp::socket&& socket, std::shared_ptr<ServerState> state)
      : stream_(std::move(socket)), state_(std::move(state)) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(state_->config.limits.max_http_header_bytes));
    parser_->body_limit(kMaxBody);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted) {
      return shutdown();
    }
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      return reply(http::status::request_header_fields_too_large, false,
                   error_json("bad_request", "request headers or body too large"));
    }
    if (ec) {
      return reply(http::status::bad_request, false, error_json("bad_request", ec.message()));
    }
    auto req = parser_->release();
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));

    if (path == "/v1/ws") {
      if (!websocket::is_upgrade(req)) {
        return reply(http::status::upgrade_required, req.keep_alive(),
                     error_json("upgrade_required", "connect with a WebSocket client"));
      }
      if (state_->draining) {
        return reply(http::status::service_unavailable, false,
                     error_json("shutting_down", "the gateway is shutting down"));
      }
      if (!state_->try_admit()) {
        return reply(http::status::service_unavailable, false,
                     error_json("too_many_connections",
                                "the gateway holds limits.max_connections connections"));
      }
      stream_.expires_never();
      auto conn = std::make_shared<WsConnection>(std::move(stream_), state_);
      conn->run(std::move(req));
      return;
    }
    const bool keep = req.keep_alive();
    if (req.method() != http::verb::get && req.method() != http::verb::head &&
        (path == "/healthz" || path == "/readyz")) {
      return reply(http::status::method_not_allowed, keep,
                   error_json("method_not_allowed", "use GET"));
    }
    if (path == "/healthz") return reply(http::status::ok, keep, R"({"status":"ok"})");
    if (path == "/readyz") {
      if (state_->draining) {
        return reply(http::status::service_unavailable, keep,
                     R"({"status":"draining"})");
      }
      if (!state_->engine.ready()) {
        return reply(http::status::service_unavailable, keep,
                     R"({"status":"not_ready","reason":"every upstream is ejected"})");
      }
      return reply(http::status::ok, keep, R"({"status":"ready"})");
    }
    reply(http::status::not_found, keep, error_json("not_found", "no such path"));
  }

  static std::string error_json(std::string_view code, std::string_view message) {
    JsonWriter w;
    w.begin_object().key("error").begin_object().field("code", code).field("message", message);
    return w.end_object().end_object().take();
  }

  void reply(http::status status, bool keep_alive, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "sluice");
    res->set(http::field::content_type, "application/json");
    res->set(http::field::cache_control, "no-store");
    res->keep_alive(keep_alive && !state_->draining);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return self->shutdown();
                        self->do_read();
                      });
  }

  void shutdown() {
    beast::error_code ignored;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<ServerState> state_;
};

}  // namespace

void run_http_session(net::ip::tcp::socket socket, std::shared_ptr<ServerState> state) {
  std::make_shared<HttpSession>(std::move(socket), std::move(state))->run();
}

}  // namespace sluice
