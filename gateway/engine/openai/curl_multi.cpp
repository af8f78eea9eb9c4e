#include "gateway/engine/openai/curl_multi.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice {

namespace net = boost::asio;
using tcp = net::ip::tcp;

struct CurlMulti::Watch {
  tcp::socket socket;
  int want = 0;  // CURL_POLL_* that libcurl asked for
  bool reading = false;
  bool writing = false;
  bool closed = false;
  explicit Watch(const net::any_io_executor& ex) : socket(ex) {}
};

CurlMulti::CurlMulti(net::any_io_executor executor)
    : executor_(std::move(executor)), multi_(curl_multi_init()), timer_(executor_) {
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlMulti::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlMulti::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlMulti::~CurlMulti() {
  // Handlers may own the easy handles, and their owners call remove() when
  // destroyed: take them out of the map before letting them go.
  auto handlers = std::move(handlers_);
  handlers_.clear();
  for (auto& [easy, handler] : handlers) curl_multi_remove_handle(multi_, easy);
  handlers.clear();
  curl_multi_cleanup(multi_);  // closes cached connections through on_close
  for (auto& [fd, w] : sockets_) {
    w->closed = true;
    boost::system::error_code ignored;
    w->socket.close(ignored);
  }
}

void CurlMulti::add(CURL* easy, DoneHandler on_done) {
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &CurlMulti::on_open);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &CurlMulti::on_close);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, this);
  handlers_[easy] = std::move(on_done);
  if (const CURLMcode rc = curl_multi_add_handle(multi_, easy); rc != CURLM_OK) {
    auto handler = std::move(handlers_[easy]);
    handlers_.erase(easy);
    spdlog::error("curl_multi_add_handle: {}", curl_multi_strerror(rc));
    net::post(executor_, [handler = std::move(handler)] { handler(CURLE_FAILED_INIT); });
  }
}

void CurlMulti::remove(CURL* easy) {
  if (handlers_.erase(easy) > 0) curl_multi_remove_handle(multi_, easy);
}

curl_socket_t CurlMulti::on_open(void* clientp, curlsocktype purpose, struct curl_sockaddr* addr) {
  auto* self = static_cast<CurlMulti*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN || (addr->family != AF_INET && addr->family != AF_INET6)) {
    return CURL_SOCKET_BAD;
  }
  auto w = std::make_shared<Watch>(self->executor_);
  boost::system::error_code ec;
  w->socket.open(addr->family == AF_INET ? tcp::v4() : tcp::v6(), ec);
  if (ec) {
    spdlog::warn("upstream socket: {}", ec.message());
    return CURL_SOCKET_BAD;
  }
  const curl_socket_t fd = w->socket.native_handle();
  self->sockets_[fd] = std::move(w);
  return fd;
}

int CurlMulti::on_close(void* clientp, curl_socket_t fd) {
  auto* self = static_cast<CurlMulti*>(clientp);
  const auto it = self->sockets_.find(fd);
  if (it == self->sockets_.end()) return ::close(fd);
  it->second->closed = true;
  boost::system::error_code ec;
  it->second->socket.close(ec);  // pending waits complete with operation_aborted
  self->sockets_.erase(it);
  return 0;
}

int CurlMulti::on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
  auto* self = static_cast<CurlMulti*>(userp);
  const auto it = self->sockets_.find(fd);
  if (it == self->sockets_.end()) return 0;
  const auto& w = it->second;
  w->want = what == CURL_POLL_REMOVE ? 0 : what;
  // A wait already pending for a direction that is no longer wanted is left
  // to complete; its handler sees `want` and does nothing.
  if ((w->want & CURL_POLL_IN) && !w->reading) self->arm(w, true);
  if ((w->want & CURL_POLL_OUT) && !w->writing) self->arm(w, false);
  return 0;
}

void CurlMulti::arm(const std::shared_ptr<Watch>& w, bool read) {
  (read ? w->reading : w->writing) = true;
  w->socket.async_wait(read ? tcp::socket::wait_read : tcp::socket::wait_write,
                       [this, w, read](const boost::system::error_code& ec) {
                         on_ready(w, read, ec);
                       });
}

void CurlMulti::on_ready(const std::shared_ptr<Watch>& w, bool read,
                         const boost::system::error_code& ec) {
  (read ? w->reading : w->writing) = false;
  if (w->closed || ec == net::error::operation_aborted) return;
  const int flag = read ? CURL_POLL_IN : CURL_POLL_OUT;
  if (!(w->want & flag)) return;
  const int select = ec ? CURL_CSELECT_ERR : (read ? CURL_CSELECT_IN : CURL_CSELECT_OUT);
  int running = 0;
  curl_multi_socket_action(multi_, w->socket.native_handle(), select, &running);
  drain_messages();
  if (!w->closed && (w->want & flag) && !(read ? w->reading : w->writing)) arm(w, read);
}

int CurlMulti::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<CurlMulti*>(userp);
  if (timeout_ms < 0) {
    self->timer_.cancel();
    return 0;
  }
  // Never call back into libcurl from here: the wake-up always goes through
  // the executor, even for a zero timeout.
  self->timer_.expires_after(std::chrono::milliseconds(timeout_ms));
  self->timer_.async_wait([self](const boost::system::error_code& ec) { self->on_timeout(ec); });
  return 0;
}

void CurlMulti::on_timeout(const boost::system::error_code& ec) {
  if (ec == net::error::operation_aborted) return;
  int running = 0;
  curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  drain_messages();
}

void CurlMulti::drain_messages() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    const CURLcode result = msg->data.result;
    curl_multi_remove_handle(multi_, easy);
    const auto it = handlers_.find(easy);
    if (it == handlers_.end()) continue;
    auto handler = std::move(it->second);
    handlers_.erase(it);
    handler(result);
  }
}

}  // namespace sluice
