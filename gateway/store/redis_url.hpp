// Where Redis is: `redis://[[user]:password@]host[:port][/db]` or
// `unix:///path/to/redis.sock[?db=N]`. Pure function, tested alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct RedisEndpoint {
  std::string host = "127.0.0.1";  // empty with a unix socket
  uint16_t port = 6379;
  std::string unix_path;
  int db = 0;
  std::string username;  // Redis 6 ACL user; empty: the default user
  std::string password;  // empty: no AUTH
};

// The endpoint, or nullopt with `error` saying what is wrong. `rediss://`
// (TLS) is refused: Debian 12's hiredis 0.14 has no TLS.
std::optional<RedisEndpoint> parse_redis_url(std::string_view url, std::string& error);

// The URL with its password replaced by "***", for logs.
std::string redacted_redis_url(std::string_view url);

}  // namespace sluice
