// The main path: many sessions over few connections, each streamed exactly
// the simulator's text, in order, with gap-free offsets.
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

TEST(Streaming, HundredSessionsOverTenConnectionsGetExactlyTheirText) {
  auto sim = start_sim({"--rate", "400", "--threads", "2"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MAX_SESSIONS_PER_CONNECTION=10"});
  constexpr int kConnections = 10;
  constexpr int kSessionsEach = 10;

  std::vector<std::string> failures(kConnections);
  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      WsClient client(gw->port());
      std::map<std::string, std::string> prompt_of_request;
      for (int s = 0; s < kSessionsEach; ++s) {
        const std::string rid = "r" + std::to_string(c) + "-" + std::to_string(s);
        const std::string prompt = "会话 " + std::to_string(c) + "/" + std::to_string(s) + " 🌊";
        prompt_of_request[rid] = prompt;
        client.send(chat(prompt, rid));
      }
      std::map<std::string, std::string> prompt_of_session;
      std::map<std::string, Turn> turns;
      int done = 0;
      while (done < kSessionsEach) {
        auto f = client.read(std::chrono::seconds(30));
        if (!f) {
          failures[c] = "connection " + std::to_string(c) + ": timed out after " +
                        std::to_string(done) + " done";
          return;
        }
        if (f->type == "session") {
          prompt_of_session[f->session_id] = prompt_of_request[f->request_id];
          continue;
        }
        auto& t = turns[f->session_id];
        if (f->offset) t.offsets.push_back(f->offset);
        if (f->type == "delta") t.text += f->text;
        if (f->type == "error") t.error = f;
        if (f->type == "done") {
          t.done = f;
          ++done;
        }
      }
      for (auto& [sid, t] : turns) {
        const std::string want = expected_text(prompt_of_session[sid]);
        if (t.text != want) failures[c] += "session " + sid + " got \"" + t.text + "\"\n";
        for (size_t i = 0; i < t.offsets.size(); ++i) {
          if (t.offsets[i] != i + 1) failures[c] += "session " + sid + " offset gap\n";
        }
        if (t.error) failures[c] += "session " + sid + " error " + t.error->code + "\n";
        if (!t.done || t.done->finish_reason != "stop") failures[c] += "bad done\n";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
  const auto stats = sim_stats(*sim);
  EXPECT_EQ(stats.requests, kConnections * kSessionsEach);
  EXPECT_EQ(stats.completed, kConnections * kSessionsEach);
  EXPECT_EQ(stats.aborted, 0);
}

TEST(Streaming, DoneCarriesUpstreamUsageAndRequestId) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  client.send(chat("usage please", "req-7"));
  auto session = client.read_until("session");
  ASSERT_TRUE(session);
  EXPECT_EQ(session->request_id, "req-7");
  auto turn = read_turn(client, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.text, expected_text("usage please"));
  EXPECT_EQ(turn.done->request_id, "req-7");
  EXPECT_EQ(turn.done->prompt_tokens, 2);  // the simulator counts "usage" and " please"
  EXPECT_GT(turn.done->completion_tokens, 10);
  EXPECT_EQ(turn.done->offset, turn.offsets.size());
}

TEST(Streaming, SplitWritesFromUpstreamStillGiveExactText) {
  auto sim = start_sim({"--split-writes", "--chunk-tokens", "3"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  client.send(chat("碎片 ✂️ test"));
  auto session = client.read_until("session");
  ASSERT_TRUE(session);
  auto turn = read_turn(client, session->session_id);
  EXPECT_EQ(turn.text, expected_text("碎片 ✂️ test"));
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "stop");
}

TEST(Streaming, SecondTurnOnSameSessionContinuesOffsets) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient client(gw->port());
  client.send(chat("one"));
  auto session = client.read_until("session");
  ASSERT_TRUE(session);
  auto first = read_turn(client, session->session_id);
  ASSERT_TRUE(first.done);
  client.send(chat("two", "", session->session_id));
  auto second = read_turn(client, session->session_id);
  ASSERT_TRUE(second.done);
  EXPECT_EQ(second.text, expected_text("two"));
  ASSERT_FALSE(second.offsets.empty());
  EXPECT_EQ(second.offsets.front(), first.done->offset + 1);
}

TEST(Streaming, UpstreamConnectionsAreReused) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_SERVER_THREADS=1", "SLUICE_OPENAI_SHARDS=1"});
  WsClient client(gw->port());
  std::string sid;
  for (int i = 0; i < 5; ++i) {
    client.send(chat("again " + std::to_string(i), "", sid));
    if (sid.empty()) sid = client.read_until("session")->session_id;
    auto turn = read_turn(client, sid);
    ASSERT_TRUE(turn.done);
    ASSERT_EQ(turn.done->finish_reason, "stop");
  }
  const auto stats = sim_stats(*sim);
  EXPECT_EQ(stats.requests, 5);
  // Five turns over one kept-alive connection (a second one only if a turn
  // started before the previous response's last bytes), plus this query.
  EXPECT_LE(stats.connections - 1, 2);
}

TEST(Streaming, ModelApiKeyAndExtraFieldsComeFromConfig) {
  auto sim = start_sim();
  char path[] = "/tmp/sluice-config-XXXXXX";
  const int fd = mkstemp(path);
  const std::string toml =
      "[openai]\nmodel = \"qwen-test\"\napi_key = \"sk-test-123\"\n"
      "[openai.extra]\ntemperature = 0.25\nrepetition_penalty = 1.1\n";
  ASSERT_EQ(write(fd, toml.data(), toml.size()), static_cast<ssize_t>(toml.size()));
  close(fd);
  auto gw = start_gateway(sim_url(*sim), {}, {"--config", path});
  WsClient client(gw->port());
  client.send(R"({"type":"chat","input":"cfg","params":{"temperature":0.9,"max_tokens":50}})");
  auto session = client.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(read_turn(client, session->session_id).done);
  const auto stats = sim_stats(*sim);
  unlink(path);
  EXPECT_EQ(stats.last_authorization, "Bearer sk-test-123");
  EXPECT_NE(stats.last_body.find(R"("model":"qwen-test")"), std::string::npos) << stats.last_body;
  EXPECT_NE(stats.last_body.find(R"("stream":true)"), std::string::npos);
  EXPECT_NE(stats.last_body.find(R"("include_usage":true)"), std::string::npos);
  EXPECT_NE(stats.last_body.find(R"("max_tokens":50)"), std::string::npos);
  EXPECT_NE(stats.last_body.find(R"("repetition_penalty":1.1)"), std::string::npos);
  // The operator's fixed temperature wins over the client's.
  EXPECT_NE(stats.last_body.find(R"("temperature":0.25)"), std::string::npos);
  EXPECT_EQ(stats.last_body.find(R"("temperature":0.9)"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
