// HttpSession: one accepted TCP connection speaking HTTP/1.1 until it asks
// for a WebSocket upgrade at /v1/ws, which hands the socket to WsConnection.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>

namespace sluice {

struct ServerState;

// `metrics_only`: the metrics.listen address (plain HTTP, /metrics and
// /healthz only).
void run_http_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<ServerState> state,
                      bool metrics_only = false);

}  // namespace sluice
