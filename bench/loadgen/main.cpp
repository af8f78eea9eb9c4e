// sluice-loadgen: opens C WebSocket connections to the gateway with S chat
// sessions each, streams T turns per session and prints a table of
// delivered tokens/s, time to first token and, when the upstream simulator
// runs with --stamp, the latency the gateway adds to each token.
//
// --cancel-probe N measures how long the upstream takes to see a cancel
// (needs --sim, the simulator's base URL). --say TEXT streams one answer to
// the terminal, for trying the gateway by hand.
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "gateway/common/json_writer.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Target {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string path = "/v1/ws";
};

bool parse_ws_url(const std::string& url, Target& t) {
  const std::string prefix = "ws://";
  if (url.rfind(prefix, 0) != 0) return false;
  const auto rest = url.substr(prefix.size());
  const auto slash = rest.find('/');
  const auto hostport = rest.substr(0, slash);
  t.path = slash == std::string::npos ? "/v1/ws" : rest.substr(slash);
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return false;
  t.host = hostport.substr(0, colon);
  t.port = hostport.substr(colon + 1);
  return true;
}

struct Results {
  std::mutex mutex;
  std::vector<double> ttft_ms;
  std::vector<double> added_us;  // per token: receive time - simulator send time
  uint64_t tokens = 0;
  uint64_t bytes = 0;
  uint64_t turns_ok = 0;
  uint64_t turns_failed = 0;
  std::map<std::string, uint64_t> errors;
};

struct Frame {
  std::string type, session_id, request_id, text, code, finish_reason;
};

Frame parse(simdjson::dom::parser& parser, std::string_view json) {
  Frame f;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS) return f;
  auto str = [&](const char* key, std::string& out) {
    std::string_view v;
    if (doc[key].get(v) == simdjson::SUCCESS) out = v;
  };
  str("type", f.type);
  str("session_id", f.session_id);
  str("request_id", f.request_id);
  str("text", f.text);
  str("code", f.code);
  str("finish_reason", f.finish_reason);
  return f;
}

std::string chat_json(const std::string& input, const std::string& request_id,
                      const std::string& session_id) {
  sluice::JsonWriter w;
  w.begin_object().field("type", "chat").field("input", input).field("request_id", request_id);
  if (!session_id.empty()) w.field("session_id", session_id);
  return w.end_object().take();
}

awaitable<websocket::stream<beast::tcp_stream>> open_ws(const Target& t) {
  auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  auto results = co_await resolver.async_resolve(t.host, t.port, use_awaitable);
  websocket::stream<beast::tcp_stream> ws(ex);
  co_await beast::get_lowest_layer(ws).async_connect(results, use_awaitable);
  beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
  beast::get_lowest_layer(ws).expires_never();
  co_await ws.async_handshake(t.host + ":" + t.port, t.path, use_awaitable);
  co_return ws;
}

// One connection: S sessions, T turns each, all sessions in parallel.
awaitable<void> run_connection(Target t, int conn, int sessions, int turns, std::string input,
                               Results& results) {
  simdjson::dom::parser parser;
  std::vector<double> ttft, added;
  uint64_t tokens = 0, bytes = 0, ok = 0, failed = 0;
  std::map<std::string, uint64_t> errors;
  try {
    auto ws = co_await open_ws(t);
    ws.text(true);
    struct SessionState {
      std::string id;
      int turns_done = 0;
      int64_t sent_ns = 0;
      bool got_first = false;
    };
    std::vector<SessionState> state(static_cast<size_t>(sessions));
    std::map<std::string, size_t> index_of;
    for (int s = 0; s < sessions; ++s) {
      state[s].sent_ns = now_ns();
      co_await ws.async_write(net::buffer(chat_json(input, std::to_string(s), "")), use_awaitable);
    }
    int finished = 0;
    beast::flat_buffer buffer;
    while (finished < sessions) {
      co_await ws.async_read(buffer, use_awaitable);
      const int64_t recv_ns = now_ns();
      const auto data = buffer.cdata();
      Frame f = parse(parser, {static_cast<const char*>(data.data()), data.size()});
      buffer.consume(buffer.size());
      if (f.type == "session") {
        const size_t idx = std::stoul(f.request_id);
        state[idx].id = f.session_id;
        index_of[f.session_id] = idx;
        continue;
      }
      const auto it = index_of.find(f.session_id);
      if (it == index_of.end()) {
        if (f.type == "error") ++errors[f.code];
        continue;
      }
      auto& st = state[it->second];
      if (f.type == "delta") {
        if (!st.got_first) {
          st.got_first = true;
          ttft.push_back((recv_ns - st.sent_ns) / 1e6);
        }
        bytes += f.text.size();
        // Stamped tokens ("<ns>|" each) tell when the simulator sent them.
        size_t pos = 0;
        bool stamped = false;
        while (pos < f.text.size()) {
          const auto bar = f.text.find('|', pos);
          if (bar == std::string::npos) break;
          const std::string num = f.text.substr(pos, bar - pos);
          if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) break;
          added.push_back((recv_ns - std::stoll(num)) / 1e3);
          ++tokens;
          stamped = true;
          pos = bar + 1;
        }
        if (!stamped) ++tokens;
      } else if (f.type == "error") {
        ++errors[f.code];
      } else if (f.type == "done") {
        (f.finish_reason == "stop" || f.finish_reason == "length") ? ++ok : ++failed;
        if (++st.turns_done < turns) {
          st.got_first = false;
          st.sent_ns = now_ns();
          co_await ws.async_write(
              net::buffer(chat_json(input, std::to_string(it->second), st.id)), use_awaitable);
        } else {
          ++finished;
        }
      }
    }
    co_await ws.async_close(websocket::close_code::normal, net::as_tuple(use_awaitable));
  } catch (const std::exception& e) {
    ++errors[std::string("connection: ") + e.what()];
  }
  std::lock_guard lock(results.mutex);
  results.ttft_ms.insert(results.ttft_ms.end(), ttft.begin(), ttft.end());
  results.added_us.insert(results.added_us.end(), added.begin(), added.end());
  results.tokens += tokens;
  results.bytes += bytes;
  results.turns_ok += ok;
  results.turns_failed += failed;
  for (auto& [k, v] : errors) results.errors[k] += v;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t idx = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()));
  return v[idx];
}

// GET on the simulator; the body.
std::string http_get(const std::string& host, const std::string& port, const std::string& target) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  stream.connect(resolver.resolve(host, port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return res.body();
}

int64_t json_int(const std::string& body, const char* key) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  int64_t v = -1;
  if (p.parse(body).get(doc) == simdjson::SUCCESS && doc[key].get(v) == simdjson::SUCCESS) return v;
  return -1;
}

// Starts N turns one after the other, cancels each after its first delta and
// measures how long the simulator takes to see the request aborted.
int cancel_probe(const Target& t, const std::string& sim_url, int n) {
  const std::string rest = sim_url.substr(sim_url.find("//") + 2);
  const auto slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  const std::string host = hostport.substr(0, hostport.rfind(':'));
  const std::string port = hostport.substr(hostport.rfind(':') + 1);
  const int64_t aborted_before = json_int(http_get(host, port, "/sim/stats"), "aborted");

  net::io_context ioc;
  std::vector<double> ms;
  net::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        auto ws = co_await open_ws(t);
        ws.text(true);
        beast::flat_buffer buffer;
        simdjson::dom::parser parser;
        std::string sid;
        for (int i = 0; i < n; ++i) {
          co_await ws.async_write(net::buffer(chat_json("[[sim rate=20]] cancel me", "c", sid)),
                                  use_awaitable);
          for (;;) {  // until the first delta
            co_await ws.async_read(buffer, use_awaitable);
            const auto d = buffer.cdata();
            Frame f = parse(parser, {static_cast<const char*>(d.data()), d.size()});
            buffer.consume(buffer.size());
            if (f.type == "session") sid = f.session_id;
            if (f.type == "delta") break;
          }
          const int64_t t0 = now_ns();
          sluice::JsonWriter w;
          w.begin_object().field("type", "cancel").field("session_id", sid).end_object();
          co_await ws.async_write(net::buffer(w.str()), use_awaitable);
          for (;;) {  // until its done
            co_await ws.async_read(buffer, use_awaitable);
            const auto d = buffer.cdata();
            Frame f = parse(parser, {static_cast<const char*>(d.data()), d.size()});
            buffer.consume(buffer.size());
            if (f.type == "done") break;
          }
          const auto body = http_get(host, port,
                                     "/sim/stats?timeout_ms=2000&wait_aborted=" +
                                         std::to_string(aborted_before + i + 1));
          ms.push_back((json_int(body, "last_abort_ns") - t0) / 1e6);
        }
        co_await ws.async_close(websocket::close_code::normal, net::as_tuple(use_awaitable));
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  std::printf("| cancels | cancel -> upstream abort p50 (ms) | p99 (ms) | max (ms) |\n");
  std::printf("|---:|---:|---:|---:|\n");
  std::printf("| %d | %.2f | %.2f | %.2f |\n", n, percentile(ms, 50), percentile(ms, 99),
              *std::max_element(ms.begin(), ms.end()));
  return 0;
}

// Reads the next frame of `ws`.
awaitable<Frame> next_frame(websocket::stream<beast::tcp_stream>& ws, beast::flat_buffer& buffer,
                            simdjson::dom::parser& parser, std::string& raw) {
  co_await ws.async_read(buffer, use_awaitable);
  const auto d = buffer.cdata();
  raw.assign(static_cast<const char*>(d.data()), d.size());
  buffer.consume(buffer.size());
  co_return parse(parser, raw);
}

// The simulator's send time stamped in a token ("<ns>|"), or -1.
int64_t stamp_of(const std::string& text) {
  const auto bar = text.find('|');
  if (bar == std::string::npos || bar == 0) return -1;
  const auto last = text.rfind('|', bar - 1);
  const std::string num = text.substr(last == std::string::npos ? 0 : last + 1, bar);
  return num.find_first_not_of("0123456789") == std::string::npos ? std::stoll(num) : -1;
}

// N times: start a turn (simulator with --stamp at R tokens/s), leave for
// `missed` events, resume from offset 0 on a new connection and time the
// first replayed event and the first event that is live again.
int resume_probe(const Target& t, int n, int missed, double rate) {
  std::vector<double> first_ms, live_ms;
  net::io_context ioc;
  net::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        auto ex = co_await net::this_coro::executor;
        simdjson::dom::parser parser;
        beast::flat_buffer buffer;
        std::string raw;
        for (int i = 0; i < n; ++i) {
          std::string sid, token;
          {
            auto a = co_await open_ws(t);
            a.text(true);
            const int tokens = missed + static_cast<int>(rate);  // a second of live after
            co_await a.async_write(net::buffer(chat_json("[[sim tokens=" + std::to_string(tokens) +
                                                             " repeat=1000]] probe",
                                                         "p", "")),
                                   use_awaitable);
            for (;;) {
              Frame f = co_await next_frame(a, buffer, parser, raw);
              if (f.type == "session") {
                sid = f.session_id;
                simdjson::dom::element doc;
                std::string_view tok;
                if (parser.parse(raw).get(doc) == simdjson::SUCCESS &&
                    doc["resume_token"].get(tok) == simdjson::SUCCESS) {
                  token = tok;
                }
                break;
              }
            }
            beast::get_lowest_layer(a).close();  // gone, without a goodbye
          }
          net::steady_timer wait(ex, std::chrono::microseconds(static_cast<int64_t>(missed / rate * 1e6)));
          co_await wait.async_wait(use_awaitable);
          auto b = co_await open_ws(t);
          b.text(true);
          sluice::JsonWriter w;
          w.begin_object().field("type", "resume").field("session_id", sid).field("offset", 0)
              .field("resume_token", token).end_object();
          const int64_t t0 = now_ns();
          co_await b.async_write(net::buffer(w.str()), use_awaitable);
          bool first = false;
          for (;;) {
            Frame f = co_await next_frame(b, buffer, parser, raw);
            if (f.type == "resume_failed") throw std::runtime_error("resume failed: " + raw);
            if (f.type != "delta") continue;
            const int64_t now = now_ns();
            if (!first) {
              first = true;
              first_ms.push_back((now - t0) / 1e6);
            }
            const int64_t stamp = stamp_of(f.text);
            if (stamp > 0 && now - stamp < 2'000'000) {  // within 2 ms of its send: live
              live_ms.push_back((now - t0) / 1e6);
              break;
            }
          }
          sluice::JsonWriter c;
          c.begin_object().field("type", "cancel").field("session_id", sid).end_object();
          co_await b.async_write(net::buffer(c.str()), use_awaitable);
          for (;;) {
            Frame f = co_await next_frame(b, buffer, parser, raw);
            if (f.type == "done") break;
          }
          co_await b.async_close(websocket::close_code::normal, net::as_tuple(use_awaitable));
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  std::printf("| resumes | missed events | first replayed p50 (ms) | p99 (ms) | caught up with live p50 (ms) | p99 (ms) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %d | %d | %.2f | %.2f | %.2f | %.2f |\n", n, missed, percentile(first_ms, 50),
              percentile(first_ms, 99), percentile(live_ms, 50), percentile(live_ms, 99));
  return 0;
}

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Runs N finished turns on N sessions (they stay retained) and reports the
// gateway's resident memory per retained turn.
int retained_probe(const Target& t, int n, int pid) {
  const long before = rss_kib(pid);
  int64_t events = 0;
  net::io_context ioc;
  net::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        auto ws = co_await open_ws(t);
        ws.text(true);
        simdjson::dom::parser parser;
        beast::flat_buffer buffer;
        std::string raw;
        for (int i = 0; i < n; ++i) {
          co_await ws.async_write(net::buffer(chat_json("retained " + std::to_string(i), "r", "")),
                                  use_awaitable);
          for (;;) {
            Frame f = co_await next_frame(ws, buffer, parser, raw);
            if (f.type == "delta" || f.type == "done") ++events;
            if (f.type == "done") break;
          }
        }
        co_await ws.async_close(websocket::close_code::normal, net::as_tuple(use_awaitable));
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ioc.run();
  const long after = rss_kib(pid);
  std::printf("| retained turns | events per turn | gateway RSS growth (MiB) | bytes per retained turn | bytes per event |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  const double per_turn = (after - before) * 1024.0 / n;
  std::printf("| %d | %.1f | %.1f | %.0f | %.0f |\n", n, static_cast<double>(events) / n,
              (after - before) / 1024.0, per_turn, per_turn * n / std::max<int64_t>(1, events));
  return 0;
}

// Opens N idle WebSocket connections (no sessions, no traffic) and reports
// the relay's resident memory per connection. Past 20,000 connections the
// source address moves on (127.0.0.2, 127.0.0.3, ...) so that the local
// port range does not run out.
int idle_probe(const Target& t, int n, int pid, int threads) {
  const long before = rss_kib(pid);
  net::io_context ioc(threads);
  std::vector<std::unique_ptr<websocket::stream<beast::tcp_stream>>> open;
  open.reserve(static_cast<size_t>(n));
  std::mutex mutex;
  int failed = 0;
  std::string first_error;
  tcp::endpoint server(net::ip::make_address(t.host), static_cast<unsigned short>(std::stoi(t.port)));
  for (int i = 0; i < n; ++i) {
    net::co_spawn(
        net::make_strand(ioc),
        [&, i]() -> awaitable<void> {
          auto ex = co_await net::this_coro::executor;
          auto ws = std::make_unique<websocket::stream<beast::tcp_stream>>(ex);
          auto& socket = beast::get_lowest_layer(*ws).socket();
          socket.open(tcp::v4());
          if (server.address().is_loopback()) {
            const auto base = net::ip::make_address_v4("127.0.0.1").to_uint();
            socket.bind({net::ip::address_v4(base + static_cast<uint32_t>(i / 20000)), 0});
          }
          co_await beast::get_lowest_layer(*ws).async_connect(server, use_awaitable);
          beast::get_lowest_layer(*ws).expires_never();
          co_await ws->async_handshake(t.host + ":" + t.port, t.path, use_awaitable);
          std::lock_guard lock(mutex);
          open.push_back(std::move(ws));
        },
        [&](std::exception_ptr e) {
          if (!e) return;
          std::lock_guard lock(mutex);
          if (failed++ == 0) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              first_error = ex.what();
            }
          }
        });
    // A few hundred handshakes in flight at a time, not N at once.
    if (i % 500 == 499) {
      ioc.run();
      ioc.restart();
    }
  }
  ioc.run();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the relay settle
  const long after = rss_kib(pid);
  std::printf("| idle connections | RSS before (MiB) | RSS with them open (MiB) | KiB per connection | failed |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  std::printf("| %zu | %.1f | %.1f | %.2f | %d |\n", open.size(), before / 1024.0, after / 1024.0,
              open.empty() ? 0.0 : static_cast<double>(after - before) / open.size(), failed);
  if (failed > 0) std::fprintf(stderr, "sluice-loadgen: %d connections failed, first: %s\n", failed, first_error.c_str());
  return failed == 0 ? 0 : 1;
}

int say(const Target& t, const std::string& text) {
  net::io_context ioc;
  int rc = 0;
  net::co_spawn(
      ioc,
      [&]() -> awaitable<void> {
        auto ws = co_await open_ws(t);
        ws.text(true);
        co_await ws.async_write(net::buffer(chat_json(text, "say", "")), use_awaitable);
        beast::flat_buffer buffer;
        simdjson::dom::parser parser;
        for (;;) {
          co_await ws.async_read(buffer, use_awaitable);
          const auto d = buffer.cdata();
          const std::string raw(static_cast<const char*>(d.data()), d.size());
          Frame f = parse(parser, raw);
          buffer.consume(buffer.size());
          if (f.type == "delta") {
            std::cout << f.text << std::flush;
          } else if (f.type == "tool_call" || f.type == "tool_result" || f.type == "sources" ||
                     f.type == "moderation") {
            // Shown as the gateway sent them, on lines of their own.
            std::cout << "\n[" << raw << "]\n" << std::flush;
          } else if (f.type == "error") {
            std::cerr << "\n[error " << f.code << "]";
            rc = 1;
          } else if (f.type == "done") {
            std::cout << "\n[done: " << f.finish_reason << "]\n";
            break;
          }
        }
        co_await ws.async_close(websocket::close_code::normal, net::as_tuple(use_awaitable));
      },
      [&](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::cerr << "sluice-loadgen: " << ex.what() << "\n";
          rc = 1;
        }
      });
  ioc.run();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-loadgen: load generator and probe for the Sluice gateway"};
  std::vector<std::string> urls{"ws://127.0.0.1:8080/v1/ws"};
  std::vector<std::string> labels;
  int rounds = 1;
  int connections = 10, sessions = 10, turns = 1, threads = 1, cancels = 0;
  std::string input = "Tell me about shipping times.";
  std::string sim_url, say_text;
  app.add_option("--url", urls,
                 "gateway WebSocket URL; several: the same load against each, one table row each");
  app.add_option("-c,--connections", connections, "WebSocket connections")->check(CLI::Range(1, 100000));
  app.add_option("-s,--sessions", sessions, "chat sessions per connection")->check(CLI::Range(1, 4096));
  app.add_option("-t,--turns", turns, "turns per session, one after the other")->check(CLI::Range(1, 100000));
  app.add_option("--threads", threads, "client I/O threads")->check(CLI::Range(1, 64));
  app.add_option("--input", input, "the user message of every turn");
  app.add_option("--label", labels, "text for the first column of the table rows (one per --url)");
  app.add_option("--rounds", rounds, "with several --url: alternate between them this many times")
      ->check(CLI::Range(1, 1000));
  app.add_option("--cancel-probe", cancels, "measure cancel -> upstream abort over N turns");
  app.add_option("--sim", sim_url, "the simulator's base URL (for --cancel-probe)");
  app.add_option("--say", say_text, "stream one answer to this message to the terminal");
  int resumes = 0, missed = 1000, retained = 0, gateway_pid = 0;
  double sim_rate = 1000;
  app.add_option("--resume-probe", resumes, "time N resumes after --missed events (simulator --stamp)");
  app.add_option("--missed", missed, "events missed before each resume");
  app.add_option("--sim-rate", sim_rate, "the simulator's --rate, for --resume-probe");
  app.add_option("--retained-probe", retained, "memory per retained turn over N turns");
  app.add_option("--gateway-pid", gateway_pid, "the gateway's pid, for --retained-probe and --idle-probe");
  int idle = 0;
  app.add_option("--idle-probe", idle, "memory per idle WebSocket connection over N connections");
  CLI11_PARSE(app, argc, argv);

  std::vector<Target> targets(urls.size());
  for (size_t i = 0; i < urls.size(); ++i) {
    if (!parse_ws_url(urls[i], targets[i])) {
      std::cerr << "--url must look like ws://HOST:PORT/v1/ws\n";
      return 2;
    }
  }
  const Target& t = targets[0];
  if (!say_text.empty()) return say(t, say_text);
  if (resumes > 0) return resume_probe(t, resumes, missed, sim_rate);
  if (retained > 0) {
    if (gateway_pid <= 0) {
      std::cerr << "--retained-probe needs --gateway-pid\n";
      return 2;
    }
    return retained_probe(t, retained, gateway_pid);
  }
  if (idle > 0) {
    if (gateway_pid <= 0) {
      std::cerr << "--idle-probe needs --gateway-pid\n";
      return 2;
    }
    return idle_probe(t, idle, gateway_pid, threads);
  }
  if (cancels > 0) {
    if (sim_url.empty()) {
      std::cerr << "--cancel-probe needs --sim http://HOST:PORT\n";
      return 2;
    }
    return cancel_probe(t, sim_url, cancels);
  }

  // The same load against each target; with several, alternating rounds so
  // that drift on the machine (heat, other work) weighs on all alike.
  std::vector<Results> results(targets.size());
  std::vector<double> secs(targets.size(), 0);
  for (int round = 0; round < (targets.size() > 1 ? rounds : 1); ++round) {
    for (size_t i = 0; i < targets.size(); ++i) {
      net::io_context ioc(threads);
      for (int c = 0; c < connections; ++c) {
        net::co_spawn(net::make_strand(ioc), run_connection(targets[i], c, sessions, turns, input, results[i]),
                      net::detached);
      }
      const auto start = Clock::now();
      std::vector<std::thread> pool;
      for (int k = 1; k < threads; ++k) pool.emplace_back([&] { ioc.run(); });
      ioc.run();
      for (auto& th : pool) th.join();
      secs[i] += std::chrono::duration<double>(Clock::now() - start).count();
    }
  }

  std::printf(
      "| %s | conns | sessions | turns | tokens | tokens/s | TTFT p50 (ms) | TTFT p99 (ms) | "
      "added p50 (us) | added p99 (us) | failed |\n",
      labels.empty() ? "run" : "scenario");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  bool ok = true;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Results& r = results[i];
    const std::string label = i < labels.size() ? labels[i] : "-";
    std::printf("| %s | %d | %d | %llu | %llu | %.0f | %.2f | %.2f | %s | %s | %llu |\n", label.c_str(),
                connections, connections * sessions,
                static_cast<unsigned long long>(r.turns_ok + r.turns_failed),
                static_cast<unsigned long long>(r.tokens), r.tokens / secs[i], percentile(r.ttft_ms, 50),
                percentile(r.ttft_ms, 99),
                r.added_us.empty() ? "n/a" : std::to_string(static_cast<int>(percentile(r.added_us, 50))).c_str(),
                r.added_us.empty() ? "n/a" : std::to_string(static_cast<int>(percentile(r.added_us, 99))).c_str(),
                static_cast<unsigned long long>(r.turns_failed));
    for (const auto& [k, v] : r.errors) {
      std::fprintf(stderr, "error %s: %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    }
    ok = ok && r.turns_failed == 0 && r.errors.empty();
  }
  return ok ? 0 : 1;
}
