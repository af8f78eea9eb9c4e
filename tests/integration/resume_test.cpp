// Resume by session_id and offset: the journal replays what a client missed,
// byte for byte, whatever connection it comes back on.
#include <csignal>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

Frame resume_failure(uint16_t port, const std::string& sid, uint64_t offset,
                     const std::string& token) {
  WsClient c(port);
  c.send(resume(sid, offset, token, "rs"));
  auto f = c.read_until("resume_failed", "", 5s);
  return f ? *f : Frame{};
}

TEST(Resume, MidTurnOnANewConnectionContinuesByteExact) {
  auto sim = start_sim({"--rate", "200"});
  auto gw = start_gateway(sim_url(*sim));
  std::string text;
  uint64_t last = 0;
  Started s;
  {
    WsClient a(gw->port());
    s = start_chat(a, "断线重连 🔌 test");
    for (int i = 0; i < 5; ++i) {
      auto f = a.read_until("delta", s.session_id);
      ASSERT_TRUE(f);
      EXPECT_EQ(f->offset, last + 1);
      last = f->offset;
      text += f->text;
    }
    a.drop();
  }
  WsClient b(gw->port());
  b.send(resume(s.session_id, last, s.token, "again"));
  auto resumed = b.read_until("resumed");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->request_id, "again");
  EXPECT_EQ(resumed->from_offset, last + 1);
  auto rest = read_turn(b, s.session_id);
  ASSERT_TRUE(rest.done);
  EXPECT_EQ(rest.done->finish_reason, "stop");
  ASSERT_FALSE(rest.offsets.empty());
  for (size_t i = 0; i < rest.offsets.size(); ++i) EXPECT_EQ(rest.offsets[i], last + 1 + i);
  EXPECT_EQ(text + rest.text, expected_text("断线重连 🔌 test"));
  EXPECT_EQ(sim_stats(*sim).aborted, 0);
}

TEST(Resume, AfterDoneReplaysEverythingAfterTheOffset) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  Started s;
  Turn first;
  {
    WsClient a(gw->port());
    s = start_chat(a, "replay");
    first = read_turn(a, s.session_id);
    ASSERT_TRUE(first.done);
  }
  WsClient b(gw->port());
  b.send(resume(s.session_id, 0, s.token));
  auto resumed = b.read_until("resumed");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->from_offset, 1u);
  auto again = read_turn(b, s.session_id);
  EXPECT_EQ(again.text, first.text);
  EXPECT_EQ(again.offsets, first.offsets);
  // Resuming at the end gives nothing more, and the session takes a new turn.
  b.send(resume(s.session_id, first.done->offset, s.token));
  ASSERT_TRUE(b.read_until("resumed"));
  b.send(chat("next", "", s.session_id));
  auto next = read_turn(b, s.session_id);
  ASSERT_FALSE(next.offsets.empty());
  EXPECT_EQ(next.offsets.front(), first.done->offset + 1);
}

TEST(Resume, FailureReasons) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient a(gw->port());
  const auto s = start_chat(a, "reasons");
  const auto done = read_turn(a, s.session_id).done;
  ASSERT_TRUE(done);

  auto bad = resume_failure(gw->port(), s.session_id, 0, "rt_wrongwrongwrongwrongwr");
  EXPECT_EQ(bad.reason, "bad_token");
  EXPECT_EQ(bad.request_id, "rs");
  EXPECT_EQ(resume_failure(gw->port(), "s_doesnotexist00000000", 0, s.token).reason,
            "unknown_session");
  EXPECT_EQ(resume_failure(gw->port(), s.session_id, done->offset + 1, s.token).reason,
            "offset_ahead");
}

TEST(Resume, ExpiredAfterRetention) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_RESUME_RETENTION_MS=300"});
  Started s;
  {
    WsClient a(gw->port());
    s = start_chat(a, "short-lived");
    ASSERT_TRUE(read_turn(a, s.session_id).done);
  }
  // The session is forgotten by a sweep a little after its retention.
  std::string reason;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (reason != "expired" && std::chrono::steady_clock::now() < deadline) {
    WsClient c(gw->port());
    c.send(resume(s.session_id, 0, s.token));
    auto f = c.read(5s);
    ASSERT_TRUE(f);
    reason = f->type == "resume_failed" ? f->reason : "";
    if (reason.empty()) std::this_thread::sleep_for(50ms);  // retention is time: let it pass
  }
  EXPECT_EQ(reason, "expired");
}

TEST(Resume, EvictedByTheMemoryBudget) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_RESUME_MEMORY_BUDGET_BYTES=65536"});
  WsClient a(gw->port());
  const auto old = start_chat(a, "[[sim repeat=100]] old");
  ASSERT_TRUE(read_turn(a, old.session_id).done);
  // A newer turn needs the memory: the old, finished one goes.
  const auto young = start_chat(a, "[[sim repeat=100]] young");
  ASSERT_TRUE(read_turn(a, young.session_id).done);
  EXPECT_EQ(resume_failure(gw->port(), old.session_id, 0, old.token).reason, "evicted");
}

TEST(Resume, TwoTabsSeeEveryEvent) {
  auto sim = start_sim({"--rate", "100"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient tab1(gw->port());
  WsClient tab2(gw->port());
  const auto s = start_chat(tab1, "two tabs 👯");
  tab2.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(tab2.read_until("resumed"));
  auto t1 = read_turn(tab1, s.session_id);
  auto t2 = read_turn(tab2, s.session_id);
  EXPECT_EQ(t1.text, expected_text("two tabs 👯"));
  EXPECT_EQ(t2.text, t1.text);
  EXPECT_EQ(t2.offsets, t1.offsets);
  // A turn started from the second tab reaches the first too.
  tab2.send(chat("from tab 2", "", s.session_id));
  EXPECT_EQ(read_turn(tab1, s.session_id).text, expected_text("from tab 2"));
  EXPECT_EQ(read_turn(tab2, s.session_id).text, expected_text("from tab 2"));
}

TEST(Resume, CancelWhileNobodyIsAttached) {
  auto sim = start_sim({"--rate", "20"});
  auto gw = start_gateway(sim_url(*sim));
  Started s;
  {
    WsClient a(gw->port());
    s = start_chat(a, "orphan");
    ASSERT_TRUE(a.read_until("delta", s.session_id));
    a.drop();
  }
  WsClient b(gw->port());
  b.send(cancel(s.session_id));  // the id alone is not enough
  auto refused = b.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "bad_message");
  EXPECT_EQ(sim_stats(*sim).aborted, 0);
  b.send(cancel(s.session_id, s.token));
  EXPECT_EQ(sim_stats(*sim, "?wait_aborted=1&timeout_ms=2000").aborted, 1);
  b.send(resume(s.session_id, 0, s.token));
  ASSERT_TRUE(b.read_until("resumed"));
  auto turn = read_turn(b, s.session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "cancelled");
  EXPECT_FALSE(turn.text.empty());
}

TEST(Resume, ConversationHistoryGoesUpstream) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  WsClient a(gw->port());
  const auto s = start_chat(a, "first question");
  ASSERT_TRUE(read_turn(a, s.session_id).done);
  a.send(chat("second question", "", s.session_id));
  ASSERT_TRUE(read_turn(a, s.session_id).done);
  const auto body = sim_stats(*sim).last_body;
  const auto q1 = body.find(R"({"role":"user","content":"first question"})");
  const auto ans = body.find(R"({"role":"assistant","content":"Answer for first question)");
  const auto q2 = body.find(R"({"role":"user","content":"second question"})");
  ASSERT_NE(q1, std::string::npos) << body;
  ASSERT_NE(ans, std::string::npos) << body;
  ASSERT_NE(q2, std::string::npos) << body;
  EXPECT_LT(q1, ans);
  EXPECT_LT(ans, q2);
}

TEST(Resume, CoalescingMergesDeltasAndKeepsOffsetsExact) {
  auto sim = start_sim({"--rate", "400"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient a(gw->port(), "/v1/ws?coalesce_ms=40");
  const auto s = start_chat(a, "merge please");
  auto turn = read_turn(a, s.session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.text, expected_text("merge please"));
  const uint64_t events = turn.done->offset;  // every event had an offset
  EXPECT_LT(turn.offsets.size(), events / 2) << "deltas were not merged";
  for (size_t i = 1; i < turn.offsets.size(); ++i) EXPECT_GT(turn.offsets[i], turn.offsets[i - 1]);
}

// A client drops its connection at 200 random points of a 2,000-token answer
// (Chinese, English, emoji; the upstream cuts its writes at random bytes) and
// rebuilds text byte-identical to an uninterrupted run.
TEST(Resume, FaultInjectionTwoHundredDropsRebuildTheExactAnswer) {
  auto sim = start_sim({"--rate", "1000", "--random-split", "7"});
  auto gw = start_gateway(sim_url(*sim));
  const std::string input = "[[sim repeat=60]] 故障注入 💥";  // about 2,200 tokens

  std::string reference;
  {
    WsClient c(gw->port());
    const auto s = start_chat(c, input);
    auto t = read_turn(c, s.session_id, 60s);
    ASSERT_TRUE(t.done);
    reference = t.text;
  }

  std::mt19937 rng(20261121);
  std::uniform_int_distribution<int> frames_before_drop(1, 16);
  Started s;
  std::string text;
  std::set<uint64_t> seen;
  uint64_t last = 0;
  bool done = false;
  int drops = 0;
  {
    WsClient first(gw->port());
    s = start_chat(first, input);
    first.drop();
  }
  while (!done && drops < 1000) {
    WsClient c(gw->port());
    c.send(resume(s.session_id, last, s.token));
    auto r = c.read(10s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->type, "resumed") << r->raw;
    ASSERT_EQ(r->from_offset, last + 1);
    const int n = frames_before_drop(rng);
    for (int i = 0; i < n && !done; ++i) {
      auto f = c.read(10s);
      ASSERT_TRUE(f);
      ASSERT_EQ(f->offset, last + 1) << f->raw;
      ASSERT_TRUE(seen.insert(f->offset).second);
      last = f->offset;
      if (f->type == "delta") text += f->text;
      if (f->type == "done") done = true;
    }
    c.drop();
    ++drops;
  }
  ASSERT_TRUE(done);
  EXPECT_GE(drops, 200);
  EXPECT_EQ(text, reference);
  EXPECT_EQ(seen.size(), last);
  EXPECT_GE(last, 2000u);
}

}  // namespace
}  // namespace sluice::test
