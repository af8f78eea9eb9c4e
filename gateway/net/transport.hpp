// The two transports a client connection runs over: plain TCP, and TLS over
// TCP when tls.* is configured. The connection classes (HttpSession,
// WsConnection, HttpChatStream) are templates over one of these and are
// instantiated for both in their .cpp files.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <type_traits>

namespace sluice {

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

template <class Stream>
inline constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// Closes the TCP connection under `s` at once, cancelling what is pending.
template <class Stream>
void close_now(Stream& s) {
  boost::beast::error_code ignored;
  auto& socket = boost::beast::get_lowest_layer(s).socket();
  socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace sluice
