// Metrics: the exposition passes promtool, the shipped dashboard and alerts
// name only metrics the gateway exports, and a real Prometheus server that
// scrapes a running gateway sees exactly the tokens and turns streamed.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A program on PATH, or "".
std::string which(const std::string& name) {
  std::stringstream path(getenv("PATH") ? getenv("PATH") : "");
  for (std::string dir; std::getline(path, dir, ':');) {
    const fs::path p = fs::path(dir) / name;
    if (!dir.empty() && access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Streams one WebSocket turn; its completion tokens.
int64_t stream_turn(uint16_t port, const std::string& input) {
  WsClient c(port);
  c.send(chat(input));
  auto session = c.read_until("session");
  EXPECT_TRUE(session);
  if (!session) return 0;
  const Turn t = read_turn(c, session->session_id);
  EXPECT_TRUE(t.done);
  return t.done ? t.done->completion_tokens : 0;
}

// Families the exposition declares ("# TYPE name type").
std::map<std::string, std::string> declared(const std::string& exposition) {
  std::map<std::string, std::string> out;
  std::istringstream in(exposition);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    const auto sp = line.find(' ', 7);
    out[line.substr(7, sp - 7)] = line.substr(sp + 1);
  }
  return out;
}

// The sluice_* names `text` (PromQL) uses that the gateway does not export.
std::vector<std::string> unknown_names(const std::string& text, const std::map<std::string, std::string>& families) {
  std::vector<std::string> unknown;
  const std::regex name("sluice_[a-z0-9_]+");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it) {
    std::string n = it->str();
    if (families.count(n)) continue;
    bool ok = false;
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const auto base = families.find(n.substr(0, n.size() - suffix.size()));
        ok = ok || (base != families.end() && base->second == "histogram");
      }
    }
    if (!ok) unknown.push_back(n);
  }
  return unknown;
}

TEST(Metrics, ExpositionPassesPromtoolAndDashboardsNameOnlyExportedMetrics) {
  const std::string promtool = which("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  EXPECT_GT(stream_turn(gw->port(), "指标 metrics ✅"), 0);
  const auto scrape = http_get(gw->port(), "/metrics");
  ASSERT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.body.find("sluice_turns_total{engine=\"openai\",finish_reason=\"stop\"} 1"), std::string::npos)
      << scrape.body;
  EXPECT_NE(scrape.body.find("sluice_build_info{version="), std::string::npos);
  // No session id ever becomes a label value.
  EXPECT_FALSE(std::regex_search(scrape.body, std::regex("\"s_[A-Za-z0-9_-]{20,}\""))) << scrape.body;

  const std::string file = "/tmp/sluice-metrics-" + std::to_string(getpid()) + ".txt";
  std::ofstream(file) << scrape.body;
  Process check({"/bin/sh", "-c", promtool + " check metrics < " + file}, {}, false);
  EXPECT_EQ(check.wait(20s), 0) << check.stdout_text() << check.stderr_text();
  unlink(file.c_str());

  const auto families = declared(scrape.body);
  for (const char* must : {"sluice_connections", "sluice_sessions", "sluice_turns_active", "sluice_turns_total",
                           "sluice_tokens_streamed_total", "sluice_time_to_first_token_seconds",
                           "sluice_inter_token_latency_seconds", "sluice_turn_duration_seconds",
                           "sluice_upstream_requests_total", "sluice_upstream_errors_total",
                           "sluice_resumes_total", "sluice_replayed_events_total",
                           "sluice_slow_consumer_closes_total", "sluice_send_queue_bytes",
                           "sluice_plugin_call_duration_seconds", "sluice_tool_calls_total",
                           "sluice_moderation_actions_total", "sluice_build_info"}) {
    EXPECT_TRUE(families.count(must)) << must;
  }
  // The dashboard's queries and the alert rules name only exported metrics.
  simdjson::dom::parser parser;
  simdjson::dom::element dash;
  ASSERT_EQ(parser.load(std::string(SLUICE_DEPLOY_DIR) + "/grafana/sluice.json").get(dash), simdjson::SUCCESS);
  size_t queries = 0;
  for (auto panel : dash["panels"].get_array()) {
    for (auto target : panel["targets"].get_array()) {
      const std::string expr(target["expr"].get_string().value());
      ++queries;
      EXPECT_EQ(unknown_names(expr, families), std::vector<std::string>{}) << expr;
    }
  }
  EXPECT_GE(queries, 12u);
  const std::string alerts = read_file(std::string(SLUICE_DEPLOY_DIR) + "/prometheus/alerts.yml");
  EXPECT_EQ(unknown_names(alerts, families), std::vector<std::string>{});
}

double prometheus_value(uint16_t port, const std::string& query) {
  const auto r = http_get(port, "/api/v1/query?query=" + query);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (r.status != 200 || parser.parse(r.body).get(doc) != simdjson::SUCCESS) return -1;
  simdjson::dom::array result;
  if (doc["data"]["result"].get(result) != simdjson::SUCCESS || result.size() == 0) return -1;
  std::string_view v;
  if (result.at(0)["value"].at(1).get(v) != simdjson::SUCCESS) return -1;
  return std::stod(std::string(v));
}

TEST(Metrics, ARealPrometheusScrapesExactlyWhatWasStreamed) {
  const std::string prometheus = which("prometheus");
  if (prometheus.empty()) GTEST_SKIP() << "prometheus not installed (Debian package prometheus)";
  auto sim = start_sim();
  const uint16_t metrics_port = unused_port();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_METRICS_LISTEN=127.0.0.1:" + std::to_string(metrics_port)});
  // Served on metrics.listen, not on the clients' address.
  EXPECT_EQ(http_get(gw->port(), "/metrics").status, 404);
  EXPECT_EQ(http_get(metrics_port, "/metrics").status, 200);
  EXPECT_EQ(http_get(metrics_port, "/v1/ws").status, 404);

  const fs::path dir = fs::temp_directory_path() / ("sluice-prom-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "prometheus.yml") << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n"
                                        << "    static_configs:\n      - targets: ['127.0.0.1:" << metrics_port
                                        << "']\n";
  const uint16_t prom_port = unused_port();
  Process prom({prometheus, "--config.file=" + (dir / "prometheus.yml").string(),
                "--storage.tsdb.path=" + (dir / "data").string(),
                "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
               {}, false);

  int64_t tokens = 0;
  for (const std::string q : {"第一个问题", "second question 🚀", "third"}) tokens += stream_turn(gw->port(), q);
  // One more over the OpenAI-compatible face.
  const auto sse = http_post(gw->port(), "/v1/chat/completions",
                             R"({"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"四"}]})");
  ASSERT_EQ(sse.status, 200);
  const auto at = sse.body.find("\"completion_tokens\":");
  ASSERT_NE(at, std::string::npos) << sse.body;
  tokens += std::stoll(sse.body.substr(at + 20));
  ASSERT_GT(tokens, 0);

  // Prometheus scrapes every second; wait until it has the final values.
  double seen_tokens = -1, seen_turns = -1;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      seen_tokens = prometheus_value(prom_port, "sum(sluice_tokens_streamed_total)");
      seen_turns = prometheus_value(prom_port, "sum(sluice_turns_total)");
    } catch (const std::exception&) {
      // Prometheus is still starting.
    }
    if (seen_tokens == static_cast<double>(tokens) && seen_turns == 4) break;
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(seen_tokens, static_cast<double>(tokens)) << prom.stderr_text().substr(0, 2000);
  EXPECT_EQ(seen_turns, 4);
  EXPECT_EQ(prometheus_value(prom_port, "sum(sluice_turns_active)"), 0);
  prom.signal(SIGTERM);
  prom.wait(10s);
  fs::remove_all(dir);
}

// The access log's lines (stdout), parsed.
std::vector<std::string> log_lines(const Process& gw) {
  std::vector<std::string> lines;
  std::istringstream out(gw.stdout_text());
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  return lines;
}

std::string field(const std::string& json, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view v;
  if (parser.parse(json).get(doc) != simdjson::SUCCESS || doc[key].get(v) != simdjson::SUCCESS) return {};
  return std::string(v);
}

TEST(Tracing, AClientsTraceparentFollowsTheTurnUpstreamAndIntoTheLog) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim));
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string client = "00-" + trace + "-00f067aa0ba902b7-01";

  // WebSocket: the chat's traceparent field.
  WsClient c(gw->port());
  c.send(R"({"type":"chat","input":"追踪 trace","traceparent":")" + client + R"("})");
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  ASSERT_TRUE(read_turn(c, session->session_id).done);
  std::string upstream = sim_stats(*sim).last_traceparent;
  EXPECT_EQ(upstream.substr(0, 36), "00-" + trace + "-");
  EXPECT_NE(upstream, client);  // the gateway's own span, under the client's trace
  EXPECT_EQ(upstream.size(), 55u);
  EXPECT_EQ(upstream.substr(52), "-01");

  // HTTP: the traceparent header.
  const std::string trace2 = "0af7651916cd43dd8448eb211c80319c";
  const auto r = http_post(gw->port(), "/v1/chat/completions",
                           R"({"stream":false,"messages":[{"role":"user","content":"hi"}]})",
                           {{"traceparent", "00-" + trace2 + "-b7ad6b7169203331-00"}});
  ASSERT_EQ(r.status, 200);
  upstream = sim_stats(*sim).last_traceparent;
  EXPECT_EQ(upstream.substr(0, 36), "00-" + trace2 + "-");
  EXPECT_EQ(upstream.substr(52), "-00");

  // An invalid one starts a new trace, which is still sent upstream.
  c.send(R"({"type":"chat","input":"bad trace","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"})");
  auto third = c.read_until("session");
  ASSERT_TRUE(third);
  ASSERT_TRUE(read_turn(c, third->session_id).done);
  upstream = sim_stats(*sim).last_traceparent;
  ASSERT_EQ(upstream.size(), 55u);
  const std::string fresh = upstream.substr(3, 32);
  EXPECT_NE(fresh, std::string(32, '0'));

  c.close();
  gw->signal(SIGTERM);
  ASSERT_TRUE(gw->wait(10s));
  const auto lines = log_lines(*gw);
  ASSERT_EQ(lines.size(), 3u) << gw->stdout_text();
  EXPECT_EQ(field(lines[0], "trace_id"), trace);
  EXPECT_EQ(field(lines[0], "principal"), "anonymous");
  EXPECT_EQ(field(lines[1], "trace_id"), trace2);
  EXPECT_EQ(field(lines[2], "trace_id"), fresh);
}

TEST(Logs, JsonFormatWritesOneObjectPerLineAndNoUserTextAboveDebug) {
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), {"SLUICE_LOG_FORMAT=json", "SLUICE_LOG_LEVEL=info"});
  const std::string secret = "my password is hunter2 密码";
  EXPECT_GT(stream_turn(gw->port(), secret), 0);
  WsClient bad(gw->port());
  bad.send("{not json " + secret);
  EXPECT_TRUE(bad.read_until("error"));
  bad.close();
  gw->signal(SIGTERM);
  ASSERT_TRUE(gw->wait(10s));
  std::istringstream err(gw->stderr_text());
  size_t n = 0;
  for (std::string line; std::getline(err, line);) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    EXPECT_TRUE(doc["level"].is_string() && doc["msg"].is_string() && doc["ts"].is_string()) << line;
    ++n;
  }
  EXPECT_GE(n, 2u);
  EXPECT_EQ(gw->stderr_text().find("hunter2"), std::string::npos) << gw->stderr_text();
  EXPECT_EQ(gw->stdout_text().find("hunter2"), std::string::npos) << gw->stdout_text();
}

}  // namespace
}  // namespace sluice::test
