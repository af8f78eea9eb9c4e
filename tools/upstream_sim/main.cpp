// sluice-upstream-sim: a SIMULATED OpenAI-compatible upstream for tests,
// benchmarks and demos. It is not a model: it streams configured text.
//
// It serves POST /v1/chat/completions with "stream": true byte for byte in
// vLLM's format (role-only first chunk, content deltas, a finish_reason
// chunk, the usage chunk with empty choices, [DONE]), with a configurable
// token rate and chunking, HTTP errors, mid-stream drops and stalls. It notes
// every request and whether the client aborted it: GET /sim/stats.
//
// Per-request overrides: a last user message containing
// "[[sim key=value ...]]" (keys: status, drop_after, stall_after, rate,
// first_delay_ms, tokens, repeat, by_char=1) overrides the command-line settings for that
// request; the directive is removed before the text is echoed.
//
// Tool calls, as vLLM streams them: when the request offers a tool named
// lookup_order and the user's message names an order ("A1001"), the answer
// is a call of lookup_order (arguments in fragments, finish_reason
// "tool_calls"); "[[sim tool=NAME args=JSON]]" calls any offered tool. When
// the last message is a tool result, the answer reports it in words.
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "gateway/common/json_writer.hpp"
#include "gateway/common/port_file.hpp"
#include "tools/upstream_sim/tokenize.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using net::awaitable;
using net::use_awaitable;

namespace {

struct Behaviour {
  std::string text;           // {prompt} is replaced by the last user message
  double rate = 0;            // tokens per second, 0: as fast as possible
  int chunk_tokens = 1;       // tokens per SSE event
  int status = 200;           // != 200: answer with a vLLM error body
  int drop_after = -1;        // close the connection after N content events
  int stall_after = -1;       // stop sending (keep the connection) after N events
  int first_delay_ms = 0;     // wait before the first content event
  int tokens = -1;            // stop after N tokens (finish_reason "length")
  int repeat = 1;             // the text, this many times over
  bool by_char = false;       // one token per character: every boundary is a token boundary
  bool split_writes = false;  // write each event in small pieces
  int random_split = -1;      // >= 0: write in pieces of random size, with this seed
  bool stamp = false;         // each token's text is its send time: "<steady ns>|"
  bool usage = true;
  std::string model = "sim-model";
  std::string tool;       // call this tool instead of answering in text
  std::string tool_args;  // ... with these arguments (JSON)
  // continue_final_message: the answer's beginning, written elsewhere; the
  // stream sends the rest of the answer after it.
  std::optional<std::string> continue_from;
};

struct Stats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> aborted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> errors_sent{0};
  std::atomic<uint64_t> drops{0};
  std::atomic<uint64_t> stalls{0};
  std::atomic<uint64_t> continued{0};  // requests with continue_final_message
  std::atomic<int64_t> last_abort_ns{0};  // steady_clock time the last abort was seen
  std::mutex mutex;
  std::string last_body;
  std::string last_authorization;
  std::string last_traceparent;
};


std::string chunk_json(const std::string& id, int64_t created, const Behaviour& b,
                       std::string_view body) {
  std::string s = R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":)" +
                  std::to_string(created) + R"(,"model":)";
  sluice::append_json_string(s, b.model);
  s += R"(,"choices":)";
  s += body;
  s += "}";
  return "data: " + s + "\n\n";
}

std::string content_event(const std::string& id, int64_t created, const Behaviour& b,
                          std::string_view text) {
  std::string body = R"([{"index":0,"delta":{"content":)";
  sluice::append_json_string(body, text);
  body += R"(},"logprobs":null,"finish_reason":null}])";
  return chunk_json(id, created, b, body);
}

// Applies "[[sim key=value ...]]" found in `prompt`, and removes it.
void apply_directive(std::string& prompt, Behaviour& b) {
  const auto open = prompt.find("[[sim");
  if (open == std::string::npos) return;
  const auto close = prompt.find("]]", open);
  if (close == std::string::npos) return;
  std::istringstream in(prompt.substr(open + 5, close - open - 5));
  for (std::string kv; in >> kv;) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = kv.substr(0, eq);
    const std::string v = kv.substr(eq + 1);
    try {
      if (k == "status") b.status = std::stoi(v);
      else if (k == "drop_after") b.drop_after = std::stoi(v);
      else if (k == "stall_after") b.stall_after = std::stoi(v);
      else if (k == "rate") b.rate = std::stod(v);
      else if (k == "first_delay_ms") b.first_delay_ms = std::stoi(v);
      else if (k == "tokens") b.tokens = std::stoi(v);
      else if (k == "repeat") b.repeat = std::clamp(std::stoi(v), 1, 1'000'000);
      else if (k == "by_char") b.by_char = v == "1";
      else if (k == "tool") b.tool = v;
      else if (k == "args") b.tool_args = v;
    } catch (const std::exception&) {
    }
  }
  prompt.erase(open, close + 2 - open);
  while (!prompt.empty() && prompt.back() == ' ') prompt.pop_back();
  while (!prompt.empty() && prompt.front() == ' ') prompt.erase(0, 1);
}

// Where an answer goes on after `begun`, its beginning as a client saw it:
// the answer's prefix, where moderators may have replaced pieces with marks
// such as "[email]" (each stands for the text between its neighbours; a
// mark at the very end for a run of e-mail or phone-number characters).
// 0 when `begun` is not this answer's beginning.
size_t continue_point(const std::string& once, const std::string& begun) {
  static const std::regex mark("\\[[a-z_]+\\]");
  size_t pos = 0, from = 0;
  bool first = true, ends_marked = false;
  for (auto it = std::sregex_iterator(begun.begin(), begun.end(), mark);; ++it) {
    const bool done = it == std::sregex_iterator();
    const size_t end = done ? begun.size() : static_cast<size_t>(it->position());
    const std::string_view literal = std::string_view(begun).substr(from, end - from);
    if (first) {
      if (once.compare(0, literal.size(), literal) != 0) return 0;
      pos = literal.size();
    } else if (!literal.empty()) {
      const size_t at = once.find(literal, pos);
      if (at == std::string::npos) return 0;
      pos = at + literal.size();
    }
    first = false;
    if (done) break;
    from = end + it->length();
    ends_marked = from == begun.size();
  }
  if (ends_marked) {
    const auto pii = [](char c, bool phone) {
      return phone ? (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == ' ' || c == '-')
                   : (std::isalnum(static_cast<unsigned char>(c)) || c == '@' || c == '.' || c == '_' || c == '-');
    };
    const bool phone = pos < once.size() && (once[pos] == '+' || std::isdigit(static_cast<unsigned char>(once[pos])));
    while (pos < once.size() && pii(once[pos], phone)) ++pos;
    while (phone && pos > 0 && once[pos - 1] == ' ') --pos;  // the space after the number is the answer's
  }
  return pos;
}

// The simulated model's words about a tool result (JSON text).
std::string describe_tool_result(std::string_view content) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(std::string(content)).get(doc) != simdjson::SUCCESS) {
    return "The tool answered: " + std::string(content);
  }
  std::string_view error, id, status;
  bool found = true;
  if (doc["error"].get(error) == simdjson::SUCCESS) return "Sorry, the tool failed: " + std::string(error);
  if (doc["order_id"].get(id) != simdjson::SUCCESS) id = "?";
  if (doc["found"].get(found) == simdjson::SUCCESS && !found) {
    return "I could not find order " + std::string(id) + ".";
  }
  if (doc["status"].get(status) == simdjson::SUCCESS) {
    return "Order " + std::string(id) + " is " + std::string(status) + ".";
  }
  return "The tool answered: " + simdjson::minify(doc);
}

class Simulator {
 public:
  Simulator(net::io_context& ioc, Behaviour defaults) : ioc_(ioc), defaults_(std::move(defaults)) {}

  awaitable<void> listen(tcp::acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(
          net::make_strand(ioc_), net::as_tuple(use_awaitable));
      if (ec) {
        if (ec == net::error::operation_aborted) co_return;
        continue;
      }
      ++stats_.connections;
      net::co_spawn(socket.get_executor(), serve(std::move(socket)), net::detached);
    }
  }

 private:
  awaitable<void> serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    socket.set_option(tcp::no_delay(true));
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(socket, buffer, req, net::as_tuple(use_awaitable));
      if (ec) co_return;
      const bool keep = co_await handle(socket, req);
      if (!keep) {
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
    }
  }

  awaitable<bool> reply(tcp::socket& socket, http::status status, std::string body,
                        bool keep_alive, const char* type = "application/json") {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::server, "uvicorn");
    res.set(http::field::content_type, type);
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(socket, res, net::as_tuple(use_awaitable));
    co_return !ec && keep_alive;
  }

  std::string stats_json() {
    sluice::JsonWriter w;
    w.begin_object()
        .field("connections", static_cast<uint64_t>(stats_.connections))
        .field("requests", static_cast<uint64_t>(stats_.requests))
        .field("completed", static_cast<uint64_t>(stats_.completed))
        .field("aborted", static_cast<uint64_t>(stats_.aborted))
        .field("active", static_cast<uint64_t>(stats_.active))
        .field("errors_sent", static_cast<uint64_t>(stats_.errors_sent))
        .field("drops", static_cast<uint64_t>(stats_.drops))
        .field("stalls", static_cast<uint64_t>(stats_.stalls))
        .field("continued", static_cast<uint64_t>(stats_.continued))
        .field("last_abort_ns", static_cast<int64_t>(stats_.last_abort_ns));
    std::lock_guard lock(stats_.mutex);
    w.field("last_authorization", stats_.last_authorization);
    w.field("last_traceparent", stats_.last_traceparent);
    w.key("last_body");
    if (stats_.last_body.empty()) {
      w.null();
    } else {
      w.raw(stats_.last_body);
    }
    return w.end_object().take();
  }

  // GET /sim/stats[?wait_aborted=N&wait_requests=N&wait_completed=N&timeout_ms=T]: answers at
  // once, or when the counters reach the numbers asked for (or at timeout).
  awaitable<bool> handle_stats(tcp::socket& socket, std::string_view target, bool keep) {
    auto param = [&](std::string_view key) -> int64_t {
      const auto pos = target.find(std::string(key) + "=");
      if (pos == std::string_view::npos) return -1;
      return std::atoll(std::string(target.substr(pos + key.size() + 1)).c_str());
    };
    const int64_t want_aborted = param("wait_aborted");
    const int64_t want_requests = param("wait_requests");
    const int64_t want_completed = param("wait_completed");
    const int64_t timeout_ms = std::max<int64_t>(0, param("timeout_ms"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    net::steady_timer timer(socket.get_executor());
    while (std::chrono::steady_clock::now() < deadline &&
           (static_cast<int64_t>(stats_.aborted.load()) < want_aborted ||
            static_cast<int64_t>(stats_.requests.load()) < want_requests ||
            static_cast<int64_t>(stats_.completed.load()) < want_completed)) {
      timer.expires_after(std::chrono::milliseconds(2));
      co_await timer.async_wait(net::as_tuple(use_awaitable));
    }
    co_return co_await reply(socket, http::status::ok, stats_json(), keep);
  }

  awaitable<bool> handle(tcp::socket& socket, http::request<http::string_body>& req) {
    const std::string target(req.target());
    const bool keep = req.keep_alive();
    if (req.method() == http::verb::get && target.rfind("/sim/stats", 0) == 0) {
      co_return co_await handle_stats(socket, target, keep);
    }
    if (req.method() == http::verb::get && target == "/health") {
      co_return co_await reply(socket, http::status::ok, "{}", keep);
    }
    if (req.method() != http::verb::post || target != "/v1/chat/completions") {
      co_return co_await reply(socket, http::status::not_found, R"({"detail":"Not Found"})", keep);
    }
    ++stats_.requests;
    {
      std::lock_guard lock(stats_.mutex);
      stats_.last_body = req.body();
      stats_.last_authorization = std::string(req[http::field::authorization]);
      stats_.last_traceparent = std::string(req["traceparent"]);
    }
    Behaviour b = defaults_;
    std::string prompt;
    bool stream = false;
    {
      simdjson::dom::parser parser;
      simdjson::dom::element doc;
      if (parser.parse(req.body()).get(doc) != simdjson::SUCCESS) {
        ++stats_.errors_sent;
        co_return co_await reply(
            socket, http::status::bad_request,
            R"({"object":"error","message":"Invalid JSON body","type":"BadRequestError","param":null,"code":400})",
            keep);
      }
      bool s = false;
      if (doc["stream"].get(s) == simdjson::SUCCESS) stream = s;
      simdjson::dom::array messages;
      std::string_view last_role, role_before;
      std::string tool_content;
      std::string last_content;
      if (doc["messages"].get(messages) == simdjson::SUCCESS) {
        for (auto m : messages) {
          std::string_view role, content;
          if (m["role"].get(role) != simdjson::SUCCESS) continue;
          role_before = last_role;
          last_role = role;
          last_content.clear();
          if (m["content"].get(content) != simdjson::SUCCESS) continue;
          last_content = content;
          if (role == "user") prompt = content;
          if (role == "tool") tool_content = content;
        }
      }
      // vLLM's continue_final_message: the last (assistant) message is an
      // answer begun elsewhere; the stream goes on from its end.
      bool continue_final = false, generation_prompt = true;
      if (doc["continue_final_message"].get(continue_final) != simdjson::SUCCESS) continue_final = false;
      if (doc["add_generation_prompt"].get(generation_prompt) != simdjson::SUCCESS) generation_prompt = true;
      if (continue_final && (generation_prompt || last_role != "assistant")) {
        ++stats_.errors_sent;
        co_return co_await reply(
            socket, http::status::bad_request,
            R"({"object":"error","message":"continue_final_message needs add_generation_prompt false and an assistant message last","type":"BadRequestError","param":null,"code":400})",
            keep);
      }
      if (continue_final) {
        b.continue_from = last_content;
        ++stats_.continued;
        // The answer goes on as the one it continues: the prompt's, or a tool result's.
        last_role = role_before == "tool" ? "tool" : "user";
      }
      std::vector<std::string> offered;
      simdjson::dom::array tools;
      if (doc["tools"].get(tools) == simdjson::SUCCESS) {
        for (auto t : tools) {
          std::string_view name;
          if (t["function"]["name"].get(name) == simdjson::SUCCESS) offered.emplace_back(name);
        }
      }
      if (last_role == "tool") {
        b.text = describe_tool_result(tool_content);
      } else if (!offered.empty()) {
        Behaviour probe;
        std::string copy = prompt;
        apply_directive(copy, probe);
        const auto has = [&](const std::string& n) {
          return std::find(offered.begin(), offered.end(), n) != offered.end();
        };
        std::smatch order;
        if (!probe.tool.empty() && has(probe.tool)) {
          b.tool = probe.tool;
          b.tool_args = probe.tool_args.empty() ? "{}" : probe.tool_args;
        } else if (has("lookup_order") &&
                   std::regex_search(copy, order, std::regex("\\b[A-Z][0-9]{4,}\\b"))) {
          b.tool = "lookup_order";
          b.tool_args = R"({"order_id": ")" + order.str() + R"("})";
        }
      }
      std::string_view model;
      if (doc["model"].get(model) == simdjson::SUCCESS) b.model = model;
    }
    {
      // The tool choice above is the request's, not the directive's.
      const std::string tool = b.tool, args = b.tool_args;
      apply_directive(prompt, b);
      b.tool = tool;
      b.tool_args = args;
    }
    if (b.status != 200) {
      ++stats_.errors_sent;
      std::string body = R"x({"object":"error","message":"simulated failure (HTTP )x" +
                         std::to_string(b.status) +
                         R"x()","type":"InternalServerError","param":null,"code":)x" +
                         std::to_string(b.status) + "}";
      co_return co_await reply(socket, static_cast<http::status>(b.status), std::move(body), keep);
    }
    if (!stream) {
      ++stats_.errors_sent;
      co_return co_await reply(
          socket, http::status::bad_request,
          R"({"object":"error","message":"this simulator only streams: set \"stream\": true","type":"BadRequestError","param":null,"code":400})",
          keep);
    }
    co_return co_await stream_answer(socket, b, prompt, keep);
  }

  awaitable<bool> stream_answer(tcp::socket& socket, const Behaviour& b, const std::string& prompt,
                                bool keep) {
    std::string once = b.text;
    for (size_t pos; (pos = once.find("{prompt}")) != std::string::npos;) {
      once.replace(pos, 8, prompt);
    }
    if (b.continue_from) {
      // The answer this prompt gets goes on after its beginning (a model
      // continuing its own words), even where a moderator redacted part of
      // it; another beginning is continued as a whole.
      once = once.substr(continue_point(once, *b.continue_from));
    }
    auto one = sluice::sim::tokenize(once);
    if (b.by_char) {
      std::vector<std::string> chars;
      for (const auto& t : one) {
        for (size_t i = 0; i < t.size();) {
          const auto c = static_cast<unsigned char>(t[i]);
          const size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
          chars.push_back(t.substr(i, n));
          i += n;
        }
      }
      one = std::move(chars);
    }
    std::vector<std::string> tokens;
    tokens.reserve(one.size() * static_cast<size_t>(b.repeat));
    for (int r = 0; r < b.repeat; ++r) tokens.insert(tokens.end(), one.begin(), one.end());
    std::string finish = "stop";
    if (b.tokens >= 0 && static_cast<size_t>(b.tokens) < tokens.size()) {
      tokens.resize(static_cast<size_t>(b.tokens));
      finish = "length";
    }
    ++stats_.active;
    struct ActiveGuard {
      Stats& s;
      ~ActiveGuard() { --s.active; }
    } guard{stats_};

    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::server, "uvicorn");
    res.set(http::field::content_type, "text/event-stream; charset=utf-8");
    res.chunked(true);
    res.keep_alive(keep);
    http::response_serializer<http::empty_body> sr{res};
    auto [hec, hn] = co_await http::async_write_header(socket, sr, net::as_tuple(use_awaitable));
    if (hec) {
      note_abort();
      co_return false;
    }

    // Watches the socket while the answer streams: a client that closes is
    // seen at once, even while this side is stalled.
    auto gone = std::make_shared<bool>(false);
    auto done = std::make_shared<bool>(false);
    auto probe = std::make_shared<std::array<char, 1>>();
    socket.async_read_some(net::buffer(*probe), [this, gone, done, probe](auto ec, size_t) {
      if (*done) return;
      if (ec) {
        *gone = true;
        note_abort();
      }
    });

    const std::string id = "chatcmpl-" + std::to_string(stats_.requests.load()) + "sim";
    const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    net::steady_timer timer(socket.get_executor());
    std::mt19937 rng(static_cast<uint32_t>(std::max(0, b.random_split)) + stats_.requests.load());
    std::uniform_int_distribution<size_t> pick(1, 48);
    auto send = [&](std::string event) -> awaitable<bool> {
      if (*gone) co_return false;
      if (b.split_writes || b.random_split >= 0) {
        // Cut the event at arbitrary byte boundaries (inside UTF-8
        // characters and JSON escapes too), one HTTP chunk per piece.
        for (size_t i = 0; i < event.size();) {
          const size_t n = std::min(event.size() - i, b.random_split >= 0 ? pick(rng) : size_t{7});
          auto [ec, w] = co_await net::async_write(
              socket, http::make_chunk(net::buffer(event.data() + i, n)), net::as_tuple(use_awaitable));
          if (ec) co_return false;
          i += n;
        }
        co_return true;
      }
      auto [ec, n] = co_await net::async_write(socket, http::make_chunk(net::buffer(event)),
                                               net::as_tuple(use_awaitable));
      co_return !ec;
    };
    auto finish_probe = [&] {
      *done = true;
      beast::error_code ignored;
      socket.cancel(ignored);
    };
    auto fail_abort = [&]() -> bool {
      *done = true;
      if (!*gone) note_abort();
      return false;
    };

    if (!co_await send(chunk_json(id, created, b,
                                  R"([{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}])"))) {
      co_return fail_abort();
    }
    if (b.first_delay_ms > 0) {
      timer.expires_after(std::chrono::milliseconds(b.first_delay_ms));
      co_await timer.async_wait(net::as_tuple(use_awaitable));
    }
    if (!b.tool.empty()) {
      // vLLM's shape: the call's id and name first, then the arguments in pieces.
      std::string head = R"([{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-)" + id.substr(9) +
                         R"(","type":"function","index":0,"function":{"name":)";
      sluice::append_json_string(head, b.tool);
      head += R"(,"arguments":""}}]},"logprobs":null,"finish_reason":null}])";
      if (!co_await send(chunk_json(id, created, b, head))) co_return fail_abort();
      const size_t third = std::max<size_t>(1, b.tool_args.size() / 3);
      for (size_t at = 0, len = 0; at < b.tool_args.size(); at += len) {
        len = std::min(third, b.tool_args.size() - at);
        // Pieces end on character boundaries: each is a JSON string of its own.
        while (at + len < b.tool_args.size() && (static_cast<unsigned char>(b.tool_args[at + len]) & 0xC0) == 0x80) {
          ++len;
        }
        std::string piece = R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":)";
        sluice::append_json_string(piece, b.tool_args.substr(at, len));
        piece += R"(}}]},"logprobs":null,"finish_reason":null}])";
        if (!co_await send(chunk_json(id, created, b, piece))) co_return fail_abort();
      }
      tokens.clear();
      finish = "tool_calls";
    }
    const auto interval = b.rate > 0 ? std::chrono::duration<double>(b.chunk_tokens / b.rate)
                                     : std::chrono::duration<double>(0);
    auto next = std::chrono::steady_clock::now();
    int events = 0;
    for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(b.chunk_tokens)) {
      if (b.drop_after >= 0 && events == b.drop_after) {
        ++stats_.drops;
        *done = true;
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        co_return false;
      }
      if (b.stall_after >= 0 && events == b.stall_after) {
        ++stats_.stalls;
        // Hold the connection open, sending nothing, until the client leaves.
        while (!*gone) {
          timer.expires_after(std::chrono::milliseconds(5));
          co_await timer.async_wait(net::as_tuple(use_awaitable));
        }
        *done = true;
        co_return false;
      }
      if (b.rate > 0) {
        next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
        timer.expires_at(next);
        co_await timer.async_wait(net::as_tuple(use_awaitable));
      }
      std::string piece;
      for (size_t k = i; k < std::min(tokens.size(), i + static_cast<size_t>(b.chunk_tokens)); ++k) {
        piece += b.stamp ? std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count()) +
                               "|"
                         : tokens[k];
      }
      if (!co_await send(content_event(id, created, b, piece))) co_return fail_abort();
      ++events;
    }
    if (!co_await send(chunk_json(id, created, b,
                                  R"([{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":")" +
                                      finish + R"(","stop_reason":null}])"))) {
      co_return fail_abort();
    }
    if (b.usage) {
      const size_t prompt_tokens = sluice::sim::tokenize(prompt).size();
      std::string usage = R"({"id":")" + id +
                          R"(","object":"chat.completion.chunk","created":)" +
                          std::to_string(created) + R"(,"model":)";
      sluice::append_json_string(usage, b.model);
      usage += R"(,"choices":[],"usage":{"prompt_tokens":)" + std::to_string(prompt_tokens) +
               R"(,"total_tokens":)" + std::to_string(prompt_tokens + tokens.size()) +
               R"(,"completion_tokens":)" + std::to_string(tokens.size()) + "}}";
      if (!co_await send("data: " + usage + "\n\n")) co_return fail_abort();
    }
    if (!co_await send("data: [DONE]\n\n")) co_return fail_abort();
    finish_probe();
    auto [ec, n] = co_await net::async_write(socket, http::make_chunk_last(),
                                             net::as_tuple(use_awaitable));
    if (ec) co_return fail_abort();
    ++stats_.completed;
    co_return keep;
  }

  void note_abort() {
    stats_.last_abort_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    ++stats_.aborted;
  }

  net::io_context& ioc_;
  Behaviour defaults_;
  Stats stats_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-upstream-sim: a SIMULATED OpenAI-compatible streaming upstream (vLLM format)"};
  Behaviour b;
  b.text =
      "Hello! You asked: \"{prompt}\". Sluice streams every token as it arrives. "
      "你好，欢迎使用 Sluice：答案会逐字流式传输。🚀✨ Have a nice day!";
  std::string listen = "127.0.0.1:8000";
  std::string port_file;
  int threads = 1;
  app.add_option("--listen", listen, "HOST:PORT (port 0 picks a free one)");
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  app.add_option("--threads", threads, "I/O threads");
  app.add_option("--text", b.text, "answer text; {prompt} is the last user message");
  app.add_option("--rate", b.rate, "tokens per second (0: as fast as possible)");
  app.add_option("--chunk-tokens", b.chunk_tokens, "tokens per SSE event")->check(CLI::Range(1, 1000));
  app.add_option("--status", b.status, "answer every request with this HTTP status");
  app.add_option("--drop-after", b.drop_after, "close the connection after N content events");
  app.add_option("--stall-after", b.stall_after, "stop sending after N content events");
  app.add_option("--first-delay-ms", b.first_delay_ms, "delay before the first content event");
  app.add_option("--tokens", b.tokens, "stop after N tokens with finish_reason \"length\"");
  app.add_option("--model", b.model, "model name in the chunks when the request names none");
  app.add_flag("--split-writes", b.split_writes, "write every event in 7-byte pieces");
  app.add_option("--random-split", b.random_split,
                 "write every event in pieces of 1 to 48 bytes, cut at random with this seed");
  app.add_flag("--stamp", b.stamp,
               "benchmarks: each token's text is its send time in steady-clock ns, then '|'");
  app.add_flag("!--no-usage", b.usage, "omit the usage chunk");
  CLI11_PARSE(app, argc, argv);

  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "--listen must be HOST:PORT\n";
    return 2;
  }
  net::io_context ioc(threads);
  tcp::acceptor acceptor(ioc);
  try {
    const tcp::endpoint ep(net::ip::make_address(listen.substr(0, colon)),
                           static_cast<uint16_t>(std::stoi(listen.substr(colon + 1))));
    acceptor.open(ep.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
  } catch (const std::exception& e) {
    std::cerr << "sluice-upstream-sim: cannot listen on " << listen << ": " << e.what() << "\n";
    return 1;
  }
  const auto port = acceptor.local_endpoint().port();
  std::cerr << "SIMULATOR: sluice-upstream-sim serving a simulated OpenAI-compatible stream "
               "(not a model) on http://"
            << listen.substr(0, colon) << ":" << port << "/v1\n";
  if (!port_file.empty()) sluice::write_port_file(port_file, port);

  Simulator sim(ioc, b);
  net::co_spawn(ioc, sim.listen(acceptor), net::detached);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { ioc.stop(); });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  return 0;
}
