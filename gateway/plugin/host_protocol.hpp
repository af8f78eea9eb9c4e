// The framed protocol between the gateway and a plugin host process
// (sluice-plugin-host), over a socketpair: each message is a 4-byte
// little-endian length, then a type byte and its fields (integers little-
// endian, strings as a 4-byte length and their bytes).
//
//   gateway -> host   kLoad   {path, settings JSON, workers}
//   host -> gateway   kReady  {}                      the plugin is loaded
//                     kLoadFailed {error}
//   gateway -> host   kCall   {id, index, args, ms left before the deadline, kind}
//                     (kind: kTool or kRetriever; index: its place in the descriptor)
//   host -> gateway   kResult {id, status, json, json size, error, sources..., passages..., counters...}
//   gateway -> host   kModOpen / kModText / kModClose (moderators in the host)
//   host -> gateway   kModOpened / kVerdict
//
// A result over the gateway's 64 KiB limit travels without its JSON (its
// size says why). Blocking reads and writes: the host is its own process,
// and on the gateway side only tool worker threads and the supervisor's
// reader call them.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::hostproto {

enum Type : uint8_t {
  kLoad = 1,
  kReady = 2,
  kLoadFailed = 3,
  kCall = 4,
  kResult = 5,
  kModOpen = 6,    // {id, moderator index}
  kModOpened = 7,  // {id, status, stream}
  kModText = 8,    // {id, stream, pending, new_from, flags}
  kVerdict = 9,    // {id, status, verdict calls, action, hold, text, reason}
  kModClose = 10,  // {0, stream}: no reply
};

enum CallKind : uint32_t { kTool = 0, kRetriever = 1 };

constexpr size_t kMaxFrame = 1 << 20;
constexpr size_t kMaxResultBytes = 64 * 1024;  // as the gateway's tool runner

class Writer {
 public:
  explicit Writer(Type t) { out_.push_back(static_cast<char>(t)); }
  Writer& u32(uint32_t v) { return bytes(&v, sizeof v); }
  Writer& u64(uint64_t v) { return bytes(&v, sizeof v); }
  Writer& i32(int32_t v) { return bytes(&v, sizeof v); }
  Writer& f64(double v) { return bytes(&v, sizeof v); }
  Writer& str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  const std::string& payload() const { return out_; }

 private:
  Writer& bytes(const void* p, size_t n) {
    out_.append(static_cast<const char*>(p), n);  // little-endian hosts only (x86-64, aarch64)
    return *this;
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) { return bytes(&v, sizeof v); }
  bool u32(uint32_t& v) { return bytes(&v, sizeof v); }
  bool u64(uint64_t& v) { return bytes(&v, sizeof v); }
  bool i32(int32_t& v) { return bytes(&v, sizeof v); }
  bool f64(double& v) { return bytes(&v, sizeof v); }
  bool str(std::string& s) {
    uint32_t n = 0;
    if (!u32(n) || in_.size() < n) return false;
    s.assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }

 private:
  bool bytes(void* p, size_t n) {
    if (in_.size() < n) return false;
    std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
};

// To a socket without SIGPIPE should its peer be gone (a dead host is an
// error to handle, not a signal); to a pipe (sluice-plugin-check) as is.
inline bool write_all(int fd, const char* p, size_t n) {
  bool socket = true;
  while (n > 0) {
    ssize_t w = socket ? ::send(fd, p, n, MSG_NOSIGNAL) : ::write(fd, p, n);
    if (w < 0 && errno == ENOTSOCK) {
      socket = false;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

inline bool write_frame(int fd, std::string_view payload) {
  const uint32_t n = static_cast<uint32_t>(payload.size());
  std::string frame(reinterpret_cast<const char*>(&n), sizeof n);
  frame.append(payload);
  return write_all(fd, frame.data(), frame.size());
}

// Reads exactly n bytes; `timeout_ms` < 0 waits for ever. False on EOF, an
// error or the timeout.
inline bool read_exact(int fd, char* p, size_t n, int timeout_ms) {
  while (n > 0) {
    if (timeout_ms >= 0) {
      pollfd pfd{fd, POLLIN, 0};
      const int r = ::poll(&pfd, 1, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
    }
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

inline bool read_frame(int fd, std::string& payload, int timeout_ms = -1) {
  uint32_t n = 0;
  if (!read_exact(fd, reinterpret_cast<char*>(&n), sizeof n, timeout_ms) || n == 0 || n > kMaxFrame) return false;
  payload.resize(n);
  return read_exact(fd, payload.data(), n, timeout_ms);
}

}  // namespace sluice::hostproto
