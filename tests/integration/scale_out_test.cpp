// Two gateway processes on one real redis-server (store.backend = "redis"):
// a session created on one instance is resumed on the other, mid-answer and
// after it, over WebSocket and SSE, byte for byte, under the same ownership
// rules as on one instance; /readyz follows the store.
#include <csignal>
#include <cstdlib>
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

void wait_ready(const Process& gw) {
  for (int i = 0; i < 500 && http_get(gw.port(), "/readyz").status != 200; ++i) std::this_thread::sleep_for(20ms);
}

// Once the store is back, the instance is ready and a new session is answered.
void expect_new_sessions_served(const Process& gw, const std::string& prompt) {
  wait_ready(gw);
  WsClient c(gw.port());
  Started t = start_chat(c, prompt);
  EXPECT_EQ(read_turn(c, t.session_id).text, expected_text(prompt));
}

std::vector<std::string> redis_env(const RedisServer& redis, std::vector<std::string> more = {}) {
  std::vector<std::string> env{"SLUICE_STORE_BACKEND=redis", "SLUICE_STORE_REDIS_URL=" + redis.url()};
  env.insert(env.end(), more.begin(), more.end());
  return env;
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
      ASSERT_TRUE(f) << "no delta on the first instance; its log:\n" << a->stderr_text();
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

TEST(ScaleOut, TheConversationGoesOnWhicheverInstanceTheClientReaches) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim();
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  WsClient ca(a->port());
  Started s = start_chat(ca, "第一轮 first");
  auto one = read_turn(ca, s.session_id);
  ASSERT_TRUE(one.done);

  // Turn two on the other instance: it claims the session and sends the
  // conversation so far upstream.
  WsClient cb(b->port());
  cb.send(resume(s.session_id, one.offsets.back(), s.token));
  ASSERT_TRUE(cb.read_until("resumed"));
  cb.send(chat("第二轮 second", "two", s.session_id));
  auto two = read_turn(cb, s.session_id);
  ASSERT_TRUE(two.done) << b->stderr_text();
  EXPECT_EQ(two.text, expected_text("第二轮 second"));
  ASSERT_FALSE(two.offsets.empty());
  EXPECT_EQ(two.offsets.front(), one.offsets.back() + 1) << "offsets go on across instances";
  const std::string body = sim_stats(*sim).last_body;
  EXPECT_NE(body.find("第一轮 first"), std::string::npos) << body;
  EXPECT_NE(body.find(expected_text("第一轮 first")), std::string::npos) << "the first answer is in the history";

  // The connection that stayed on the first instance saw turn two as it
  // happened on the other one.
  auto two_on_a = read_turn(ca, s.session_id);
  ASSERT_TRUE(two_on_a.done);
  EXPECT_EQ(two_on_a.text, two.text);
  EXPECT_EQ(two_on_a.offsets, two.offsets);
  // Turn three back on the first instance: it claims the session again,
  // with the history of turn two.
  ca.send(chat("第三轮 third", "three", s.session_id));
  auto three = read_turn(ca, s.session_id);
  ASSERT_TRUE(three.done) << a->stderr_text();
  EXPECT_EQ(three.text, expected_text("第三轮 third"));
  EXPECT_EQ(three.offsets.front(), two.offsets.back() + 1);
  EXPECT_NE(sim_stats(*sim).last_body.find(expected_text("第二轮 second")), std::string::npos);
  WsClient check(a->port());
  check.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(check.read_until("resumed"));
  std::string all;
  for (int i = 0; i < 3; ++i) all += read_turn(check, s.session_id).text;
  EXPECT_EQ(all, expected_text("第一轮 first") + expected_text("第二轮 second") + expected_text("第三轮 third"));
}

TEST(ScaleOut, ASecondTurnOnAnotherInstanceWaitsForTheFirst) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "20"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  WsClient ca(a->port());
  Started s = start_chat(ca, "慢慢来 slow");
  ASSERT_TRUE(ca.read_until("delta", s.session_id));
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(cb.read_until("resumed"));
  cb.send(chat("插队 cut in", "cut", s.session_id));
  auto refused = cb.read_until("error", s.session_id);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "session_busy");
  EXPECT_EQ(refused->request_id, "cut");
  // The first turn is untouched, on both connections.
  EXPECT_EQ(read_turn(cb, s.session_id).done.has_value(), true);
  auto rest = read_turn(ca, s.session_id);
  ASSERT_TRUE(rest.done);
}

TEST(ScaleOut, CancelOnAnotherInstanceStopsTheUpstreamOnTheOwner) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "10"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  WsClient ca(a->port());
  Started s = start_chat(ca, "别说了 stop please");
  ASSERT_TRUE(ca.read_until("delta", s.session_id));
  {
    // From a connection that has not resumed it: the token is needed.
    WsClient other(b->port());
    other.send(cancel(s.session_id));
    auto refused = other.read_until("error", s.session_id);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->code, "bad_message");
    other.send(cancel(s.session_id, "rt_not_the_token"));
    refused = other.read_until("error", s.session_id);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->code, "bad_token");
  }
  WsClient cb(b->port());
  cb.send(cancel(s.session_id, s.token));
  auto on_a = read_turn(ca, s.session_id, 10s);
  ASSERT_TRUE(on_a.done) << a->stderr_text();
  EXPECT_EQ(on_a.done->finish_reason, "cancelled");
  for (int i = 0; i < 100 && sim_stats(*sim).aborted < 1; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_GE(sim_stats(*sim).aborted, 1) << "the owner aborted its upstream request";
  WsClient late(b->port());
  late.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(late.read_until("resumed"));
  auto replay = read_turn(late, s.session_id);
  ASSERT_TRUE(replay.done);
  EXPECT_EQ(replay.done->finish_reason, "cancelled");
}

// Redis restarted in the middle of answers: a short outage loses nothing
// (the answer waits, then goes on); a long one ends the answer with a
// stable error once Redis is back; new sessions are refused meanwhile.
TEST(ScaleOut, RedisRestartedMidAnswer) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis(/*persistent=*/true);
  auto sim = start_sim({"--rate", "10"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis, {"SLUICE_STORE_WRITE_TIMEOUT_MS=2500"}));
  {
    const std::string prompt = "短暂中断 short outage";
    WsClient c(a->port());
    Started s = start_chat(c, prompt);
    auto first = c.read_until("delta", s.session_id);
    ASSERT_TRUE(first);
    redis.kill();
    std::this_thread::sleep_for(300ms);
    // No new session while the store is away, with a stable code.
    WsClient other(a->port());
    other.send(chat("新会话 new", "new"));
    auto refused = other.read_until("error", "", 5s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->code, "store_unavailable");
    EXPECT_EQ(refused->request_id, "new");
    redis.start();
    auto rest = read_turn(c, s.session_id, 20s);
    ASSERT_TRUE(rest.done) << a->stderr_text();
    EXPECT_EQ(rest.done->finish_reason, "stop");
    EXPECT_EQ(first->text + rest.text, expected_text(prompt));
    EXPECT_EQ(rest.offsets.front(), first->offset + 1);
  }
  {
    WsClient c(a->port());
    Started s = start_chat(c, "长时间中断 long outage");
    auto first = c.read_until("delta", s.session_id);
    ASSERT_TRUE(first);
    redis.kill();
    std::this_thread::sleep_for(3500ms);  // past store.write_timeout_ms
    redis.start();
    auto rest = read_turn(c, s.session_id, 20s);
    ASSERT_TRUE(rest.error) << a->stderr_text();
    EXPECT_EQ(rest.error->code, "store_unavailable");
    ASSERT_TRUE(rest.done);
    EXPECT_EQ(rest.done->finish_reason, "cancelled");
    // The instance serves new turns again, once it has Redis back.
    expect_new_sessions_served(*a, "恢复 back");
  }
}

// Kills the instance generating an answer; the other instance, where the
// client waits, takes the turn over once the lease lapses and continues the
// answer (continue_final_message upstream): the client reads the whole
// answer, byte for byte, offsets gap-free.
TEST(ScaleOut, AnAnswerSurvivesTheLossOfItsInstance) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "8"});
  const std::vector<std::string> lease{"SLUICE_STORE_LEASE_MS=900"};
  auto a = start_gateway(sim_url(*sim), redis_env(redis, lease));
  auto b = start_gateway(sim_url(*sim), redis_env(redis, lease));
  const std::string prompt = "实例宕机 💥 takeover";
  WsClient ca(a->port());
  Started s = start_chat(ca, prompt);
  std::string seen;
  uint64_t last = 0;
  for (int i = 0; i < 3; ++i) {
    auto f = ca.read_until("delta", s.session_id);
    ASSERT_TRUE(f);
    seen += f->text;
    last = f->offset;
  }
  // The client also reads the session on the other instance (a second tab,
  // or the reconnect a balancer sent there).
  WsClient cb(b->port());
  cb.send(resume(s.session_id, last, s.token));
  ASSERT_TRUE(cb.read_until("resumed"));
  const auto killed = std::chrono::steady_clock::now();
  a->signal(SIGKILL);
  a->wait(5s);
  // The first event after the kill is a delta of the same answer (the
  // lost instance may have journaled a few before it died).
  auto next = cb.read_until("delta", s.session_id, 30s);
  ASSERT_TRUE(next) << "nothing after the kill; the surviving instance's log:\n" << b->stderr_text();
  const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
  auto rest = read_turn(cb, s.session_id, 30s);
  rest.text = next->text + rest.text;
  rest.offsets.insert(rest.offsets.begin(), next->offset);
  ASSERT_TRUE(rest.done) << "the answer did not finish on the surviving instance; its log:\n" << b->stderr_text();
  EXPECT_EQ(rest.done->finish_reason, "stop");
  EXPECT_EQ(rest.offsets.front(), last + 1);
  for (size_t i = 1; i < rest.offsets.size(); ++i) ASSERT_EQ(rest.offsets[i], rest.offsets[i - 1] + 1);
  EXPECT_EQ(seen + rest.text, expected_text(prompt));
  EXPECT_GE(sim_stats(*sim).continued, 1) << "the upstream was asked to continue the partial answer";
  std::printf("takeover: first delta %lld ms after the kill (lease 900 ms, upstream 8 tokens/s)\n",
              static_cast<long long>(gap.count()));
  EXPECT_TRUE(b->wait_for_stderr("took over the turn of a lost instance"));
  // A client that comes back later, anywhere, reads the same answer.
  WsClient late(b->port());
  late.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(late.read_until("resumed"));
  EXPECT_EQ(read_turn(late, s.session_id).text, expected_text(prompt));
}

// A paused owner (SIGSTOP past its lease) that wakes up cannot append: its
// next batch is refused in Redis, it stops its turn, and the stream keeps
// the new owner's events only.
TEST(ScaleOut, AnOwnerThatWakesUpAfterItsLeaseCannotAppend) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "8"});
  const std::vector<std::string> lease{"SLUICE_STORE_LEASE_MS=900"};
  auto a = start_gateway(sim_url(*sim), redis_env(redis, lease));
  auto b = start_gateway(sim_url(*sim), redis_env(redis, lease));
  const std::string prompt = "暂停的实例 ⏸ fencing";
  WsClient ca(a->port());
  Started s = start_chat(ca, prompt);
  ASSERT_TRUE(ca.read_until("delta", s.session_id));
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(cb.read_until("resumed"));
  a->signal(SIGSTOP);
  auto rest = read_turn(cb, s.session_id, 30s);
  a->signal(SIGCONT);
  ASSERT_TRUE(rest.done) << b->stderr_text();
  EXPECT_EQ(rest.text, expected_text(prompt));
  EXPECT_TRUE(a->wait_for_stderr("another instance holds this session now", 10s)) << a->stderr_text();
  // Redis has each offset once, and the text the client read.
  std::this_thread::sleep_for(500ms);
  auto range = redis.call({"XRANGE", "sluice:{" + s.session_id + "}:j", "-", "+"});
  for (size_t i = 0; i < range.elements.size(); ++i) {
    ASSERT_EQ(range.elements[i].elements[0].str, std::to_string(i + 1) + "-0");
  }
  WsClient late(b->port());
  late.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(late.read_until("resumed"));
  EXPECT_EQ(read_turn(late, s.session_id).text, expected_text(prompt));
}


// The instance generating an answer dies while its client is away and no
// instance has the session open: a sweep of the fleet's running turns finds
// the lapsed lease and another instance finishes the answer, so the client
// that comes back later reads it whole.
TEST(ScaleOut, AnAnswerNobodyWaitsForIsFinishedByTheSweep) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "20"});
  const std::vector<std::string> lease{"SLUICE_STORE_LEASE_MS=600"};
  auto a = start_gateway(sim_url(*sim), redis_env(redis, lease));
  auto b = start_gateway(sim_url(*sim), redis_env(redis, lease));
  const std::string prompt = "无人等待的回答 🧹 swept";
  Started s;
  uint64_t last = 0;
  {
    WsClient ca(a->port());
    s = start_chat(ca, prompt);
    auto f = ca.read_until("delta", s.session_id);
    ASSERT_TRUE(f);
    last = f->offset;
  }  // the client goes away
  ASSERT_EQ(redis.call({"ZSCORE", "sluice:running", s.session_id}).nil, false)
      << "a running turn is listed in the fleet's index";
  a->signal(SIGKILL);
  a->wait(5s);
  ASSERT_TRUE(b->wait_for_stderr("no instance watching it took it over", 15s)) << b->stderr_text();
  EXPECT_TRUE(b->wait_for_stderr("took over the turn of a lost instance", 5s)) << b->stderr_text();
  // The answer finishes with nobody attached: its done is in Redis.
  bool finished = false;
  for (int i = 0; i < 300 && !finished; ++i) {
    finished = redis.call({"HGET", "sluice:{" + s.session_id + "}:r", "running"}).str == "0";
    if (!finished) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(finished) << b->stderr_text();
  bool unlisted = false;  // the ZREM follows the batch that ended the turn
  for (int i = 0; i < 100 && !unlisted; ++i) {
    unlisted = redis.call({"ZSCORE", "sluice:running", s.session_id}).nil;
    if (!unlisted) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(unlisted) << "an ended turn leaves the index";
  EXPECT_GE(sim_stats(*sim).continued, 1);
  WsClient later(b->port());
  later.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(later.read_until("resumed"));
  auto whole = read_turn(later, s.session_id);
  ASSERT_TRUE(whole.done);
  EXPECT_EQ(whole.done->finish_reason, "stop");
  EXPECT_EQ(whole.text, expected_text(prompt));
  for (size_t i = 1; i < whole.offsets.size(); ++i) ASSERT_EQ(whole.offsets[i], whole.offsets[i - 1] + 1);
  EXPECT_GT(whole.offsets.back(), last);
}

// A Redis that keeps its connections but answers nothing (SIGSTOP): a short
// pause only slows the running answer down; a long one never holds a
// client's request past store.command_timeout_ms: a turn that needs a claim
// is refused with store_unavailable, the connection stays usable, and once
// Redis answers again everything works.
TEST(ScaleOut, ASilentRedisHoldsNothingUpPastTheCommandTimeout) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "20"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis, {"SLUICE_STORE_COMMAND_TIMEOUT_MS=700"}));
  WsClient c(a->port());
  // Slow: paused for less than the command timeout mid-answer.
  const std::string prompt = "慢的 Redis 🐢 slow";
  Started s = start_chat(c, prompt);
  auto first = c.read_until("delta", s.session_id);
  ASSERT_TRUE(first);
  redis.pause();
  std::this_thread::sleep_for(400ms);
  redis.resume();
  auto rest = read_turn(c, s.session_id, 20s);
  ASSERT_TRUE(rest.done) << a->stderr_text();
  EXPECT_EQ(rest.done->finish_reason, "stop");
  EXPECT_EQ(first->text + rest.text, expected_text(prompt));
  EXPECT_EQ(rest.offsets.front(), first->offset + 1);

  // Silent: the next turn's claim gets no answer.
  redis.pause();
  const auto sent = std::chrono::steady_clock::now();
  c.send(chat("下一轮 next", "next", s.session_id));
  auto refused = c.read_until("error", "", 10s);
  const auto waited = std::chrono::steady_clock::now() - sent;
  ASSERT_TRUE(refused) << a->stderr_text();
  EXPECT_EQ(refused->code, "store_unavailable");
  EXPECT_EQ(refused->request_id, "next");
  EXPECT_LT(waited, 5s) << "bounded by the command timeout (700 ms), not by Redis";
  EXPECT_TRUE(a->wait_for_stderr("nothing heard for over 700 ms", 5s)) << a->stderr_text();
  // The connection still reads: a frame it cannot parse is answered at once.
  c.send("{not json");
  auto bad = c.read_until("error", "", 5s);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->code, "bad_json");
  redis.resume();
  wait_ready(*a);
  c.send(chat("恢复了 back", "again", s.session_id));
  auto again = read_turn(c, s.session_id, 20s);
  ASSERT_TRUE(again.done) << a->stderr_text();
  EXPECT_EQ(again.text, expected_text("恢复了 back"));
}

// Redis out of memory (maxmemory, noeviction): the running answer waits,
// then stops after store.write_timeout_ms; /readyz says why; new sessions
// are refused with store_unavailable; once Redis has room again, the error
// and done are written and shown, nothing lost, and new sessions start.
TEST(ScaleOut, RedisOutOfMemory) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "8"});
  auto a = start_gateway(sim_url(*sim), redis_env(redis, {"SLUICE_STORE_WRITE_TIMEOUT_MS=1500"}));
  auto b = start_gateway(sim_url(*sim), redis_env(redis));
  WsClient c(a->port());
  const std::string prompt = "内存满了 💾 out of memory";
  Started s = start_chat(c, prompt);
  auto first = c.read_until("delta", s.session_id);
  ASSERT_TRUE(first);
  ASSERT_FALSE(redis.call({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).error);
  ASSERT_FALSE(redis.call({"CONFIG", "SET", "maxmemory", "1"}).error);
  HttpReply ready;
  for (int i = 0; i < 250 && (ready = http_get(a->port(), "/readyz")).status == 200; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("refuses writes (out of memory"), std::string::npos) << ready.body;
  {
    WsClient other(a->port());
    other.send(chat("新会话 new", "new"));
    auto refused = other.read_until("error", "", 5s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->code, "store_unavailable");
  }
  {
    // Reads still work: the session resumes on another instance.
    WsClient elsewhere(b->port());
    elsewhere.send(resume(s.session_id, 0, s.token));
    auto resumed = elsewhere.read_until("resumed", "", 5s);
    ASSERT_TRUE(resumed) << b->stderr_text();
    auto f = elsewhere.read_until("delta", s.session_id, 5s);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->text, first->text);
  }
  // Past store.write_timeout_ms (1.5 s) plus the store tick that notices it (a third of the lease).
  std::this_thread::sleep_for(2600ms);
  ASSERT_FALSE(redis.call({"CONFIG", "SET", "maxmemory", "0"}).error);
  auto rest = read_turn(c, s.session_id, 20s);
  ASSERT_TRUE(rest.done) << a->stderr_text();
  ASSERT_TRUE(rest.error) << rest.done->raw << " text: " << rest.text << "\n" << a->stderr_text();
  EXPECT_EQ(rest.error->code, "store_unavailable");
  EXPECT_EQ(rest.done->finish_reason, "cancelled");
  EXPECT_EQ(expected_text(prompt).rfind(first->text + rest.text, 0), 0u) << "what was shown is the answer's start";
  EXPECT_EQ(rest.offsets.front(), first->offset + 1);
  expect_new_sessions_served(*a, "有空间了 room again");
}


// The owner of running turns is SIGKILLed 50 times, at random points: in
// the middle of the text, while a tool runs (a 400 ms nap), while the
// moderator holds back a half-seen e-mail address or phone number. Each
// round starts three answers on one instance, with readers waiting on the
// two others (and, every fifth round, nobody waiting for the tool answer:
// the sweep takes that one over), kills the instance and starts a new one
// in its place. Every answer finishes on another instance with the text an
// undisturbed run gives, offsets gap-free from 1, each exactly once.
TEST(ScaleOut, FiftyKillsOfTheOwnerAtRandomPointsLoseNothing) {
  SKIP_WITHOUT_REDIS();
  RedisServer redis;
  auto sim = start_sim({"--rate", "40"});
  TempConfig config(std::string("[tools]\ntimeout_ms = 5000\n[[plugins]]\npath = \"") + SLUICE_TEST_PLUGIN_DIR +
                    "/test_tools.so\"\n[[plugins]]\npath = \"" + SLUICE_PLUGIN_DIR +
                    "/moderation.so\"\n[plugins.settings]\npii = [\"email\", \"phone\"]\n");
  const auto env = redis_env(redis, {"SLUICE_STORE_LEASE_MS=400", "SLUICE_LOG_LEVEL=info"});
  auto launch = [&] { return start_gateway(sim_url(*sim), env, {"--config", config.path}); };
  std::vector<std::unique_ptr<Process>> gw;
  for (int i = 0; i < 3; ++i) gw.push_back(launch());

  const std::vector<std::string> prompts{
      "第{n}轮：被杀的实例 🔪 plain text",
      R"([[sim tool=naps args={"text":"睡一会💤"}]] 第{n}轮 nap)",
      "第{n}轮 write to li.na@example.com or call +86 138 0013 8000 🕵️",
  };
  auto prompt_of = [&](size_t kind, int n) {
    std::string p = prompts[kind];
    p.replace(p.find("{n}"), 3, std::to_string(n));
    return p;
  };
  // What an undisturbed run answers (round 0 is never killed).
  std::vector<std::string> reference;
  {
    WsClient c(gw[0]->port());
    for (size_t k = 0; k < prompts.size(); ++k) {
      Started s = start_chat(c, prompt_of(k, 0));
      auto t = read_turn(c, s.session_id);
      ASSERT_TRUE(t.done) << gw[0]->stderr_text();
      ASSERT_EQ(t.done->finish_reason, "stop") << t.done->raw;
      reference.push_back(t.text);
    }
  }
  ASSERT_NE(reference[1].find("睡一会"), std::string::npos) << "the tool's result is in its answer: [" << reference[1] << "]";
  ASSERT_NE(reference[2].find("[email]"), std::string::npos) << reference[2];
  ASSERT_EQ(reference[2].find("example.com"), std::string::npos) << reference[2];

  std::mt19937 rng(20261202);
  std::vector<long long> takeover_ms;
  int swept = 0;
  for (int round = 1; round <= 50; ++round) {
    const size_t x = round % 3, y = (round + 1) % 3, z = (round + 2) % 3;
    const bool unwatched_tool = round % 5 == 0;
    std::vector<Started> started;
    WsClient owner(gw[x]->port());
    for (size_t k = 0; k < prompts.size(); ++k) started.push_back(start_chat(owner, prompt_of(k, round)));
    std::vector<std::unique_ptr<WsClient>> readers;
    for (size_t k = 0; k < prompts.size(); ++k) {
      if (k == 1 && unwatched_tool) {
        readers.push_back(nullptr);
        continue;
      }
      readers.push_back(std::make_unique<WsClient>(gw[k == 2 ? z : y]->port()));
      readers.back()->send(resume(started[k].session_id, 0, started[k].token));
      ASSERT_TRUE(readers.back()->read_until("resumed", "", 10s)) << "round " << round;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 900));
    const auto killed = std::chrono::steady_clock::now();
    gw[x]->signal(SIGKILL);
    gw[x]->wait(5s);
    owner.drop();
    // What the lost instance had written of each answer: a takeover's events come after it.
    std::vector<uint64_t> held_at_kill;
    for (const auto& st : started) {
      const auto last = redis.call({"HGET", "sluice:{" + st.session_id + "}:r", "last"});
      held_at_kill.push_back(last.nil ? 0 : std::stoull(last.str));
    }
    for (size_t k = 0; k < prompts.size(); ++k) {
      SCOPED_TRACE("round " + std::to_string(round) + ", answer " + std::to_string(k));
      const std::string& id = started[k].session_id;
      std::unique_ptr<WsClient> late;
      WsClient* reader = readers[k].get();
      if (!reader) {
        // Nobody waited: the answer is finished by whichever instance swept first.
        bool finished = false;
        for (int i = 0; i < 400 && !finished; ++i) {
          finished = redis.call({"HGET", "sluice:{" + id + "}:r", "running"}).str == "0";
          if (!finished) std::this_thread::sleep_for(25ms);
        }
        ASSERT_TRUE(finished) << gw[y]->stderr_text() << gw[z]->stderr_text();
        late = std::make_unique<WsClient>(gw[z]->port());
        late->send(resume(id, 0, started[k].token));
        ASSERT_TRUE(late->read_until("resumed"));
        reader = late.get();
      }
      Turn t;
      std::chrono::steady_clock::time_point after_kill{};
      for (auto f = reader->read(20s); f; f = reader->read(20s)) {
        if (f->session_id != id) continue;
        if (f->offset) t.offsets.push_back(f->offset);
        if (f->type == "delta") {
          t.text += f->text;
          if (f->offset > held_at_kill[k] && after_kill == std::chrono::steady_clock::time_point{}) {
            after_kill = std::chrono::steady_clock::now();
          }
        }
        if (f->type == "error" || f->type == "moderation") t.error = f;
        if (f->type == "done") {
          t.done = f;
          break;
        }
      }
      ASSERT_TRUE(t.done) << gw[y]->stderr_text() << gw[z]->stderr_text();
      auto about = [&](const Process& g) {  // the log lines of this session
        std::string lines, all = g.stderr_text();
        for (size_t at = 0; (at = all.find(id, at)) != std::string::npos; at += id.size()) {
          const size_t begin = all.rfind('\n', at) + 1;
          lines += all.substr(begin, all.find('\n', at) - begin) + "\n";
        }
        return lines;
      };
      EXPECT_EQ(t.done->finish_reason, "stop")
          << t.done->raw << (t.error ? "\nerror: " + t.error->raw : "") << "\ninstance y:\n" << about(*gw[y])
          << "instance z:\n" << about(*gw[z]);
      std::string expected = reference[k];
      if (const auto at = expected.find("第0轮"); at != std::string::npos) {
        expected.replace(at, std::string("第0轮").size(), "第" + std::to_string(round) + "轮");
      }
      EXPECT_EQ(t.text, expected);
      ASSERT_FALSE(t.offsets.empty());
      EXPECT_EQ(t.offsets.front(), 1u);
      for (size_t i = 1; i < t.offsets.size(); ++i) ASSERT_EQ(t.offsets[i], t.offsets[i - 1] + 1);
      const bool taken_over = t.offsets.back() > held_at_kill[k];  // its done came after the kill
      if (k == 0 && taken_over && after_kill != std::chrono::steady_clock::time_point{}) {
        takeover_ms.push_back(
            std::chrono::duration_cast<std::chrono::milliseconds>(after_kill - killed).count());
      }
      if (!readers[k] && taken_over) {
        // Taken over by a sweep of one of the two instances alive.
        const std::string line = "session " + id + ": its turn's instance was lost and no instance watching it";
        EXPECT_TRUE(gw[y]->stderr_text().find(line) != std::string::npos ||
                    gw[z]->stderr_text().find(line) != std::string::npos);
        ++swept;
      }
    }
    gw[x] = launch();
  }
  // Most unwatched answers were still running at the kill: a sweep finished them.
  EXPECT_GE(swept, 5);
  std::sort(takeover_ms.begin(), takeover_ms.end());
  if (!takeover_ms.empty()) {
    std::printf("50 kills: the first delta the new owner wrote came p50 %lld ms, max %lld ms after the kill, "
                "over the %zu plain answers still running then (lease 400 ms, upstream 40 tokens/s); %d "
                "unwatched answers finished by a sweep\n",
                takeover_ms[takeover_ms.size() / 2], takeover_ms.back(), takeover_ms.size(), swept);
  }
}


// engine = "local": the instance taking the turn over prefills the partial
// answer after the assistant header and the answer goes on. A
// model big enough to be killed mid-answer (Qwen2-0.5B's width and vocabulary,
// four layers, random weights, q8_0; made by tools/make_test_model.py).
TEST(ScaleOut, TheLocalEngineContinuesATakenOverAnswer) {
  SKIP_WITHOUT_REDIS();
  const std::string model = "/tmp/sluice-takeover-" + std::to_string(getpid()) + ".gguf";
  const std::string make = std::string(SLUICE_PYTHON) + " " + SLUICE_MAKE_TEST_MODEL + " " + model +
                           " --arch qwen2 --type q8_0 --shape qwen2-0.5b --layers 4 --tokenizer >/dev/null";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  struct Remove {
    std::string path;
    ~Remove() { unlink(path.c_str()); }
  } remove{model};
  RedisServer redis;
  auto env = redis_env(redis, {"SLUICE_STORE_LEASE_MS=600", "SLUICE_ENGINE=local", "SLUICE_LOCAL_MODEL=" + model,
                               "SLUICE_LOCAL_THREADS=1", "SLUICE_LOCAL_TEMPERATURE=0", "SLUICE_LOCAL_MAX_TOKENS=48",
                               "SLUICE_LOG_LEVEL=info"});
  auto launch = [&] {
    return std::make_unique<Process>(std::vector<std::string>{SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"}, env);
  };
  auto a = launch();
  auto b = launch();
  const std::string prompt = "本地引擎接管 🧠 local takeover";
  int64_t reference_prompt_tokens = 0;
  {
    WsClient c(b->port());
    Started s = start_chat(c, prompt);
    auto t = read_turn(c, s.session_id, 120s);
    ASSERT_TRUE(t.done) << b->stderr_text();
    ASSERT_TRUE(t.done->finish_reason == "length" || t.done->finish_reason == "stop") << t.done->raw;
    ASSERT_GE(t.offsets.size(), 12u) << "long enough to be killed in the middle: " << t.done->raw;
    reference_prompt_tokens = t.done->prompt_tokens;
  }
  WsClient ca(a->port());
  Started s = start_chat(ca, prompt);
  WsClient cb(b->port());
  cb.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(cb.read_until("resumed", "", 30s));
  std::string seen;
  for (int i = 0; i < 4; ++i) {
    auto f = ca.read_until("delta", s.session_id, 60s);
    ASSERT_TRUE(f) << a->stderr_text();
    seen += f->text;
  }
  a->signal(SIGKILL);
  a->wait(5s);
  const auto last = redis.call({"HGET", "sluice:{" + s.session_id + "}:r", "last"});
  const uint64_t held = last.nil ? 0 : std::stoull(last.str);
  auto t = read_turn(cb, s.session_id, 120s);
  ASSERT_TRUE(t.done) << b->stderr_text();
  ASSERT_GT(t.offsets.back(), held) << "the answer was over before the kill: nothing was taken over";
  EXPECT_TRUE(b->wait_for_stderr("took over the turn of a lost instance", 5s)) << b->stderr_text();
  EXPECT_EQ(metric(b->port(), "sluice_turn_takeovers_total{outcome=\"continued\"}"), 1);
  EXPECT_EQ(t.offsets.front(), 1u);
  for (size_t i = 1; i < t.offsets.size(); ++i) ASSERT_EQ(t.offsets[i], t.offsets[i - 1] + 1);
  EXPECT_EQ(t.text.rfind(seen, 0), 0u) << "what the client saw before the kill is the answer's start";
  EXPECT_GT(t.text.size(), seen.size());
  // Continued, not begun again: the partial answer was part of the new
  // owner's prompt. (Greedy text is not compared with an undisturbed run:
  // this random model emits bytes that are not UTF-8, which the journal
  // holds as U+FFFD, so the prefilled tokens differ from those generated.)
  EXPECT_GT(t.done->prompt_tokens, reference_prompt_tokens) << t.done->raw;
}

}  // namespace
}  // namespace sluice::test
