// RawConnection: a plain TCP connection to the gateway, for what a library
// client would not send, and for a client that stops reading.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>

namespace sluice::test {

class RawConnection {
 public:
  // `receive_buffer` (bytes; 0: the kernel's default) is set before the
  // connect, so that the window the peer sees stays that small: a client
  // that stops reading then stalls its sender after little data.
  explicit RawConnection(uint16_t port, int receive_buffer = 0) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return connected_; }
  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  // Everything until the peer closes (or `timeout`).
  std::string read_all(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // What arrives within `timeout`; with a `needle`, it stops as soon as the
  // bytes read hold it.
  std::string read_some(std::chrono::milliseconds timeout, std::string_view needle = {}) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) {
        if (needle.empty() && !out.empty()) break;
        continue;
      }
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (!needle.empty() && out.find(needle) != std::string::npos) break;
    }
    return out;
  }
  // True when the peer has closed its side (without reading anything).
  bool peer_closed(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
  }

 private:
  int fd_;
  bool connected_ = false;
};

}  // namespace sluice::test
