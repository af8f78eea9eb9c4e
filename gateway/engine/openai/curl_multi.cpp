#include "gateway/engine/openai/curl_multi.hpp"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sluice {

namespace net = boost::asio;

namespace {
int make_epoll() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  return fd;
}
}  // namespace

CurlMulti::CurlMulti(net::any_io_executor executor)
    : executor_(std::move(executor)),
      multi_(curl_multi_init()),
      epoll_(executor_, make_epoll()),
      timer_(executor_) {
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
  boost::system::error_code ignored;
  epoll_.close(ignored);
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

curl_socket_t CurlMulti::on_open(void*, curlsocktype purpose, struct curl_sockaddr* addr) {
  if (purpose != CURLSOCKTYPE_IPCXN || (addr->family != AF_INET && addr->family != AF_INET6)) {
    return CURL_SOCKET_BAD;
  }
  // Close-on-exec, like every descriptor of the gateway (plugins may spawn).
  const int fd = ::socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd < 0) spdlog::warn("upstream socket: {}", std::strerror(errno));
  return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int CurlMulti::on_close(void* clientp, curl_socket_t fd) {
  auto* self = static_cast<CurlMulti*>(clientp);
  // A closed descriptor leaves the epoll set by itself; its number may be
  // reused at once, so forget it here.
  self->watched_.erase(fd);
  return ::close(fd);
}

int CurlMulti::on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
  auto* self = static_cast<CurlMulti*>(userp);
  uint32_t events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
  self->watch(fd, events);
  return 0;
}

void CurlMulti::watch(curl_socket_t fd, uint32_t events) {
  const auto it = watched_.find(fd);
  const uint32_t before = it == watched_.end() ? 0 : it->second;
  if (events == before) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  int rc = 0;
  if (events == 0) {
    rc = ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
    watched_.erase(it);
    if (rc != 0 && errno == ENOENT) rc = 0;  // already gone with its descriptor
  } else {
    rc = ::epoll_ctl(epoll_.native_handle(), before ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    // The descriptor may have been closed and its number reused unseen.
    if (rc != 0 && errno == ENOENT) rc = ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev);
    if (rc != 0 && errno == EEXIST) rc = ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_MOD, fd, &ev);
    watched_[fd] = events;
  }
  if (rc != 0) spdlog::warn("upstream socket {}: epoll_ctl: {}", fd, std::strerror(errno));
  if (!watched_.empty()) wait_ready();
}

void CurlMulti::wait_ready() {
  if (waiting_) return;
  waiting_ = true;
  epoll_.async_wait(net::posix::stream_descriptor::wait_read,
                    [this](const boost::system::error_code& ec) { on_ready(ec); });
}

void CurlMulti::on_ready(const boost::system::error_code& ec) {
  waiting_ = false;
  if (ec == net::error::operation_aborted) return;
  std::array<epoll_event, 128> ready;
  const int n = ::epoll_wait(epoll_.native_handle(), ready.data(), static_cast<int>(ready.size()), 0);
  for (int i = 0; i < n; ++i) {
    const curl_socket_t fd = ready[i].data.fd;
    // A socket an earlier action of this batch closed (or replaced) is skipped.
    if (!watched_.contains(fd)) continue;
    int select = 0;
    if (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) select |= CURL_CSELECT_IN;
    if (ready[i].events & EPOLLOUT) select |= CURL_CSELECT_OUT;
    if (ready[i].events & EPOLLERR) select |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(multi_, fd, select, &running);
  }
  drain_messages();
  // Level-triggered: whatever is still ready wakes the next wait at once.
  if (!watched_.empty()) wait_ready();
}

int CurlMulti::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<CurlMulti*>(userp);
  if (timeout_ms < 0) {
    self->deadline_.reset();  // a wait in flight finds nothing to do
    return 0;
  }
  // Never call back into libcurl from here: the wake-up always goes through
  // the executor, even for a zero timeout.
  const auto at = Clock::now() + std::chrono::milliseconds(timeout_ms);
  self->deadline_ = at;
  if (!self->timer_at_ || *self->timer_at_ > at) self->arm_timer(at);
  return 0;
}

void CurlMulti::arm_timer(Clock::time_point at) {
  timer_at_ = at;
  timer_.expires_at(at);  // cancels the later wait in flight, if any
  timer_.async_wait([this, at](const boost::system::error_code& ec) {
    if (ec == net::error::operation_aborted) return;
    if (timer_at_ == at) timer_at_.reset();
    on_timeout(ec);
  });
}

void CurlMulti::on_timeout(const boost::system::error_code&) {
  if (!deadline_) return;
  if (Clock::now() < *deadline_) {
    if (!timer_at_) arm_timer(*deadline_);  // woke for an earlier deadline since moved on
    return;
  }
  deadline_.reset();
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
