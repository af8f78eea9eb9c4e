#include "gateway/net/connection_ticket.hpp"

#include <utility>

#include "gateway/net/server_state.hpp"

namespace sluice {

ConnectionTicket::ConnectionTicket(ConnectionTicket&& other) noexcept
    : state_(std::move(other.state_)),
      principal_(std::move(other.principal_)),
      has_principal_(std::exchange(other.has_principal_, false)) {}

ConnectionTicket& ConnectionTicket::operator=(ConnectionTicket&& other) noexcept {
  if (this != &other) {
    reset();
    state_ = std::move(other.state_);
    principal_ = std::move(other.principal_);
    has_principal_ = std::exchange(other.has_principal_, false);
  }
  return *this;
}

ConnectionTicket ConnectionTicket::admit(const std::shared_ptr<ServerState>& state) {
  ConnectionTicket t;
  if (state->try_admit()) t.state_ = state;
  return t;
}

Admission ConnectionTicket::add_principal(const std::string& principal) {
  Admission a = state_->principal_limits->open_connection(principal);
  if (a.ok) {
    principal_ = principal;
    has_principal_ = true;
  }
  return a;
}

void ConnectionTicket::reset() {
  if (!state_) return;
  if (has_principal_) state_->principal_limits->close_connection(principal_);
  has_principal_ = false;
  std::exchange(state_, nullptr)->release_admission();
}

}  // namespace sluice
