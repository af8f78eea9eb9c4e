// Answers from a knowledge base through the running gateway: the
// knowledge_base plugin over the demo shop's documents (or a test retriever
// that misbehaves), the simulator as the model. The passages come first, as
// one `sources` event, on every face and on resume; the model reads them
// numbered in its prompt; a failing or slow retriever leaves the answer
// without sources, logged.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/redis_server.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

std::string kb_toml(const std::string& extra = "") {
  return std::string("[retrieval]\ntimeout_ms = 1500\n") + extra + "[[plugins]]\npath = \"" + SLUICE_PLUGIN_DIR +
         "/knowledge_base.so\"\n[plugins.settings]\nfolder = \"" + SLUICE_SOURCE_DIR + "/kb/demo-shop\"\n";
}

std::string retriever_toml(const std::string& mode, const std::string& retrieval = "timeout_ms = 300\n") {
  return "[retrieval]\n" + retrieval + "[[plugins]]\npath = \"" + SLUICE_TEST_PLUGIN_DIR +
         "/test_retriever.so\"\n[plugins.settings]\nmode = \"" + mode + "\"\n";
}

// The frames of one turn, in order, until its done.
std::vector<Frame> turn_frames(WsClient& c, const std::string& session_id) {
  std::vector<Frame> out;
  for (auto f = c.read(20s); f; f = c.read(20s)) {
    if (f->session_id != session_id) continue;
    out.push_back(*f);
    if (f->type == "done") break;
  }
  return out;
}

// Where the first frame of `type` is (frames.size() when none).
size_t first_of(const std::vector<Frame>& frames, const std::string& type) {
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].type == type) return i;
  }
  return frames.size();
}

TEST(Retrieval, SourcesComeBeforeTheTextAndTheModelReadsThePassagesNumbered) {
  TempConfig config(kb_toml());
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "How long does shipping to Germany take?");
  const auto frames = turn_frames(c, s.session_id);
  ASSERT_FALSE(frames.empty());
  ASSERT_EQ(frames.back().type, "done");
  EXPECT_EQ(frames.back().finish_reason, "stop");
  const size_t src = first_of(frames, "sources"), delta = first_of(frames, "delta");
  ASSERT_LT(src, frames.size()) << "no sources event";
  ASSERT_LT(delta, frames.size());
  EXPECT_LT(src, delta);
  EXPECT_EQ(frames[src].offset, 1u);  // the turn's first event
  const std::string& raw = frames[src].raw;
  EXPECT_NE(raw.find(R"("origin":"retrieval")"), std::string::npos) << raw;
  EXPECT_NE(raw.find(R"("id":"en/shipping#international-delivery")"), std::string::npos) << raw;
  EXPECT_NE(raw.find(R"("url":"https://shop.sluice.example/help/shipping#international-delivery")"), std::string::npos)
      << raw;
  EXPECT_NE(raw.find(R"("kind":"passage")"), std::string::npos);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), '{') - 1, 3 * 2) << raw;  // 3 items, each with metadata
  // The model's request: the passages numbered, then the question.
  const auto stats = sim_stats(*sim);
  EXPECT_NE(stats.last_body.find("Sources:\\n[1] Shipping \u203a Delivery times by country\\n"), std::string::npos)
      << stats.last_body.substr(0, 2000);
  EXPECT_NE(stats.last_body.find(R"(\nQuestion: How long does shipping to Germany take?")"), std::string::npos)
      << stats.last_body.substr(0, 2000);
  // Counted for the dashboards.
  EXPECT_EQ(metric(gw->port(), R"(sluice_retrievals_total{retriever="knowledge_base",result="ok"})"), 1);
  EXPECT_EQ(metric(gw->port(), R"(sluice_retrieval_turns_total{result="sources"})"), 1);

  // A resuming client from offset 0 sees the sources first too.
  WsClient again(gw->port());
  again.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(again.read_until("resumed", s.session_id));
  const auto replay = turn_frames(again, s.session_id);
  ASSERT_FALSE(replay.empty());
  EXPECT_EQ(replay[0].type, "sources");
  EXPECT_EQ(replay[0].raw, raw);
  EXPECT_LT(first_of(replay, "sources"), first_of(replay, "delta"));
}

TEST(Retrieval, ChineseQuestionsGetChinesePassagesAndAFollowUpKeepsItsTopic) {
  TempConfig config(kb_toml());
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "你们支持哪些支付方式？");
  auto frames = turn_frames(c, s.session_id);
  size_t src = first_of(frames, "sources");
  ASSERT_LT(src, frames.size());
  EXPECT_NE(frames[src].raw.find(R"("id":"zh/payments#payment-methods")"), std::string::npos) << frames[src].raw;
  EXPECT_EQ(frames[src].raw.find(R"("id":"en/)"), std::string::npos) << frames[src].raw;

  // "How long is the warranty?" then "what about the kettle?": the second
  // alone is about caring for it; after the first it is about its warranty.
  c.send(chat("How long is the warranty?", "", s.session_id));
  turn_frames(c, s.session_id);
  c.send(chat("what about the kettle?", "", s.session_id));
  frames = turn_frames(c, s.session_id);
  src = first_of(frames, "sources");
  ASSERT_LT(src, frames.size());
  const auto first_id = frames[src].raw.find(R"("id":")");
  EXPECT_EQ(frames[src].raw.substr(first_id, 18), R"("id":"en/warranty#)") << frames[src].raw;
}

TEST(Retrieval, TheSseFaceSendsTheSourcesEventBeforeTheFirstContentChunk) {
  TempConfig config(kb_toml());
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  const auto streamed = http_post(gw->port(), "/v1/chat/completions",
                                  R"({"messages":[{"role":"user","content":"What is your return policy? 📦"}],"stream":true})");
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  const auto sources = streamed.body.find("event: sources\n");
  size_t content = streamed.body.find(R"("content":")");  // the first with text (the role-only chunk has none)
  while (content != std::string::npos && streamed.body.compare(content + 11, 1, "\"") == 0) {
    content = streamed.body.find(R"("content":")", content + 1);
  }
  ASSERT_NE(sources, std::string::npos) << streamed.body.substr(0, 1500);
  ASSERT_NE(content, std::string::npos);
  EXPECT_LT(sources, content);
  EXPECT_NE(streamed.body.find(R"("id":"en/returns#return-policy")"), std::string::npos);
  EXPECT_NE(streamed.body.find("data: [DONE]"), std::string::npos);
  // Without stream: the answer and, beside it, the sources it was given.
  const auto whole = http_post(gw->port(), "/v1/chat/completions",
                               R"({"messages":[{"role":"user","content":"退货政策是什么？"}]})");
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_NE(whole.body.find(R"("object":"chat.completion")"), std::string::npos);
  EXPECT_NE(whole.body.find(R"("sources":[{"kind":"passage","id":"zh/returns#)"), std::string::npos) << whole.body;
}

TEST(Retrieval, NoPassageNoSourcesEvent) {
  TempConfig config(kb_toml());
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "hi!");
  const auto frames = turn_frames(c, s.session_id);
  EXPECT_EQ(first_of(frames, "sources"), frames.size());
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().finish_reason, "stop");
  EXPECT_EQ(sim_stats(*sim).last_body.find("Sources:"), std::string::npos);
  EXPECT_EQ(metric(gw->port(), R"(sluice_retrieval_turns_total{result="none"})"), 1);
}

// A retriever that fails, throws, crashes or is too slow: the answer goes on
// without its passages, and the log says why.
class BrokenRetriever : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(BrokenRetriever, TheAnswerGoesOnWithoutSourcesAndTheLogSaysWhy) {
  const auto& [mode, logged] = GetParam();
  TempConfig config(retriever_toml(mode));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  for (int turn = 0; turn < 2; ++turn) {  // the second after a crash: the host process is back
    WsClient c(gw->port());
    const auto started = std::chrono::steady_clock::now();
    const auto s = start_chat(c, "Where is the 茶 🍵?");
    const auto frames = turn_frames(c, s.session_id);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(frames.back().type, "done");
    EXPECT_EQ(frames.back().finish_reason, "stop");
    EXPECT_EQ(first_of(frames, "sources"), frames.size()) << mode;
    std::string text;
    for (const auto& f : frames) text += f.type == "delta" ? f.text : "";
    EXPECT_EQ(text, expected_text("Where is the 茶 🍵?"));
    // Within the deadline (300 ms) and not much more.
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_TRUE(gw->wait_for_stderr(logged)) << gw->stderr_text().substr(0, 4000);
    EXPECT_TRUE(gw->wait_for_stderr("the answer goes on without its passages"));
    if (mode == "crashes") std::this_thread::sleep_for(300ms);  // the restart's backoff
  }
  EXPECT_EQ(metric(gw->port(), R"(sluice_retrieval_turns_total{result="failed"})"), 2);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, BrokenRetriever,
    ::testing::Values(std::pair<std::string, std::string>{"fails", "retriever test status unavailable: the index is down"},
                      std::pair<std::string, std::string>{"throws", "a retriever threw: index file truncated"},
                      std::pair<std::string, std::string>{"slow", "retriever test status timeout"},
                      std::pair<std::string, std::string>{"crashes", "retriever test"}),
    [](const auto& info) { return info.param.first; });

TEST(Retrieval, PassagesWithoutAnIdOrValidUtf8AreDroppedAndTheRestIsUsed) {
  TempConfig config(retriever_toml("bad"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "returns?");
  const auto frames = turn_frames(c, s.session_id);
  const size_t src = first_of(frames, "sources");
  ASSERT_LT(src, frames.size());
  EXPECT_NE(frames[src].raw.find(R"("id":"faq#returns")"), std::string::npos) << frames[src].raw;
  EXPECT_NE(frames[src].raw.find("收货后30天内可以退货。"), std::string::npos);
  EXPECT_EQ(frames[src].raw.find("bad-utf8"), std::string::npos);
  EXPECT_TRUE(gw->wait_for_stderr("returned 2 passages without an id or valid UTF-8 text"));
}

TEST(Retrieval, TheRetrieverSeesTheConversationAndTopK) {
  TempConfig config(retriever_toml("fixed", "top_k = 1\ncontext_messages = 2\n"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "How long does shipping to France take?");
  auto frames = turn_frames(c, s.session_id);
  size_t src = first_of(frames, "sources");
  ASSERT_LT(src, frames.size());
  EXPECT_EQ(frames[src].raw.find("faq#shipping"), std::string::npos) << "top_k = 1: one passage";
  c.send(chat("那德国呢？", "", s.session_id));
  frames = turn_frames(c, s.session_id);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(gw->wait_for_stderr(
      R"(request: {"query":"那德国呢？","conversation":[{"role":"user","content":"How long does shipping to France take?"},{"role":"assistant","content":"Answer for )"))
      << gw->stderr_text().substr(0, 3000);
  EXPECT_TRUE(gw->wait_for_stderr(R"("top_k":1})"));
}

TEST(Retrieval, ACancelWhileTheRetrieverRunsEndsTheTurn) {
  TempConfig config(retriever_toml("slow", "timeout_ms = 2000\n"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  const auto s = start_chat(c, "slow question");
  c.send(cancel(s.session_id));
  const auto frames = turn_frames(c, s.session_id);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().finish_reason, "cancelled");
  EXPECT_EQ(first_of(frames, "sources"), frames.size());
  EXPECT_EQ(first_of(frames, "delta"), frames.size());
  EXPECT_EQ(sim_stats(*sim).requests, 0);  // the model was never asked
}

// A folder of the plugin's own: a file changed while the gateway runs is
// re-indexed (reindex_interval_ms), and an index built ahead of time with
// sluice-kb serves without the folder.
TEST(Retrieval, AChangedDocumentIsReindexedAndAPrebuiltIndexServesAlone) {
  char tmpl[] = "/tmp/sluice-kb-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir + "/" + name) << text; };
  write("tea.md", "---\ntitle: Tea\nurl: https://shop.example/tea\n---\n# Tea\n\n## Kettles {#kettles}\n\n"
                  "The gooseneck kettle heats water to 80 degrees 🫖.\n");
  TempConfig config("[[plugins]]\npath = \"" + std::string(SLUICE_PLUGIN_DIR) +
                    "/knowledge_base.so\"\n[plugins.settings]\nfolder = \"" + dir + "\"\nreindex_interval_ms = 100\n");
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  auto sources_for = [&](uint16_t port, const std::string& question) {
    WsClient c(port);
    const auto s = start_chat(c, question);
    const auto frames = turn_frames(c, s.session_id);
    const size_t at = first_of(frames, "sources");
    return at < frames.size() ? frames[at].raw : std::string();
  };
  EXPECT_NE(sources_for(gw->port(), "kettle temperature?").find(R"("id":"tea#kettles")"), std::string::npos);
  EXPECT_EQ(sources_for(gw->port(), "teapot clay?"), "");
  std::this_thread::sleep_for(20ms);  // a new modification time
  write("tea.md", "# Tea\n\n## Teapots {#teapots}\n\nThe Yixing clay teapot holds 200 ml.\n");
  std::this_thread::sleep_for(300ms);
  EXPECT_NE(sources_for(gw->port(), "teapot clay?").find(R"("id":"tea#teapots")"), std::string::npos);
  EXPECT_EQ(sources_for(gw->port(), "kettle temperature?"), "");
  EXPECT_TRUE(gw->wait_for_stderr("re-indexed 1 changed and 0 removed documents"));

  // Ahead of time: sluice-kb index, then a gateway with the database only.
  const std::string db = dir + "/index.sqlite";
  const std::string cmd = std::string(SLUICE_KB_BIN) + " index " + SLUICE_SOURCE_DIR + "/kb/demo-shop --db " + db;
  ASSERT_EQ(std::system((cmd + " >/dev/null").c_str()), 0) << cmd;
  TempConfig prebuilt("[[plugins]]\npath = \"" + std::string(SLUICE_PLUGIN_DIR) +
                      "/knowledge_base.so\"\n[plugins.settings]\ndatabase = \"" + db + "\"\n");
  auto gw2 = start_gateway(sim_url(*sim), {}, {"--config", prebuilt.path});
  EXPECT_NE(sources_for(gw2->port(), "What is your return policy?").find(R"("id":"en/returns#return-policy")"),
            std::string::npos);
  EXPECT_TRUE(gw2->wait_for_stderr("26 documents, 150 passages"));
  std::filesystem::remove_all(dir);
}

// sluice-plugin-check asks a plugin's retrievers offline and says what the
// gateway would drop.
TEST(Retrieval, PluginCheckAsksTheRetrieversAndNamesBadPassages) {
  Process good({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_PLUGIN_DIR) + "/knowledge_base.so", "--settings",
                std::string(R"({"folder":")") + SLUICE_SOURCE_DIR + R"(/kb/demo-shop"})", "--retrieve", "怎么退货？"},
               {}, false);
  ASSERT_EQ(good.wait(20s), 0) << good.stderr_text();
  EXPECT_NE(good.stdout_text().find("retriever   knowledge_base"), std::string::npos) << good.stdout_text();
  EXPECT_NE(good.stdout_text().find("retrieve    knowledge_base ("), std::string::npos);
  EXPECT_NE(good.stdout_text().find(" zh/returns#"), std::string::npos) << good.stdout_text();
  EXPECT_NE(good.stdout_text().find("\nOK\n"), std::string::npos);
  Process bad({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_TEST_PLUGIN_DIR) + "/test_retriever.so", "--settings",
               R"({"mode":"bad"})", "--retrieve", "returns"},
              {}, false);
  ASSERT_EQ(bad.wait(20s), 1);
  EXPECT_NE(bad.stderr_text().find("FAIL retrieve test: passage  has no id"), std::string::npos) << bad.stderr_text();
  Process crash({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_TEST_PLUGIN_DIR) + "/test_retriever.so", "--settings",
                 R"({"mode":"crashes"})", "--retrieve", "returns"},
                {}, false);
  ASSERT_EQ(crash.wait(20s), 1);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer's handler has the last word: it reports the null store and
  // ends the child itself, so only the plugin and the call are certain.
  EXPECT_NE(crash.stderr_text().find("FAIL retrieve test "), std::string::npos) << crash.stderr_text();
#else
  EXPECT_NE(crash.stderr_text().find("FAIL retrieve test crashed: killed by signal"), std::string::npos)
      << crash.stderr_text();
#endif
}

// The instance that was generating the answer dies after the sources went
// out: the one that takes the turn over gives the model the same passages,
// rebuilt from the journal (the retriever is not asked again), and a client
// resuming anywhere sees the sources first.
TEST(Retrieval, ATakenOverTurnKeepsItsSourcesAndItsPrompt) {
  if (!RedisServer::installed()) GTEST_SKIP() << "redis-server is not installed (apt-get install redis-server)";
  RedisServer redis;
  TempConfig config(retriever_toml("fixed", "timeout_ms = 2000\n"));
  auto sim = start_sim({"--rate", "8"});
  const std::vector<std::string> env{"SLUICE_STORE_BACKEND=redis", "SLUICE_STORE_REDIS_URL=" + redis.url(),
                                     "SLUICE_STORE_LEASE_MS=900"};
  auto a = start_gateway(sim_url(*sim), env, {"--config", config.path});
  auto b = start_gateway(sim_url(*sim), env, {"--config", config.path});
  WsClient ca(a->port());
  const auto s = start_chat(ca, "退货 📦?");
  auto sources = ca.read_until("sources", s.session_id);
  ASSERT_TRUE(sources);
  ASSERT_TRUE(ca.read_until("delta", s.session_id));
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 2, s.token));
  ASSERT_TRUE(cb.read_until("resumed"));
  a->signal(SIGKILL);
  a->wait(5s);
  const Turn rest = read_turn(cb, s.session_id, 30s);
  ASSERT_TRUE(rest.done) << b->stderr_text();
  EXPECT_EQ(rest.done->finish_reason, "stop");
  EXPECT_TRUE(b->wait_for_stderr("took over the turn of a lost instance"));
  EXPECT_EQ(b->stderr_text().find("request: {"), std::string::npos) << "the retriever was asked again";
  const auto stats = sim_stats(*sim);
  EXPECT_GE(stats.continued, 1);
  EXPECT_NE(stats.last_body.find("Sources:\\n[1] 退货 \u203a Return window\\nItems can be returned within 30 days 📦"),
            std::string::npos)
      << stats.last_body.substr(0, 1500);
  WsClient late(b->port());
  late.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(late.read_until("resumed"));
  const auto replay = turn_frames(late, s.session_id);
  ASSERT_FALSE(replay.empty());
  EXPECT_EQ(replay[0].type, "sources");
  EXPECT_EQ(replay[0].raw, sources->raw);
}

}  // namespace
}  // namespace sluice::test
