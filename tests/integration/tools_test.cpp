// Tool calls through the running gateway: the simulator streams vLLM-style
// tool_calls; plugins' tools run and the upstream is called again.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

std::string orders_toml(const OrdersDb& db) {
  return std::string("[[plugins]]\npath = \"") + SLUICE_PLUGIN_DIR + "/order_lookup.so\"\n" +
         "[plugins.settings]\ndatabase = \"" + db.path + "\"\norder_url = \"https://shop.example/orders/{id}\"\n";
}

TEST(Tools, AnOrderQuestionRunsLookupOrderAgainstSqliteAndTheAnswerUsesIt) {
  OrdersDb db;
  TempConfig config(orders_toml(db));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  struct Ask {
    std::string question, order;
  };
  for (const Ask& ask : {Ask{"Where is my order A1001?", "A1001"}, Ask{"我的订单 A1017 到哪了？", "A1017"}}) {
    c.send(chat(ask.question));
    auto session = c.read_until("session");
    ASSERT_TRUE(session);
    const ToolTurn t = read_tool_turn(c, session->session_id);
    ASSERT_TRUE(t.done);
    EXPECT_EQ(t.done->finish_reason, "stop");
    ASSERT_EQ(t.calls.size(), 1u);
    EXPECT_EQ(t.calls[0].plugin, "order_lookup");
    EXPECT_NE(t.calls[0].raw.find(R"("name":"lookup_order")"), std::string::npos) << t.calls[0].raw;
    EXPECT_NE(t.calls[0].raw.find(R"("arguments":{"order_id":")" + ask.order + "\"}"), std::string::npos)
        << t.calls[0].raw;
    ASSERT_EQ(t.results.size(), 1u);
    const std::string status = db.status_of(ask.order);
    ASSERT_FALSE(status.empty());
    EXPECT_NE(t.results[0].raw.find(R"("ok":true)"), std::string::npos) << t.results[0].raw;
    EXPECT_NE(t.results[0].raw.find(R"("status":")" + status + "\""), std::string::npos) << t.results[0].raw;
    EXPECT_EQ(t.results[0].plugin, "order_lookup");
    ASSERT_EQ(t.sources.size(), 1u);
    EXPECT_NE(t.sources[0].raw.find(R"("title":"Order )" + ask.order + "\""), std::string::npos);
    EXPECT_NE(t.sources[0].raw.find("https://shop.example/orders/" + ask.order), std::string::npos);
    // The second upstream call read the tool's result: its status is in the answer.
    EXPECT_EQ(t.text, "Order " + ask.order + " is " + status + ".");
  }
  // Two turns, each two upstream requests; the second carried the tool result.
  const auto stats = sim_stats(*sim);
  EXPECT_EQ(stats.requests, 4);
  EXPECT_NE(stats.last_body.find(R"("role":"tool")"), std::string::npos) << stats.last_body;
  EXPECT_NE(stats.last_body.find(R"("tool_calls":[{"id":)"), std::string::npos) << stats.last_body;
}

TEST(Tools, AnUnknownOrderIsAClearResultNotAnError) {
  OrdersDb db;
  TempConfig config(orders_toml(db));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat("What about order Z9999?"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  const ToolTurn t = read_tool_turn(c, session->session_id);
  ASSERT_TRUE(t.done);
  ASSERT_EQ(t.results.size(), 1u);
  EXPECT_NE(t.results[0].raw.find(R"("found":false)"), std::string::npos) << t.results[0].raw;
  EXPECT_TRUE(t.sources.empty());
  EXPECT_EQ(t.text, "I could not find order Z9999.");
}

TEST(Tools, FailingToolsBecomeErrorsTheModelSeesAndTheTurnGoesOn) {
  const std::string toml = std::string("[tools]\ntimeout_ms = 300\nbreaker_failures = 3\n[[plugins]]\npath = \"") +
                           SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  WsClient bystander(gw->port());
  struct Case {
    std::string directive, error;
  };
  const std::vector<Case> cases = {
      {"[[sim tool=throws args={}]]", "disk on fire 🔥"},
      {R"([[sim tool=echo args={"text":12}]])", "invalid arguments: text: must be string (got integer)"},
      {"[[sim tool=hangs args={}]]", "the tool did not answer within 300 ms"},
  };
  for (const auto& k : cases) {
    bystander.send(chat("meanwhile, a plain question"));
    c.send(chat(k.directive + " go"));
    auto session = c.read_until("session");
    ASSERT_TRUE(session);
    const ToolTurn t = read_tool_turn(c, session->session_id);
    ASSERT_TRUE(t.done) << k.directive;
    EXPECT_EQ(t.done->finish_reason, "stop");
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find(R"("ok":false)"), std::string::npos);
    EXPECT_NE(t.results[0].raw.find(k.error), std::string::npos) << t.results[0].raw;
    EXPECT_EQ(t.text, "Sorry, the tool failed: " + k.error);
    // Another client's turn, on the same gateway, is unaffected.
    auto other = bystander.read_until("session");
    ASSERT_TRUE(other);
    EXPECT_EQ(read_turn(bystander, other->session_id).text, expected_text("meanwhile, a plain question"));
  }
  // The plugin failed twice in a row (throws, hangs; arguments that break the
  // schema never reach it). A third failure opens its breaker
  // (tools.breaker_failures = 3): the next call is refused at once.
  c.send(chat("[[sim tool=throws args={}]] again"));
  auto s1 = c.read_until("session");
  ASSERT_TRUE(s1);
  ASSERT_TRUE(read_tool_turn(c, s1->session_id).done);
  c.send(chat(R"([[sim tool=echo args={"text":"你好"}]] open?)"));
  auto s2 = c.read_until("session");
  ASSERT_TRUE(s2);
  const ToolTurn refused = read_tool_turn(c, s2->session_id);
  ASSERT_EQ(refused.results.size(), 1u) << refused.text;
  EXPECT_NE(refused.results[0].raw.find("unavailable for now"), std::string::npos) << refused.results[0].raw;
}

TEST(Tools, CallsPastMaxInFlightAreRefusedAndTheTurnGoesOn) {
  const std::string toml = std::string("[tools]\ntimeout_ms = 5000\nmax_in_flight = 1\n[[plugins]]\npath = \"") +
                           SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient first(gw->port());
  first.send(chat("[[sim tool=hangs args={}]] slow"));
  auto s1 = first.read_until("session");
  ASSERT_TRUE(s1);
  ASSERT_TRUE(first.read_until("tool_call", s1->session_id));
  // The plugin's one slot is taken: a second call is refused at once.
  WsClient second(gw->port());
  second.send(chat(R"([[sim tool=echo args={"text":"hi"}]] now)"));
  auto s2 = second.read_until("session");
  ASSERT_TRUE(s2);
  const ToolTurn refused = read_tool_turn(second, s2->session_id);
  ASSERT_TRUE(refused.done);
  ASSERT_EQ(refused.results.size(), 1u);
  EXPECT_NE(refused.results[0].raw.find("the tool is busy"), std::string::npos) << refused.results[0].raw;
  // The slow one finishes (3 s) and its turn ends normally.
  const ToolTurn slow = read_tool_turn(first, s1->session_id);
  ASSERT_TRUE(slow.done);
  ASSERT_EQ(slow.results.size(), 1u);
  EXPECT_NE(slow.results[0].raw.find(R"("ok":true)"), std::string::npos) << slow.results[0].raw;
}

TEST(Tools, CancelWhileAToolRunsEndsTheTurnAtOnce) {
  const std::string toml = std::string("[tools]\ntimeout_ms = 5000\n[[plugins]]\npath = \"") +
                           SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat("[[sim tool=hangs args={}]] slow"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(c.read_until("tool_call", session->session_id));
  const auto t0 = std::chrono::steady_clock::now();
  c.send(cancel(session->session_id));
  auto done = c.read_until("done", session->session_id);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->finish_reason, "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace sluice::test
