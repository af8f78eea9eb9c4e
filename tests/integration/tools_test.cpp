// Tool calls through the running gateway: the simulator streams vLLM-style
// tool_calls; plugins' tools run and the upstream is called again.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

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
  // The plugin's own counters, kept in its host process, are exported by the gateway.
  const auto metrics = http_get(gw->port(), "/metrics");
  EXPECT_NE(metrics.body.find(R"(sluice_plugin_counter_total{plugin="order_lookup",counter="lookups"} 2)"),
            std::string::npos)
      << metrics.body.substr(0, 4000);
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
      // An exception's what() is for the log, not for the model or the user.
      {"[[sim tool=throws args={}]]", "the tool failed with an internal error"},
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
  // The log has what the client did not: the exception's text, and every
  // error with its plugin, tool and status.
  const std::string log = gw->stderr_text();
  EXPECT_NE(log.find("plugin test_tools: a tool threw: disk on fire 🔥"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin test_tools: tool throws status internal"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin test_tools: tool hangs status timeout"), std::string::npos) << log;
}

// Statuses: "not found" is an answer the model reads, however often users
// ask about unknown cities; only unwell tools open the breaker. A result
// that is not JSON is internal, with the detail in the log.
TEST(Tools, NotFoundIsAnAnswerAndOnlyFailuresOpenTheBreaker) {
  const std::string toml = std::string("[tools]\nbreaker_failures = 3\n[[plugins]]\npath = \"") +
                           SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  auto ask = [&](const std::string& directive) {
    c.send(chat(directive + " 天气"));
    auto session = c.read_until("session");
    EXPECT_TRUE(session);
    return session ? read_tool_turn(c, session->session_id) : ToolTurn{};
  };
  for (int i = 0; i < 5; ++i) {
    const ToolTurn t = ask("[[sim tool=missing args={}]]");
    ASSERT_TRUE(t.done);
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find("no city named 亚特兰蒂斯"), std::string::npos) << t.results[0].raw;
  }
  const ToolTurn ok = ask(R"([[sim tool=echo args={"text":"还在"}]])");
  ASSERT_EQ(ok.results.size(), 1u);
  EXPECT_NE(ok.results[0].raw.find(R"("ok":true)"), std::string::npos) << ok.results[0].raw;

  const ToolTurn bad = ask("[[sim tool=bad_json args={}]]");
  ASSERT_EQ(bad.results.size(), 1u);
  EXPECT_NE(bad.results[0].raw.find("the tool returned no valid JSON result"), std::string::npos);
  // Unavailable counts: with bad_json before them, two more open the breaker.
  for (int i = 0; i < 2; ++i) {
    const ToolTurn t = ask("[[sim tool=down args={}]]");
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find("the weather service is down"), std::string::npos) << t.results[0].raw;
  }
  const ToolTurn refused = ask(R"([[sim tool=echo args={"text":"now?"}]])");
  ASSERT_EQ(refused.results.size(), 1u);
  EXPECT_NE(refused.results[0].raw.find("unavailable for now"), std::string::npos) << refused.results[0].raw;
  const std::string log = gw->stderr_text();
  EXPECT_NE(log.find("plugin test_tools: tool missing status not_found: no city named"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin test_tools: tool bad_json status internal: its result is not JSON"), std::string::npos)
      << log;
  EXPECT_NE(log.find("plugin test_tools: tool down status unavailable"), std::string::npos) << log;
}

// Each plugin has its own workers: one whose calls hang fills only its own
// (tools.workers = 1 here), and another plugin's tool answers at once,
// with nothing charged to it. A call queued behind the hung one is refused
// as busy once it has waited tools.timeout_ms: not a timeout of the tool.
TEST(Tools, AHangingPluginUsesUpOnlyItsOwnWorkers) {
  const std::string toml = std::string("[tools]\nworkers = 1\ntimeout_ms = 1000\nbreaker_failures = 2\n") +
                           "[[plugins]]\npath = \"" + SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n" +
                           "[[plugins]]\npath = \"" + SLUICE_TEST_PLUGIN_DIR + "/test_tools_b.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient hung(gw->port());
  hung.send(chat("[[sim tool=hangs args={}]] first"));
  auto s1 = hung.read_until("session");
  ASSERT_TRUE(s1);
  ASSERT_TRUE(hung.read_until("tool_call", s1->session_id));
  WsClient queued(gw->port());
  queued.send(chat(R"([[sim tool=echo args={"text":"behind"}]] second)"));
  auto s2 = queued.read_until("session");
  ASSERT_TRUE(s2);
  ASSERT_TRUE(queued.read_until("tool_call", s2->session_id));

  // The other plugin, meanwhile: answered, several times over.
  WsClient other(gw->port());
  for (int i = 0; i < 3; ++i) {
    other.send(chat(R"([[sim tool=b_echo args={"text":"别的插件"}]] meanwhile)"));
    auto s = other.read_until("session");
    ASSERT_TRUE(s);
    const ToolTurn t = read_tool_turn(other, s->session_id);
    ASSERT_TRUE(t.done);
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find(R"("ok":true)"), std::string::npos) << t.results[0].raw;
  }
  const ToolTurn first = read_tool_turn(hung, s1->session_id);
  ASSERT_EQ(first.results.size(), 1u);
  EXPECT_NE(first.results[0].raw.find("did not answer within 1000 ms"), std::string::npos) << first.results[0].raw;
  const ToolTurn second = read_tool_turn(queued, s2->session_id);
  ASSERT_EQ(second.results.size(), 1u);
  EXPECT_NE(second.results[0].raw.find("the tool is busy"), std::string::npos) << second.results[0].raw;
  // One timeout only (breaker_failures = 2): the plugin's breaker is still closed.
  std::this_thread::sleep_for(2500ms);  // the hung call returns (3 s) and frees the worker
  WsClient again(gw->port());
  again.send(chat(R"([[sim tool=echo args={"text":"回来了"}]] back)"));
  auto s3 = again.read_until("session");
  ASSERT_TRUE(s3);
  const ToolTurn back = read_tool_turn(again, s3->session_id);
  ASSERT_EQ(back.results.size(), 1u);
  EXPECT_NE(back.results[0].raw.find(R"("ok":true)"), std::string::npos) << back.results[0].raw;
  const std::string log = gw->stderr_text();
  EXPECT_EQ(log.find("plugin test_tools_b: tool"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin test_tools: tool hangs status timeout"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin test_tools: tool echo waited 1000 ms"), std::string::npos) << log;
}

// ABI growth, through the gateway: a plugin built against the 1.0 header
// (smaller structs) answers its tool and moderates the text; a 1.1 tool's own
// deadline is kept, and the tool is told when its call is abandoned.
TEST(Tools, Abi10PluginsWorkAndA11ToolKeepsItsOwnDeadline) {
  const std::string toml = std::string("[tools]\ntimeout_ms = 5000\n") + "[[plugins]]\npath = \"" +
                           SLUICE_TEST_PLUGIN_DIR + "/abi_1_0_plugin.so\"\n[[plugins]]\npath = \"" +
                           SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat(R"([[sim tool=legacy_echo args={"城市":"北京"}]] 老插件)"));
  auto s1 = c.read_until("session");
  ASSERT_TRUE(s1);
  const ToolTurn legacy = read_tool_turn(c, s1->session_id);
  ASSERT_TRUE(legacy.done) << gw->stderr_text();
  ASSERT_EQ(legacy.results.size(), 1u);
  EXPECT_NE(legacy.results[0].raw.find(R"("legacy":true)"), std::string::npos) << legacy.results[0].raw;
  EXPECT_EQ(legacy.results[0].plugin, "legacy_v1_0");

  const auto t0 = std::chrono::steady_clock::now();
  c.send(chat("[[sim tool=patient args={}]] 慢慢来"));
  auto s2 = c.read_until("session");
  ASSERT_TRUE(s2);
  const ToolTurn patient = read_tool_turn(c, s2->session_id);
  ASSERT_EQ(patient.results.size(), 1u);
  EXPECT_NE(patient.results[0].raw.find("the tool did not answer within 300 ms"), std::string::npos)
      << patient.results[0].raw;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  std::string log;
  for (int i = 0; i < 100 && log.find("patient: ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
    log = gw->stderr_text();
  }
  EXPECT_NE(log.find(" ms left at the start, told to stop after "), std::string::npos) << log;
  EXPECT_NE(log.find(" ms, 0 ms left"), std::string::npos) << log;
}

// Moderation covers the tool events too: the arguments a client is shown,
// the result (for the client and for the model), its sources and its error
// text; a stop on any of them ends the answer as a filtered one.
TEST(Tools, ToolCallsResultsAndErrorsAreModeratedLikeTheAnswer) {
  const std::string toml = std::string(R"(
[[plugins]]
path = ")") + SLUICE_PLUGIN_DIR + R"(/moderation.so"
[plugins.settings]
pii = ["email"]
[[plugins.settings.lists]]
name = "violence"
action = "stop"
phrases = ["杀了他们"]
[[plugins.settings.lists]]
name = "rude"
action = "redact"
phrases = ["笨蛋", "亚特兰蒂斯"]
[[plugins]]
path = ")" + SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
  TempConfig config(toml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  auto ask = [&](const std::string& directive) {
    c.send(chat(directive + " 请"));
    auto session = c.read_until("session");
    EXPECT_TRUE(session);
    return session ? read_tool_turn(c, session->session_id) : ToolTurn{};
  };
  const ToolTurn echo = ask(R"([[sim tool=echo args={"text":"笨蛋,写信li@ex.cn"}]])");
  ASSERT_TRUE(echo.done);
  ASSERT_EQ(echo.calls.size(), 1u);
  ASSERT_EQ(echo.results.size(), 1u);
  for (const Frame* f : {&echo.calls[0], &echo.results[0]}) {
    EXPECT_EQ(f->raw.find("笨蛋"), std::string::npos) << f->raw;
    EXPECT_EQ(f->raw.find("li@ex.cn"), std::string::npos) << f->raw;
    EXPECT_NE(f->raw.find(R"(***,写信[email])"), std::string::npos) << f->raw;
  }
  EXPECT_GE(echo.moderation.size(), 4u);  // rude and email, in the call and in the result
  // The model read the redacted result too (its own call stays as it made it).
  const auto stats = sim_stats(*sim);
  const auto tool_message = stats.last_body.find(R"("role":"tool")");
  ASSERT_NE(tool_message, std::string::npos) << stats.last_body;
  const std::string after = stats.last_body.substr(tool_message);
  EXPECT_EQ(after.find("li@ex.cn"), std::string::npos) << after;
  EXPECT_NE(after.find("[email]"), std::string::npos) << after;
  EXPECT_EQ(echo.text.find("li@ex.cn"), std::string::npos) << echo.text;

  // An error's text: moderated as well.
  const ToolTurn missing = ask("[[sim tool=missing args={}]]");
  ASSERT_EQ(missing.results.size(), 1u);
  EXPECT_NE(missing.results[0].raw.find("no city named ***"), std::string::npos) << missing.results[0].raw;

  // A stop in the arguments: the call is neither shown nor run.
  const ToolTurn stopped = ask(R"([[sim tool=echo args={"text":"杀了他们"}]])");
  ASSERT_TRUE(stopped.done);
  EXPECT_EQ(stopped.done->finish_reason, "content_filter");
  EXPECT_TRUE(stopped.calls.empty());
  EXPECT_TRUE(stopped.results.empty());
  ASSERT_FALSE(stopped.moderation.empty());
  EXPECT_EQ(stopped.moderation.back().action, "stop");
  EXPECT_EQ(stopped.moderation.back().reason, "violence");
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
