#include "gateway/net/http_session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <algorithm>
#include <charconv>
#include <optional>

#include "gateway/common/json_writer.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/auth/authenticator.hpp"
#include "gateway/auth/principal_limits.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/net/connection_ticket.hpp"
#include "gateway/net/static_files.hpp"
#include "gateway/net/http_chat_stream.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/net/ws_connection.hpp"
#include "gateway/protocol/openai_http.hpp"
#include "gateway/protocol/server_messages.hpp"
#include "gateway/stream/resume.hpp"
#include "gateway/stream/session_registry.hpp"

namespace sluice {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr std::string_view kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr size_t kMaxBody = 1 << 20;  // OpenAI-style requests carry whole conversations

// The value of `key` in the query string of `target` ("" when absent).
std::string query_param(std::string_view target, std::string_view key) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key && eq != std::string_view::npos) {
      return std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>>,
                    public PendingConnection {
 public:
  HttpSession(Stream&& stream, std::shared_ptr<ServerState> state, bool metrics_only)
      : stream_(std::move(stream)),
        executor_(stream_.get_executor()),
        state_(std::move(state)),
        metrics_only_(metrics_only) {
    if (!metrics_only_) ++state_->pending_connections;  // scrapes are not clients
  }
  ~HttpSession() override {
    if (listed_) state_->remove_pending(*listed_);
    if (!metrics_only_) --state_->pending_connections;
  }

  void evict() override {
    net::post(executor_, [self = this->shared_from_this()] {
      // A request head may have arrived since: then it is served.
      if (!self->reading_head_) return;
      spdlog::debug("closing an idle connection to make room (limits.max_pending_connections "
                    "or no file descriptor left)");
      beast::get_lowest_layer(self->stream_).close();
    });
  }

  void run() {
    if (!metrics_only_) listed_ = state_->add_pending(this, this->weak_from_this());
    if constexpr (kIsTls<Stream>) {
      net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
        beast::get_lowest_layer(self->stream_).expires_after(kHandshakeTimeout);
        self->stream_.async_handshake(net::ssl::stream_base::server,
                                      [self](beast::error_code ec) {
                                        if (ec) {
                                          // Scanners, plain HTTP on the TLS port, untrusted certs.
                                          spdlog::debug("tls handshake: {}", ec.message());
                                          return;
                                        }
                                        self->do_read();
                                      });
      });
    } else {
      net::dispatch(stream_.get_executor(),
                    beast::bind_front_handler(&HttpSession::do_read, this->shared_from_this()));
    }
  }

 private:
  void do_read() {
    reading_head_ = true;
    waiting_for_request = true;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(state_->config.limits.max_http_header_bytes));
    parser_->body_limit(kMaxBody);
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, this->shared_from_this()));
  }

  // The head is in: refuse what must not be read on, then read the body.
  void on_header(beast::error_code ec, std::size_t) {
    reading_head_ = false;
    waiting_for_request = false;
    if (ec) return on_read(ec, 0);
    // Only "chunked" is a transfer coding the gateway decodes; anything else
    // (or a Content-Length beside it) would let a proxy in front and the
    // gateway disagree on where the body ends (request smuggling).
    const auto& head = parser_->get();
    if (const auto te = head[http::field::transfer_encoding]; !te.empty()) {
      if (head.count(http::field::transfer_encoding) > 1) {
        return reply(http::status::bad_request, false,
                     error_json("bad_request", "more than one Transfer-Encoding header"));
      }
      if (!beast::iequals(trimmed(te), "chunked")) {
        return reply(http::status::not_implemented, false,
                     error_json("bad_request", "Transfer-Encoding other than chunked is not supported"));
      }
      if (head.count(http::field::content_length) != 0) {
        return reply(http::status::bad_request, false,
                     error_json("bad_request", "Transfer-Encoding and Content-Length together"));
      }
    }
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted) {
      return shutdown();
    }
    if (ec == http::error::header_limit) {
      return reply(http::status::request_header_fields_too_large, false,
                   error_json("bad_request", "request headers exceed limits.max_http_header_bytes"));
    }
    if (ec == http::error::body_limit) {
      return reply(http::status::payload_too_large, false,
                   error_json("bad_request", "request body larger than " +
                                                 std::to_string(kMaxBody >> 20) + " MiB"));
    }
    if (ec) {
      return reply(http::status::bad_request, false, error_json("bad_request", ec.message()));
    }
    auto req = parser_->release();
    // Browsers send Origin; other clients do not, and are not affected.
    if (const auto origin = req[http::field::origin]; !origin.empty() && !origin_allowed(origin)) {
      return reply(http::status::forbidden, false,
                   error_json("origin_not_allowed",
                              "this page's origin is not in server.allowed_origins"));
    }
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    const bool keep_alive = req.keep_alive();

    // Prometheus: here, or only on metrics.listen when that is set.
    if (path == "/metrics" && (metrics_only_ || state_->config.metrics.listen_host.empty())) {
      auto* m = metrics::active();
      if (!m) return reply(http::status::not_found, keep_alive, error_json("not_found", "metrics.enabled is false"));
      return reply(http::status::ok, keep_alive, m->registry.expose(), false, kPrometheusText);
    }
    if (metrics_only_ && path != "/healthz") {
      return reply(http::status::not_found, keep_alive,
                   error_json("not_found", "this address serves /metrics and /healthz only"));
    }

    if (path == "/v1/ws" || path == "/v1/chat/completions" || path.rfind("/v1/sessions/", 0) == 0) {
      const bool websocket = path == "/v1/ws";
      // Browsers cannot set headers on a WebSocket or an EventSource: those
      // two may carry the token in the URL.
      auto who = authenticate(req, websocket, websocket || req.method() == http::verb::get);
      if (!who && websocket) {
        // No token at the upgrade: the client may send it in a hello frame.
        who_ = AuthResult{};
      } else if (!who || !who->ok) {
        auto body = error_json("unauthorized",
                               who ? who->error
                                   : "a token is required (Authorization: Bearer)");
        return reply(http::status::unauthorized, false, std::move(body), true);
      } else {
        who_ = std::move(*who);
      }
    }
    if (path == "/v1/ws") {
      if (!websocket::is_upgrade(req)) {
        return reply(http::status::upgrade_required, req.keep_alive(),
                     error_json("upgrade_required", "connect with a WebSocket client"));
      }
      if (state_->draining) {
        return reply(http::status::service_unavailable, false,
                     error_json("shutting_down", "the gateway is shutting down"));
      }
      ConnectionTicket ticket = ConnectionTicket::admit(state_);
      if (!ticket) {
        return reply(http::status::service_unavailable, false,
                     error_json("too_many_connections",
                                "the gateway holds limits.max_connections connections"));
      }
      beast::get_lowest_layer(stream_).expires_never();
      auto conn = std::make_shared<WsConnection<Stream>>(std::move(stream_), state_, std::move(ticket),
                                                         who_.principal, who_.expires, client_address(req));
      conn->run(std::move(req));
      return;
    }
    if (path == "/v1/chat/completions") {
      if (req.method() != http::verb::post) {
        return reply(http::status::method_not_allowed, req.keep_alive(),
                     openai_error_json("method_not_allowed", "use POST"));
      }
      return chat_completions(req);
    }
    if (path.rfind("/v1/sessions/", 0) == 0 && path.size() > 20 &&
        path.substr(path.size() - 7) == "/stream") {
      return session_stream(req, std::string(path.substr(13, path.size() - 20)));
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
      if (const auto& store = state_->sessions->store(); !store.reachable()) {
        std::string body = R"({"status":"not_ready","reason":)";
        append_json_string(body, "the session store (redis) " + store.unreachable_reason());
        return reply(http::status::service_unavailable, keep, body + "}");
      }
      return reply(http::status::ok, keep, R"({"status":"ready"})");
    }
    if (state_->web && (req.method() == http::verb::get || req.method() == http::verb::head)) {
      if (const auto* file = state_->web->find(path)) return serve_static(req, *file);
    }
    reply(http::status::not_found, keep, error_json("not_found", "no such path"));
  }

  // POST /v1/chat/completions: a turn on a new session, or on the session
  // named by X-Sluice-Session-Id (with its X-Sluice-Resume-Token).
  void chat_completions(http::request<http::string_body>& req) {
    auto parsed = parse_openai_chat_request(req.body());
    if (auto* e = std::get_if<ProtocolError>(&parsed)) {
      return reply(http::status::bad_request, false, openai_error_json(to_string(e->code), e->message));
    }
    auto& r = std::get<OpenAiChatRequest>(parsed);
    r.chat.traceparent = std::string(req["traceparent"]);
    r.chat.client = client_address(req);
    if (state_->draining) {
      return reply(http::status::service_unavailable, false,
                   openai_error_json("shutting_down", "the gateway is shutting down"));
    }
    // Admission first: a refused request creates nothing.
    auto ticket = std::make_shared<ConnectionTicket>(admit_client());
    if (!*ticket) return;
    const std::string sid(req["X-Sluice-Session-Id"]);
    if (!state_->sessions->store().reachable()) {
      ticket->reset();
      return reply(http::status::service_unavailable, false,
                   openai_error_json("store_unavailable", "the session store cannot be reached"));
    }
    if (sid.empty()) return claim_and_start(std::move(r), ticket, state_->sessions->create(who_.principal), true, {});
    std::string token(req["X-Sluice-Resume-Token"]);
    state_->sessions->find_or_open(
        sid, who_.principal, stream_.get_executor(),
        [self = this->shared_from_this(), r = std::move(r), ticket, token](std::shared_ptr<Session> session,
                                                                            SessionRegistry::Lookup why) mutable {
          // A refused request gives its place back before its answer leaves: the
          // client's next request may come the moment it has read it.
          if (!session) {
            ticket->reset();
            if (why == SessionRegistry::Lookup::kUnavailable) {
              return self->reply(http::status::service_unavailable, false,
                                 openai_error_json("store_unavailable", "the session store cannot be reached"));
            }
            return self->reply(http::status::not_found, false,
                               openai_error_json(why == SessionRegistry::Lookup::kExpired ? "expired" : "unknown_session",
                                                 "no such session"));
          }
          if (!session->token_matches(token)) {
            ticket->reset();
            return self->reply(http::status::forbidden, false,
                               openai_error_json("bad_token", "X-Sluice-Resume-Token does not match the session"));
          }
          self->claim_and_start(std::move(r), ticket, std::move(session), false, std::move(token));
        });
  }

  // A turn on `session`, once a shared store has let this instance run it.
  void claim_and_start(OpenAiChatRequest r, std::shared_ptr<ConnectionTicket> ticket,
                       std::shared_ptr<Session> session, bool created, std::string token) {
    auto self = this->shared_from_this();
    auto go = [self, r, ticket, session, created, token](const Admission& claimed) mutable {
      self->start_http_turn(r, ticket, session, created, token, claimed);
    };
    session->prepare_turn(stream_.get_executor(), std::move(go));
  }

  void start_http_turn(const OpenAiChatRequest& r, const std::shared_ptr<ConnectionTicket>& ticket,
                       const std::shared_ptr<Session>& session, bool created, const std::string& token,
                       const Admission& claimed) {
    const uint64_t cursor = session->journal().last_offset();
    if (const Admission a = claimed.ok ? session->start_turn(r.chat) : claimed; !a.ok) {
      // A new session whose first turn is refused never existed.
      if (created) state_->sessions->discard(session->id());
      ticket->reset();
      return refuse(a);
    }
    HttpChatOptions o;
    o.sse = r.stream;
    o.include_usage = r.include_usage;
    o.ids = {"chatcmpl-" + session->id() + "-" + std::to_string(cursor + 1),
             r.chat.model.empty() ? state_->config.openai.model : r.chat.model, unix_seconds()};
    // A session opened from the shared store keeps only its token's hash: the client's token is the one.
    o.headers = {{"X-Sluice-Session-Id", session->id()},
                 {"X-Sluice-Resume-Token", created ? session->resume_token() : token},
                 {"X-Sluice-First-Offset", std::to_string(cursor + 1)}};
    if (!created || !state_->sessions->store().shared()) return hand_over(std::move(*ticket), session, cursor, std::move(o));
    // The headers name the session: they go once the shared store holds it.
    session->when_recorded(stream_.get_executor(), [self = this->shared_from_this(), ticket, session, cursor, o]() mutable {
      self->hand_over(std::move(*ticket), session, cursor, std::move(o));
    });
  }

  // GET /v1/sessions/{id}/stream?resume_token=T[&offset=N]: the session's
  // events after N (or after the Last-Event-ID an EventSource sends), as SSE,
  // up to the end of the turn.
  void session_stream(http::request<http::string_body>& req, const std::string& sid) {
    if (req.method() != http::verb::get) {
      return reply(http::status::method_not_allowed, false, openai_error_json("method_not_allowed", "use GET"));
    }
    std::string token = query_param(req.target(), "resume_token");
    if (token.empty()) token = std::string(req["X-Sluice-Resume-Token"]);
    uint64_t offset = 0;
    std::string from = std::string(req["Last-Event-ID"]);  // "<session>:<offset>"
    if (from.empty()) {
      from = query_param(req.target(), "offset");
    } else if (const auto colon = from.rfind(':'); colon != std::string::npos) {
      from = from.substr(colon + 1);
    }
    if (!from.empty()) {
      const auto [end, ec] = std::from_chars(from.data(), from.data() + from.size(), offset);
      if (ec != std::errc() || end != from.data() + from.size()) {
        return reply(http::status::bad_request, false,
                     openai_error_json("bad_message", "offset / Last-Event-ID must be a number"));
      }
    }
    // The same validation as the WebSocket's resume; each refusal has its status.
    state_->sessions->find_or_open(
        sid, who_.principal, stream_.get_executor(),
        [self = this->shared_from_this(), token = std::move(token), offset](std::shared_ptr<Session> session,
                                                                             SessionRegistry::Lookup why) {
          check_resume_caught_up(std::move(session), why, token, offset, self->stream_.get_executor(),
                                 [self, offset](const ResumeCheck& check) { self->stream_session(check, offset); });
        });
  }

  void stream_session(const ResumeCheck& check, uint64_t offset) {
    if (!check) {
      http::status status = http::status::gone;  // expired, evicted
      switch (*check.refusal) {
        case ResumeRefusal::kUnknownSession: status = http::status::not_found; break;
        case ResumeRefusal::kBadToken: status = http::status::forbidden; break;
        case ResumeRefusal::kOffsetAhead: status = http::status::bad_request; break;
        case ResumeRefusal::kUnavailable: status = http::status::service_unavailable; break;
        case ResumeRefusal::kSessionExpired:
        case ResumeRefusal::kEvicted:
        case ResumeRefusal::kEventsExpired: break;
      }
      return reply(status, false, openai_error_json(to_string(*check.refusal), check.message));
    }
    const auto& session = check.session;
    ConnectionTicket ticket = admit_client();
    if (!ticket) return;
    record_resumed(*session, offset);
    HttpChatOptions o;
    o.role_chunk = false;
    o.ids = {"chatcmpl-" + session->id(), state_->config.openai.model, unix_seconds()};
    o.headers = {{"X-Sluice-Session-Id", session->id()}};
    hand_over(std::move(ticket), session, offset, std::move(o));
  }

  // The client's address: the peer's, or behind a trusted proxy the last
  // address of X-Forwarded-For (the one the proxy saw; earlier ones are
  // whatever the client wrote).
  std::string client_address(const http::request<http::string_body>& req) {
    if (state_->config.server.trust_x_forwarded_for) {
      std::string_view xff = req["X-Forwarded-For"];
      if (const auto comma = xff.rfind(','); comma != std::string_view::npos) xff = xff.substr(comma + 1);
      while (!xff.empty() && xff.front() == ' ') xff.remove_prefix(1);
      while (!xff.empty() && xff.back() == ' ') xff.remove_suffix(1);
      if (!xff.empty() && xff.size() <= 64) return std::string(xff);
    }
    beast::error_code ec;
    const auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    return ec ? std::string() : ep.address().to_string();
  }

  // A refused turn or connection: 409 for a busy session, else 429 with
  // Retry-After.
  void refuse(const Admission& a) {
    if (a.code == ErrorCode::kSessionBusy) {
      return reply(http::status::conflict, false, openai_error_json("session_busy", a.message));
    }
    if (a.code == ErrorCode::kStoreUnavailable || a.code == ErrorCode::kUnknownSession) {
      return reply(a.code == ErrorCode::kUnknownSession ? http::status::not_found : http::status::service_unavailable,
                   false, openai_error_json(to_string(a.code), a.message));
    }
    auto res = std::make_shared<http::response<http::string_body>>(http::status::too_many_requests, 11);
    res->set(http::field::server, "sluice");
    res->set(http::field::content_type, "application/json");
    res->set(http::field::retry_after,
             std::to_string(std::max<int64_t>(1, (a.retry_after.count() + 999) / 1000)));
    res->keep_alive(false);
    res->body() = openai_error_json(to_string(a.code), a.message);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code, std::size_t) {
      self->shutdown();
    });
  }

  // A ticket for a streaming answer: a place in limits.max_connections and
  // one of the principal's connections. Empty, with the refusal sent (503
  // or 429), when either is full.
  ConnectionTicket admit_client() {
    ConnectionTicket ticket = ConnectionTicket::admit(state_);
    if (!ticket) {
      reply(http::status::service_unavailable, false,
            openai_error_json("too_many_connections",
                              "the gateway holds limits.max_connections connections"));
      return ticket;
    }
    if (const Admission a = ticket.add_principal(who_.principal); !a.ok) {
      refuse(a);
      return {};
    }
    return ticket;
  }

  // Gives the socket to the stream that answers.
  void hand_over(ConnectionTicket ticket, const std::shared_ptr<Session>& session, uint64_t cursor,
                 HttpChatOptions o) {
    beast::get_lowest_layer(stream_).expires_never();
    std::make_shared<HttpChatStream<Stream>>(std::move(stream_), state_, std::move(ticket), session,
                                             cursor, std::move(o))
        ->start();
  }

  bool origin_allowed(std::string_view origin) const {
    const auto& allowed = state_->config.server.allowed_origins;
    if (allowed.empty()) return true;
    return std::any_of(allowed.begin(), allowed.end(),
                       [&](const std::string& a) { return a == "*" || a == origin; });
  }

  static std::string error_json(std::string_view code, std::string_view message) {
    JsonWriter w;
    w.begin_object().key("error").begin_object().field("code", code).field("message", message);
    return w.end_object().end_object().take();
  }

  // Who sent the request: the principal of its token (Authorization: Bearer;
  // for the WebSocket upgrade also a "bearer.<token>" subprotocol or
  // ?token=, as browsers cannot set headers there), or "anonymous" when
  // auth.mode = "none".
  // nullopt: the request carries no token at all.
  std::optional<AuthResult> authenticate(const http::request<http::string_body>& req,
                                         bool websocket, bool token_in_url) const {
    if (!state_->auth->required()) {
      AuthResult anyone;
      anyone.ok = true;
      anyone.principal = kAnonymousPrincipal;
      return anyone;
    }
    std::string token;
    const std::string_view authorization = req[http::field::authorization];
    token = std::string(bearer_token(authorization));
    if (token.empty() && websocket) {
      const std::string_view protocols = req[http::field::sec_websocket_protocol];
      for (size_t pos = 0; pos < protocols.size();) {
        const auto comma = protocols.find(',', pos);
        std::string_view p = protocols.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
        while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
        while (!p.empty() && p.back() == ' ') p.remove_suffix(1);
        if (p.rfind("bearer.", 0) == 0) token = std::string(p.substr(7));
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
      }
    }
    if (token.empty() && token_in_url) token = query_param(req.target(), "token");
    if (token.empty()) return std::nullopt;
    return state_->auth->verify(token, std::chrono::system_clock::now());
  }

  void reply(http::status status, bool keep_alive, std::string body, bool challenge = false,
             std::string_view content_type = "application/json") {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    if (challenge) res->set(http::field::www_authenticate, "Bearer");
    res->set(http::field::content_type, content_type);
    res->set(http::field::cache_control, "no-store");
    res->body() = std::move(body);
    send(std::move(res), keep_alive);
  }

  // GET or HEAD of a file under web.root. Scripts may be loaded from other
  // pages (the widget is embedded with one <script> tag): those whose origin
  // server.allowed_origins admits get CORS headers (the origin check above
  // already refused the others). Pages get a strict content security policy.
  void serve_static(const http::request<http::string_body>& req, const StaticFiles::File& file) {
    const bool keep = req.keep_alive();
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
    res->set(http::field::content_type, file.content_type);
    res->set(http::field::cache_control, "no-cache");  // revalidate: ETag
    res->set(http::field::etag, file.etag);
    res->set("X-Content-Type-Options", "nosniff");
    if (const auto origin = req[http::field::origin]; !origin.empty()) {
      res->set(http::field::access_control_allow_origin, origin);
      res->set(http::field::vary, "Origin");
    }
    if (file.content_type.rfind("text/html", 0) == 0) {
      res->set("Content-Security-Policy",
               "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'");
      res->set("Referrer-Policy", "no-referrer");
    }
    if (req[http::field::if_none_match] == file.etag) {
      res->result(http::status::not_modified);
    } else if (req.method() == http::verb::get) {
      res->body() = file.body;
    }
    res->prepare_payload();
    if (req.method() == http::verb::head) res->content_length(file.body.size());
    send(std::move(res), keep, false);
  }

  void send(std::shared_ptr<http::response<http::string_body>> res, bool keep_alive, bool prepare = true) {
    res->set(http::field::server, "sluice");
    res->keep_alive(keep_alive && !state_->draining);
    if (prepare) res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return self->shutdown();
                        self->do_read();
                      });
  }

  // Ends the connection after the last response: the client reads it all.
  void shutdown() {
    if constexpr (kIsTls<Stream>) {
      // close_notify, then wait (briefly) for the client's.
      beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        close_now(self->stream_);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    }
  }

  Stream stream_;
  const net::any_io_executor executor_;  // the connection's strand, for evict() from other threads
  bool reading_head_ = true;             // on the strand: waiting for a request (or the TLS handshake)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<ServerState> state_;
  const bool metrics_only_;  // the metrics.listen address
  AuthResult who_;  // of the request being handled
  std::optional<ServerState::PendingList::iterator> listed_;  // in the server's pending list
};

}  // namespace

void run_http_session(net::ip::tcp::socket socket, std::shared_ptr<ServerState> state, bool metrics_only) {
  if (state->tls && !metrics_only) {
    // The context of the moment: a reload changes it for later connections.
    const auto context = state->tls->current();
    TlsStream stream(std::move(socket), *context);
    std::make_shared<HttpSession<TlsStream>>(std::move(stream), std::move(state), false)->run();
    return;
  }
  std::make_shared<HttpSession<PlainStream>>(PlainStream(std::move(socket)), std::move(state), metrics_only)
      ->run();
}

}  // namespace sluice
