// Two gateway processes on one real redis-server (store.backend = "redis"):
// a session created on one instance is resumed on the other, mid-answer and
// after it, over WebSocket and SSE, byte for byte, under the same ownership
// rules as on one instance; /readyz follows the store.
#include <csignal>
#include <random>
#include <thread>

#include "gateway/auth/authenticator.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/redis_server.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

#define SKIP_WITHOUT_REDIS()                                                        \
  if (!RedisServer::installed()) GTEST_SKIP() << "redis-server is not installed " \
                                                 "(apt-get install redis-server)"

std::vector<std::string> redis_env(const RedisServer& redis, std::vector<std::string> more = {}) {
  std::vector<std::string> env{"SLUICE_STORE_BACKEND=redis", "SLUICE_STORE_REDIS_URL=" + redis.url()};
  env.insert(env.end(), more.begin(), more.end());
  return env;
}

struct Started {
  std::string session_id;
  std::string token;
};

Started start_chat(WsClient& c, const std::string& input) {
  c.send(chat(input, "start"));
  auto s = c.read_until("session");
  EXPECT_TRUE(s);
  return s ? Started{s->session_id, s->resume_token} : Started{};
}

TEST(ScaleOut, AnswerResumedOnAnotherInstanceMidTurnIsByteExact) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "100"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  const std::string prompt = "跨实例续传 🔀 resume";
  std::string text;
  uint64_t last = 0;
  Started s;
  {
    WsClient ca(a->port());
    s = start_chat(ca, prompt);
    for (int i = 0; i < 4; ++i) {
      auto f = ca.read_until("delta", s.session_id);
      ASSERT_TRUE(f);
      ASSERT_EQ(f->offset, last + 1);
      last = f->offset;
      text += f->text;
    }
    ca.drop();
  }
  // The client comes back through a balancer that sends it to the other instance.
  WsClient cb(b->port());
  cb.send(resume(s.session_id, last, s.token, "back"));
  auto resumed = cb.read_until("resumed");
  ASSERT_TRUE(resumed) << b->stderr_text();
  EXPECT_EQ(resumed->from_offset, last + 1);
  auto rest = read_turn(cb, s.session_id);
  ASSERT_TRUE(rest.done) << "no done on the other instance; its log:\n" << b->stderr_text();
  EXPECT_EQ(rest.done->finish_reason, "stop");
  ASSERT_FALSE(rest.offsets.empty());
  EXPECT_EQ(rest.offsets.front(), last + 1);
  for (size_t i = 1; i < rest.offsets.size(); ++i) ASSERT_EQ(rest.offsets[i], rest.offsets[i - 1] + 1);
  EXPECT_EQ(text + rest.text, expected_text(prompt));
}

TEST(ScaleOut, FinishedAnswerReplaysOnAnotherInstanceOverWebSocketAndSse) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim();
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  const std::string prompt = "完整回放 ✅";
  WsClient ca(a->port());
  Started s = start_chat(ca, prompt);
  auto first = read_turn(ca, s.session_id);
  ASSERT_TRUE(first.done);
  ASSERT_EQ(first.text, expected_text(prompt));

  // WebSocket, from the start.
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(cb.read_until("resumed")) << b->stderr_text();
  auto replay = read_turn(cb, s.session_id);
  ASSERT_TRUE(replay.done);
  EXPECT_EQ(replay.text, first.text);
  EXPECT_EQ(replay.offsets, first.offsets);

  // SSE, from the middle (Last-Event-ID as an EventSource sends it).
  const uint64_t mid = first.offsets[first.offsets.size() / 2];
  const auto sse = http_get_with(b->port(), "/v1/sessions/" + s.session_id + "/stream?resume_token=" + s.token,
                                 {{"Last-Event-ID", s.session_id + ":" + std::to_string(mid)}});
  EXPECT_EQ(sse.status, 200) << sse.body;
  std::string sse_text;
  for (size_t pos = 0; (pos = sse.body.find("\"content\":\"", pos)) != std::string::npos;) {
    pos += 11;
    const size_t end = sse.body.find('"', pos);
    sse_text += sse.body.substr(pos, end - pos);
  }
  std::string tail;
  {
    WsClient cc(b->port());
    cc.send(resume(s.session_id, mid, s.token));
    ASSERT_TRUE(cc.read_until("resumed"));
    tail = read_turn(cc, s.session_id).text;
  }
  EXPECT_EQ(sse_text, tail);
  EXPECT_NE(sse.body.find("[DONE]"), std::string::npos);
}

TEST(ScaleOut, OwnershipRulesHoldOnEveryInstance) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim();
  const std::vector<std::string> keys{
      "SLUICE_AUTH_MODE=token",
      // alice-key / bob-key, hashed (auth.api_keys as the configuration writes them)
      "SLUICE_AUTH_API_KEYS=[{principal=\"alice\",sha256=\"" + sha256_hex("alice-key") +
          "\"},{principal=\"bob\",sha256=\"" + sha256_hex("bob-key") + "\"}]"};
  auto a = start_gateway(sim_url(*sim), redis_env(redis, keys));
  auto b = start_gateway(sim_url(*sim), redis_env(redis, keys));
  WsClient alice_a(a->port(), "/v1/ws?token=alice-key");
  Started s = start_chat(alice_a, "只属于 alice");
  ASSERT_TRUE(read_turn(alice_a, s.session_id).done);

  auto failure = [&](const std::string& key, const std::string& token) {
    WsClient c(b->port(), "/v1/ws?token=" + key);
    c.send(resume(s.session_id, 0, token, "r"));
    auto f = c.read_until("resume_failed", "", 5s);
    return f ? f->reason : std::string("(no resume_failed)");
  };
  EXPECT_EQ(failure("bob-key", s.token), "unknown_session") << "another principal's session is unknown";
  EXPECT_EQ(failure("alice-key", "rt_wrong"), "bad_token");
  EXPECT_EQ(failure("alice-key", s.token.substr(0, s.token.size() - 1) + "x"), "bad_token");
  {
    WsClient c(b->port(), "/v1/ws?token=alice-key");
    c.send(resume("s_doesnotexist", 0, s.token, "r"));
    auto f = c.read_until("resume_failed", "", 5s);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->reason, "unknown_session");
    c.send(resume(s.session_id, 10'000, s.token, "r2"));
    f = c.read_until("resume_failed", "", 5s);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->reason, "offset_ahead");
  }
  // The right principal and token work on the other instance.
  WsClient alice_b(b->port(), "/v1/ws?token=alice-key");
  alice_b.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(alice_b.read_until("resumed"));
  EXPECT_EQ(read_turn(alice_b, s.session_id).text, expected_text("只属于 alice"));
}

TEST(ScaleOut, ReadinessFollowsTheStoreAndResumesWaitForIt) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis(/*persistent=*/true);
  auto sim = start_sim();
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  WsClient ca(a->port());
  Started s = start_chat(ca, "Redis 重启");
  ASSERT_TRUE(read_turn(ca, s.session_id).done);
  EXPECT_EQ(http_get(b->port(), "/readyz").status, 200);

  redis.kill();
  for (int i = 0; i < 200 && http_get(b->port(), "/readyz").status == 200; ++i) std::this_thread::sleep_for(20ms);
  const auto down = http_get(b->port(), "/readyz");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("store"), std::string::npos) << down.body;
  {
    // A resume that needs the store says so, with a stable code; the connection stays usable.
    WsClient cb(b->port());
    cb.send(resume(s.session_id, 0, s.token, "while-down"));
    auto f = cb.read_until("error", "", 5s);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->code, "store_unavailable");
    cb.send(R"({"type":"ping","request_id":"p"})");
    EXPECT_TRUE(cb.read_until("pong"));
  }
  redis.start();
  for (int i = 0; i < 500 && http_get(b->port(), "/readyz").status != 200; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(http_get(b->port(), "/readyz").status, 200);
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(cb.read_until("resumed")) << b->stderr_text();
  EXPECT_EQ(read_turn(cb, s.session_id).text, expected_text("Redis 重启"));
}

}  // namespace
}  // namespace sluice::test
