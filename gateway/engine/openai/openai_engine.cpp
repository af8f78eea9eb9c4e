#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/engine/openai/openai_engine.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <unordered_set>

#include "gateway/common/json_writer.hpp"
#include "gateway/engine/openai/chunk_decoder.hpp"
#include "gateway/engine/openai/curl_multi.hpp"
#include "gateway/engine/openai/sse_parser.hpp"
#include "gateway/engine/openai/upstream_pool.hpp"

namespace sluice {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

class Turn;

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr int64_t kMaxToolCalls = 64;  // parallel tool calls in one answer

struct Shard {
  explicit Shard(net::io_context& ioc) : strand(net::make_strand(ioc)), multi(strand) {}
  net::strand<net::io_context::executor_type> strand;
  CurlMulti multi;  // declared before `turns`: turns release their handles into it
  ChunkDecoder decoder;
  std::unordered_set<std::shared_ptr<Turn>> turns;
  bool shutting_down = false;
};

}  // namespace

struct OpenAiEngine::Shared {
  Shared(const OpenAiConfig& c)
      : config(c), pool(c.urls, c.eject_after_failures, c.eject_duration) {}
  OpenAiConfig config;
  UpstreamPool pool;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::vector<Shard*>> by_context;  // the shards of each pool context
  std::atomic<size_t> next_shard{0};
};

namespace {

struct Failure {
  TurnError error;              // what the client reads: never an address
  bool retryable = false;       // worth another attempt, if no token was sent yet
  bool endpoint_fault = false;  // counts towards ejecting the endpoint
};

std::string build_body(const OpenAiConfig& config, const TurnRequest& request) {
  JsonWriter w;
  w.begin_object().field("model", request.model.empty() ? config.model : request.model);
  w.key("messages").begin_array();
  for (const auto& m : request.messages) {
    w.begin_object().field("role", m.role);
    if (!m.tool_calls_json.empty()) {
      if (m.content.empty()) {
        w.key("content").null();
      } else {
        w.field("content", m.content);
      }
      w.key("tool_calls").raw(m.tool_calls_json);
    } else {
      w.field("content", m.content);
    }
    if (!m.tool_call_id.empty()) w.field("tool_call_id", m.tool_call_id);
    w.end_object();
  }
  if (!request.continue_final.empty()) {
    w.begin_object().field("role", "assistant").field("content", request.continue_final).end_object();
  }
  w.end_array();
  if (!request.continue_final.empty()) {
    // vLLM's fields: the answer goes on inside that assistant message.
    w.field("continue_final_message", true).field("add_generation_prompt", false);
  }
  if (!request.tools_json.empty()) w.key("tools").raw(request.tools_json);
  w.field("stream", true);
  w.key("stream_options").begin_object().field("include_usage", true).end_object();
  for (const auto& [key, json] : request.params.fields) {
    // The operator's fixed fields win over the client's.
    const auto& fixed = config.extra_field_names;
    if (std::find(fixed.begin(), fixed.end(), key) != fixed.end()) continue;
    w.key(key).raw(json);
  }
  std::string body = w.take();
  if (!config.extra_fields_json.empty()) body += "," + config.extra_fields_json;
  body += '}';
  return body;
}

// One chat turn against the upstream pool. Lives on its shard's strand.
class Turn : public std::enable_shared_from_this<Turn> {
 public:
  Turn(std::shared_ptr<OpenAiEngine::Shared> shared, Shard& shard, TurnRequest request,
       std::shared_ptr<TurnSink> sink)
      : shared_(std::move(shared)),
        shard_(shard),
        config_(shared_->config),
        sink_(std::move(sink)),
        trace_id_(request.trace_id),
        model_(request.model.empty() ? config_.model : request.model),
        body_(build_body(config_, request)),
        parser_(config_.max_event_bytes),
        deadline_(shard.strand),
        backoff_(shard.strand) {
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: text/event-stream");
    headers_ = curl_slist_append(headers_, "Expect:");
    if (!request.traceparent.empty()) {
      headers_ = curl_slist_append(headers_, ("traceparent: " + request.traceparent).c_str());
    }
    if (!config_.api_key.empty()) {
      headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + config_.api_key).c_str());
    }
  }

  ~Turn() {
    release_easy();
    curl_slist_free_all(headers_);
  }

  void begin() {
    if (shard_.shutting_down) {
      finish_error({ErrorCode::kShuttingDown, "the gateway is shutting down"});
      return;
    }
    shard_.turns.insert(shared_from_this());
    attempt();
  }

  void cancel(std::optional<TurnError> why = std::nullopt) {
    if (ended_) return;
    cancelled_ = true;
    release_easy();
    disarm_deadline();
    backoff_.cancel();
    TurnResult r;
    r.finish_reason = FinishReason::kCancelled;
    r.error = std::move(why);
    finish(std::move(r));
  }

  // Drops the transfer without reporting anything: the engine is going away.
  void detach() {
    release_easy();
    disarm_deadline();
    backoff_.cancel();
  }

 private:
  void attempt() {
    ++attempts_;
    endpoint_ = shared_->pool.pick(Clock::now(), last_failed_);
    status_ = 0;
    error_body_.clear();
    tool_calls_.clear();
    parser_ = SseParser(config_.max_event_bytes);
    pending_.reset();
    finish_reason_.clear();

    easy_ = curl_easy_init();
    url_ = shared_->pool.url(endpoint_) + "/chat/completions";
    if (auto* m = metrics::active()) m->upstream_requests.with({shared_->pool.url(endpoint_)}).inc();
    curl_easy_setopt(easy_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body_.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &Turn::on_write);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, curl_error_);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(config_.connect_timeout.count()));
    curl_easy_setopt(easy_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy_, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy_, CURLOPT_USERAGENT, "sluice/0.1");
    curl_error_[0] = '\0';

    arm_deadline(config_.first_token_timeout);
    shard_.multi.add(easy_, [self = shared_from_this()](CURLcode rc) { self->on_done(rc); });
  }

  static size_t on_write(char* data, size_t size, size_t n, void* userp) {
    return static_cast<Turn*>(userp)->on_body({data, size * n});
  }

  size_t on_body(std::string_view bytes) {
    if (ended_) return bytes.size();  // after [DONE]: let the response finish for reuse
    if (status_ == 0) {
      long code = 0;
      curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
      status_ = code;
      if (status_ == 200) {
        const char* type = nullptr;
        curl_easy_getinfo(easy_, CURLINFO_CONTENT_TYPE, &type);
        if (!type || std::string_view(type).rfind("text/event-stream", 0) != 0) {
          pending_ = Failure{{ErrorCode::kUpstreamProtocol,
                              std::string("upstream answered with Content-Type ") +
                                  (type ? type : "(none)") + ", not text/event-stream"},
                             false, true};
          return CURL_WRITEFUNC_ERROR;
        }
      }
    }
    if (status_ != 200) {
      const size_t room = kMaxErrorBody - std::min(kMaxErrorBody, error_body_.size());
      error_body_.append(bytes.substr(0, room));
      return bytes.size();
    }
    const auto status =
        parser_.feed(bytes, [this](const SseEvent& e) { on_event(e); });
    if (status != SseParser::Status::kOk && !pending_) {
      pending_ = Failure{{ErrorCode::kUpstreamProtocol,
                          "upstream sent an event larger than openai.max_event_bytes"},
                         false, true};
    }
    return pending_ ? CURL_WRITEFUNC_ERROR : bytes.size();
  }

  void on_event(const SseEvent& e) {
    if (ended_ || pending_) return;
    StreamChunk chunk = shard_.decoder.decode(e.data);
    switch (chunk.kind) {
      case StreamChunk::Kind::kDone: {
        shared_->pool.report_success(endpoint_);
        TurnResult r;
        r.finish_reason = finish_reason_from_upstream(finish_reason_);
        finish(std::move(r));
        // The response is done in all but its last bytes; give it the idle
        // timeout to end so the connection can be reused.
        arm_deadline(config_.idle_timeout);
        return;
      }
      case StreamChunk::Kind::kError:
        pending_ = Failure{{ErrorCode::kUpstreamError, "upstream error: " + chunk.message}, true,
                           true};
        return;
      case StreamChunk::Kind::kMalformed:
        pending_ = Failure{{ErrorCode::kUpstreamProtocol, chunk.message}, false, true};
        return;
      case StreamChunk::Kind::kData:
        break;
    }
    if (chunk.usage) {
      usage_ = *chunk.usage;
      has_usage_ = true;
    }
    if (!chunk.finish_reason.empty()) finish_reason_ = chunk.finish_reason;
    for (auto& f : chunk.tool_calls) {
      if (f.index < 0 || f.index >= kMaxToolCalls) {
        pending_ = Failure{{ErrorCode::kUpstreamProtocol, "tool call index out of range"}, false, true};
        return;
      }
      if (tool_calls_.size() <= static_cast<size_t>(f.index)) tool_calls_.resize(f.index + 1);
      ToolCall& call = tool_calls_[f.index];
      if (!f.id.empty()) call.id = std::move(f.id);
      if (!f.name.empty()) call.name = std::move(f.name);
      call.arguments += f.arguments;
      if (call.arguments.size() > config_.max_event_bytes) {
        pending_ = Failure{{ErrorCode::kUpstreamProtocol, "tool call arguments over openai.max_event_bytes"},
                           false, true};
        return;
      }
      if (!first_token_sent_) first_token_sent_ = true;  // no retry once the model has answered
    }
    if (!chunk.content.empty()) {
      if (!first_token_sent_) first_token_sent_ = true;
      ++deltas_;
      sink_->on_delta(std::move(chunk.content));
    }
    if (first_token_sent_) arm_deadline(config_.idle_timeout);
  }

  void on_done(CURLcode rc) {
    disarm_deadline();
    long code = status_;
    if (code == 0 && easy_) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &code);
    // curl's error buffer names the address ("Failed to connect to 10.0.0.7
    // port 8000"); its strerror does not.
    const std::string log_detail = curl_error_[0] ? curl_error_ : "";
    const std::string generic = curl_easy_strerror(rc);
    curl_easy_cleanup(easy_);
    easy_ = nullptr;
    if (ended_) return release_if_done();

    if (pending_) return conclude(*pending_);
    if (rc != CURLE_OK) {
      switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
          return conclude({{ErrorCode::kUpstreamUnavailable,
                            "cannot connect to the upstream (" + generic + ")"},
                           true, true}, log_detail);
        case CURLE_OPERATION_TIMEDOUT:
          return conclude({{ErrorCode::kUpstreamTimeout,
                            "connecting to the upstream timed out"},
                           true, true}, log_detail);
        default:
          return conclude({{ErrorCode::kUpstreamDisconnected,
                            "the upstream connection failed (" + generic + ")"},
                           true, true}, log_detail);
      }
    }
    if (code != 200) {
      const std::string message = "upstream answered HTTP " + std::to_string(code) +
                                  ": " + shard_.decoder.error_body_message(error_body_);
      if (code == 429 || code >= 500) {
        return conclude({{ErrorCode::kUpstreamError, message}, true, true});
      }
      return conclude({{ErrorCode::kUpstreamRejected, message}, false, false});
    }
    if (!finish_reason_.empty()) {  // complete, only the [DONE] line missing
      shared_->pool.report_success(endpoint_);
      TurnResult r;
      r.finish_reason = finish_reason_from_upstream(finish_reason_);
      return finish(std::move(r));
    }
    conclude({{ErrorCode::kUpstreamDisconnected,
               "the upstream ended the stream before the answer was complete"},
              true, true});
  }

  void on_deadline(const boost::system::error_code& ec) {
    if (ec == net::error::operation_aborted || !easy_) return;
    release_easy();  // closes the connection: the upstream sees the abort
    if (ended_) return release_if_done();
    const auto ms = std::to_string(
        (first_token_sent_ ? config_.idle_timeout : config_.first_token_timeout).count());
    conclude({{ErrorCode::kUpstreamTimeout,
               first_token_sent_ ? "no token from upstream for " + ms + " ms"
                                 : "no first token from upstream within " + ms + " ms"},
              true, true});
  }

  // An attempt failed: try another endpoint if that is still safe, or end.
  // `log_detail` goes to the log only (curl's sentence names host and port).
  void conclude(const Failure& f, std::string_view log_detail = {}) {
    if (auto* m = metrics::active()) m->upstream_errors.with({to_string(f.error.code)}).inc();
    if (f.endpoint_fault) shared_->pool.report_failure(endpoint_, Clock::now());
    last_failed_ = endpoint_;
    const bool retry = f.retryable && !first_token_sent_ && !cancelled_ &&
                       !shard_.shutting_down && attempts_ < config_.max_attempts;
    // Client messages never name upstream addresses; the log does.
    spdlog::warn("trace {}: attempt {} to {} failed: {} ({}{}{}){}", trace_id_, attempts_,
                 shared_->pool.url(endpoint_), to_string(f.error.code), f.error.message,
                 log_detail.empty() ? "" : "; ", log_detail, retry ? "; retrying" : "");
    if (!retry) return finish_error(f.error);
    backoff_.expires_after(config_.retry_backoff * attempts_);
    backoff_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && !self->ended_) self->attempt();
    });
  }

  void finish_error(TurnError error) {
    TurnResult r;
    r.finish_reason = FinishReason::kError;
    r.error = std::move(error);
    finish(std::move(r));
  }

  void finish(TurnResult r) {
    if (ended_) return;
    ended_ = true;
    r.engine = "openai";
    r.model = model_;
    r.upstream = shared_->pool.url(endpoint_);
    r.attempts = attempts_;
    r.has_usage = has_usage_;
    r.usage = usage_;
    if (r.finish_reason == FinishReason::kToolCalls) r.tool_calls = std::move(tool_calls_);
    if (!has_usage_) r.usage.completion_tokens = deltas_;
    auto sink = std::move(sink_);
    sink->on_end(std::move(r));
    release_if_done();
  }

  // The deadline moves on with every token, but the timer is re-armed only
  // when it has to fire earlier than the wait in flight: a wait that wakes
  // before the deadline waits again for the rest. No cancel per token.
  void arm_deadline(Millis after) {
    const auto at = Clock::now() + after;
    deadline_at_ = at;
    if (deadline_armed_ && deadline_wait_at_ <= at) return;
    wait_deadline(at);
  }

  void wait_deadline(Clock::time_point at) {
    deadline_armed_ = true;
    deadline_wait_at_ = at;
    deadline_.expires_at(at);  // cancels a later wait in flight
    deadline_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec == net::error::operation_aborted) return;  // disarmed, or replaced by an earlier wait
      self->deadline_armed_ = false;
      if (Clock::now() < self->deadline_at_) return self->wait_deadline(self->deadline_at_);
      self->on_deadline(ec);
    });
  }

  void disarm_deadline() {
    deadline_armed_ = false;
    deadline_.cancel();
  }

  void release_easy() {
    if (!easy_) return;
    shard_.multi.remove(easy_);
    curl_easy_cleanup(easy_);
    easy_ = nullptr;
  }

  void release_if_done() {
    if (!ended_ || easy_) return;
    disarm_deadline();
    auto self = shared_from_this();
    shard_.turns.erase(self);
  }

  std::shared_ptr<OpenAiEngine::Shared> shared_;
  Shard& shard_;
  const OpenAiConfig& config_;
  std::shared_ptr<TurnSink> sink_;
  std::string trace_id_;
  std::string model_;
  std::string body_;
  std::string url_;
  curl_slist* headers_ = nullptr;
  CURL* easy_ = nullptr;
  char curl_error_[CURL_ERROR_SIZE] = {};
  long status_ = 0;
  std::string error_body_;
  SseParser parser_;
  std::optional<Failure> pending_;  // set inside libcurl callbacks, acted on in on_done
  net::steady_timer deadline_;      // first-token, then inter-token timeout
  Clock::time_point deadline_at_;       // when the turn times out
  Clock::time_point deadline_wait_at_;  // when the wait in flight wakes
  bool deadline_armed_ = false;
  net::steady_timer backoff_;
  size_t endpoint_ = 0;
  std::optional<size_t> last_failed_;
  int attempts_ = 0;
  int64_t deltas_ = 0;
  std::string finish_reason_;  // the upstream's own word, "" until it sends one
  std::vector<ToolCall> tool_calls_;  // by index, gathered from the fragments
  Usage usage_;
  bool has_usage_ = false;
  bool first_token_sent_ = false;
  bool cancelled_ = false;
  bool ended_ = false;
};

class TurnControl final : public TurnHandle {
 public:
  TurnControl(std::shared_ptr<Turn> turn, net::strand<net::io_context::executor_type> strand)
      : turn_(std::move(turn)), strand_(std::move(strand)) {}
  void cancel() override {
    net::post(strand_, [turn = turn_] { turn->cancel(); });
  }

 private:
  std::shared_ptr<Turn> turn_;
  net::strand<net::io_context::executor_type> strand_;
};

}  // namespace

OpenAiEngine::OpenAiEngine(IoPool& pool, const OpenAiConfig& config, int shards)
    : shared_(std::make_shared<Shared>(config)) {
  // At least one shard on every context, so that a turn can stay on the
  // thread of the connection that started it.
  const size_t n = std::max(static_cast<size_t>(std::max(1, shards)), pool.size());
  shared_->by_context.resize(pool.size());
  for (size_t i = 0; i < n; ++i) {
    shared_->shards.push_back(std::make_unique<Shard>(pool.context(i % pool.size())));
    shared_->by_context[i % pool.size()].push_back(shared_->shards.back().get());
  }
}

OpenAiEngine::~OpenAiEngine() {
  // Runs after the io_context stopped. Turns may outlive the engine (a
  // session still holds a handle); they must not keep transfers in a multi
  // handle that is about to go.
  for (auto& s : shared_->shards) {
    for (const auto& t : s->turns) t->detach();
    s->turns.clear();
  }
  shared_->shards.clear();
}

std::unique_ptr<TurnHandle> OpenAiEngine::start(TurnRequest request,
                                                std::shared_ptr<TurnSink> sink) {
  // A shard of the caller's own context (the connection's thread), else any.
  const size_t pick = shared_->next_shard.fetch_add(1, std::memory_order_relaxed);
  const int here = IoPool::current();
  const std::vector<Shard*>* local = nullptr;
  if (here >= 0 && static_cast<size_t>(here) < shared_->by_context.size()) {
    local = &shared_->by_context[static_cast<size_t>(here)];
  }
  Shard& shard = local && !local->empty() ? *(*local)[pick % local->size()]
                                          : *shared_->shards[pick % shared_->shards.size()];
  auto turn = std::make_shared<Turn>(shared_, shard, std::move(request), std::move(sink));
  net::post(shard.strand, [turn] { turn->begin(); });
  return std::make_unique<TurnControl>(turn, shard.strand);
}

bool OpenAiEngine::ready() const { return shared_->pool.any_healthy(Clock::now()); }

void OpenAiEngine::shutdown() {
  for (auto& s : shared_->shards) {
    net::post(s->strand, [shard = s.get()] {
      shard->shutting_down = true;
      const auto turns = shard->turns;  // cancel() erases from the set
      for (const auto& t : turns) {
        t->cancel(TurnError{ErrorCode::kShuttingDown, "the gateway is shutting down"});
      }
    });
  }
}

}  // namespace sluice
