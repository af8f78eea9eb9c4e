// Helpers for integration tests: start the simulator and the real gateway
// binary, speak protocol v1 to it, read the simulator's records.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <simdjson.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gateway/common/json_writer.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_client.hpp"

namespace sluice::test {

// Text with Chinese and emoji; {prompt} is replaced by the simulator.
inline const std::string kSimText =
    "Answer for {prompt}: 你好，世界！Streaming works 🚀 — 第二句话，带标点。Done ✅";

inline std::string expected_text(const std::string& prompt) {
  std::string t = kSimText;
  t.replace(t.find("{prompt}"), 8, prompt);
  return t;
}

inline std::unique_ptr<Process> start_sim(std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {SLUICE_SIM_BIN, "--listen", "127.0.0.1:0", "--text", kSimText};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<Process>(argv);
}

inline std::string sim_url(const Process& sim) {
  return "http://127.0.0.1:" + std::to_string(sim.port()) + "/v1";
}

inline std::unique_ptr<Process> start_gateway(const std::string& upstreams,
                                              std::vector<std::string> env = {},
                                              std::vector<std::string> args = {}) {
  std::vector<std::string> argv = {SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0", "--upstream",
                                   upstreams};
  argv.insert(argv.end(), args.begin(), args.end());
  const bool level_set = std::any_of(env.begin(), env.end(),
                                    [](const std::string& e) { return e.rfind("SLUICE_LOG_LEVEL=", 0) == 0; });
  if (!level_set) env.push_back("SLUICE_LOG_LEVEL=debug");
  return std::make_unique<Process>(argv, env);
}

inline std::string chat(const std::string& input, const std::string& request_id = "",
                        const std::string& session_id = "") {
  JsonWriter w;
  w.begin_object().field("type", "chat").field("input", input);
  if (!request_id.empty()) w.field("request_id", request_id);
  if (!session_id.empty()) w.field("session_id", session_id);
  return w.end_object().take();
}

// `resume_token` is needed for a session not attached to the connection.
inline std::string cancel(const std::string& session_id, const std::string& resume_token = "") {
  JsonWriter w;
  w.begin_object().field("type", "cancel").field("session_id", session_id);
  if (!resume_token.empty()) w.field("resume_token", resume_token);
  return w.end_object().take();
}

inline std::string resume(const std::string& session_id, uint64_t offset, const std::string& token,
                          const std::string& request_id = "") {
  JsonWriter w;
  w.begin_object()
      .field("type", "resume")
      .field("session_id", session_id)
      .field("offset", offset)
      .field("resume_token", token);
  if (!request_id.empty()) w.field("request_id", request_id);
  return w.end_object().take();
}

// A session started with `chat` on `c`: its id and resume token.
struct Started {
  std::string session_id;
  std::string token;
};

inline Started start_chat(WsClient& c, const std::string& input) {
  c.send(chat(input, "start"));
  auto s = c.read_until("session");
  EXPECT_TRUE(s);
  return s ? Started{s->session_id, s->resume_token} : Started{};
}

// A config file for one test, removed at the end.
struct TempConfig {
  std::string path;
  explicit TempConfig(const std::string& toml) {
    char tmpl[] = "/tmp/sluice-config-XXXXXX";
    const int fd = mkstemp(tmpl);
    close(fd);
    path = tmpl;
    std::ofstream(path) << toml;
  }
  ~TempConfig() { unlink(path.c_str()); }
};

struct Turn {
  std::string text;
  std::vector<uint64_t> offsets;  // of every frame with one, in order
  std::optional<Frame> error;
  std::optional<Frame> done;
};

// Reads one session's frames until its `done` (frames of other sessions are
// left to `others` when given, otherwise dropped).
inline Turn read_turn(WsClient& c, const std::string& session_id,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  Turn t;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = c.read(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!f) break;
    if (f->session_id != session_id) continue;
    if (f->offset) t.offsets.push_back(f->offset);
    if (f->type == "delta") t.text += f->text;
    if (f->type == "error") t.error = f;
    if (f->type == "done") {
      t.done = f;
      break;
    }
  }
  return t;
}

// One turn with tool events: deltas (text and count), tool_call,
// tool_result and sources frames, and the done frame.
struct ToolTurn {
  std::string text;
  int deltas = 0;
  std::vector<Frame> calls, results, sources, moderation;
  std::optional<Frame> done;
};

// `frame_timeout` bounds the wait for each frame (not the whole turn).
inline ToolTurn read_tool_turn(WsClient& c, const std::string& session_id,
                               std::chrono::milliseconds frame_timeout = std::chrono::seconds(20)) {
  ToolTurn t;
  for (auto f = c.read(frame_timeout); f; f = c.read(frame_timeout)) {
    if (getenv("SLUICE_TEST_TRACE")) fprintf(stderr, "frame %s\n", f->raw.c_str());
    if (f->session_id != session_id) continue;
    if (f->type == "delta") {
      t.text += f->text;
      ++t.deltas;
    }
    if (f->type == "tool_call") t.calls.push_back(*f);
    if (f->type == "tool_result") t.results.push_back(*f);
    if (f->type == "sources") t.sources.push_back(*f);
    if (f->type == "moderation") t.moderation.push_back(*f);
    if (f->type == "done") {
      t.done = f;
      break;
    }
  }
  return t;
}

// The demo orders database, made by the repo's script.
struct OrdersDb {
  std::string path = "/tmp/sluice-orders-" + std::to_string(getpid()) + ".sqlite";
  OrdersDb() {
    const std::string cmd = std::string("python3 ") + SLUICE_MAKE_ORDERS + " " + path + " >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
  ~OrdersDb() { unlink(path.c_str()); }
  std::string status_of(const std::string& id) const {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT status FROM orders WHERE id = ?1", -1, &st, nullptr);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    std::string status;
    if (sqlite3_step(st) == SQLITE_ROW) status = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
  }
};

// The value of one series in the gateway's /metrics, as exposed
// (`name{label="v"}`); -1 when absent.
inline double metric(uint16_t port, const std::string& series) {
  const auto text = http_get(port, "/metrics").body;
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

struct SimStats {
  int64_t connections = 0, requests = 0, completed = 0, aborted = 0, active = 0, continued = 0;
  std::string last_body;
  std::string last_authorization;
  std::string last_traceparent;
};

inline SimStats sim_stats(const Process& sim, const std::string& query = "") {
  const auto reply = http_get(sim.port(), "/sim/stats" + query);
  SimStats s;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(reply.body).get(doc) != simdjson::SUCCESS) return s;
  auto num = [&](const char* key, int64_t& out) {
    if (doc[key].get(out) != simdjson::SUCCESS) out = -1;
  };
  num("connections", s.connections);
  num("requests", s.requests);
  num("completed", s.completed);
  num("aborted", s.aborted);
  num("active", s.active);
  num("continued", s.continued);
  std::string_view auth;
  if (doc["last_authorization"].get(auth) == simdjson::SUCCESS) s.last_authorization = auth;
  if (doc["last_traceparent"].get(auth) == simdjson::SUCCESS) s.last_traceparent = auth;
  simdjson::dom::element body;
  if (doc["last_body"].get(body) == simdjson::SUCCESS) s.last_body = simdjson::minify(body);
  return s;
}

}  // namespace sluice::test
