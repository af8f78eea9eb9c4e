// Moderation plugins in the running gateway: no unmoderated text reaches a
// client or the journal, on WebSocket and SSE, live and resumed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

const std::string kModerationToml = std::string(R"(
[[plugins]]
path = ")") + SLUICE_PLUGIN_DIR + R"(/moderation.so"
[plugins.settings]
pii = ["email", "phone", "card"]
[[plugins.settings.lists]]
name = "violence"
action = "stop"
phrases = ["kill them", "杀了他们"]
[[plugins.settings.lists]]
name = "rude"
action = "redact"
phrases = ["idiot", "笨蛋"]
)";

struct Moderated {
  std::string text;
  std::vector<Frame> moderation;
  std::optional<Frame> done;
};

// A session's frames up to its done, as a client of it sees them.
Moderated read_moderated(WsClient& c, const std::string& session_id) {
  Moderated m;
  for (auto f = c.read(20s); f; f = c.read(20s)) {
    if (f->session_id != session_id) continue;
    if (f->type == "delta") m.text += f->text;
    if (f->type == "moderation") m.moderation.push_back(*f);
    if (f->type == "done") {
      m.done = f;
      break;
    }
  }
  return m;
}

TEST(Moderation, RedactsPersonalDataAndPhrasesForLiveResumedAndSseClients) {
  TempConfig config(kModerationToml);
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  const std::string prompt = "Hi idiot, write to li.na@example.com or call +86 138 0013 8000";
  std::string expected = expected_text(prompt);
  expected.replace(expected.find("idiot"), 5, "***");
  expected.replace(expected.find("li.na@example.com"), 17, "[email]");
  expected.replace(expected.find("+86 138 0013 8000"), 17, "[phone]");

  WsClient c(gw->port());
  c.send(chat("[[sim by_char=1]] " + prompt, "r1"));  // one token per character
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  const Moderated live = read_moderated(c, session->session_id);
  ASSERT_TRUE(live.done);
  EXPECT_EQ(live.done->finish_reason, "stop");
  EXPECT_EQ(live.text, expected);
  ASSERT_EQ(live.moderation.size(), 3u);
  EXPECT_EQ(live.moderation[0].action, "redact");
  EXPECT_EQ(live.moderation[0].reason, "rude");
  EXPECT_EQ(live.moderation[1].reason, "email");
  EXPECT_EQ(live.moderation[2].reason, "phone");
  EXPECT_EQ(live.moderation[0].plugin, "moderation");

  // A client resuming from the start reads the journal: the same text.
  WsClient again(gw->port());
  again.send(resume(session->session_id, 0, session->resume_token));
  const Moderated resumed = read_moderated(again, session->session_id);
  ASSERT_TRUE(resumed.done);
  EXPECT_EQ(resumed.text, expected);
  EXPECT_EQ(resumed.moderation.size(), 3u);

  // The OpenAI-compatible face is moderated the same way.
  const auto sse = http_post(gw->port(), "/v1/chat/completions",
                             R"({"stream":true,"messages":[{"role":"user","content":"[[sim by_char=1]] 你这个笨蛋 call 13800138000"}]})");
  EXPECT_EQ(sse.status, 200);
  EXPECT_EQ(sse.body.find("笨蛋"), std::string::npos) << sse.body;
  EXPECT_EQ(sse.body.find("13800138000"), std::string::npos) << sse.body;
  EXPECT_NE(sse.body.find("event: moderation"), std::string::npos) << sse.body;
  EXPECT_NE(sse.body.find("[phone]"), std::string::npos) << sse.body;
}

TEST(Moderation, ABannedPhraseStopsTheAnswerAndReleasesTheUpstream) {
  TempConfig config(kModerationToml);
  auto sim = start_sim({"--rate", "200"});
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat("[[sim by_char=1 repeat=20]] 好的，我们现在杀了他们吧", "bad"));
  auto bad = c.read_until("session");
  ASSERT_TRUE(bad);
  WsClient other(gw->port());
  other.send(chat("a calm question", "calm"));
  auto calm = other.read_until("session");
  ASSERT_TRUE(calm);

  const Moderated stopped = read_moderated(c, bad->session_id);
  ASSERT_TRUE(stopped.done);
  EXPECT_EQ(stopped.done->finish_reason, "content_filter");
  EXPECT_EQ(stopped.text.find("杀"), std::string::npos) << stopped.text;
  EXPECT_EQ(stopped.text, "Answer for 好的，我们现在");
  ASSERT_EQ(stopped.moderation.size(), 1u);
  EXPECT_EQ(stopped.moderation[0].action, "stop");
  EXPECT_EQ(stopped.moderation[0].reason, "violence");
  // The upstream request was aborted, not left to run.
  EXPECT_EQ(sim_stats(*sim, "?wait_aborted=1&timeout_ms=5000").aborted, 1);

  // Another client's answer was untouched.
  const Moderated fine = read_moderated(other, calm->session_id);
  ASSERT_TRUE(fine.done);
  EXPECT_EQ(fine.text, expected_text("a calm question"));
  EXPECT_TRUE(fine.moderation.empty());
}

TEST(Moderation, ABrokenPluginIsAClearStartErrorUnlessSkipped) {
  const std::string broken = std::string(SLUICE_TEST_PLUGIN_DIR) + "/broken_abi_v2.so";
  TempConfig strict("[[plugins]]\npath = \"" + broken + "\"\n");
  Process gw({SLUICE_GATEWAY_BIN, "--config", strict.path, "--listen", "127.0.0.1:0"}, {}, false);
  const auto status = gw.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 2);
  EXPECT_NE(gw.stderr_text().find("plugin " + broken + ": it was built for plugin ABI 2.0"),
            std::string::npos)
      << gw.stderr_text();

  TempConfig lenient("[[plugins]]\npath = \"" + broken + "\"\non_error = \"skip\"\n");
  auto sim = start_sim();
  auto ok = start_gateway(sim_url(*sim), {}, {"--config", lenient.path});
  WsClient c(ok->port());
  c.send(chat("still serving"));
  auto s = c.read_until("session");
  ASSERT_TRUE(s);
  EXPECT_TRUE(read_turn(c, s->session_id).done);
}

TEST(PluginCheck, ValidatesAPluginAndRunsItsSelfTest) {
  Process good({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_PLUGIN_DIR) + "/moderation.so", "--settings",
                R"({"lists":[{"name":"rude","action":"redact","phrases":["笨蛋"]}]})"},
               {}, false);
  ASSERT_EQ(good.wait(10s), 0) << good.stderr_text();
  EXPECT_NE(good.stdout_text().find("moderator   moderation"), std::string::npos) << good.stdout_text();
  EXPECT_NE(good.stdout_text().find("OK"), std::string::npos);

  Process bad({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_TEST_PLUGIN_DIR) + "/broken_tiny_struct.so"}, {},
              false);
  ASSERT_EQ(bad.wait(10s), 1);
  EXPECT_NE(bad.stderr_text().find("FAIL plugin"), std::string::npos) << bad.stderr_text();
  EXPECT_NE(bad.stderr_text().find("descriptor is 24 bytes"), std::string::npos);
}

// --call runs a tool in a child process and says what went wrong: a plugin
// whose tools throw, hang, crash, exit or answer garbage is never "OK".
TEST(PluginCheck, CallsEachToolAndNamesWhatWentWrong) {
  struct Case {
    std::string tool, args;
    int status;
    std::string expect;  // in stdout (status 0) or stderr
  };
  const std::vector<Case> cases = {
      {"echo", R"({"text":"你好 🌏"})", 0, R"(call        echo ()"},
      {"missing", "{}", 0, "answer call missing status not_found"},
      {"throws", "{}", 1, "FAIL call throws status internal"},
      {"down", "{}", 1, "FAIL call down status unavailable"},
      {"bad_json", "{}", 1, "FAIL call bad_json: the result is not JSON"},
      {"echo", R"({"text":12})", 1, "the arguments break its schema"},
      {"hangs", "{}", 1, "FAIL call hangs did not answer within 300 ms"},
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
      {"crashes", "{}", 1, "FAIL call crashes "},  // the sanitizer's handler has the last word
#else
      {"crashes", "{}", 1, "FAIL call crashes crashed: killed by signal 11 (Segmentation fault)"},
#endif
      {"exits", "{}", 1, "FAIL call exits exited the process (exit status 1)"},
      {"nope", "{}", 1, "FAIL there is no tool named nope"},
      {"huge", "{}", 1, "FAIL call huge: the result is 1048578 bytes, over the gateway's 64 KiB"},
      {"aborts", "{}", 1, "FAIL call aborts crashed: killed by signal 6 (Aborted)"},
  };
  for (const auto& k : cases) {
    Process p({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_TEST_PLUGIN_DIR) + "/test_tools.so", "--call", k.tool,
               k.args, "--timeout-ms", "300"},
              {}, false);
    EXPECT_EQ(p.wait(20s), k.status) << k.tool << ": " << p.stdout_text() << p.stderr_text();
    const std::string out = k.status == 0 ? p.stdout_text() : p.stderr_text();
    EXPECT_NE(out.find(k.expect), std::string::npos) << k.tool << ": " << out;
    EXPECT_EQ(p.stdout_text().find("\nOK\n") != std::string::npos, k.status == 0) << p.stdout_text();
  }
  // The thrown exception's text is for the log: the checker shows both.
  Process t({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_TEST_PLUGIN_DIR) + "/test_tools.so", "--call", "throws", "{}"},
            {}, false);
  ASSERT_EQ(t.wait(20s), 1);
  EXPECT_NE(t.stderr_text().find("a tool threw: disk on fire 🔥"), std::string::npos) << t.stderr_text();
  EXPECT_NE(t.stderr_text().find("the tool failed with an internal error"), std::string::npos) << t.stderr_text();

  // --moderate, in 2-byte pieces through the first-party moderator.
  Process m({SLUICE_PLUGIN_CHECK_BIN, std::string(SLUICE_PLUGIN_DIR) + "/moderation.so", "--settings",
             R"({"lists":[{"name":"rude","action":"redact","phrases":["笨蛋"]}]})", "--moderate", "你这个笨蛋！", "--split",
             "2"},
            {}, false);
  ASSERT_EQ(m.wait(10s), 0) << m.stderr_text();
  EXPECT_NE(m.stdout_text().find("moderation  redact by moderation"), std::string::npos) << m.stdout_text();
  EXPECT_EQ(m.stdout_text().find("笨蛋"), std::string::npos) << m.stdout_text();
}

}  // namespace
}  // namespace sluice::test
