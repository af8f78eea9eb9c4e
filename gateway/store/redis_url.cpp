#include "gateway/store/redis_url.hpp"

#include <charconv>

namespace sluice {

namespace {

bool parse_int(std::string_view s, int64_t lo, int64_t hi, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out >= lo && out <= hi;
}

// %XX escapes in the user and password parts.
std::string percent_decoded(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

std::optional<RedisEndpoint> parse_redis_url(std::string_view url, std::string& error) {
  RedisEndpoint ep;
  if (url.rfind("rediss://", 0) == 0) {
    error = "rediss:// (TLS) is not supported by this build's hiredis (0.14); reach Redis over a "
            "private network or a local TLS tunnel";
    return std::nullopt;
  }
  if (url.rfind("unix://", 0) == 0) {
    std::string_view rest = url.substr(7);
    const auto q = rest.find('?');
    ep.unix_path = std::string(rest.substr(0, q));
    ep.host.clear();
    if (ep.unix_path.empty() || ep.unix_path[0] != '/') {
      error = "unix:// needs an absolute socket path (unix:///run/redis/redis.sock)";
      return std::nullopt;
    }
    if (q != std::string_view::npos) {
      const std::string_view query = rest.substr(q + 1);
      int64_t db = 0;
      if (query.rfind("db=", 0) != 0 || !parse_int(query.substr(3), 0, 1 << 16, db)) {
        error = "unix:// takes only ?db=N";
        return std::nullopt;
      }
      ep.db = static_cast<int>(db);
    }
    return ep;
  }
  if (url.rfind("redis://", 0) != 0) {
    error = "must start with redis:// or unix:// (got \"" + std::string(url) + "\")";
    return std::nullopt;
  }
  std::string_view rest = url.substr(8);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    int64_t n = 0;
    if (!db.empty() && !parse_int(db, 0, 1 << 16, n)) {
      error = "the database after the host must be a number (redis://host:6379/0)";
      return std::nullopt;
    }
    ep.db = static_cast<int>(n);
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      ep.password = percent_decoded(userinfo);  // redis://secret@host: a password alone
    } else {
      ep.username = percent_decoded(userinfo.substr(0, colon));
      ep.password = percent_decoded(userinfo.substr(colon + 1));
    }
  }
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:6379
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unclosed [ in the host";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority.front() != ':') {
      error = "expected :port after ]";
      return std::nullopt;
    }
    if (!authority.empty()) {
      int64_t port = 0;
      if (!parse_int(authority.substr(1), 1, 65535, port)) {
        error = "the port must be 1-65535";
        return std::nullopt;
      }
      ep.port = static_cast<uint16_t>(port);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    int64_t port = 0;
    if (!parse_int(authority.substr(colon + 1), 1, 65535, port)) {
      error = "the port must be 1-65535";
      return std::nullopt;
    }
    ep.port = static_cast<uint16_t>(port);
  }
  if (host.empty()) {
    error = "needs a host (redis://127.0.0.1:6379/0)";
    return std::nullopt;
  }
  ep.host = std::string(host);
  return ep;
}

std::string redacted_redis_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto at = url.rfind('@');
  if (scheme == std::string_view::npos || at == std::string_view::npos || at < scheme) return std::string(url);
  const std::string_view userinfo = url.substr(scheme + 3, at - scheme - 3);
  const auto colon = userinfo.find(':');
  const std::string user = colon == std::string_view::npos ? "" : std::string(userinfo.substr(0, colon)) + ":";
  return std::string(url.substr(0, scheme + 3)) + user + "***" + std::string(url.substr(at));
}

}  // namespace sluice
