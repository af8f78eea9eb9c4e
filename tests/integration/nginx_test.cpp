// The shipped nginx site (deploy/nginx/sluice.conf, only its port changed), run by a real
// nginx in front of two gateway instances on one real redis-server, round
// robin with no stickiness: clients that drop at random points and
// reconnect land on either instance and read every answer byte for byte,
// over WebSocket and over SSE (Last-Event-ID); tokens are not held back by
// the proxy; the access log names the client, not the proxy.
#include <simdjson.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"
#include "tests/support/raw_connection.hpp"
#include "tests/support/redis_server.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

bool nginx_installed() { return access("/usr/sbin/nginx", X_OK) == 0; }

// nginx on the shipped site file, its addresses rewritten to this test's.
class NginxProxy {
 public:
  NginxProxy(const std::vector<uint16_t>& gateways) {
    char tmpl[] = "/tmp/sluice-nginx-XXXXXX";
    dir_ = mkdtemp(tmpl);
    port_ = unused_port();
    std::ifstream in(std::string(SLUICE_DEPLOY_DIR) + "/nginx/sluice.conf");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string site = ss.str();
    // The instances as deploy/nginx/upstream.conf lists them, with this test's ports.
    std::string upstream = "upstream sluice {\n";
    for (uint16_t p : gateways) upstream += "    server 127.0.0.1:" + std::to_string(p) + " max_fails=0;\n";
    std::ofstream(dir_ + "/upstream.conf") << upstream << "    keepalive 64;\n}\n";
    site = std::regex_replace(site, std::regex(R"(listen 8080;)"), "listen 127.0.0.1:" + std::to_string(port_) + ";");
    std::ofstream(dir_ + "/sluice.conf") << site;
    std::ofstream conf(dir_ + "/nginx.conf");
    if (geteuid() == 0) conf << "user root;\n";
    conf << "pid " << dir_ << "/nginx.pid;\nerror_log " << dir_ << "/error.log info;\nworker_processes 1;\n"
         << "events { worker_connections 4096; }\nhttp {\n"
         << "  log_format fwd '$remote_addr \"$http_x_forwarded_for\" $request $status';\n"
         << "  access_log " << dir_ << "/access.log fwd;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      conf << "  " << t << "_temp_path " << dir_ << "/" << t << ";\n";
    }
    conf << "  include " << dir_ << "/upstream.conf;\n  include " << dir_ << "/sluice.conf;\n}\n";
    conf.close();
    process_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", dir_, "-c", dir_ + "/nginx.conf", "-g", "daemon off;"},
        std::vector<std::string>{}, false);
    for (int i = 0; i < 200 && !up(); ++i) std::this_thread::sleep_for(25ms);
    if (!up()) ADD_FAILURE() << "nginx did not come up: " << process_->stderr_text() << error_log();
  }
  bool up() const {
    try {
      return http_get(port_, "/healthz").status == 200;
    } catch (const std::exception&) {
      return false;
    }
  }
  ~NginxProxy() {
    // SIGTERM: the master stops its workers too (a SIGKILL would leave them running).
    process_->signal(SIGTERM);
    process_->wait(5s);
    process_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  uint16_t port() const { return port_; }
  std::string error_log() const {
    std::ifstream in(dir_ + "/error.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> process_;
};

struct Fleet {
  RedisServer redis;
  std::unique_ptr<Process> sim;
  std::unique_ptr<Process> a, b;
  std::unique_ptr<NginxProxy> nginx;
  explicit Fleet(std::vector<std::string> sim_args) {
    sim = start_sim(std::move(sim_args));
    const std::vector<std::string> env{"SLUICE_STORE_BACKEND=redis", "SLUICE_STORE_REDIS_URL=" + redis.url(),
                                       "SLUICE_SERVER_TRUST_X_FORWARDED_FOR=true", "SLUICE_LOG_LEVEL=info"};
    a = start_gateway(sim_url(*sim), env);
    b = start_gateway(sim_url(*sim), env);
    nginx = std::make_unique<NginxProxy>(std::vector<uint16_t>{a->port(), b->port()});
  }
};

#define SKIP_WITHOUT_FLEET()                                                                 \
  if (!RedisServer::installed() || !nginx_installed())                                    \
  GTEST_SKIP() << "needs redis-server and nginx (apt-get install redis-server nginx)"

// Random drops during answers through nginx, over WebSocket: each
// reconnect lands on whichever instance nginx picks.
TEST(Nginx, WebSocketClientsThatDropAtRandomReadEveryAnswerWhole) {
  SKIP_WITHOUT_FLEET();
  Fleet fleet({"--rate", "400"});
  const int sessions = 10, drops_per_session = 100;
  std::mt19937 rng(20261202);
  int drops = 0;
  std::set<std::string> served_by;  // the instances that answered resumes
  for (int s = 0; s < sessions; ++s) {
    const std::string prompt = "会话 " + std::to_string(s) + " 🔁 [[sim repeat=24]]";
    std::string text;
    uint64_t last = 0;
    std::string sid, token;
    bool done = false;
    {
      WsClient c(fleet.nginx->port());
      c.send(chat(prompt, "start"));
      auto started = c.read_until("session");
      ASSERT_TRUE(started) << fleet.nginx->error_log();
      sid = started->session_id;
      token = started->resume_token;
    }
    for (int d = 0; !done; ++d) {
      WsClient c(fleet.nginx->port());
      c.send(resume(sid, last, token, "r"));
      std::optional<Frame> resumed;
      std::string seen;
      for (auto f = c.read(10s); f; f = c.read(10s)) {
        if (f->type == "resumed") {
          resumed = f;
          break;
        }
        seen += f->raw + "\n";
      }
      ASSERT_TRUE(resumed) << "resume " << d << " of session " << s << " failed; frames instead:\n" << seen
                           << "\ninstance A:\n" << fleet.a->stderr_text() << "\ninstance B:\n" << fleet.b->stderr_text();
      ASSERT_EQ(resumed->from_offset, last + 1);
      const int keep = d < drops_per_session ? std::uniform_int_distribution<int>(0, 4)(rng) : 1 << 30;
      for (int k = 0; k < keep; ++k) {
        auto f = c.read(10s);
        ASSERT_TRUE(f) << "session " << s << ": nothing after offset " << last;
        if (f->session_id != sid || !f->offset) continue;
        ASSERT_EQ(f->offset, last + 1) << "offsets must be gap-free and never repeat";
        last = f->offset;
        if (f->type == "delta") text += f->text;
        if (f->type == "done") {
          done = true;
          break;
        }
      }
      if (!done) {
        c.drop();
        ++drops;
      }
    }
    EXPECT_EQ(text, [&] {
      std::string one = expected_text(prompt.substr(0, prompt.find(" [[sim")));
      std::string all;
      for (int r = 0; r < 24; ++r) all += one;
      return all;
    }()) << "session " << s;
  }
  EXPECT_GE(drops, sessions * drops_per_session);
  std::printf("websocket: %d random drops through nginx, every answer whole\n", drops);
}

// Starts a streamed chat over the OpenAI face; the response is left to read.
void post_chat(RawConnection& c, const std::string& content, const char* version = "HTTP/1.1") {
  const std::string body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":")" + content + R"("}]})";
  c.send(std::string("POST /v1/chat/completions ") + version +
         "\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body);
}

struct SseEvent {
  uint64_t offset = 0;
  std::string content;
  bool done = false;
};

// Reads events of an SSE response until `max` (0: all) or its end; the raw
// bytes as they came, so that nothing a proxy might hold back goes unseen.
std::vector<SseEvent> read_sse(RawConnection& c, size_t max, bool& ended) {
  std::vector<SseEvent> out;
  std::string buf;
  ended = false;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  size_t pos = 0;
  while (std::chrono::steady_clock::now() < deadline && (max == 0 || out.size() < max)) {
    std::string more = c.read_some(50ms);
    if (getenv("SLUICE_TEST_TRACE") && !more.empty()) fprintf(stderr, "sse bytes: %s\n", more.substr(0, 300).c_str());
    if (more.empty() && c.peer_closed(0ms)) break;
    buf += more;
    for (size_t end; (end = buf.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
      const std::string event = buf.substr(pos, end - pos);
      if (event.find("data: [DONE]") != std::string::npos) {
        ended = true;
        return out;
      }
      const auto id = event.find("id: ");
      const auto data = event.find("data: ");
      if (id == std::string::npos || data == std::string::npos) continue;
      SseEvent e;
      const std::string idv = event.substr(id + 4, event.find('\n', id) - id - 4);
      e.offset = std::stoull(idv.substr(idv.rfind(':') + 1));
      simdjson::dom::parser p;
      simdjson::dom::element doc;
      const std::string json = event.substr(data + 6, event.find('\n', data) - data - 6);
      if (p.parse(json).get(doc) != simdjson::SUCCESS) continue;
      std::string_view content;
      if (doc["choices"].at(0)["delta"]["content"].get(content) == simdjson::SUCCESS) e.content = content;
      std::string_view finish;
      e.done = doc["choices"].at(0)["finish_reason"].get(finish) == simdjson::SUCCESS;
      out.push_back(std::move(e));
      if (max && out.size() >= max) return out;
    }
  }
  return out;
}

TEST(Nginx, SseClientsThatDropAtRandomResumeWithLastEventId) {
  SKIP_WITHOUT_FLEET();
  Fleet fleet({"--rate", "400"});
  const int sessions = 10, drops_per_session = 100;
  std::mt19937 rng(7);
  int drops = 0;
  for (int s = 0; s < sessions; ++s) {
    const std::string prompt = "流 " + std::to_string(s) + " 📡";
    // The turn starts over the OpenAI face; its headers name the session.
    RawConnection start(fleet.nginx->port());
    post_chat(start, prompt + " [[sim repeat=24]]");
    std::string head = start.read_some(5s, "\r\n\r\n");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(head, m, std::regex("X-Sluice-Session-Id: (\\S+)"))) << head;
    const std::string sid = m[1];
    ASSERT_TRUE(std::regex_search(head, m, std::regex("X-Sluice-Resume-Token: (\\S+)"))) << head;
    const std::string token = m[1];
    std::string text;
    uint64_t last = 0;
    bool finished = false;
    for (int d = 0; !finished; ++d) {
      RawConnection c(fleet.nginx->port());
      // HTTP/1.0: nginx sends the stream as it is, to the close (no chunked framing to undo here).
      c.send("GET /v1/sessions/" + sid + "/stream?resume_token=" + token + " HTTP/1.0\r\nHost: x\r\nLast-Event-ID: " +
             sid + ":" + std::to_string(last) + "\r\n\r\n");
      const size_t keep = d < drops_per_session ? std::uniform_int_distribution<size_t>(1, 5)(rng) : 0;
      bool ended = false;
      const auto events = read_sse(c, keep, ended);
      if (getenv("SLUICE_TEST_TRACE")) fprintf(stderr, "reconnect %d: %zu events, ended %d\n", d, events.size(), ended);
      for (const auto& e : events) {
        ASSERT_EQ(e.offset, last + 1) << "session " << s << ", reconnect " << d;
        last = e.offset;
        text += e.content;
        finished = finished || e.done;
      }
      if (ended) finished = true;
      if (!finished) ++drops;  // the connection goes here, mid-stream
    }
    std::string want;
    for (int r = 0; r < 24; ++r) want += expected_text(prompt);
    EXPECT_EQ(text, want) << "session " << s;
  }
  EXPECT_GE(drops, sessions * drops_per_session);
  std::printf("sse: %d random drops through nginx, every answer whole\n", drops);
}

// nginx must pass each token on as it comes: with the upstream at 5 tokens
// per second, the first delta arrives long before the answer is over.
TEST(Nginx, TokensAreNotHeldBackAndTheAccessLogNamesTheClient) {
  SKIP_WITHOUT_FLEET();
  Fleet fleet({"--rate", "5"});
  RawConnection c(fleet.nginx->port());
  const auto sent = std::chrono::steady_clock::now();
  post_chat(c, "缓冲 buffering", "HTTP/1.0");  // HTTP/1.0: the stream as it is, to the close
  const std::string first = c.read_some(10s, "\"content\"");
  const auto first_at = std::chrono::steady_clock::now() - sent;
  ASSERT_NE(first.find("\"content\""), std::string::npos) << first;
  EXPECT_LT(first_at, 1500ms) << "the first token was held back";
  bool ended = false;
  const auto rest = read_sse(c, 0, ended);
  EXPECT_TRUE(ended);
  const auto total = std::chrono::steady_clock::now() - sent;
  EXPECT_GT(total - first_at, 1s) << "the stream should have taken a while after its first token";
  // Each gateway's access log line names the client nginx saw (127.0.0.1
  // here) from X-Forwarded-For, on whichever instance served it.
  std::this_thread::sleep_for(300ms);
  const std::string logs = fleet.a->stdout_text() + fleet.b->stdout_text();
  EXPECT_NE(logs.find("\"client\":\"127.0.0.1\""), std::string::npos) << logs;
}

}  // namespace
}  // namespace sluice::test
