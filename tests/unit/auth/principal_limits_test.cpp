#include "gateway/auth/principal_limits.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = PrincipalLimits::Clock;

TEST(PrincipalLimits, ConnectionsPerPrincipal) {
  PrincipalLimits l({2, 0, 0, 0});
  EXPECT_TRUE(l.open_connection("a").ok);
  EXPECT_TRUE(l.open_connection("a").ok);
  const auto third = l.open_connection("a");
  EXPECT_FALSE(third.ok);
  EXPECT_EQ(third.code, ErrorCode::kTooManyConnections);
  EXPECT_TRUE(l.open_connection("b").ok);  // another principal is not affected
  l.close_connection("a");
  EXPECT_TRUE(l.open_connection("a").ok);
}

TEST(PrincipalLimits, ConcurrentTurns) {
  PrincipalLimits l({0, 1, 0, 0});
  const auto t0 = Clock::now();
  EXPECT_TRUE(l.start_turn("a", t0).ok);
  EXPECT_EQ(l.start_turn("a", t0).code, ErrorCode::kTooManyTurns);
  l.end_turn("a", 10, t0);
  EXPECT_TRUE(l.start_turn("a", t0).ok);
}

TEST(PrincipalLimits, TurnsPerMinuteRefillOverTime) {
  PrincipalLimits l({0, 0, 3, 0});
  const auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(l.start_turn("a", t0).ok);
    l.end_turn("a", 1, t0);
  }
  const auto refused = l.start_turn("a", t0);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.code, ErrorCode::kRateLimited);
  EXPECT_GT(refused.retry_after, 0ms);
  EXPECT_LE(refused.retry_after, 20s);       // one turn's worth: a third of a minute
  EXPECT_TRUE(l.start_turn("a", t0 + 21s).ok);  // refilled
}

TEST(PrincipalLimits, TokensPerMinuteChargedAtTurnEnd) {
  PrincipalLimits l({0, 0, 0, 100});
  const auto t0 = Clock::now();
  ASSERT_TRUE(l.start_turn("a", t0).ok);
  l.end_turn("a", 250, t0);  // over budget: charged anyway
  const auto refused = l.start_turn("a", t0 + 1s);
  EXPECT_EQ(refused.code, ErrorCode::kRateLimited);
  // 150 tokens below zero refill in 90 s at 100 per minute.
  EXPECT_GT(refused.retry_after, 80s);
  EXPECT_FALSE(l.start_turn("a", t0 + 60s).ok);
  EXPECT_TRUE(l.start_turn("a", t0 + 92s).ok);
  EXPECT_TRUE(l.start_turn("b", t0).ok);
}

}  // namespace
}  // namespace sluice
