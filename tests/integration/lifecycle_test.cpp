// Start-up, health, configuration errors and draining on SIGTERM.
#include <csignal>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

TEST(Lifecycle, HealthAndReadiness) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  auto health = http_get(gw->port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  auto ready = http_get(gw->port(), "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(http_get(gw->port(), "/nope").status, 404);
  EXPECT_EQ(http_get(gw->port(), "/v1/ws").status, 426);
}

TEST(Lifecycle, NotReadyWhenEveryUpstreamIsEjected) {
  const auto dead = "http://127.0.0.1:" + std::to_string(unused_port()) + "/v1";
  auto gw = start_gateway(dead, {"SLUICE_OPENAI_EJECT_AFTER_FAILURES=1",
                                 "SLUICE_OPENAI_MAX_ATTEMPTS=1"});
  EXPECT_EQ(http_get(gw->port(), "/readyz").status, 200);
  WsClient c(gw->port());
  c.send(chat("x"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(read_turn(c, session->session_id).done);
  auto ready = http_get(gw->port(), "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("not_ready"), std::string::npos);
}

TEST(Lifecycle, SigtermClosesClientsWith1001AndExitsCleanly) {
  auto sim = start_sim({"--rate", "20"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_SERVER_DRAIN_TIMEOUT_MS=3000"});
  WsClient busy(gw->port());
  WsClient idle(gw->port());
  busy.send(chat("long one"));
  auto session = busy.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(busy.read_until("delta", session->session_id));
  idle.send(R"({"type":"ping"})");
  ASSERT_TRUE(idle.read_until("pong"));

  gw->signal(SIGTERM);
  auto turn = read_turn(busy, session->session_id, 5s);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "cancelled");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "shutting_down");
  EXPECT_FALSE(busy.read(5s));
  EXPECT_EQ(busy.close_code(), 1001);
  EXPECT_FALSE(idle.read(5s));
  EXPECT_EQ(idle.close_code(), 1001);
  const auto status = gw->wait(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(sim_stats(*sim, "?wait_aborted=1&timeout_ms=1000").aborted, 1);
}

TEST(Lifecycle, IdleConnectionIsClosed) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_IDLE_TIMEOUT_MS=1000"});
  WsClient c(gw->port());
  EXPECT_FALSE(c.read(5s));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.close_code(), 1000);
  EXPECT_EQ(c.close_reason(), "idle timeout");
}

TEST(Lifecycle, BadConfigurationNamesTheKeyAndExitsNonZero) {
  Process bad({SLUICE_GATEWAY_BIN, "--check-config"}, {"SLUICE_SERVER_THREADS=-3"}, false);
  const auto status = bad.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_NE(*status, 0);
  EXPECT_NE(bad.stderr_text().find("server.threads"), std::string::npos) << bad.stderr_text();
  EXPECT_NE(bad.stderr_text().find("from 0 to 256"), std::string::npos);

  Process bad_url({SLUICE_GATEWAY_BIN, "--check-config", "--upstream", "ftp://x"}, {}, false);
  ASSERT_TRUE(bad_url.wait(10s));
  EXPECT_NE(bad_url.stderr_text().find("--upstream"), std::string::npos);

  Process good({SLUICE_GATEWAY_BIN, "--check-config"}, {}, false);
  EXPECT_EQ(good.wait(10s), 0);
}

TEST(Lifecycle, PortInUseIsAClearStartupError) {
  auto sim = start_sim();
  Process gw({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:" + std::to_string(sim->port())}, {},
             false);
  const auto status = gw.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 1);
  EXPECT_NE(gw.stderr_text().find("cannot listen on"), std::string::npos) << gw.stderr_text();
}

}  // namespace
}  // namespace sluice::test
