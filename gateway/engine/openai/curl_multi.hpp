// CurlMulti: one libcurl multi handle driven by Asio. libcurl tells us which
// sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
// (CURLMOPT_TIMERFUNCTION); Asio waits for readiness and calls
// curl_multi_socket_action. Sockets are opened as Asio sockets through
// CURLOPT_OPENSOCKETFUNCTION so that Asio owns their readiness waits. No
// thread per request, and nothing blocks.
//
// Threads: every member must be called on `executor` (a strand); every
// callback runs there. Connections are cached by the multi handle and reused
// (HTTP keep-alive).
#pragma once

#include <curl/curl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
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
  struct Watch;

  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  static curl_socket_t on_open(void* clientp, curlsocktype purpose, struct curl_sockaddr* addr);
  static int on_close(void* clientp, curl_socket_t fd);

  void arm(const std::shared_ptr<Watch>& w, bool read);
  void on_ready(const std::shared_ptr<Watch>& w, bool read, const boost::system::error_code& ec);
  void on_timeout(const boost::system::error_code& ec);
  void drain_messages();

  boost::asio::any_io_executor executor_;
  CURLM* multi_;
  boost::asio::steady_timer timer_;
  std::unordered_map<curl_socket_t, std::shared_ptr<Watch>> sockets_;
  std::unordered_map<CURL*, DoneHandler> handlers_;
};

}  // namespace sluice
