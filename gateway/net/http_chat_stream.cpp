#include "gateway/net/http_chat_stream.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/http.hpp>

#include "gateway/auth/principal_limits.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/net/server_state.hpp"

namespace sluice {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {
unsigned status_for(ErrorCode code) {
  return code == ErrorCode::kUpstreamTimeout ? 504 : code == ErrorCode::kShuttingDown ? 503 : 502;
}
}  // namespace

template <class Stream>
HttpChatStream<Stream>::HttpChatStream(Stream stream, std::shared_ptr<ServerState> state,
                               ConnectionTicket ticket, std::shared_ptr<Session> session,
                               uint64_t cursor, Options options)
    : stream_(std::move(stream)),
      state_(std::move(state)),
      id_(state_->next_id()),
      ticket_(std::move(ticket)),
      session_(std::move(session)),
      options_(std::move(options)),
      chunk_prefix_(options_.sse ? sse_chunk_prefix(options_.ids) : std::string()),
      slow_(stream_.get_executor(), state_->config.limits.slow_consumer_timeout),
      write_deadline_(stream_.get_executor()) {
  pump_.follow(session_, cursor);
}

template <class Stream>
HttpChatStream<Stream>::~HttpChatStream() = default;  // the ticket gives back its places

template <class Stream>
void HttpChatStream<Stream>::start() {
  state_->stats.connections_http->inc();
  session_->attach(this->shared_from_this());
  watch_peer();
  if (!options_.sse) return pull();
  std::string head = "HTTP/1.1 200 OK\r\nServer: sluice\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     "Cache-Control: no-cache, no-store, no-transform\r\nX-Accel-Buffering: no\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n";
  for (const auto& [k, v] : options_.headers) head += k + ": " + v + "\r\n";
  head += "\r\n";
  write(std::move(head), false);
  if (options_.role_chunk) pending_ += sse_role_chunk(options_.ids);
}

template <class Stream>
void HttpChatStream<Stream>::on_session_events(const Session& session) {
  pump_.mark(session);
  wakeup_.notify(stream_.get_executor(), [self = this->shared_from_this()] { self->pull(); });
}

template <class Stream>
void HttpChatStream<Stream>::pull() {
  if (stopped_ || done_) return;
  const size_t limit = state_->config.limits.send_queue_bytes;
  const auto r = pump_.pump(pending_.size() < limit ? limit - pending_.size() : 0,
                            [&](const JournalPump::Cursor&, const JournalEntryPtr& entry) { return take(entry); });
  if (r.outcome == JournalPump::Outcome::kLost) {
    state_->stats.slow_consumer_closes_http->inc();
    return stop("the journal no longer holds the stream's cursor");
  }
  if (!options_.sse) return;  // the reply goes when the turn ends (take)
  // A resume of an idle session that has nothing newer ends at once.
  if (!done_ && !session_->busy() && pump_.caught_up()) {
    pending_ += kSseDone;
    done_ = true;
  }
  slow_.review(pump_.behind(), [self = this->shared_from_this()] {
    self->state_->stats.slow_consumer_closes_http->inc();
    self->stop("the client took nothing for limits.slow_consumer_timeout_ms");
  });
  if (!writing_ && !pending_.empty()) write(std::exchange(pending_, {}), true);
}

template <class Stream>
JournalPump::Emitted HttpChatStream<Stream>::take(const JournalEntryPtr& entry) {
  const StreamEvent& e = entry->event();
  if (options_.sse) {
    const size_t before = pending_.size();
    if (e.type == StreamEventType::kDelta) {
      append_sse_delta(pending_, chunk_prefix_, session_->id(), e.offset, entry->json_text());
      return {pending_.size() - before, false};
    }
    // Other events' own part is encoded once for every SSE reader of the session.
    const std::string_view body =
        entry->encoded(Face::kSse, [&](const StreamEvent& ev) { return sse_event_body(session_->id(), ev); });
    append_sse_event(pending_, chunk_prefix_, session_->id(), e, body, options_.include_usage);
    const bool last = e.type == StreamEventType::kDone;
    if (last) {
      pending_ += kSseDone;
      done_ = true;
    }
    return {pending_.size() - before, last};
  }
  if (e.type == StreamEventType::kDelta) text_ += e.text;
  if (e.type == StreamEventType::kSources && e.name.view() == "retrieval") sources_ = e.json.view();
  if (e.type == StreamEventType::kError) {
    done_ = true;
    reply_json(status_for(e.code), openai_error_json(to_string(e.code), e.text));
    return {0, true};
  }
  if (e.type == StreamEventType::kDone) {
    done_ = true;
    reply_json(200, completion_json(options_.ids, text_, to_string(e.finish_reason), e.usage, sources_));
    return {0, true};
  }
  return {};
}

template <class Stream>
void HttpChatStream<Stream>::write(std::string bytes, bool chunk) {
  writing_ = true;
  auto buf = std::make_shared<std::string>(std::move(bytes));
  auto done = [self = this->shared_from_this(), buf](beast::error_code ec, std::size_t) {
    self->on_written(ec);
  };
  if (chunk) {
    net::async_write(stream_, http::make_chunk(net::buffer(*buf)), std::move(done));
  } else {
    net::async_write(stream_, net::buffer(*buf), std::move(done));
  }
}

template <class Stream>
void HttpChatStream<Stream>::on_written(beast::error_code ec) {
  writing_ = false;
  if (ec) return stop("write failed: " + ec.message());
  slow_.progress();
  pull();  // what came meanwhile, and the next write
  if (writing_ || stopped_) return;
  if (!pending_.empty()) return write(std::exchange(pending_, {}), true);
  if (done_) finish_sse();
}

template <class Stream>
void HttpChatStream<Stream>::finish_sse() {
  // The answer is complete: its connection's place goes back now, before the
  // last bytes leave, so that a client that sends its next request the
  // moment it has this answer finds the place free.
  ticket_.reset();
  arm_write_deadline(std::chrono::seconds(5));
  net::async_write(stream_, http::make_chunk_last(),
                   [self = this->shared_from_this()](beast::error_code, std::size_t) {
                     self->stop("answered");
                   });
}

template <class Stream>
void HttpChatStream<Stream>::reply_json(unsigned status, std::string body) {
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
  res->set(http::field::server, "sluice");
  res->set(http::field::content_type, "application/json");
  res->set(http::field::cache_control, "no-store");
  for (const auto& [k, v] : options_.headers) res->set(k, v);
  res->keep_alive(false);
  res->body() = std::move(body);
  res->prepare_payload();
  ticket_.reset();  // complete: the place goes back before the bytes leave (finish_sse)
  writing_ = true;
  arm_write_deadline(state_->config.limits.slow_consumer_timeout);
  http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code, std::size_t) {
    self->writing_ = false;
    self->stop("answered");
  });
}

template <class Stream>
void HttpChatStream<Stream>::watch_peer() {
  // The client sends nothing more on this connection; a read that ends tells
  // us it went away, even while the turn is quiet.
  stream_.async_read_some(
      net::buffer(&probe_, 1), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec && !self->stopped_) {
          net::post(self->stream_.get_executor(), [self] { self->stop("client went away"); });
        } else if (!ec) {
          self->watch_peer();
        }
      });
}

template <class Stream>
void HttpChatStream<Stream>::stop(std::string_view why) {
  if (stopped_) return;
  stopped_ = true;
  spdlog::debug("http stream for session {}: {}", session_->id(), why);
  // Detaching does not stop the turn: it runs on for resume.grace_ms.
  session_->detach(this);
  pump_.clear();
  slow_.cancel();
  write_deadline_.cancel();
  close_now(stream_);
}

template <class Stream>
void HttpChatStream<Stream>::arm_write_deadline(std::chrono::steady_clock::duration d) {
  const uint64_t write = ++writes_;
  write_deadline_.expires_after(d);
  write_deadline_.async_wait([self = this->shared_from_this(), write](beast::error_code ec) {
    if (ec || write != self->writes_) return;
    self->state_->stats.slow_consumer_closes_http->inc();
    self->stop("the client took nothing for limits.slow_consumer_timeout_ms");
  });
}

template class HttpChatStream<PlainStream>;
template class HttpChatStream<TlsStream>;

}  // namespace sluice
