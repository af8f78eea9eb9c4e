// Start-up, health, configuration errors and draining on SIGTERM.
#include <csignal>
#include <sstream>
#include <thread>

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
  EXPECT_EQ(*status, 0) << gw->stderr_text();
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

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

TEST(Lifecycle, ConnectionLimitRefusesTheUpgradeWith503) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MAX_CONNECTIONS=2"});
  auto a = std::make_unique<WsClient>(gw->port());
  WsClient b(gw->port());
  EXPECT_THROW(WsClient c(gw->port()), std::exception);
  // A closed connection frees its place.
  a->close();
  a.reset();
  std::unique_ptr<WsClient> d;
  for (int i = 0; i < 100 && !d; ++i) {  // the server notices the close asynchronously
    try {
      d = std::make_unique<WsClient>(gw->port());
    } catch (const std::exception&) {
      std::this_thread::sleep_for(10ms);
    }
  }
  ASSERT_TRUE(d);
  d->send(R"({"type":"ping"})");
  EXPECT_TRUE(d->read_until("pong"));
}

TEST(Lifecycle, DrainDeadlineBoundsShutdownWhenAClientNeverAnswersTheClose) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_SERVER_DRAIN_TIMEOUT_MS=500"});
  WsClient deaf(gw->port());  // never reads: never answers the close frame
  deaf.send(R"({"type":"ping"})");
  EXPECT_EQ(http_get(gw->port(), "/healthz").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  gw->signal(SIGTERM);
  const auto status = gw->wait(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0) << gw->stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_NE(gw->stderr_text().find("drain deadline passed"), std::string::npos);
}

TEST(Lifecycle, OneJsonLogLinePerTurn) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient c(gw->port());
  c.send(chat("log me 📝", "log-1"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  auto turn = read_turn(c, session->session_id);
  ASSERT_TRUE(turn.done);
  c.send(chat("[[sim status=503]] fail", "log-2", session->session_id));
  ASSERT_TRUE(read_turn(c, session->session_id).done);
  c.close();
  gw->signal(SIGTERM);
  ASSERT_TRUE(gw->wait(5s));

  std::vector<std::string> lines;
  std::istringstream out(gw->stdout_text());
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 2u) << gw->stdout_text();
  simdjson::dom::parser parser;
  simdjson::dom::element ok;
  ASSERT_EQ(parser.parse(lines[0]).get(ok), simdjson::SUCCESS) << lines[0];
  std::string_view s;
  ASSERT_EQ(ok["trace_id"].get(s), simdjson::SUCCESS);
  EXPECT_EQ(s.size(), 32u);
  EXPECT_EQ(ok["session_id"].get_string().value(), session->session_id);
  EXPECT_EQ(ok["request_id"].get_string().value(), "log-1");
  EXPECT_EQ(ok["upstream"].get_string().value(), sim_url(*sim));
  EXPECT_EQ(ok["finish_reason"].get_string().value(), "stop");
  EXPECT_EQ(ok["input_bytes"].get_uint64().value(), std::string("log me 📝").size());
  EXPECT_EQ(ok["output_bytes"].get_uint64().value(), turn.text.size());
  EXPECT_EQ(ok["output_tokens"].get_int64().value(), turn.done->completion_tokens);
  EXPECT_GE(ok["ttft_ms"].get_double().value(), 0.0);
  EXPECT_GE(ok["duration_ms"].get_double().value(), ok["ttft_ms"].get_double().value());
  EXPECT_FALSE(ok["client_gone"].get_bool().value());

  simdjson::dom::parser parser2;
  simdjson::dom::element failed;
  ASSERT_EQ(parser2.parse(lines[1]).get(failed), simdjson::SUCCESS) << lines[1];
  EXPECT_EQ(failed["finish_reason"].get_string().value(), "error");
  EXPECT_EQ(failed["error"].get_string().value(), "upstream_error");
  EXPECT_TRUE(failed["ttft_ms"].is_null());
  EXPECT_EQ(failed["attempts"].get_int64().value(), 3);
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

TEST(Lifecycle, OriginAllowList) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim),
                          {R"(SLUICE_SERVER_ALLOWED_ORIGINS=["https://shop.example", "http://localhost:3000"])"});
  // An allowed page connects and chats.
  WsClient ok(gw->port(), "/v1/ws", 0, {{"Origin", "https://shop.example"}});
  ok.send(R"({"type":"ping","request_id":"o"})");
  EXPECT_TRUE(ok.read_until("pong"));
  // Another page's script is refused at the upgrade.
  EXPECT_THROW(WsClient(gw->port(), "/v1/ws", 0, {{"Origin", "https://evil.example"}}),
               std::exception);
  const auto refused = http_get(gw->port(), "/healthz", "https://evil.example");
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("origin_not_allowed"), std::string::npos);
  // Clients that send no Origin (servers, SDKs) are not affected.
  WsClient plain(gw->port());
  plain.send(R"({"type":"ping"})");
  EXPECT_TRUE(plain.read_until("pong"));
}

}  // namespace
}  // namespace sluice::test
