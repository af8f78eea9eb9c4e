// Broken plugins against a live gateway: tools run in a host process of
// their own (the default), and whatever a tool does there (a null
// dereference, abort, exit, allocating until refused, an endless loop, a
// 3 s sleep, throwing, invalid or huge JSON, writing to stdout and stderr),
// its caller gets a clear error the model can read, the log names the
// plugin, the tool and the signal, the plugin comes back, and another
// session streaming meanwhile gets its text byte for byte.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// How a null dereference ends a process: SIGSEGV; under the sanitizers,
// theirs is the last word (UBSan stops at the load and exits with status 1,
// TSan reports the signal and exits with its own status).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr const char* kNullDeref = "";
#else
constexpr const char* kNullDeref = "killed by signal 11 (SIGSEGV, Segmentation fault)";
#endif

std::string isolation_toml(const std::string& extra = "") {
  return std::string("[tools]\ntimeout_ms = 1000\nbreaker_failures = 1000\nprocess_memory_mb = 512\n") + extra +
         "[[plugins]]\npath = \"" + SLUICE_TEST_PLUGIN_DIR + "/test_tools.so\"\n";
}

TEST(PluginIsolation, EachBrokenToolHurtsOnlyItsOwnProcess) {
  TempConfig config(isolation_toml());
  auto sim = start_sim({"--rate", "80"});
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  ASSERT_TRUE(gw->wait_for_stderr("runs in host process")) << gw->stderr_text();
  struct Case {
    std::string tool;
    std::string result;  // in the tool_result the client gets
    std::string log;     // in the gateway's log
    // A call that hangs gets its process killed a second past its deadline
    // (its other calls in flight with it): the next case waits for that.
    bool killed_later = false;
  };
  std::vector<Case> cases = {
      {"crashes", std::string("the tool's process crashed (") + kNullDeref,
       std::string(kNullDeref) + " while running tool crashes"},
      {"aborts", "crashed (killed by signal 6 (SIGABRT", "killed by signal 6 (SIGABRT, Aborted) while running tool aborts"},
#if defined(__SANITIZE_THREAD__)
      // exit() under TSan runs its end-of-process work with the host's other
      // threads alive and may not finish: the call times out, the process is
      // killed, and the log says so (either way: only that process).
      {"exits", "the tool", " while running tool exits"},
#else
      {"exits", "crashed (exited with status 1)", "exited with status 1 while running tool exits"},
#endif
      {"spins", "the tool did not answer within 1000 ms", "tool spins still runs 1000 ms past its deadline; killing",
       true},
      {"hangs", "the tool did not answer within 1000 ms", "tool hangs still runs 1000 ms past its deadline; killing",
       true},
      {"sleeps", "the tool did not answer within 1000 ms", "tool sleeps still runs 1000 ms past its deadline; killing",
       true},
      {"throws", "the tool failed with an internal error", "a tool threw: disk on fire"},
      {"bad_json", "the tool returned no valid JSON result", "its result is not JSON"},
      {"huge", "the tool's result is over 64 KiB", "its result is 1048578 bytes"},
      {"prints", R"("printed":true)", "printed by a plugin on stdout"},
  };
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Under the sanitizers the host's address space is not capped (their shadow memory needs it).
  cases.push_back({"hogs", "the tool failed with an internal error", "a tool threw: std::bad_alloc"});
#endif
  WsClient c(gw->port());
  WsClient bystander(gw->port());
  const std::string long_prompt = "一边调用坏工具，一边流式回答 🌊 while a broken tool runs next door";
  for (const auto& k : cases) {
    bystander.send(chat(long_prompt));
    c.send(chat("[[sim tool=" + k.tool + " args={}]] 试试"));
    auto s = c.read_until("session");
    ASSERT_TRUE(s);
    const ToolTurn t = read_tool_turn(c, s->session_id);
    ASSERT_TRUE(t.done) << k.tool << "\n" << gw->stderr_text();
    ASSERT_EQ(t.results.size(), 1u) << k.tool;
    EXPECT_NE(t.results[0].raw.find(k.result), std::string::npos) << k.tool << ": " << t.results[0].raw;
    EXPECT_TRUE(gw->wait_for_stderr(k.log, 5s)) << k.tool << ": no \"" << k.log << "\" in\n" << gw->stderr_text();
    if (k.killed_later) {
      EXPECT_TRUE(gw->wait_for_stderr("killed by the gateway: tool " + k.tool + " hung past its deadline while running tool " + k.tool, 5s))
          << gw->stderr_text();
    }
    // The other session, meanwhile: all of it, byte for byte.
    auto other = bystander.read_until("session");
    ASSERT_TRUE(other);
    const Turn turn = read_turn(bystander, other->session_id);
    ASSERT_TRUE(turn.done) << k.tool;
    EXPECT_EQ(turn.text, expected_text(long_prompt)) << k.tool;
    // The plugin is back (started again with backoff when its process died).
    for (int i = 0;; ++i) {
      c.send(chat(R"([[sim tool=echo args={"text":"回来了吗"}]] back?)"));
      auto b = c.read_until("session");
      ASSERT_TRUE(b);
      const ToolTurn back = read_tool_turn(c, b->session_id);
      ASSERT_EQ(back.results.size(), 1u);
      if (back.results[0].raw.find(R"("ok":true)") != std::string::npos) break;
      ASSERT_LT(i, 20) << k.tool << ": the plugin did not come back: " << back.results[0].raw;
      std::this_thread::sleep_for(200ms);
    }
  }
  EXPECT_FALSE(gw->wait(0ms)) << "the gateway itself exited";
  EXPECT_NE(gw->stderr_text().find("its host process is back"), std::string::npos);
  EXPECT_EQ(gw->stdout_text().find("printed by a plugin"), std::string::npos) << "a plugin wrote on the gateway's stdout";
}

// A moderator that takes 300 ms over every piece of one answer holds back
// that answer only: the others stream meanwhile (moderation never runs on
// an I/O thread).
TEST(PluginIsolation, ASlowModeratorOnOneAnswerStallsNoOtherSession) {
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR + "/slow_moderator.so\"\n");
  auto sim = start_sim({"--rate", "200"});
  // One I/O thread: both connections share it.
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_SERVER_THREADS=1"}, {"--config", config.path});
  WsClient slow(gw->port());
  const std::string slow_prompt = "the first answer the moderator sees is slow, piece by piece";
  slow.send(chat(slow_prompt));
  auto s = slow.read_until("session");
  ASSERT_TRUE(s);
  ASSERT_TRUE(slow.read_until("delta", s->session_id, 30s));
  WsClient fast(gw->port());
  const std::string fast_prompt = "另一个回答 🚀 streams at full speed";
  for (int i = 0; i < 3; ++i) {
    fast.send(chat(fast_prompt));
    auto f = fast.read_until("session");
    ASSERT_TRUE(f);
    const Turn t = read_turn(fast, f->session_id, 30s);
    ASSERT_TRUE(t.done);
    EXPECT_EQ(t.text, expected_text(fast_prompt));
  }
  // By then the slow answer has had only some of its pieces moderated (one
  // per 300 ms): had its moderator run on the shared I/O thread, the fast
  // answers' every piece would have waited behind it, and come after.
  int slow_deltas = 1;
  bool slow_done = false;
  while (auto m = slow.read(20ms)) {
    if (m->type == "delta") ++slow_deltas;
    if (m->type == "done") slow_done = true;
  }
  EXPECT_FALSE(slow_done);
  const Turn rest = read_turn(slow, s->session_id, 60s);
  ASSERT_TRUE(rest.done);
  EXPECT_EQ(rest.done->finish_reason, "stop");
  EXPECT_GT(slow_deltas + static_cast<int>(rest.offsets.size()), 3);
}

// A tool that crashes in the gateway's own process (isolation =
// "in_process") takes it down, but not silently: the last line names the
// plugin and the tool.
TEST(PluginIsolation, AnInProcessCrashNamesThePluginAndTool) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "under the sanitizers their own handler reports the signal";
#endif
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR +
                    "/test_tools.so\"\nisolation = \"in_process\"\n");
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat("[[sim tool=crashes args={}]] boom"));
  const auto status = gw->wait(20s);
  ASSERT_TRUE(status);
  EXPECT_NE(gw->stderr_text().find("sluice: fatal signal 11 (SIGSEGV) in plugin test_tools (tool crashes, in the "
                                   "gateway's process)"),
            std::string::npos)
      << gw->stderr_text();
}

// A moderator that fails (an error status, as a throwing C++ one returns)
// stops that answer only, and says so; the other answers pass through it.
TEST(PluginIsolation, AFailingModeratorStopsOnlyTheAnswerItFailedOn) {
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR + "/broken_failing_moderator.so\"\n");
  auto sim = start_sim({"--rate", "100"});
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient bad(gw->port());
  WsClient good(gw->port());
  const std::string fine = "一个正常的回答 ✅ all fine";
  bad.send(chat("this one says boom 💥"));
  good.send(chat(fine));
  auto b = bad.read_until("session");
  auto g = good.read_until("session");
  ASSERT_TRUE(b && g);
  const ToolTurn stopped = read_tool_turn(bad, b->session_id);
  ASSERT_TRUE(stopped.done);
  EXPECT_EQ(stopped.done->finish_reason, "content_filter");
  ASSERT_FALSE(stopped.moderation.empty());
  EXPECT_EQ(stopped.moderation.back().reason, "moderation_error");
  EXPECT_EQ(stopped.text.find("boom"), std::string::npos) << stopped.text;
  const Turn ok = read_turn(good, g->session_id);
  ASSERT_TRUE(ok.done);
  EXPECT_EQ(ok.text, expected_text(fine));
  EXPECT_TRUE(gw->wait_for_stderr("plugin broken_failing_moderator: moderator failing failed (status 4")) << gw->stderr_text();
}

// Moderators in a process of their own (moderator_isolation = "process"):
// they moderate as in the gateway; one that crashes ends its process and
// stops only the answer it was deciding on (fail closed), the process comes
// back, and the next answers are moderated again.
TEST(PluginIsolation, AModeratorInItsOwnProcessCrashesAlone) {
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_PLUGIN_DIR +
                    "/moderation.so\"\nmoderator_isolation = \"process\"\n[plugins.settings]\npii = [\"email\"]\n" +
                    "[[plugins]]\npath = \"" + SLUICE_TEST_PLUGIN_DIR +
                    "/crashing_moderator.so\"\nmoderator_isolation = \"process\"\n");
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  auto ask = [&](const std::string& prompt) {
    c.send(chat(prompt));
    auto s = c.read_until("session");
    EXPECT_TRUE(s);
    return s ? read_tool_turn(c, s->session_id) : ToolTurn{};
  };
  const std::string mail = "写信到 li@ex.cn 吧";
  std::string expected = expected_text(mail);
  expected.replace(expected.find("li@ex.cn"), 8, "[email]");
  const ToolTurn first = ask(mail);
  ASSERT_TRUE(first.done);
  EXPECT_EQ(first.text, expected);

  const ToolTurn crashed = ask("这句话会让它崩溃");
  ASSERT_TRUE(crashed.done);
  EXPECT_EQ(crashed.done->finish_reason, "content_filter");
  EXPECT_EQ(crashed.text.find("崩"), std::string::npos) << crashed.text;
  EXPECT_TRUE(gw->wait_for_stderr("plugin crashing_moderator: its host process (pid ")) << gw->stderr_text();
  EXPECT_TRUE(gw->wait_for_stderr(std::string(kNullDeref) + " while running moderator crashing")) << gw->stderr_text();
  ASSERT_TRUE(gw->wait_for_stderr("plugin crashing_moderator: its host process is back")) << gw->stderr_text();
  const ToolTurn again = ask(mail);
  ASSERT_TRUE(again.done);
  EXPECT_EQ(again.text, expected);
  EXPECT_EQ(again.done->finish_reason, "stop");
}

// isolation = "in_process" keeps the old way (for a trusted plugin that
// needs no process boundary): its tools still answer.
TEST(PluginIsolation, InProcessStaysAvailable) {
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR +
                    "/test_tools.so\"\nisolation = \"in_process\"\n");
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", config.path});
  WsClient c(gw->port());
  c.send(chat(R"([[sim tool=echo args={"text":"就在这里"}]] here)"));
  auto s = c.read_until("session");
  ASSERT_TRUE(s);
  const ToolTurn t = read_tool_turn(c, s->session_id);
  ASSERT_EQ(t.results.size(), 1u);
  EXPECT_NE(t.results[0].raw.find(R"("ok":true)"), std::string::npos) << t.results[0].raw;
  EXPECT_EQ(gw->stderr_text().find("runs in host process"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
