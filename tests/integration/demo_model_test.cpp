// The embedded default, as scripts/run.sh starts it: config/sluice.toml runs
// the committed demo model (models/sluice-demo.gguf) on the local engine,
// with the order_lookup plugin and the demo shop's knowledge base. Questions
// in English and Chinese get streamed answers from the knowledge base, with
// citations; an order question goes through the tool loop; greetings and
// off-topic requests get short answers in the question's language. The
// questions a new user tried in issue 18 are here as they were asked.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// The demo model runs in the gateway's own process: under ThreadSanitizer
// (every load and store of the kernels checked, the worker threads' spinning
// included) with another test beside it on 2 cores, a prompt with three
// passages takes more than 20 s before its first delta.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto kFrameTimeout = 180s;
#else
constexpr auto kFrameTimeout = 20s;
#endif

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
      {"\"build/release/plugins/knowledge_base.so\"", std::string("\"") + SLUICE_PLUGIN_DIR + "/knowledge_base.so\""},
      {"\"kb/demo-shop\"", std::string("\"") + SLUICE_SOURCE_DIR + "/kb/demo-shop\""},
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
    auto session = c.read_until("session", "", kFrameTimeout);
    EXPECT_TRUE(session) << gw_->stderr_text();
    if (!session) return {};
    return read_tool_turn(c, session->session_id, kFrameTimeout);
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
  EXPECT_NE(log.find("knowledge base " + std::string(SLUICE_SOURCE_DIR) + "/kb/demo-shop: 26 documents"),
            std::string::npos)
      << log;
}

// The retrieval sources of a turn (origin "retrieval"), or nullptr.
const Frame* retrieval_sources(const ToolTurn& t) {
  for (const auto& f : t.sources) {
    if (f.raw.find(R"("origin":"retrieval")") != std::string::npos) return &f;
  }
  return nullptr;
}

// Whether the answer cites [n] and item n of the sources is `id`'s passage.
bool cites(const ToolTurn& t, const std::string& id_prefix) {
  const Frame* s = retrieval_sources(t);
  if (!s) return false;
  for (int n = 1; n <= 3; ++n) {
    if (t.text.find("[" + std::to_string(n) + "]") == std::string::npos) continue;
    size_t at = 0;
    for (int k = 0; k < n && at != std::string::npos; ++k) at = s->raw.find(R"("id":")", at + 1);
    if (at != std::string::npos && s->raw.compare(at + 6, id_prefix.size(), id_prefix) == 0) return true;
  }
  return false;
}

size_t cjk_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c >= 0xE4 && c <= 0xE9);
  return n;
}

TEST_F(DemoModel, AnswersAReturnsQuestionFromTheKnowledgeBaseAndCitesIt) {
  const ToolTurn t = ask("How do I return an item?");
  ASSERT_TRUE(t.done) << t.text;
  EXPECT_EQ(t.done->finish_reason, "stop");
  EXPECT_GE(t.deltas, 20) << "the answer should stream in token by token";
  EXPECT_TRUE(t.calls.empty());
  ASSERT_TRUE(retrieval_sources(t)) << "no sources";
  EXPECT_TRUE(cites(t, "en/returns#")) << t.text;
  EXPECT_NE(t.text.find("30 days"), std::string::npos) << t.text;
}

TEST_F(DemoModel, AChineseAnswerStreamsAFewCharactersAtATime) {
  const ToolTurn t = ask("怎么退货？");
  ASSERT_TRUE(t.done) << t.text;
  EXPECT_EQ(t.done->finish_reason, "stop");
  EXPECT_TRUE(cites(t, "zh/returns#")) << t.text;
  // Pieces of at most two CJK characters (the tokenizer allows no more), so
  // the answer arrives in many deltas: no whole phrases at once.
  EXPECT_GE(static_cast<size_t>(t.deltas) * 2, cjk_chars(t.text)) << t.deltas << " deltas: " << t.text;
  EXPECT_GE(t.deltas, 30) << t.text;
}

// What a new user tried on the first edition, and what it answered then.
// (Thanks and goodbyes as a conversation's first message are not answered
// well yet: the corpus has them only after another turn; models/README.md.)
TEST_F(DemoModel, GreetingsAndOffTopicGetShortAnswersInTheirLanguage) {
  const ToolTurn hi = ask("hi");  // was: an advertisement for headphones
  ASSERT_TRUE(hi.done);
  EXPECT_EQ(retrieval_sources(hi), nullptr);
  EXPECT_NE(hi.text.find("Hello"), std::string::npos) << hi.text;
  EXPECT_EQ(hi.text.find("headphones"), std::string::npos) << hi.text;
  const ToolTurn joke = ask("Tell me a joke");  // was: a kettle
  ASSERT_TRUE(joke.done);
  EXPECT_NE(joke.text.find("Sorry, I can only help with questions about the Sluice demo shop"), std::string::npos)
      << joke.text;
  const ToolTurn hello = ask("你好");
  ASSERT_TRUE(hello.done);
  EXPECT_NE(hello.text.find("您好"), std::string::npos) << hello.text;
}

TEST_F(DemoModel, AnswersInTheLanguageOfTheQuestion) {
  // was: an English notebook answer
  const ToolTurn pay = ask("你们支持哪些支付方式？");
  ASSERT_TRUE(pay.done);
  EXPECT_GT(cjk_chars(pay.text), 20u) << pay.text;
  // was: a Chinese refusal
  const ToolTurn ship = ask("How long does shipping to Germany take?");
  ASSERT_TRUE(ship.done);
  EXPECT_TRUE(cites(ship, "en/shipping#")) << ship.text;
  EXPECT_NE(ship.text.find("7 to 12 business days"), std::string::npos) << ship.text;
  EXPECT_EQ(cjk_chars(ship.text), 0u) << ship.text;
}

TEST_F(DemoModel, AnOrderQuestionCallsLookupOrderWithTheNumberAsAsked) {
  // Orders of the demo database (tools/make_demo_orders.py), and one that is
  // not there. The call carries the order number exactly as asked; the
  // answer after the tool round names it. (The second edition copies
  // numbers less reliably than the first: 22 of 30 on the held-out set,
  // models/README.md; B7777 became M7777.)
  for (const std::string& order : {"A1002", "A1108", "A1063", "A1999"}) {
    const bool zh = order == "A1002" || order == "A1063";
    const std::string question = zh ? "我的订单" + order + "到哪了？" : "Where is my order " + order + "?";
    const ToolTurn t = ask(question);
    ASSERT_TRUE(t.done) << question;
    EXPECT_EQ(t.done->finish_reason, "stop") << t.text;
    ASSERT_EQ(t.calls.size(), 1u) << question << ": " << t.text;
    EXPECT_NE(t.calls[0].raw.find(R"("name":"lookup_order")"), std::string::npos) << t.calls[0].raw;
    EXPECT_NE(t.calls[0].raw.find(R"("arguments":{"order_id":")" + order + "\"}"), std::string::npos)
        << t.calls[0].raw;
    ASSERT_EQ(t.results.size(), 1u);
    EXPECT_NE(t.results[0].raw.find(R"("ok":true)"), std::string::npos) << t.results[0].raw;
    size_t order_cards = 0;
    for (const auto& f : t.sources) order_cards += f.raw.find(R"("origin":"tool")") != std::string::npos;
    EXPECT_EQ(order_cards, order == "A1999" ? 0u : 1u) << question;
    EXPECT_NE(t.text.find(order), std::string::npos) << question << ": " << t.text;
    EXPECT_EQ(cjk_chars(t.text) > 0, zh) << question << ": " << t.text;
  }
}

}  // namespace
}  // namespace sluice::test
