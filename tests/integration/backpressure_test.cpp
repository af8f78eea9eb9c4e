// Back-pressure: a client that does not read never slows generation or
// other sessions, and the gateway's memory stays bounded.
#include <simdjson.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/raw_connection.hpp"

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

// What an SSE client has read: the text of its chunks and the last event id.
struct SseRead {
  std::string text;
  uint64_t last = 0;        // the offset of the last complete event
  bool offsets_in_order = true;
  bool done = false;        // data: [DONE] came
};

// Adds the complete events of `body` (an SSE stream, already unchunked) to `r`.
void read_sse(std::string_view body, SseRead& r) {
  simdjson::dom::parser parser;
  size_t at = 0;
  for (size_t end; (end = body.find("\n\n", at)) != std::string_view::npos; at = end + 2) {
    const std::string_view event = body.substr(at, end - at);
    if (event.find("data: [DONE]") != std::string_view::npos) r.done = true;
    const auto id = event.find("id: ");
    if (id == std::string_view::npos) continue;
    const auto colon = event.find(':', id + 4);
    const uint64_t offset = std::stoull(std::string(event.substr(colon + 1, event.find('\n', colon) - colon - 1)));
    if (offset != r.last + 1) r.offsets_in_order = false;
    r.last = offset;
    const auto data = event.find("data: ");
    simdjson::dom::element chunk;
    std::string_view content;
    if (parser.parse(std::string(event.substr(data + 6))).get(chunk) == simdjson::SUCCESS &&
        chunk["choices"].at(0)["delta"]["content"].get(content) == simdjson::SUCCESS) {
      r.text += content;
    }
  }
}

// The body of a chunked HTTP response as far as its complete chunks go (a
// connection cut mid-chunk loses only that chunk), and its head.
std::string unchunk(const std::string& response, std::string* head) {
  const auto body = response.find("\r\n\r\n");
  if (body == std::string::npos) return {};
  *head = response.substr(0, body);
  std::string out;
  for (size_t at = body + 4;;) {
    const auto eol = response.find("\r\n", at);
    if (eol == std::string::npos) break;
    const size_t size = std::stoul(response.substr(at, eol - at), nullptr, 16);
    if (size == 0 || eol + 2 + size + 2 > response.size()) break;
    out.append(response, eol + 2, size);
    at = eol + 2 + size + 2;
  }
  return out;
}

std::string header_value(const std::string& head, const std::string& name) {
  const auto at = head.find(name + ": ");
  if (at == std::string::npos) return {};
  const auto from = at + name.size() + 2;
  return head.substr(from, head.find("\r\n", from) - from);
}

// The same rule on the SSE face: a client that stops reading is given up on
// (counted as face="http"), and what it missed comes back, exactly once,
// through Last-Event-ID.
void sse_reader_that_stops(Process& sim, Process& gw);

TEST(SlowConsumer, SseReaderThatStopsIsClosedAndResumesWithLastEventId) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_SEND_QUEUE_BYTES=262144",
                                          "SLUICE_LIMITS_SLOW_CONSUMER_TIMEOUT_MS=500"});
  try {
    sse_reader_that_stops(*sim, *gw);
  } catch (const std::exception& e) {  // a cut HTTP exchange: say what the gateway logged
    const std::string log = gw->stderr_text();
    FAIL() << e.what() << "\ngateway log (end):\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
  }
}

void sse_reader_that_stops(Process& sim, Process& gw) {
  RawConnection stalled(gw.port(), 4096);  // a small window: the gateway's writes stall early
  ASSERT_TRUE(stalled.connected());
  // About 3 MB of SSE, far more than the window, the gateway's socket
  // buffer and its send_queue_bytes together.
  const std::string body =
      R"({"messages":[{"role":"user","content":"[[sim repeat=1000]] 洪水 flood"}],"stream":true})";
  stalled.send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  // Generation is not slowed by it (the wait is long for the sanitizers'
  // sake: it ends when the answer does), and another SSE client streams
  // meanwhile.
  EXPECT_EQ(sim_stats(sim, "?wait_completed=1&timeout_ms=60000").completed, 1);
  const auto other = http_post(gw.port(), "/v1/chat/completions",
                               R"({"messages":[{"role":"user","content":"我还在 🙂"}],"stream":true})");
  EXPECT_EQ(other.status, 200);
  SseRead o;
  read_sse(other.body, o);
  EXPECT_EQ(o.text, expected_text("我还在 🙂"));
  EXPECT_TRUE(o.done);

  // The gateway gives up on the stalled client: counted, then the
  // connection ends.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (metric(gw.port(), R"(sluice_slow_consumer_closes_total{face="http"})") < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(metric(gw.port(), R"(sluice_slow_consumer_closes_total{face="http"})"), 1);
  std::string head;
  const std::string got = unchunk(stalled.read_all(30s), &head);
  SseRead first;
  read_sse(got, first);
  EXPECT_TRUE(first.offsets_in_order);
  EXPECT_FALSE(first.done);
  ASSERT_GT(first.last, 0u);
  const std::string sid = header_value(head, "X-Sluice-Session-Id");
  const std::string token = header_value(head, "X-Sluice-Resume-Token");
  ASSERT_FALSE(sid.empty()) << head;

  // EventSource's reconnect: the rest, from the next offset, and the end.
  // The replay's reader is held to the same rule, so one cut off by it on a
  // loaded machine reconnects again from its last event id, as EventSource
  // does; every cut must be that rule's (counted).
  SseRead second;
  second.last = first.last;
  int cuts = 0;
  for (int attempt = 0; attempt < 10 && !second.done; ++attempt) {
    if (attempt > 0) ++cuts;
    RawConnection again(gw.port());
    ASSERT_TRUE(again.connected());
    again.send("GET /v1/sessions/" + sid + "/stream?resume_token=" + token +
               " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nLast-Event-ID: " + sid + ":" +
               std::to_string(second.last) + "\r\n\r\n");
    std::string rest_head;
    read_sse(unchunk(again.read_all(60s), &rest_head), second);
    EXPECT_EQ(rest_head.rfind("HTTP/1.1 200", 0), 0u) << rest_head;
  }
  EXPECT_TRUE(second.offsets_in_order);
  EXPECT_TRUE(second.done);
  EXPECT_EQ(metric(gw.port(), R"(sluice_slow_consumer_closes_total{face="http"})"), 1 + cuts);
  if (cuts > 0) std::printf("the replay's reader was cut off %d time(s) and reconnected\n", cuts);
  std::string want;
  for (int i = 0; i < 1000; ++i) want += expected_text("洪水 flood");
  EXPECT_EQ(first.text.size() + second.text.size(), want.size());
  EXPECT_TRUE(first.text + second.text == want);
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
  auto stats = sim_stats(*sim, "?wait_completed=1&timeout_ms=60000");  // long for the sanitizers
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
  // The rest, from the next offset, as a widget gets it: the replay's reader
  // is held to the same rule (on a loaded machine it too can be starved past
  // the 500 ms), so a reader cut off by it resumes again from the last
  // offset it saw. Every cut must be that rule's (counted), and the pieces
  // must join into the answer with no byte lost or repeated.
  bool done = false;
  int cuts = 0;
  for (int attempt = 0; attempt < 10; ++attempt) {
    WsClient again(gw->port());
    again.send(resume(session_id, last, token));
    auto resumed = again.read_until("resumed");
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->from_offset, last + 1);
    while (auto f = again.read(60s)) {
      if (f->session_id != session_id) continue;
      if (f->type == "delta") {
        EXPECT_EQ(f->offset, last + 1);
        last = f->offset;
        text += f->text;
      }
      if (f->type == "done") {
        done = true;
        break;
      }
    }
    if (done) break;
    ASSERT_TRUE(again.closed()) << "the resumed stream stopped without done and without a close";
    if (again.close_code()) {
      EXPECT_EQ(*again.close_code(), 4008);
    }
    ++cuts;
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(metric(gw->port(), R"(sluice_slow_consumer_closes_total{face="websocket"})"), 1 + cuts);
  std::string want;
  for (int i = 0; i < 5000; ++i) want += expected_text("flood");
  EXPECT_EQ(text.size(), want.size());
  EXPECT_TRUE(text == want);
  if (cuts > 0) std::printf("the replay's reader was cut off %d time(s) and resumed\n", cuts);
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
