// Per-principal and per-connection limits: each one reached and reported
// with its documented code, counted once across WebSocket and HTTP.
#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

TEST(Limits, ConcurrentTurnsPerPrincipalAcrossWebSocketAndHttp) {
  auto sim = start_sim({"--rate", "20"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_PRINCIPAL_CONCURRENT_TURNS=2"});
  WsClient a(gw->port());
  WsClient b(gw->port());
  a.send(chat("one"));
  b.send(chat("two"));
  auto s1 = a.read_until("session");
  ASSERT_TRUE(s1);
  ASSERT_TRUE(b.read_until("session"));
  ASSERT_TRUE(a.read_until("delta"));
  a.send(chat("three", "r3"));
  auto refused = a.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "too_many_turns");
  EXPECT_EQ(refused->request_id, "r3");
  EXPECT_NE(refused->raw.find("retry_after_ms"), std::string::npos);
  // The HTTP face counts against the same principal.
  const auto http = http_post(gw->port(), "/v1/chat/completions",
                              R"({"messages":[{"role":"user","content":"four"}]})");
  EXPECT_EQ(http.status, 429);
  EXPECT_NE(http.body.find("too_many_turns"), std::string::npos);
  // Once a turn ends there is room again.
  a.send(cancel(s1->session_id));
  ASSERT_TRUE(read_turn(a, s1->session_id).done);
  a.send(chat("five"));
  auto s5 = a.read_until("session");
  ASSERT_TRUE(s5);
  EXPECT_TRUE(a.read_until("delta", s5->session_id));
}

TEST(Limits, TurnsPerMinute) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_PRINCIPAL_TURNS_PER_MINUTE=3"});
  WsClient c(gw->port());
  for (int i = 0; i < 3; ++i) {
    c.send(chat("turn " + std::to_string(i)));
    auto s = c.read_until("session");
    ASSERT_TRUE(s);
    ASSERT_TRUE(read_turn(c, s->session_id).done);
  }
  c.send(chat("one too many", "r4"));
  auto refused = c.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "rate_limited");
  EXPECT_NE(refused->message.find("turns per minute"), std::string::npos);
}

TEST(Limits, TokensPerMinuteWithRetryAfterOnHttp) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_PRINCIPAL_TOKENS_PER_MINUTE=10"});
  const std::string body = R"({"messages":[{"role":"user","content":"spend"}]})";
  EXPECT_EQ(http_post(gw->port(), "/v1/chat/completions", body).status, 200);  // ~20 tokens
  const auto refused = http_post(gw->port(), "/v1/chat/completions", body);
  EXPECT_EQ(refused.status, 429);
  EXPECT_NE(refused.body.find("rate_limited"), std::string::npos);
  EXPECT_NE(refused.body.find("tokens per minute"), std::string::npos);
}

TEST(Limits, ConnectionsPerPrincipal) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_PRINCIPAL_CONNECTIONS=2"});
  WsClient a(gw->port());
  WsClient b(gw->port());
  // A pong means the gateway has counted that connection: a client's
  // handshake can finish before the gateway's side of it has, and c could
  // otherwise be counted before b (and b refused in its place).
  a.send(R"({"type":"ping"})");
  ASSERT_TRUE(a.read_until("pong"));
  b.send(R"({"type":"ping"})");
  ASSERT_TRUE(b.read_until("pong"));
  WsClient c(gw->port());
  auto refused = c.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "too_many_connections");
  EXPECT_FALSE(c.read());
  EXPECT_EQ(c.close_code(), 4029);
}

TEST(Limits, MessagesPerSecondPerConnection) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MESSAGES_PER_SECOND=5"});
  WsClient c(gw->port());
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 40; ++i) c.send(R"({"type":"ping"})");
  int pongs = 0, limited = 0;
  for (int i = 0; i < 40; ++i) {
    auto f = c.read(5s);
    ASSERT_TRUE(f);
    if (f->type == "pong") ++pongs;
    if (f->type == "error" && f->code == "rate_limited") ++limited;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(pongs + limited, 40);
  EXPECT_GE(pongs, 10);  // the burst
  // The burst, plus what the budget refilled (5 per second) while they came.
  EXPECT_LE(pongs, 10 + static_cast<int>(5 * seconds) + 1);
  EXPECT_GE(limited, 1);
}

}  // namespace
}  // namespace sluice::test
