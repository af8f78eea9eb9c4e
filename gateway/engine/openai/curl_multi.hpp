// CurlMulti: one libcurl multi handle driven by Asio. libcurl tells us which
// sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
// (CURLMOPT_TIMERFUNCTION); we wait for readiness and call
// curl_multi_socket_action. No thread per request, and nothing blocks.
//
// The sockets are watched through an epoll set of the multi handle's own
// (level-triggered), and Asio waits on that one descriptor. An Asio
// async_wait on each socket would cost an epoll_ctl per read: Asio's
// edge-triggered reactor re-arms a descriptor on every non-speculative wait
// so that no edge is lost. Here a socket costs an epoll_ctl only when
// libcurl changes what it wants from it, and one wake-up serves every socket
// that became ready together.
//
// Threads: every member must be called on `executor` (a strand); every
// callback runs there. Connections are cached by the multi handle and reused
// (HTTP keep-alive).
#pragma once

#include <curl/curl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <unordered_map>

namespace sluice {

class CurlMulti {
 public:
  using DoneHandler = std::function<void(CURLcode)>;

  explicit CurlMulti(boost::asio::any_io_executor executor);
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  // Starts `easy`; `on_done` runs once when the transfer ends, after the
  // handle was removed from the multi handle (the caller then owns it again).
  void add(CURL* easy, DoneHandler on_done);
  // Stops `easy` now, without calling its handler. Its connection is closed
  // at once, which tells the peer the request was abandoned.
  void remove(CURL* easy);

  const boost::asio::any_io_executor& executor() const { return executor_; }

 private:
  using Clock = std::chrono::steady_clock;

  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  static curl_socket_t on_open(void* clientp, curlsocktype purpose, struct curl_sockaddr* addr);
  static int on_close(void* clientp, curl_socket_t fd);

  // Makes the epoll set watch `fd` for `events` (0: not at all).
  void watch(curl_socket_t fd, uint32_t events);
  void wait_ready();
  void on_ready(const boost::system::error_code& ec);
  void arm_timer(Clock::time_point at);
  void on_timeout(const boost::system::error_code& ec);
  void drain_messages();

  boost::asio::any_io_executor executor_;
  CURLM* multi_;
  boost::asio::posix::stream_descriptor epoll_;  // the sockets' epoll set
  bool waiting_ = false;                          // an async_wait on epoll_ is pending
  std::unordered_map<curl_socket_t, uint32_t> watched_;  // fd -> epoll events
  // libcurl's timer: when it wants to be called (none: no timer). The wait
  // in flight may be earlier; it then waits again for the rest, so that a
  // later deadline never cancels and re-arms the timer.
  std::optional<Clock::time_point> deadline_;
  std::optional<Clock::time_point> timer_at_;  // the expiry of the wait in flight
  boost::asio::steady_timer timer_;
  std::unordered_map<CURL*, DoneHandler> handlers_;
};

}  // namespace sluice
