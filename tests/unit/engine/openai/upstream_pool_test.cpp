#include "gateway/engine/openai/upstream_pool.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = UpstreamPool::Clock;

TEST(UpstreamPool, RoundRobin) {
  UpstreamPool pool({"a", "b", "c"}, 2, 10s);
  const auto now = Clock::now();
  EXPECT_EQ(pool.pick(now), 0u);
  EXPECT_EQ(pool.pick(now), 1u);
  EXPECT_EQ(pool.pick(now), 2u);
  EXPECT_EQ(pool.pick(now), 0u);
}

TEST(UpstreamPool, EjectsAfterConsecutiveFailuresAndComesBack) {
  UpstreamPool pool({"a", "b"}, 2, 10s);
  const auto t0 = Clock::now();
  pool.report_failure(0, t0);
  EXPECT_TRUE(pool.any_healthy(t0));
  pool.report_success(0);  // resets the streak
  pool.report_failure(0, t0);
  EXPECT_EQ(pool.pick(t0), 0u);  // one failure: still in
  pool.report_failure(0, t0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.pick(t0 + 1s), 1u);
  // After the ejection the endpoint is tried again.
  bool saw_a = false;
  for (int i = 0; i < 4; ++i) saw_a |= pool.pick(t0 + 11s) == 0u;
  EXPECT_TRUE(saw_a);
}

TEST(UpstreamPool, AvoidsTheEndpointThatJustFailed) {
  UpstreamPool pool({"a", "b"}, 5, 10s);
  const auto now = Clock::now();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.pick(now, 0), 1u);
  UpstreamPool single({"only"}, 5, 10s);
  EXPECT_EQ(single.pick(now, 0), 0u);
}

TEST(UpstreamPool, AllEjectedPicksTheOneBackSoonest) {
  UpstreamPool pool({"a", "b"}, 1, 10s);
  const auto t0 = Clock::now();
  pool.report_failure(1, t0);
  pool.report_failure(0, t0 + 1s);
  EXPECT_FALSE(pool.any_healthy(t0 + 2s));
  EXPECT_EQ(pool.pick(t0 + 2s), 1u);
}

}  // namespace
}  // namespace sluice
