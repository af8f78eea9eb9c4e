// engine = "local" through the running gateway, on a small random model made
// by tools/make_test_model.py (it streams random bytes: a test model, not a
// chatbot; the demo model is a later step).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// The model file, made once per test process and removed at its exit.
struct TempModel {
  std::string path;
  ~TempModel() { std::remove(path.c_str()); }
};

const std::string& test_model() {
  static const TempModel model = [] {
    const std::string p = "/tmp/sluice-local-" + std::to_string(getpid()) + ".gguf";
    const std::string cmd = std::string(SLUICE_PYTHON) + " " + SLUICE_MAKE_TEST_MODEL + " " + p +
                            " --arch qwen2 --type q8_0 --tokenizer >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return TempModel{p};
  }();
  return model.path;
}

std::unique_ptr<Process> start_local(std::vector<std::string> env) {
  env.push_back("SLUICE_ENGINE=local");
  env.push_back("SLUICE_LOCAL_MODEL=" + test_model());
  env.push_back("SLUICE_LOCAL_THREADS=1");
  return std::make_unique<Process>(std::vector<std::string>{SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"}, env);
}

TEST(LocalEngine, StreamsValidUtf8GreedyAnswersThroughTheGateway) {
  auto gw = start_local({"SLUICE_LOCAL_TEMPERATURE=0", "SLUICE_LOCAL_MAX_TOKENS=40"});
  std::vector<std::string> answers;
  for (int i = 0; i < 2; ++i) {
    WsClient c(gw->port());
    c.send(chat("你好, local engine 🚀"));
    auto session = c.read_until("session");
    ASSERT_TRUE(session);
    const Turn t = read_turn(c, session->session_id, 60s);
    ASSERT_TRUE(t.done) << t.text;
    EXPECT_EQ(t.done->finish_reason, "length");
    EXPECT_EQ(t.done->completion_tokens, 40);
    EXPECT_GT(t.done->prompt_tokens, 10);
    EXPECT_FALSE(t.text.empty());
    answers.push_back(t.text);
  }
  EXPECT_EQ(answers[0], answers[1]);  // greedy: the same answer twice
  EXPECT_NE(gw->stderr_text().find("engine local -> " + test_model()), std::string::npos) << gw->stderr_text();
  const auto metrics = http_get(gw->port(), "/metrics");
  EXPECT_NE(metrics.body.find("sluice_turns_total{engine=\"local\",finish_reason=\"length\"} 2"), std::string::npos)
      << metrics.body.substr(0, 2000);
  // The engine's own gauges moved: steps ran, and the KV cache has blocks.
  EXPECT_EQ(metrics.body.find("sluice_local_steps_total 0\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("sluice_local_steps_total "), std::string::npos);
  EXPECT_EQ(metrics.body.find("sluice_local_kv_blocks_capacity 0\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("sluice_local_kv_blocks_used 0\n"), std::string::npos);  // all back after the turns
}

// Moderation and journaling run off the scheduler thread: a moderator that
// takes 300 ms over every piece of one answer holds back that answer only;
// the other sequence of the batch decodes and streams meanwhile.
TEST(LocalEngine, ASlowModeratorOnOneAnswerStallsNoOtherSequence) {
  TempConfig config(std::string("[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR + "/slow_moderator.so\"\n");
  Process gw({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0", "--config", config.path},
             {"SLUICE_ENGINE=local", "SLUICE_LOCAL_MODEL=" + test_model(), "SLUICE_LOCAL_THREADS=1",
              "SLUICE_LOCAL_TEMPERATURE=0", "SLUICE_LOCAL_MAX_TOKENS=24"});
  WsClient slow(gw.port());
  slow.send(chat("the first answer the moderator sees: slow"));
  auto s = slow.read_until("session");
  ASSERT_TRUE(s);
  ASSERT_TRUE(slow.read_until("delta", s->session_id, 30s));  // it runs, a piece per 300 ms
  WsClient fast(gw.port());
  fast.send(chat("另一个回答 🚀"));
  auto f = fast.read_until("session");
  ASSERT_TRUE(f);
  const Turn t = read_turn(fast, f->session_id, 60s);
  ASSERT_TRUE(t.done);
  EXPECT_EQ(t.done->finish_reason, "length");
  EXPECT_EQ(t.done->completion_tokens, 24);
  // By then the slow answer has had only a few of its 24 pieces moderated:
  // had moderation run on the scheduler thread, the fast answer's tokens
  // would have waited 300 ms a step as well, and come after nearly all of them.
  int slow_deltas = 1;
  while (auto m = slow.read(20ms)) {
    if (m->type == "delta") ++slow_deltas;
    if (m->type == "done") break;
  }
  EXPECT_LT(slow_deltas, 12);
  // It still ends as usual, every piece moderated and in order.
  const Turn rest = read_turn(slow, s->session_id, 60s);
  ASSERT_TRUE(rest.done);
  EXPECT_EQ(rest.done->finish_reason, "length");
  EXPECT_EQ(rest.done->completion_tokens, 24);
}

TEST(LocalEngine, CancelEndsAnAnswerAtOnceAndTheNextOneRuns) {
  // An answer as long as the context allows: thousands of tokens, so that
  // the cancel comes long before its end, even on a fast machine.
  auto gw = start_local({"SLUICE_LOCAL_MAX_TOKENS=100000", "SLUICE_LOCAL_CONTEXT_LENGTH=4096",
                         "SLUICE_LOCAL_TEMPERATURE=0"});
  WsClient c(gw->port());
  c.send(chat("a long one"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(c.read_until("delta", session->session_id, 30s));
  c.send(cancel(session->session_id));
  auto done = c.read_until("done", session->session_id, 10s);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->finish_reason, "cancelled");
  // The next turn carries the conversation so far and runs as usual.
  c.send(R"({"type":"chat","input":"next","session_id":")" + session->session_id +
         R"(","params":{"max_tokens":30}})");
  const Turn t = read_turn(c, session->session_id, 60s);
  ASSERT_TRUE(t.done);
  EXPECT_TRUE(t.done->finish_reason == "length" || t.done->finish_reason == "stop") << t.done->raw;
  EXPECT_LE(t.done->completion_tokens, 30) << t.done->raw;
  EXPECT_GT(t.done->prompt_tokens, 3) << t.done->raw;
}

TEST(LocalEngine, AMissingOrCorruptModelIsAClearStartError) {
  Process missing({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"},
                  {"SLUICE_ENGINE=local", "SLUICE_LOCAL_MODEL=/nonexistent/model.gguf"}, false);
  ASSERT_EQ(missing.wait(10s), 2);
  EXPECT_NE(missing.stderr_text().find("local.model: /nonexistent/model.gguf: cannot open: No such file"),
            std::string::npos)
      << missing.stderr_text();
  const std::string corrupt = "/tmp/sluice-corrupt-" + std::to_string(getpid()) + ".gguf";
  {
    std::ifstream in(test_model(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(corrupt, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  Process cut({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"}, {"SLUICE_ENGINE=local", "SLUICE_LOCAL_MODEL=" + corrupt},
              false);
  ASSERT_EQ(cut.wait(10s), 2);
  EXPECT_NE(cut.stderr_text().find("truncated"), std::string::npos) << cut.stderr_text();
  unlink(corrupt.c_str());
  Process none({SLUICE_GATEWAY_BIN, "--check-config"}, {"SLUICE_ENGINE=local"}, false);
  ASSERT_EQ(none.wait(10s), 2);
  EXPECT_NE(none.stderr_text().find("needs local.model"), std::string::npos);
}

// local.device on a machine without a GPU: "cuda" refuses to start with
// the driver's reason, "auto" says once why it runs on the CPU, and answers.
TEST(LocalEngine, WithoutAGpuCudaIsAClearStartErrorAndAutoRunsOnTheCpu) {
  Process cuda({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"},
               {"SLUICE_ENGINE=local", "SLUICE_LOCAL_MODEL=" + test_model(), "SLUICE_LOCAL_DEVICE=cuda"}, false);
  const int rc = cuda.wait(20s).value_or(-1);
  if (rc != 2 && cuda.stderr_text().find("local engine on CUDA") != std::string::npos) {
    GTEST_SKIP() << "this machine has a CUDA GPU: " << cuda.stderr_text();
  }
  ASSERT_EQ(rc, 2) << cuda.stderr_text();
  EXPECT_NE(cuda.stderr_text().find("local.device = \"cuda\", but no CUDA GPU can be used: "), std::string::npos)
      << cuda.stderr_text();
  auto gw = start_local({"SLUICE_LOCAL_DEVICE=auto", "SLUICE_LOCAL_TEMPERATURE=0", "SLUICE_LOCAL_MAX_TOKENS=8"});
  WsClient c(gw->port());
  c.send(chat("auto 设备 🚀"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  const Turn t = read_turn(c, session->session_id, 60s);
  ASSERT_TRUE(t.done);
  EXPECT_EQ(t.done->completion_tokens, 8);
  const std::string log = gw->stderr_text();
  const size_t line = log.find("local.device = \"auto\": running on the CPU, no CUDA GPU can be used: ");
  EXPECT_NE(line, std::string::npos) << log;
  EXPECT_EQ(log.find("local.device = \"auto\"", line + 1), std::string::npos) << "one line";
}

}  // namespace
}  // namespace sluice::test
