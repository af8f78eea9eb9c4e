// The adversarial suite: the hostile inputs of issue 14 that run in a few
// seconds each, against the real gateway binary. Each test failed before its
// fix: text echoed to clients cut inside a character, far-future and
// fractional JWT expiry, descriptor exhaustion, cancel by session id alone,
// refused HTTP turns that left sessions behind, expired sessions that could
// be probed by another principal, upstream addresses in client errors, and
// the HTTP parser's smaller gaps.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "gateway/auth/authenticator.hpp"
#include "gateway/common/utf8.hpp"
#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/signed_jwt.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

const std::string kSecret = "adversarial-secret-密钥";
const std::string kAliceKey = "sk-alice-0123456789";
const std::string kBobKey = "sk-bob-0123456789";

std::vector<std::string> auth_env() {
  return {"SLUICE_AUTH_MODE=token", "SLUICE_AUTH_JWT_HS256_SECRET=" + kSecret,
          "SLUICE_AUTH_JWT_LEEWAY_MS=0", "SLUICE_AUTH_HELLO_TIMEOUT_MS=5000",
          R"(SLUICE_AUTH_API_KEYS=[{principal = "alice", sha256 = ")" + sha256_hex(kAliceKey) +
              R"("}, {principal = "bob", sha256 = ")" + sha256_hex(kBobKey) + R"("}])"};
}

std::string signed_token(const std::string& header, const std::string& payload) {
  return signed_hs256(header, payload, kSecret);
}

std::string token_with_exp(const std::string& exp) {
  return signed_token(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"carol","exp":)" + exp + "}");
}

std::string hello(const std::string& token, const std::string& request_id) {
  JsonWriter w;
  w.begin_object().field("type", "hello").field("token", token).field("request_id", request_id);
  return w.end_object().take();
}

// CPU seconds (user + system) the process has used.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

// ---- 1. text echoed to clients is cut on a character boundary ----

TEST(Adversarial, EchoedTypeIsValidUtf8AtEveryCutAndTheTurnGoesOn) {
  auto sim = start_sim({"--rate", "40"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient c(gw->port());
  c.send(chat("流式 🚀", "r1"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  int errors = 0;
  // 63 ASCII bytes and an "é" once got an error cut inside the "é": the
  // client's WebSocket rejected the frame and dropped the streaming turn.
  for (const std::string ch : {"é", "你", "🚀"}) {
    for (size_t ascii = 58; ascii <= 64; ++ascii) {
      c.send(R"({"type":")" + std::string(ascii, 'a') + ch + ch + R"("})");
      JsonWriter params;
      params.begin_object().field("type", "chat").field("input", "x").key("params").begin_object()
          .field(std::string(ascii, 'p') + ch + ch, 1).end_object().end_object();
      c.send(params.str());
    }
  }
  Turn turn;
  while (!(turn.done && errors == 42)) {
    auto f = c.read(20s);
    if (!f) break;
    if (f->type == "error") {
      EXPECT_TRUE(valid_utf8(f->message));
      ++errors;
    }
    if (f->session_id == session->session_id && f->type == "delta") turn.text += f->text;
    if (f->session_id == session->session_id && f->type == "done") turn.done = f;
  }
  EXPECT_EQ(errors, 42);
  ASSERT_TRUE(turn.done) << "the connection was dropped";
  EXPECT_EQ(turn.done->finish_reason, "stop");
  EXPECT_EQ(turn.text, expected_text("流式 🚀"));
  EXPECT_FALSE(c.closed());
}

TEST(Adversarial, EchoedJwtAlgorithmIsValidUtf8OnHttpAndInHello) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), auth_env());
  WsClient c(gw->port(), "/v1/ws?token=" + kAliceKey);
  for (size_t prefix = 0; prefix < 12; ++prefix) {
    std::string alg(prefix, 'a');
    for (int i = 0; i < 8; ++i) alg += "é";
    const std::string token = signed_token(R"({"alg":")" + alg + R"("})", R"({"sub":"x","exp":1900000000})");
    const auto http = http_post(gw->port(), "/v1/chat/completions",
                                R"({"messages":[{"role":"user","content":"hi"}]})",
                                {{"Authorization", "Bearer " + token}});
    EXPECT_EQ(http.status, 401);
    EXPECT_TRUE(valid_utf8(http.body)) << prefix;
    EXPECT_NE(http.body.find("is not accepted"), std::string::npos) << http.body;
    // A failed refresh leaves the connection on its current token.
    c.send(hello(token, "h" + std::to_string(prefix)));
    auto err = c.read_until("error");
    ASSERT_TRUE(err) << "dropped at prefix " << prefix;
    EXPECT_EQ(err->code, "unauthorized");
    EXPECT_TRUE(valid_utf8(err->message));
  }
  c.send(R"({"type":"ping","request_id":"still-here"})");
  EXPECT_TRUE(c.read_until("pong"));
}

// ---- 2. far-future and fractional exp, lower-case bearer ----

TEST(Adversarial, FarFutureExpiryKeepsTheConnectionAndRefreshesMidTurn) {
  auto sim = start_sim({"--rate", "40"});
  auto gw = start_gateway(sim_url(*sim), auth_env());
  for (const std::string exp : {"9999999999", "32503680000"}) {
    WsClient c(gw->port(), "/v1/ws?token=" + token_with_exp(exp));
    c.send(chat("远期 token"));
    auto session = c.read_until("session");
    ASSERT_TRUE(session) << exp << ": closed " << c.close_code().value_or(0) << " " << c.close_reason();
    ASSERT_TRUE(c.read_until("delta", session->session_id));
    c.send(hello(token_with_exp(exp), "refresh"));  // a refresh mid-turn
    const auto turn = read_turn(c, session->session_id);
    ASSERT_TRUE(turn.done) << exp << ": closed " << c.close_code().value_or(0) << " " << c.close_reason();
    EXPECT_EQ(turn.done->finish_reason, "stop");
    EXPECT_FALSE(c.closed());
  }
}

TEST(Adversarial, FractionalExpiryAndLowerCaseBearerAreAccepted) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), auth_env());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string body = R"({"messages":[{"role":"user","content":"小数 exp"}]})";
  const auto fractional = http_post(gw->port(), "/v1/chat/completions", body,
                                    {{"Authorization", "Bearer " + token_with_exp(std::to_string(now + 600) + ".5")}});
  EXPECT_EQ(fractional.status, 200) << fractional.body;
  const auto lower = http_post(gw->port(), "/v1/chat/completions", body, {{"authorization", "bearer " + kBobKey}});
  EXPECT_EQ(lower.status, 200) << lower.body;
  const auto expired = http_post(gw->port(), "/v1/chat/completions", body,
                                 {{"Authorization", "Bearer " + token_with_exp(std::to_string(now - 5) + ".5")}});
  EXPECT_EQ(expired.status, 401);
}

// ---- 3. descriptors running out ----

TEST(Adversarial, DescriptorExhaustionBacksOffAndStillServesHealthChecks) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan checks a virtual call's target by writing it into a pipe when its
  // type cache misses; with no descriptor left the pipe fails and it reports
  // an "invalid vptr" that is not there. The release suite runs this test.
  GTEST_SKIP() << "the sanitizer runtime itself needs free descriptors; run in the release build";
#endif
  auto sim = start_sim();
  std::vector<std::string> argv = {"/usr/bin/prlimit", "--nofile=64:64", "--", SLUICE_GATEWAY_BIN, "--listen",
                                   "127.0.0.1:0", "--upstream", sim_url(*sim)};
  Process gw(argv, {"SLUICE_LOG_LEVEL=info"});
  // 80 connections that never send a request, more than the gateway has
  // descriptors for.
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 80; ++i) idle.push_back(std::make_unique<RawConnection>(gw.port()));
  std::this_thread::sleep_for(300ms);  // the gateway runs out of descriptors
  const double cpu_before = cpu_seconds(gw.pid());
  std::this_thread::sleep_for(1500ms);  // a busy acceptor would burn this whole window
  const double cpu = cpu_seconds(gw.pid()) - cpu_before;
  std::printf("gateway CPU over a 1.5 s window with descriptors exhausted: %.3f s\n", cpu);
  EXPECT_LT(cpu, 0.3) << "the acceptor spins";
  // Idle connections make room: a health check is answered while they are
  // all still open.
  HttpReply health;
  for (int i = 0; i < 50 && health.status != 200; ++i) {
    try {
      health = http_get(gw.port(), "/healthz");
    } catch (const std::exception&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  EXPECT_EQ(health.status, 200);
  EXPECT_GT(metric(gw.port(), R"(sluice_connections_refused_total{reason="fd_exhausted"})"), 0);
  EXPECT_GT(metric(gw.port(), R"(sluice_connections_refused_total{reason="idle_evicted"})"), 0);
  idle.clear();
  const std::string log = gw.stderr_text();
  EXPECT_LT(log.size(), 64u * 1024) << "the log is flooded";
  EXPECT_NE(log.find("Too many open files"), std::string::npos);
}

TEST(Adversarial, IdleConnectionsThatNeverSendARequestMakeRoom) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MAX_PENDING_CONNECTIONS=8"});
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<RawConnection>(gw->port()));
    std::this_thread::sleep_for(5ms);  // accepted in this order
  }
  // The oldest idle ones are closed for the newer ones.
  for (int i = 0; i < 12; ++i) EXPECT_TRUE(idle[i]->peer_closed(2000ms)) << i;
  for (int i = 12; i < 20; ++i) EXPECT_FALSE(idle[i]->peer_closed(100ms)) << i;
  EXPECT_EQ(http_get(gw->port(), "/healthz").status, 200);  // served while 8 are held
  WsClient ws(gw->port());  // and a chat
  ws.send(chat("after the flood"));
  auto s = ws.read_until("session");
  ASSERT_TRUE(s);
  EXPECT_TRUE(read_turn(ws, s->session_id).done);
  // 12 for the flood and one for the health check (the chat may find a
  // place free by then).
  EXPECT_GE(metric(gw->port(), R"(sluice_connections_refused_total{reason="idle_evicted"})"), 13);
}

TEST(Adversarial, PendingConnectionsBusyWithRequestsAreNotClosedForNewOnes) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MAX_PENDING_CONNECTIONS=4"});
  // Four requests whose bodies are still on their way.
  std::vector<std::unique_ptr<RawConnection>> busy;
  for (int i = 0; i < 4; ++i) {
    busy.push_back(std::make_unique<RawConnection>(gw->port()));
    busy.back()->send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
  }
  // (The gateway reads their heads at once; nothing tells the test when.)
  std::this_thread::sleep_for(1s);
  RawConnection late(gw->port());
  EXPECT_TRUE(late.peer_closed(2000ms));
  for (auto& b : busy) EXPECT_FALSE(b->peer_closed(50ms));
  busy.clear();
  double refused = -1;
  for (int i = 0; i < 50 && refused < 0; ++i) {  // until the busy ones are gone
    try {
      refused = metric(gw->port(), R"(sluice_connections_refused_total{reason="pending_limit"})");
    } catch (const std::exception&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  EXPECT_GE(refused, 1);
  EXPECT_EQ(metric(gw->port(), R"(sluice_connections_refused_total{reason="idle_evicted"})"), -1);
}

TEST(Adversarial, SoftDescriptorLimitIsRaisedToTheHardOne) {
  auto sim = start_sim();
  Process gw({"/usr/bin/prlimit", "--nofile=256:8192", "--", SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0",
              "--upstream", sim_url(*sim)},
             {"SLUICE_LOG_LEVEL=info"});
  std::ifstream in("/proc/" + std::to_string(gw.pid()) + "/limits");
  std::string line;
  std::string soft, hard;
  while (std::getline(in, line)) {
    if (line.rfind("Max open files", 0) == 0) std::istringstream(line.substr(14)) >> soft >> hard;
  }
  EXPECT_EQ(soft, "8192");
  EXPECT_EQ(hard, "8192");
  EXPECT_TRUE(gw.wait_for_stderr("open file limit raised from 256 to 8192"));
}

// ---- 4. cancel needs the resume token ----

TEST(Adversarial, CancelFromAnotherConnectionNeedsTheResumeToken) {
  auto sim = start_sim({"--rate", "30"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient owner(gw->port());
  WsClient other(gw->port());  // the same principal: "anonymous"
  owner.send(chat("请不要取消"));
  auto session = owner.read_until("session");
  ASSERT_TRUE(session);
  auto first = owner.read_until("delta", session->session_id);
  ASSERT_TRUE(first);
  JsonWriter bare;
  bare.begin_object().field("type", "cancel").field("session_id", session->session_id)
      .field("request_id", "c1").end_object();
  other.send(bare.str());
  auto refused = other.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "bad_message");
  EXPECT_EQ(refused->request_id, "c1");
  JsonWriter wrong;
  wrong.begin_object().field("type", "cancel").field("session_id", session->session_id)
      .field("resume_token", "rt_guess").end_object();
  other.send(wrong.str());
  refused = other.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "bad_token");
  auto turn = read_turn(owner, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "stop");
  EXPECT_EQ(first->text + turn.text, expected_text("请不要取消"));

  // With the token, any connection of the principal may stop it.
  owner.send(chat("again", "r2", session->session_id));
  ASSERT_TRUE(owner.read_until("delta", session->session_id));
  JsonWriter right;
  right.begin_object().field("type", "cancel").field("session_id", session->session_id)
      .field("resume_token", session->resume_token).end_object();
  other.send(right.str());
  turn = read_turn(owner, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "cancelled");
}

// ---- 5. refused HTTP turns leave no session ----

TEST(Adversarial, RefusedHttpTurnsCreateNoSessions) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LIMITS_MAX_CONNECTIONS=1",
                                          "SLUICE_LIMITS_PRINCIPAL_TURNS_PER_MINUTE=2"});
  const std::string body = R"({"messages":[{"role":"user","content":"满了吗"}],"stream":true})";
  {
    WsClient holder(gw->port());  // takes the only connection
    holder.send(R"({"type":"ping"})");
    ASSERT_TRUE(holder.read_until("pong"));
    const double before = metric(gw->port(), "sluice_sessions");
    for (int i = 0; i < 300; ++i) {
      EXPECT_EQ(http_post(gw->port(), "/v1/chat/completions", body).status, 503);
    }
    EXPECT_EQ(metric(gw->port(), "sluice_sessions"), before);
  }
  // The per-principal turn rate: the third turn of the minute is 429.
  for (int i = 0; i < 2; ++i) {
    HttpReply ok;
    for (int tries = 0; tries < 500; ++tries) {  // until the WebSocket's place is given back
      ok = http_post(gw->port(), "/v1/chat/completions",
                     R"({"messages":[{"role":"user","content":"quick"}],"max_tokens":1})");
      if (ok.status != 503) break;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(ok.status, 200) << ok.body;
  }
  const double before = metric(gw->port(), "sluice_sessions");
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(http_post(gw->port(), "/v1/chat/completions", body).status, 429);
  }
  EXPECT_EQ(metric(gw->port(), "sluice_sessions"), before);
}

// ---- 6. expired sessions cannot be probed ----

TEST(Adversarial, ExpiredSessionIsUnknownToAnotherPrincipal) {
  auto sim = start_sim();
  auto env = auth_env();
  env.push_back("SLUICE_RESUME_RETENTION_MS=200");
  auto gw = start_gateway(sim_url(*sim), env);
  std::string id, token;
  {
    WsClient alice(gw->port(), "/v1/ws?token=" + kAliceKey);
    alice.send(chat("soon gone"));
    auto s = alice.read_until("session");
    ASSERT_TRUE(s);
    id = s->session_id;
    token = s->resume_token;
    ASSERT_TRUE(read_turn(alice, id).done);
  }
  // Alice learns that her session expired...
  // (A resume that succeeds starts the retention over: wait past it.)
  std::string reason;
  for (int i = 0; i < 20 && reason != "expired"; ++i) {
    std::this_thread::sleep_for(350ms);
    WsClient alice(gw->port(), "/v1/ws?token=" + kAliceKey);
    alice.send(resume(id, 0, token));
    for (auto f = alice.read(5s); f; f = alice.read(5s)) {
      if (f->type == "resumed") break;
      if (f->type == "resume_failed") {
        reason = f->reason;
        break;
      }
    }
  }
  ASSERT_EQ(reason, "expired");
  // ...Bob cannot tell it from an id that never existed, on either face.
  WsClient bob(gw->port(), "/v1/ws?token=" + kBobKey);
  bob.send(resume(id, 0, token));
  auto f = bob.read_until("resume_failed");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, "unknown_session");
  const std::string path = "/v1/sessions/" + id + "/stream?resume_token=" + token;
  EXPECT_EQ(http_get_with(gw->port(), path, {{"Authorization", "Bearer " + kBobKey}}).status, 404);
  EXPECT_EQ(http_get_with(gw->port(), path, {{"Authorization", "Bearer " + kAliceKey}}).status, 410);
}

// ---- 7. client errors never name the upstream ----

TEST(Adversarial, UpstreamAddressStaysInTheLog) {
  const uint16_t port = unused_port();
  auto gw = start_gateway("http://127.0.0.1:" + std::to_string(port) + "/v1",
                          {"SLUICE_OPENAI_MAX_ATTEMPTS=1"});
  WsClient c(gw->port());
  c.send(chat("anyone there?"));
  auto s = c.read_until("session");
  ASSERT_TRUE(s);
  const auto turn = read_turn(c, s->session_id);
  ASSERT_TRUE(turn.error);
  EXPECT_EQ(turn.error->code, "upstream_unavailable");
  EXPECT_EQ(turn.error->raw.find("127.0.0.1"), std::string::npos) << turn.error->raw;
  EXPECT_EQ(turn.error->raw.find(std::to_string(port)), std::string::npos) << turn.error->raw;
  const auto http = http_post(gw->port(), "/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(http.body.find("127.0.0.1"), std::string::npos) << http.body;
  EXPECT_TRUE(gw->wait_for_stderr("port " + std::to_string(port)));  // operators still see it
}

// ---- smaller: the HTTP face and hello ----

TEST(Adversarial, HttpRefusesOversizedBodiesAndUnknownTransferCodings) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  {
    RawConnection c(gw->port());
    c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 2000000\r\n\r\n");
    const auto r = c.read_all();
    EXPECT_EQ(status_line(r), "HTTP/1.1 413 Payload Too Large") << r;
  }
  // Only "chunked" is decoded; with a Content-Length beside an unknown
  // coding, a proxy and the gateway could disagree on where the body ends.
  for (const std::string te : {"xchunked", "gzip, chunked, identity"}) {
    RawConnection c(gw->port());
    c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
           "\r\nContent-Length: 2\r\n\r\n{}");
    const auto r = c.read_all();
    EXPECT_EQ(status_line(r), "HTTP/1.1 501 Not Implemented") << te << ": " << r;
  }
  for (const std::string second : {"Content-Length: 2", "Transfer-Encoding: identity"}) {
    RawConnection c(gw->port());
    c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + second +
           "\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    EXPECT_EQ(status_line(c.read_all()), "HTTP/1.1 400 Bad Request") << second;
  }
  const auto yes = http_post(gw->port(), "/v1/chat/completions",
                             R"({"messages":[{"role":"user","content":"hi"}],"stream":"yes"})");
  EXPECT_EQ(yes.status, 400);
  EXPECT_NE(yes.body.find("invalid_request_error"), std::string::npos) << yes.body;
  EXPECT_NE(yes.body.find("stream must be true or false"), std::string::npos) << yes.body;
}

TEST(Adversarial, UnauthorizedBeforeHelloEchoesTheRequestId) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), auth_env());
  WsClient c(gw->port());
  c.send(chat("no hello yet", "r-before"));
  auto err = c.read_until("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "unauthorized");
  EXPECT_EQ(err->request_id, "r-before");
}

}  // namespace
}  // namespace sluice::test
