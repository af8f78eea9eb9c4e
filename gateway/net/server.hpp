// Server: the listening port, plain or TLS. Serves GET /healthz, GET /readyz and the
// WebSocket upgrade at /v1/ws (docs/protocol.md), and drains on request.
//
// Threads: start() and drain() from any one thread; the work runs on the
// io_context's threads, each connection on its own strand.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>

#include "gateway/common/io_pool.hpp"
#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"

namespace sluice {

struct ServerState;
class SessionRegistry;
class Authenticator;
class PrincipalLimits;
class TlsContextStore;
class StaticFiles;

class Server {
 public:
  Server(IoPool& pool, const Config& config, Engine& engine,
         std::shared_ptr<SessionRegistry> sessions, std::shared_ptr<const Authenticator> auth,
         std::shared_ptr<PrincipalLimits> principal_limits);
  ~Server();

  // Serve TLS with the store's current context (call before start).
  void use_tls(std::shared_ptr<TlsContextStore> tls);
  // Files served at / (web.root), loaded before the server starts.
  void use_web(std::shared_ptr<const StaticFiles> web);

  // Binds server.listen and starts accepting; false (with `error` filled)
  // when the address cannot be bound.
  bool start(std::string& error);
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // The metrics.listen address, when set.
  std::optional<boost::asio::ip::tcp::endpoint> metrics_endpoint() const;

  // Stops accepting, cancels every turn, closes every client with 1001 and
  // calls `on_drained` when the last connection is gone.
  void drain(std::function<void()> on_drained);
  size_t open_connections() const;

 private:
  class Listener;
  IoPool& pool_;
  std::shared_ptr<ServerState> state_;
  std::shared_ptr<Listener> listener_;
  std::shared_ptr<Listener> metrics_listener_;
  void register_metrics();
};

}  // namespace sluice
