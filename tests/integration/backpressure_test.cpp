// Back-pressure: a client that does not read never slows generation or
// other sessions, and the gateway's memory stays bounded.
#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kRssScale = 4;  // sanitizers' shadow memory and quarantine
#else
constexpr long kRssScale = 1;
#endif

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(SlowConsumer, ReaderThatStopsIsClosedAndResumesTheRest) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_SEND_QUEUE_BYTES=262144",
                                          "SLUICE_LIMITS_SLOW_CONSUMER_TIMEOUT_MS=500"});
  WsClient reader(gw->port());
  WsClient stalled(gw->port());
  // About 15 MB of frames for a client that does not read.
  stalled.send(chat("[[sim repeat=5000]] flood"));
  // Generation is not slowed by it: the upstream finishes the answer.
  auto stats = sim_stats(*sim, "?wait_completed=1&timeout_ms=20000");
  EXPECT_EQ(stats.completed, 1);
  EXPECT_EQ(stats.aborted, 0);
  EXPECT_LT(rss_kib(gw->pid()), kRssScale * 200 * 1024);
  // Another client streams as usual meanwhile.
  reader.send(chat("我还在"));
  auto other = reader.read_until("session");
  ASSERT_TRUE(other);
  EXPECT_EQ(read_turn(reader, other->session_id).text, expected_text("我还在"));

  // The gateway gives up on the stalled client and closes the connection.
  // The client then finds what reached its socket (the 4008 close frame too
  // when it reads in time) and resumes on a new connection from the last
  // offset it saw.
  ASSERT_TRUE(stalled.wait_peer_closed(30s));
  std::string session_id, token, text;
  uint64_t last = 0;
  while (auto f = stalled.read(10s)) {
    if (f->type == "session") {
      session_id = f->session_id;
      token = f->resume_token;
    }
    if (f->type == "delta") {
      EXPECT_EQ(f->offset, last + 1);
      last = f->offset;
      text += f->text;
    }
  }
  EXPECT_TRUE(stalled.closed());
  // Closed by the slow-consumer rule, whether or not its 4008 frame got
  // through the full socket before the grace ran out.
  if (stalled.close_code()) {
    EXPECT_EQ(*stalled.close_code(), 4008);
  }
  EXPECT_EQ(metric(gw->port(), R"(sluice_slow_consumer_closes_total{face="websocket"})"), 1);
  ASSERT_FALSE(session_id.empty());
  WsClient again(gw->port());
  again.send(resume(session_id, last, token));
  auto resumed = again.read_until("resumed");
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->from_offset, last + 1);
  auto rest = read_turn(again, session_id, 60s);
  ASSERT_TRUE(rest.done);
  ASSERT_FALSE(rest.offsets.empty());
  EXPECT_EQ(rest.offsets.front(), last + 1);
  std::string want;
  for (int i = 0; i < 5000; ++i) want += expected_text("flood");
  EXPECT_EQ(text + rest.text, want);
}

TEST(SlowConsumer, ThousandSessionsStreamWhileOneClientNeverReads) {
  auto sim = start_sim({"--rate", "200", "--threads", "2"});
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_SEND_QUEUE_BYTES=262144",
                                          "SLUICE_LIMITS_SLOW_CONSUMER_TIMEOUT_MS=1000",
                                          "SLUICE_LIMITS_MAX_SESSIONS_PER_CONNECTION=20"});
  // 16 sessions of about 20,000 tokens each for a client that never reads.
  WsClient stalled(gw->port());
  for (int i = 0; i < 16; ++i) stalled.send(chat("[[sim repeat=500 rate=100000]] flood " + std::to_string(i)));

  constexpr int kConnections = 50;
  constexpr int kSessionsEach = 20;  // 1,000 sessions
  std::vector<std::string> failures(kConnections);
  std::vector<std::thread> threads;
  std::atomic<long> peak_rss{0};
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      WsClient client(gw->port());
      std::map<std::string, std::string> prompt_of_request, prompt_of_session;
      for (int s = 0; s < kSessionsEach; ++s) {
        const std::string rid = std::to_string(s);
        prompt_of_request[rid] = "c" + std::to_string(c) + "s" + rid + " 流";
        client.send(chat(prompt_of_request[rid], rid));
      }
      std::map<std::string, std::string> text;
      int done = 0;
      while (done < kSessionsEach) {
        auto f = client.read(60s);
        if (!f) {
          failures[c] = "timed out";
          return;
        }
        if (f->type == "session") prompt_of_session[f->session_id] = prompt_of_request[f->request_id];
        if (f->type == "delta") text[f->session_id] += f->text;
        if (f->type == "done") ++done;
        if (c == 0) {
          long expected = peak_rss.load();
          const long now = rss_kib(gw->pid());
          while (now > expected && !peak_rss.compare_exchange_weak(expected, now)) {
          }
        }
      }
      for (auto& [sid, t] : text) {
        if (t != expected_text(prompt_of_session[sid])) failures[c] += "wrong text for " + sid + "\n";
      }
      if (text.size() != kSessionsEach) failures[c] += "missing sessions\n";
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
  // Generation was not held back by the stalled reader: every answer is complete.
  EXPECT_EQ(sim_stats(*sim, "?wait_completed=1016&timeout_ms=60000").completed, 1016);
  // The bound: the stalled client's 16 answers (about 320,000 events) live
  // in the journal, not in its send queue.
  EXPECT_LT(peak_rss.load(), kRssScale * 300 * 1024);
  EXPECT_LT(rss_kib(gw->pid()), kRssScale * 300 * 1024);
  // The gateway gives up on the stalled client (slow_consumer_timeout, then
  // a grace for its stuck write) and closes the connection; the client finds
  // what reached its socket, then the end.
  EXPECT_TRUE(stalled.wait_peer_closed(30s)) << gw->stderr_text().substr(0, 4000);
  while (stalled.read(10s)) {
  }
  EXPECT_TRUE(stalled.closed());
  if (stalled.close_code()) {
    EXPECT_EQ(*stalled.close_code(), 4008);
  }
  EXPECT_EQ(metric(gw->port(), R"(sluice_slow_consumer_closes_total{face="websocket"})"), 1);
}

}  // namespace
}  // namespace sluice::test
