#include "gateway/net/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/net/http_session.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/net/ws_connection.hpp"
#include "gateway/stream/session_registry.hpp"

namespace sluice {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

bool ServerState::try_admit() {
  size_t n = open_.load();
  while (n < config.limits.max_connections) {
    if (open_.compare_exchange_weak(n, n + 1)) return true;
  }
  return false;
}

void ServerState::add(uint64_t id, std::weak_ptr<DrainableConnection> conn) {
  std::lock_guard lock(mutex_);
  connections_.emplace(id, std::move(conn));
}

void ServerState::remove(uint64_t id) {
  std::lock_guard lock(mutex_);
  connections_.erase(id);
}

void ServerState::release_admission() {
  std::function<void()> empty;
  {
    std::lock_guard lock(mutex_);
    if (open_.fetch_sub(1) == 1) {
      empty = std::move(on_empty_);
      on_empty_ = nullptr;
    }
  }
  if (empty) empty();
}

bool ServerState::call_when_empty(std::function<void()> cb) {
  {
    std::lock_guard lock(mutex_);
    if (open_.load() != 0) {
      on_empty_ = std::move(cb);
      return false;
    }
  }
  cb();
  return true;
}

ServerState::PendingList::iterator ServerState::add_pending(PendingConnection* conn,
                                                            std::weak_ptr<PendingConnection> owner) {
  std::lock_guard lock(pending_mutex_);
  return pending_.insert(pending_.end(), {conn, std::move(owner)});
}

void ServerState::remove_pending(PendingList::iterator it) {
  std::lock_guard lock(pending_mutex_);
  pending_.erase(it);
}

bool ServerState::evict_oldest_idle() {
  std::shared_ptr<PendingConnection> victim;  // released outside the lock
  {
    std::lock_guard lock(pending_mutex_);
    for (auto& e : pending_) {
      // exchange: two evictions never pick the same connection. A listed
      // connection may be in its destructor (waiting for this lock to
      // unlist itself): lock() then fails and it is skipped.
      if (!e.conn->waiting_for_request.exchange(false)) continue;
      if ((victim = e.owner.lock())) break;
    }
  }
  if (!victim) return false;
  victim->evict();
  return true;
}

std::vector<std::shared_ptr<DrainableConnection>> ServerState::snapshot() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<DrainableConnection>> out;
  for (auto& [id, weak] : connections_) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

class Server::Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(IoPool& pool, std::shared_ptr<ServerState> state, bool metrics_only = false)
      : pool_(pool),
        acceptor_(net::make_strand(pool.context(0))),
        backoff_(acceptor_.get_executor()),
        state_(std::move(state)),
        metrics_only_(metrics_only) {}

  bool open(const tcp::endpoint& ep, std::string& error) {
    boost::system::error_code ec;
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "cannot listen on " + ep.address().to_string() + ":" + std::to_string(ep.port()) +
              ": " + ec.message();
      return false;
    }
    return true;
  }

  void run() { do_accept(); }

  void stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->acceptor_.close(ignored);
      self->backoff_.cancel();
    });
  }

  tcp::endpoint local_endpoint() const {
    boost::system::error_code ec;
    return acceptor_.local_endpoint(ec);
  }

 private:
  void do_accept() {
    // Each connection goes to the next I/O context, where everything it
    // starts stays (io_pool.hpp).
    acceptor_.async_accept(net::make_strand(pool_.next()),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void on_accept(boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (out_of_resources(ec)) {
      // The connection stays in the listen backlog: accepting again at once
      // would fail again at once (a busy loop). Free a descriptor by closing
      // the oldest idle pending connection if there is one, else wait,
      // longer each time; never stop the listener.
      count_refusal("fd_exhausted", ec.message());
      if (!metrics_only_ && state_->evict_oldest_idle()) {
        count_refusal("idle_evicted", "closed an idle connection to free a descriptor");
        backoff_ms_ = kFirstBackoffMs;
      } else {
        backoff_ms_ = std::min(kMaxBackoffMs, backoff_ms_ == 0 ? kFirstBackoffMs : backoff_ms_ * 2);
      }
      backoff_.expires_after(std::chrono::milliseconds(backoff_ms_));
      backoff_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
        if (!wait_ec && self->acceptor_.is_open()) self->do_accept();
      });
      return;
    }
    backoff_ms_ = 0;
    if (ec) {
      spdlog::warn("accept: {}", ec.message());  // ECONNABORTED and the like: one connection
    } else if (!metrics_only_ && !make_room()) {
      count_refusal("pending_limit", "limits.max_pending_connections connections are busy with "
                                     "requests; closing new ones");
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      // Tokens are small frames sent as they come: with Nagle's algorithm
      // a frame would wait for the ACK of the one before it, which a client
      // that only reads delays by up to 40 ms.
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      run_http_session(std::move(socket), state_, metrics_only_);
    }
    do_accept();
  }

  // At limits.max_pending_connections, closes the oldest idle pending
  // connection to make room for the new one; false when all are busy.
  bool make_room() {
    if (state_->pending_connections.load() < state_->config.limits.max_pending_connections) return true;
    if (!state_->evict_oldest_idle()) return false;
    count_refusal("idle_evicted", "limits.max_pending_connections reached; closed the oldest idle one");
    return true;
  }

  static bool out_of_resources(const boost::system::error_code& ec) {
    return ec == boost::system::errc::too_many_files_open ||
           ec == boost::system::errc::too_many_files_open_in_system ||
           ec == boost::system::errc::no_buffer_space || ec == boost::system::errc::not_enough_memory;
  }

  // Counts a connection turned away or closed for room; logs at most one
  // line a second, saying how many such events the line stands for.
  void count_refusal(std::string_view reason, const std::string& what) {
    if (auto* m = metrics::active()) m->connections_refused.with({reason}).inc();
    ++refused_since_log_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log_ < std::chrono::seconds(1)) return;
    spdlog::warn("accept: {} [{}; {} such event{} since the last line, see "
                 "sluice_connections_refused_total]",
                 what, reason, refused_since_log_, refused_since_log_ == 1 ? "" : "s");
    refused_since_log_ = 0;
    last_refusal_log_ = now;
  }

  static constexpr int kFirstBackoffMs = 10;
  static constexpr int kMaxBackoffMs = 1000;

  IoPool& pool_;
  tcp::acceptor acceptor_;
  net::steady_timer backoff_;  // on the acceptor's strand, like everything below
  int backoff_ms_ = 0;
  uint64_t refused_since_log_ = 0;
  std::chrono::steady_clock::time_point last_refusal_log_{};
  std::shared_ptr<ServerState> state_;
  const bool metrics_only_;
};

Server::Server(IoPool& pool, const Config& config, Engine& engine,
               std::shared_ptr<SessionRegistry> sessions, std::shared_ptr<const Authenticator> auth,
               std::shared_ptr<PrincipalLimits> principal_limits)
    : pool_(pool),
      state_(std::make_shared<ServerState>(config, engine, std::move(sessions), std::move(auth),
                                           std::move(principal_limits))) {}

Server::~Server() = default;

void Server::use_tls(std::shared_ptr<TlsContextStore> tls) { state_->tls = std::move(tls); }

void Server::use_web(std::shared_ptr<const StaticFiles> web) { state_->web = std::move(web); }

bool Server::start(std::string& error) {
  boost::system::error_code ec;
  const auto address = net::ip::make_address(state_->config.server.listen_host, ec);
  if (ec) {
    error = "server.listen: \"" + state_->config.server.listen_host +
            "\" is not an IP address";
    return false;
  }
  listener_ = std::make_shared<Listener>(pool_, state_);
  if (!listener_->open({address, state_->config.server.listen_port}, error)) return false;
  const auto& mc = state_->config.metrics;
  if (mc.enabled && !mc.listen_host.empty()) {
    const auto maddress = net::ip::make_address(mc.listen_host, ec);
    if (ec) {
      error = "metrics.listen: \"" + mc.listen_host + "\" is not an IP address";
      return false;
    }
    metrics_listener_ = std::make_shared<Listener>(pool_, state_, true);
    if (!metrics_listener_->open({maddress, mc.listen_port}, error)) return false;
    metrics_listener_->run();
  }
  listener_->run();
  register_metrics();
  return true;
}

tcp::endpoint Server::local_endpoint() const { return listener_->local_endpoint(); }

std::optional<tcp::endpoint> Server::metrics_endpoint() const {
  if (!metrics_listener_) return std::nullopt;
  return metrics_listener_->local_endpoint();
}

void Server::register_metrics() {
  auto* m = metrics::active();
  if (!m) return;
  std::weak_ptr<ServerState> weak = state_;
  m->registry.collected({"sluice_connections", "Client connections open (WebSocket and streaming HTTP)",
                         metrics::Type::kGauge, {}, [weak](const auto& emit) {
                           if (auto s = weak.lock()) emit({}, static_cast<double>(s->open_connections()));
                         }});
  m->registry.collected({"sluice_pending_connections",
                         "Accepted connections not yet a WebSocket or a streaming answer",
                         metrics::Type::kGauge, {}, [weak](const auto& emit) {
                           if (auto s = weak.lock()) emit({}, static_cast<double>(s->pending_connections.load()));
                         }});
  std::weak_ptr<SessionRegistry> sessions = state_->sessions;
  m->registry.collected({"sluice_sessions", "Sessions held (running a turn, or resumable)",
                         metrics::Type::kGauge, {}, [sessions](const auto& emit) {
                           if (auto s = sessions.lock()) emit({}, static_cast<double>(s->size()));
                         }});
}

size_t Server::open_connections() const { return state_->open_connections(); }

void Server::drain(std::function<void()> on_drained) {
  if (state_->draining.exchange(true)) return;
  if (listener_) listener_->stop();
  if (metrics_listener_) metrics_listener_->stop();
  state_->sessions->cancel_all({ErrorCode::kShuttingDown, "the gateway is shutting down"});
  state_->engine.shutdown();
  for (const auto& c : state_->snapshot()) c->shutdown();
  state_->call_when_empty(std::move(on_drained));
}

}  // namespace sluice
