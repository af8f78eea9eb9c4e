// ConnectionTicket: one admitted client connection. It holds a place in
// limits.max_connections and, once add_principal() succeeded, one of that
// principal's connections (PrincipalLimits); both are given back when the
// ticket is destroyed. A request that is refused after admission simply
// drops its ticket, so no refusal path can leak a place, and nothing that a
// refused request would create is made before it holds one.
//
// Threads: a ticket belongs to one connection (its strand); moving it
// between owners is fine, sharing it is not.
#pragma once

#include <memory>
#include <string>

#include "gateway/auth/principal_limits.hpp"

namespace sluice {

struct ServerState;

class ConnectionTicket {
 public:
  ConnectionTicket() = default;
  ~ConnectionTicket() { reset(); }
  ConnectionTicket(ConnectionTicket&& other) noexcept;
  ConnectionTicket& operator=(ConnectionTicket&& other) noexcept;
  ConnectionTicket(const ConnectionTicket&) = delete;
  ConnectionTicket& operator=(const ConnectionTicket&) = delete;

  // A place in limits.max_connections; an empty ticket when they are all
  // taken.
  static ConnectionTicket admit(const std::shared_ptr<ServerState>& state);

  explicit operator bool() const { return state_ != nullptr; }
  // Also counts the connection against `principal`'s limit; the refusal
  // when the principal has no connection left (the ticket stays admitted).
  Admission add_principal(const std::string& principal);
  bool has_principal() const { return has_principal_; }
  // Gives everything back now.
  void reset();

 private:
  std::shared_ptr<ServerState> state_;
  std::string principal_;
  bool has_principal_ = false;
};

}  // namespace sluice
