// ServerState: what every connection of the server shares. Held by
// shared_ptr so that connections that outlive the Server object (their last
// handlers run while the io_context shuts down) still find it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"
#include "gateway/metrics/gateway_metrics.hpp"

namespace sluice {

class SessionRegistry;
class TlsContextStore;
class Authenticator;
class PrincipalLimits;

// A WebSocket connection as the server sees it when draining (the
// connection classes are templates over the transport).
class DrainableConnection {
 public:
  virtual ~DrainableConnection() = default;
  // Drain: the running turns end, their last events are delivered, then the
  // connection closes with 1001. Any thread.
  virtual void shutdown() = 0;
};

// An accepted connection that is not yet a WebSocket or a streaming answer,
// as the server sees it when it needs room (the sessions are templates over
// the transport).
class PendingConnection {
 public:
  virtual ~PendingConnection() = default;
  // Closes the connection (on its own strand); any thread.
  virtual void evict() = 0;
  // True while it waits for (the rest of) a request head or a TLS
  // handshake: nothing is lost by closing it.
  std::atomic<bool> waiting_for_request{true};
};

// With auth.mode = "none", every client is this one principal.
inline const std::string kAnonymousPrincipal = "anonymous";

class StaticFiles;

struct ServerState {
  ServerState(const Config& c, Engine& e, std::shared_ptr<SessionRegistry> s,
              std::shared_ptr<const Authenticator> a, std::shared_ptr<PrincipalLimits> l)
      : config(c),
        engine(e),
        sessions(std::move(s)),
        auth(std::move(a)),
        principal_limits(std::move(l)) {}

  const Config& config;
  Engine& engine;
  const std::shared_ptr<SessionRegistry> sessions;
  const std::shared_ptr<const Authenticator> auth;
  const std::shared_ptr<PrincipalLimits> principal_limits;
  const metrics::FaceStats stats = metrics::FaceStats::resolve();
  std::atomic<bool> draining{false};
  // Set when the listener speaks TLS (tls.* in the config).
  std::shared_ptr<TlsContextStore> tls;
  // Set when web.root names a directory: the files served at /.
  std::shared_ptr<const StaticFiles> web;

  // Client connections (WebSocket, and HTTP while it streams an answer),
  // counted through ConnectionTicket (connection_ticket.hpp).
  bool try_admit();  // false when limits.max_connections are open
  void release_admission();
  // The WebSocket connections that drain() closes.
  void add(uint64_t id, std::weak_ptr<DrainableConnection> conn);
  void remove(uint64_t id);
  std::vector<std::shared_ptr<DrainableConnection>> snapshot();
  size_t open_connections() const { return open_.load(); }

  // Accepted connections that are not (yet) a WebSocket or a streaming
  // answer: HTTP requests, keep-alive and TLS handshakes, upgrades under
  // way. Capped by limits.max_pending_connections at accept.
  std::atomic<size_t> pending_connections{0};
  struct PendingEntry {
    // Alive while listed: its destructor removes it under the same lock.
    PendingConnection* conn;
    std::weak_ptr<PendingConnection> owner;
  };
  using PendingList = std::list<PendingEntry>;
  PendingList::iterator add_pending(PendingConnection* conn, std::weak_ptr<PendingConnection> owner);
  void remove_pending(PendingList::iterator it);
  // Closes the oldest pending connection that waits for a request, to make
  // room for a new one (as nginx drains idle keep-alive connections when it
  // runs out); false when every pending connection is busy.
  bool evict_oldest_idle();
  uint64_t next_id() { return ++last_id_; }

  // Calls `cb` once no connection is open: now (returning true) or when the
  // last one closes.
  bool call_when_empty(std::function<void()> cb);

 private:
  std::function<void()> on_empty_;
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> last_id_{0};
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::weak_ptr<DrainableConnection>> connections_;
  std::mutex pending_mutex_;
  PendingList pending_;  // oldest first
};

}  // namespace sluice
