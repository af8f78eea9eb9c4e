#include "gateway/store/redis_url.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(RedisUrl, HostPortAndDatabase) {
  std::string error;
  auto ep = parse_redis_url("redis://10.0.0.7:6380/3", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "10.0.0.7");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->db, 3);
  EXPECT_TRUE(ep->password.empty());

  ep = parse_redis_url("redis://redis", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "redis");
  EXPECT_EQ(ep->port, 6379);
  EXPECT_EQ(ep->db, 0);

  ep = parse_redis_url("redis://[::1]:7000/1", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->port, 7000);
  EXPECT_EQ(ep->db, 1);
}

TEST(RedisUrl, PasswordsAndUsers) {
  std::string error;
  auto ep = parse_redis_url("redis://:s%40cret@host:6379/0", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->password, "s@cret");
  EXPECT_TRUE(ep->username.empty());

  ep = parse_redis_url("redis://gateway:pw@host", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->username, "gateway");
  EXPECT_EQ(ep->password, "pw");

  EXPECT_EQ(redacted_redis_url("redis://gateway:pw@host:6379/0"), "redis://gateway:***@host:6379/0");
  EXPECT_EQ(redacted_redis_url("redis://host:6379/0"), "redis://host:6379/0");
}

TEST(RedisUrl, UnixSockets) {
  std::string error;
  auto ep = parse_redis_url("unix:///run/redis/redis.sock?db=2", error);
  ASSERT_TRUE(ep) << error;
  EXPECT_EQ(ep->unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(ep->db, 2);
  EXPECT_FALSE(parse_redis_url("unix://relative.sock", error));
}

TEST(RedisUrl, RefusesWhatItCannotServe) {
  std::string error;
  EXPECT_FALSE(parse_redis_url("rediss://host:6380", error));
  EXPECT_NE(error.find("TLS"), std::string::npos) << error;
  EXPECT_FALSE(parse_redis_url("http://host", error));
  EXPECT_FALSE(parse_redis_url("redis://host:0", error));
  EXPECT_FALSE(parse_redis_url("redis://host:99999", error));
  EXPECT_FALSE(parse_redis_url("redis://host/db", error));
  EXPECT_FALSE(parse_redis_url("redis://:6379", error));
}

}  // namespace
}  // namespace sluice
