// The embedded default, as scripts/run.sh starts it: config/sluice.toml runs
// the committed demo model (models/sluice-demo.gguf) on the local engine,
// with the order_lookup plugin. Questions in English and Chinese get
// streamed, on-topic answers; an order question goes through the tool loop.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// config/sluice.toml with its relative paths (from the repository root) made
// absolute for this build: the model, the plugin and the orders database.
std::string default_config(const OrdersDb& db) {
  std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/config/sluice.toml");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string toml = ss.str();
  const std::pair<std::string, std::string> paths[] = {
      {"\"models/sluice-demo.gguf\"", std::string("\"") + SLUICE_SOURCE_DIR + "/models/sluice-demo.gguf\""},
      {"\"build/release/plugins/order_lookup.so\"", std::string("\"") + SLUICE_PLUGIN_DIR + "/order_lookup.so\""},
      {"\"build/demo/orders.sqlite\"", "\"" + db.path + "\""},
      {"\"web-demo\"", std::string("\"") + SLUICE_SOURCE_DIR + "/web-demo\""}};
  for (const auto& [from, to] : paths) {
    const auto at = toml.find(from);
    EXPECT_NE(at, std::string::npos) << "config/sluice.toml no longer has " << from;
    if (at != std::string::npos) toml.replace(at, from.size(), to);
  }
  return toml;
}

class DemoModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new OrdersDb();
    config_ = new TempConfig(default_config(*db_));
    gw_ = std::make_unique<Process>(std::vector<std::string>{SLUICE_GATEWAY_BIN, "--config", config_->path,
                                                             "--listen", "127.0.0.1:0"},
                                    std::vector<std::string>{"SLUICE_LOCAL_THREADS=2"})
              .release();
  }
  static void TearDownTestSuite() {
    delete gw_;
    delete config_;
    delete db_;
  }
  ToolTurn ask(const std::string& question) {
    WsClient c(gw_->port());
    c.send(chat(question));
    auto session = c.read_until("session", "", 30s);
    EXPECT_TRUE(session) << gw_->stderr_text();
    if (!session) return {};
    return read_tool_turn(c, session->session_id);
  }
  static OrdersDb* db_;
  static TempConfig* config_;
  static Process* gw_;
};
OrdersDb* DemoModel::db_ = nullptr;
TempConfig* DemoModel::config_ = nullptr;
Process* DemoModel::gw_ = nullptr;

bool contains_all(const std::string& text, std::initializer_list<const char*> words) {
  for (const char* w : words) {
    if (text.find(w) == std::string::npos) return false;
  }
  return true;
}

TEST_F(DemoModel, StartsOnTheDemoModelWithTheOrderTool) {
  // The start-up line names the engine and its model file.
  EXPECT_TRUE(gw_->wait_for_stderr("engine local -> ")) << gw_->stderr_text();
  const std::string log = gw_->stderr_text();
  EXPECT_NE(log.find("sluice-demo.gguf"), std::string::npos) << log;
  EXPECT_NE(log.find("order_lookup"), std::string::npos) << log;
}

TEST_F(DemoModel, StreamsAnOnTopicAnswerToAReturnsQuestionInEnglish) {
  const ToolTurn t = ask("How do I return an item?");
  ASSERT_TRUE(t.done) << t.text;
  EXPECT_EQ(t.done->finish_reason, "stop");
  EXPECT_GE(t.deltas, 20) << "the answer should stream in token by token";
  EXPECT_TRUE(t.calls.empty());
  EXPECT_TRUE(contains_all(t.text, {"return", "30 days", "refund"})) << t.text;
}

TEST_F(DemoModel, StreamsAnOnTopicAnswerToAReturnsQuestionInChinese) {
  const ToolTurn t = ask("怎么退货？");
  ASSERT_TRUE(t.done) << t.text;
  EXPECT_EQ(t.done->finish_reason, "stop");
  // Fewer, longer pieces than in English: the demo tokenizer learnt whole
  // Chinese phrases of its corpus as single tokens.
  EXPECT_GE(t.deltas, 5);
  EXPECT_TRUE(contains_all(t.text, {"退货", "30天", "退款"})) << t.text;
}

TEST_F(DemoModel, AnOrderQuestionCallsLookupOrderAndTheAnswerUsesTheResult) {
  // Orders of every kind in the demo database (tools/make_demo_orders.py),
  // and one that is not there. The answer after the tool round gives the
  // order number exactly as asked and the status the tool found.
  struct Ask {
    std::string question, order, status_words;
  };
  for (const Ask& a : {Ask{"Where is my order A1001?", "A1001", "is on its way with SF Express"},
                       Ask{"我的订单A1002到哪了？", "A1002", "送达"},
                       Ask{"Where is my order A1108?", "A1108", "has been delivered by DHL"},
                       Ask{"我的订单A1063到哪了？", "A1063", "正在配送中"},
                       Ask{"Has my order A1007 shipped yet?", "A1007", "is being processed"},
                       Ask{"Where is my order A1999?", "A1999", "could not find"}}) {
    const ToolTurn t = ask(a.question);
    ASSERT_TRUE(t.done) << a.question;
    EXPECT_EQ(t.done->finish_reason, "stop") << t.text;
    ASSERT_EQ(t.calls.size(), 1u) << a.question << ": " << t.text;
    EXPECT_NE(t.calls[0].raw.find(R"("name":"lookup_order")"), std::string::npos) << t.calls[0].raw;
    EXPECT_NE(t.calls[0].raw.find(R"("arguments":{"order_id":")" + a.order + "\"}"), std::string::npos)
        << t.calls[0].raw;
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find(R"("ok":true)"), std::string::npos) << t.results[0].raw;
    const bool found = a.order != "A1999";
    EXPECT_EQ(t.sources.size(), found ? 1u : 0u) << a.question;
    EXPECT_NE(t.text.find(a.order), std::string::npos) << a.question << ": " << t.text;
    EXPECT_NE(t.text.find(a.status_words), std::string::npos) << a.question << ": " << t.text;
  }
}

}  // namespace
}  // namespace sluice::test
