// A failing upstream: errors reach the client with their documented codes,
// retries happen only before the first token, a cancelled or abandoned turn
// closes the upstream request at once.
#include <csignal>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

Turn one_turn(WsClient& client, const std::string& input) {
  client.send(chat(input, "rq"));
  auto session = client.read_until("session");
  if (!session) return {};
  return read_turn(client, session->session_id);
}

TEST(UpstreamFailure, Http500GivesUpstreamErrorAfterRetries) {
  auto sim = start_sim({"--status", "500"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_OPENAI_MAX_ATTEMPTS=3",
                                          "SLUICE_OPENAI_RETRY_BACKOFF_MS=10"});
  WsClient client(gw->port());
  auto turn = one_turn(client, "fail please");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_error");
  EXPECT_NE(turn.error->message.find("HTTP 500"), std::string::npos) << turn.error->message;
  EXPECT_NE(turn.error->message.find("simulated failure"), std::string::npos);
  EXPECT_EQ(turn.error->request_id, "rq");
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "error");
  EXPECT_EQ(turn.text, "");
  EXPECT_EQ(sim_stats(*sim).requests, 3);
}

TEST(UpstreamFailure, Http400IsRejectedWithoutRetry) {
  auto sim = start_sim({"--status", "400"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  auto turn = one_turn(client, "bad request");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_rejected");
  EXPECT_EQ(sim_stats(*sim).requests, 1);
}

TEST(UpstreamFailure, ConnectionRefusedGivesUpstreamUnavailable) {
  const auto dead = "http://127.0.0.1:" + std::to_string(unused_port()) + "/v1";
  auto gw = start_gateway(dead, {"SLUICE_OPENAI_RETRY_BACKOFF_MS=10"});
  WsClient client(gw->port());
  auto turn = one_turn(client, "anyone there?");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_unavailable");
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "error");
  // The process and the connection are still fine.
  client.send(R"({"type":"ping","request_id":"p"})");
  auto pong = client.read_until("pong");
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->request_id, "p");
}

TEST(UpstreamFailure, FailingEndpointIsSkippedForAHealthyOne) {
  auto bad = start_sim({"--status", "503"});
  auto good = start_sim();
  auto gw = start_gateway(sim_url(*bad) + "," + sim_url(*good),
                          {"SLUICE_OPENAI_RETRY_BACKOFF_MS=1", "SLUICE_OPENAI_EJECT_AFTER_FAILURES=1",
                           "SLUICE_OPENAI_EJECT_DURATION_MS=60000"});
  WsClient client(gw->port());
  for (int i = 0; i < 6; ++i) {
    auto turn = one_turn(client, "round " + std::to_string(i));
    ASSERT_TRUE(turn.done);
    EXPECT_EQ(turn.done->finish_reason, "stop") << (turn.error ? turn.error->message : "");
    EXPECT_EQ(turn.text, expected_text("round " + std::to_string(i)));
  }
  // Once ejected, the bad endpoint is not asked again within the ejection.
  EXPECT_EQ(sim_stats(*bad).requests, 1);
  EXPECT_EQ(sim_stats(*good).requests, 6);
}

TEST(UpstreamFailure, StallAfterFirstTokensGivesUpstreamTimeout) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_OPENAI_IDLE_TIMEOUT_MS=300"});
  WsClient client(gw->port());
  auto turn = one_turn(client, "[[sim stall_after=2]] hang");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_timeout");
  EXPECT_EQ(turn.text, "Answer for");  // the two tokens before the stall
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "error");
  // The stalled request was abandoned and not retried after tokens went out.
  const auto stats = sim_stats(*sim, "?wait_aborted=1&timeout_ms=2000");
  EXPECT_EQ(stats.aborted, 1);
  EXPECT_EQ(stats.requests, 1);
}

TEST(UpstreamFailure, NoFirstTokenIsRetriedThenTimesOut) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_OPENAI_FIRST_TOKEN_TIMEOUT_MS=200",
                                          "SLUICE_OPENAI_MAX_ATTEMPTS=2",
                                          "SLUICE_OPENAI_RETRY_BACKOFF_MS=1"});
  WsClient client(gw->port());
  auto turn = one_turn(client, "[[sim stall_after=0]] silent");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_timeout");
  EXPECT_NE(turn.error->message.find("first token"), std::string::npos);
  EXPECT_EQ(sim_stats(*sim, "?wait_aborted=2&timeout_ms=2000").requests, 2);
}

TEST(UpstreamFailure, DropMidStreamGivesPartialTextAndNoRetry) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  auto turn = one_turn(client, "[[sim drop_after=3]] drop");
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_disconnected");
  EXPECT_EQ(turn.text, "Answer for drop");
  EXPECT_EQ(sim_stats(*sim).requests, 1);
}

TEST(UpstreamFailure, CancelAbortsTheUpstreamWithinASecond) {
  auto sim = start_sim({"--rate", "20"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  client.send(chat("long answer"));
  auto session = client.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(client.read_until("delta", session->session_id));
  const auto t0 = std::chrono::steady_clock::now();
  client.send(cancel(session->session_id));
  auto turn = read_turn(client, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "cancelled");
  const auto stats = sim_stats(*sim, "?wait_aborted=1&timeout_ms=1000");
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(stats.aborted, 1);
  EXPECT_EQ(stats.completed, 0);
  EXPECT_LT(elapsed, 1s);
}

TEST(UpstreamFailure, DisconnectKeepsTheTurnForTheGraceThenAbortsTheUpstream) {
  auto sim = start_sim({"--rate", "20"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_RESUME_GRACE_MS=600"});
  {
    WsClient client(gw->port());
    client.send(chat("going away"));
    auto session = client.read_until("session");
    ASSERT_TRUE(session);
    ASSERT_TRUE(client.read_until("delta", session->session_id));
    client.drop();
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Within the grace the upstream request goes on...
  EXPECT_EQ(sim_stats(*sim, "?wait_aborted=1&timeout_ms=300").aborted, 0);
  // ... and at its end it is aborted.
  const auto stats = sim_stats(*sim, "?wait_aborted=1&timeout_ms=3000");
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(stats.aborted, 1);
  EXPECT_GE(elapsed, 500ms);
  EXPECT_LT(elapsed, 3s);
  // The turn log records that the client went away.
  gw->signal(SIGTERM);
  ASSERT_TRUE(gw->wait(5s));
  EXPECT_NE(gw->stdout_text().find(R"("client_gone":true)"), std::string::npos) << gw->stdout_text();
  EXPECT_NE(gw->stdout_text().find(R"("finish_reason":"cancelled")"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
