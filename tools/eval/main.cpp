// sluice-eval: runs a question set through a running gateway over WebSocket
// and scores the answers: retrieval recall@1 and @3 (the turn's `sources`
// against the expected passages), citation accuracy (every [n] the answer
// cites is an expected passage), fact accuracy (the answer holds every
// fact), language match, tool-call argument accuracy, and TTFT and tokens/s
// (p50, p99). It prints a table (by language and in all) and, with
// --require, exits 2 when a figure is below its threshold.
//
// The question set is JSON lines (eval/demo-shop.jsonl):
//   {"id": "en-ship-001", "language": "en", "kind": "kb", "question": "...",
//    "history": ["earlier question", ...], "expected_sources": ["en/shipping#..."],
//    "facts": ["9 to 12 business days"],
//    "tool_call": null | {"name": "lookup_order", "arguments": {"order_id": "B7777"}}}
// Each item is a new session: its history questions are asked first (their
// answers are not scored), then its question.
//
//   sluice-eval --url ws://127.0.0.1:8080/v1/ws --questions eval/demo-shop.jsonl -j 4
//       [--require recall@3=0.93,citation=0.88,facts=0.88,language=0.97,tool_args=1]
//       [--failures failures.jsonl] [--answers answers.jsonl] [--api-key KEY]
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gateway/common/json_writer.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using net::awaitable;
using net::use_awaitable;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Item {
  std::string id, language, kind, question;
  std::vector<std::string> history, expected, facts;
  std::string tool_name, tool_args;  // args minified; empty: no call expected
};

struct Outcome {
  std::vector<std::string> sources;  // the retrieval sources' ids, in order
  std::string text;
  std::vector<std::pair<std::string, std::string>> calls;  // name, minified arguments
  double ttft_ms = -1, tokens_per_s = -1;
  std::string finish, error;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> strings(simdjson::dom::element e) {
  std::vector<std::string> out;
  simdjson::dom::array a;
  if (e.get(a) != simdjson::SUCCESS) return out;
  for (auto v : a) {
    std::string_view s;
    if (v.get(s) == simdjson::SUCCESS) out.emplace_back(s);
  }
  return out;
}

std::vector<Item> load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<Item> items;
  simdjson::dom::parser parser;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    simdjson::dom::element d;
    if (parser.parse(line).get(d) != simdjson::SUCCESS) {
      throw std::runtime_error(path + ":" + std::to_string(n) + ": not JSON");
    }
    Item it;
    std::string_view s;
    if (d["question"].get(s) != simdjson::SUCCESS) throw std::runtime_error(path + ":" + std::to_string(n) + ": no question");
    it.question = s;
    if (d["id"].get(s) == simdjson::SUCCESS) it.id = s;
    if (d["language"].get(s) == simdjson::SUCCESS) it.language = s;
    if (d["kind"].get(s) == simdjson::SUCCESS) it.kind = s;
    it.history = strings(d["history"]);
    it.expected = strings(d["expected_sources"]);
    it.facts = strings(d["facts"]);
    simdjson::dom::object call;
    if (d["tool_call"].get(call) == simdjson::SUCCESS) {
      if (call["name"].get(s) == simdjson::SUCCESS) it.tool_name = s;
      simdjson::dom::element args;
      if (call["arguments"].get(args) == simdjson::SUCCESS) it.tool_args = simdjson::minify(args);
    }
    items.push_back(std::move(it));
  }
  return items;
}

// The answer's language: Chinese when CJK characters make up a good part of it.
std::string language_of(std::string_view text) {
  size_t cjk = 0, latin = 0;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0xE3 && c <= 0xE9 && i + 2 < text.size()) {  // U+3000..U+9FFF: CJK, kana, full-width punctuation
      ++cjk;
      i += 3;
      continue;
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ++latin;
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  }
  return cjk > 0 && cjk * 3 >= latin ? "zh" : "en";
}

// The numbers the answer cites: [1], [1][3], [1, 3].
std::vector<int> citations(const std::string& text) {
  std::vector<int> out;
  for (size_t i = 0; (i = text.find('[', i)) != std::string::npos; ++i) {
    const size_t close = text.find(']', i);
    if (close == std::string::npos || close - i > 16) continue;
    std::vector<int> nums;
    int cur = -1;
    bool ok = true;
    for (size_t k = i + 1; k < close && ok; ++k) {
      const char c = text[k];
      if (c >= '0' && c <= '9') {
        cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
      } else if (c == ',' || c == ' ') {
        if (cur >= 0) nums.push_back(cur);
        cur = -1;
      } else {
        ok = false;
      }
    }
    if (cur >= 0) nums.push_back(cur);
    if (ok && !nums.empty()) out.insert(out.end(), nums.begin(), nums.end());
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

struct Target {
  std::string host, port, path, api_key;
};

Target parse_url(const std::string& url) {
  Target t;
  std::string rest = url;
  if (rest.rfind("ws://", 0) == 0) rest = rest.substr(5);
  const auto slash = rest.find('/');
  const std::string hostport = rest.substr(0, slash);
  t.path = slash == std::string::npos ? "/v1/ws" : rest.substr(slash);
  const auto colon = hostport.rfind(':');
  t.host = hostport.substr(0, colon);
  t.port = colon == std::string::npos ? "80" : hostport.substr(colon + 1);
  return t;
}

std::string chat_json(const std::string& input, const std::string& session_id) {
  sluice::JsonWriter w;
  w.begin_object().field("type", "chat").field("input", input);
  if (!session_id.empty()) w.field("session_id", session_id);
  return w.end_object().take();
}

// One item: a session of its own, its history first, then its question.
awaitable<Outcome> ask(const Target& t, const Item& item, std::chrono::seconds timeout) {
  Outcome o;
  auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  websocket::stream<beast::tcp_stream> ws(ex);
  auto results = co_await resolver.async_resolve(t.host, t.port, use_awaitable);
  beast::get_lowest_layer(ws).expires_after(timeout);
  co_await beast::get_lowest_layer(ws).async_connect(results, use_awaitable);
  if (!t.api_key.empty()) {
    ws.set_option(websocket::stream_base::decorator(
        [key = t.api_key](websocket::request_type& req) { req.set(beast::http::field::authorization, "Bearer " + key); }));
  }
  co_await ws.async_handshake(t.host + ":" + t.port, t.path, use_awaitable);
  ws.text(true);
  simdjson::dom::parser parser;
  beast::flat_buffer buffer;
  std::string session;
  std::vector<std::string> asks = item.history;
  asks.push_back(item.question);
  for (size_t turn = 0; turn < asks.size(); ++turn) {
    const bool scored = turn + 1 == asks.size();
    const auto sent = Clock::now();
    Clock::time_point first{};
    beast::get_lowest_layer(ws).expires_after(timeout);
    co_await ws.async_write(net::buffer(chat_json(asks[turn], session)), use_awaitable);
    for (;;) {
      beast::get_lowest_layer(ws).expires_after(timeout);
      co_await ws.async_read(buffer, use_awaitable);
      const std::string raw = beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      simdjson::dom::element f;
      if (parser.parse(raw).get(f) != simdjson::SUCCESS) continue;
      std::string_view type, s;
      if (f["type"].get(type) != simdjson::SUCCESS) continue;
      if (type == "session" && f["session_id"].get(s) == simdjson::SUCCESS) session = s;
      if (!scored) {
        if (type == "done") break;
        if (type == "error" && f["offset"].error()) {
          o.error = "refused: " + raw;
          co_return o;
        }
        continue;
      }
      if (type == "delta" && f["text"].get(s) == simdjson::SUCCESS) {
        if (o.text.empty()) first = Clock::now();
        o.text.append(s);
      } else if (type == "sources") {
        std::string_view origin;
        if (f["origin"].get(origin) == simdjson::SUCCESS && origin == "retrieval") {
          simdjson::dom::array items;
          if (f["items"].get(items) == simdjson::SUCCESS) {
            for (auto i : items) {
              if (i["id"].get(s) == simdjson::SUCCESS) o.sources.emplace_back(s);
            }
          }
        }
      } else if (type == "tool_call") {
        std::string_view name;
        simdjson::dom::element args;
        if (f["name"].get(name) == simdjson::SUCCESS && f["arguments"].get(args) == simdjson::SUCCESS) {
          o.calls.emplace_back(std::string(name), simdjson::minify(args));
        }
      } else if (type == "error") {
        if (f["message"].get(s) == simdjson::SUCCESS) o.error = s;
        if (f["offset"].error()) co_return o;  // refused, no turn
      } else if (type == "done") {
        if (f["finish_reason"].get(s) == simdjson::SUCCESS) o.finish = s;
        int64_t tokens = 0;
        const auto end = Clock::now();
        using Ms = std::chrono::duration<double, std::milli>;
        if (first != Clock::time_point{}) {
          o.ttft_ms = Ms(first - sent).count();
          const double gen = Ms(end - first).count() / 1000;
          if (f["usage"]["completion_tokens"].get(tokens) == simdjson::SUCCESS && gen > 0 && tokens > 1) {
            o.tokens_per_s = static_cast<double>(tokens - 1) / gen;
          }
        }
        break;
      }
    }
  }
  beast::error_code ec;
  ws.next_layer().socket().close(ec);
  co_return o;
}

// Hits and questions of one figure.
struct Ratio {
  int hit = 0, n = 0;
  void add(bool ok) {
    hit += ok;
    ++n;
  }
  double value() const { return n ? static_cast<double>(hit) / n : -1; }
};

struct Scores {
  Ratio recall1, recall3, citation, facts, language, tool_args, order_in_answer, no_citation;
  std::vector<double> ttft, tps;
};

// Scores `o` for `item` into `s`; the reasons it failed, if any.
std::vector<std::string> score(const Item& item, const Outcome& o, Scores& s) {
  std::vector<std::string> why;
  auto check = [&](Ratio& r, bool ok, const char* name) {
    r.add(ok);
    if (!ok) why.emplace_back(name);
  };
  if (!o.error.empty()) why.push_back("error: " + o.error);
  auto expected = [&](const std::string& id) {
    return std::find(item.expected.begin(), item.expected.end(), id) != item.expected.end();
  };
  if (!item.expected.empty()) {
    check(s.recall1, !o.sources.empty() && expected(o.sources[0]), "recall@1");
    bool in3 = false;
    for (size_t i = 0; i < o.sources.size() && i < 3; ++i) in3 = in3 || expected(o.sources[i]);
    check(s.recall3, in3, "recall@3");
    const auto cited = citations(o.text);
    bool ok = !cited.empty();
    for (int n : cited) ok = ok && n >= 1 && static_cast<size_t>(n) <= o.sources.size() && expected(o.sources[n - 1]);
    check(s.citation, ok, "citation");
  }
  if (!item.facts.empty()) {
    const std::string text = lower(o.text);
    bool all = true;
    for (const auto& f : item.facts) all = all && text.find(lower(f)) != std::string::npos;
    check(s.facts, all, "facts");
  }
  if (!item.language.empty()) check(s.language, language_of(o.text) == item.language, "language");
  if (!item.tool_name.empty()) {
    bool ok = false;
    for (const auto& [name, args] : o.calls) ok = ok || (name == item.tool_name && args == item.tool_args);
    check(s.tool_args, ok, "tool_args");
  }
  if (item.kind == "off_topic" || item.kind == "smalltalk" || item.kind == "no_answer") {
    check(s.no_citation, citations(o.text).empty(), "cited although nothing applies");
  }
  if (o.ttft_ms >= 0) s.ttft.push_back(o.ttft_ms);
  if (o.tokens_per_s >= 0) s.tps.push_back(o.tokens_per_s);
  return why;
}

std::string cell(const Ratio& r) {
  if (r.n == 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f (%d/%d)", r.value(), r.hit, r.n);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-eval: scores a running gateway's answers on a question set"};
  std::string url = "ws://127.0.0.1:8080/v1/ws", questions = "eval/demo-shop.jsonl", require, failures, answers,
              api_key;
  int jobs = 4, limit = 0, timeout_s = 120;
  app.add_option("--url", url, "the gateway's WebSocket endpoint");
  app.add_option("--questions", questions, "the question set (JSON lines)");
  app.add_option("-j,--jobs", jobs, "questions asked at once")->check(CLI::Range(1, 256));
  app.add_option("--limit", limit, "only the first N questions (0: all)");
  app.add_option("--timeout", timeout_s, "seconds without a frame before a question fails");
  app.add_option("--require", require,
                 "thresholds, e.g. recall@3=0.93,citation=0.88,facts=0.88,language=0.97,tool_args=1: exit 2 below one");
  app.add_option("--failures", failures, "write the failed questions, with their answers, to this JSON-lines file");
  app.add_option("--answers", answers, "write every question, with its answer and failed checks, to this JSON-lines file");
  app.add_option("--api-key", api_key, "sent as Authorization: Bearer");
  CLI11_PARSE(app, argc, argv);

  std::vector<Item> items;
  try {
    items = load(questions);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-eval: %s\n", e.what());
    return 1;
  }
  if (limit > 0 && static_cast<size_t>(limit) < items.size()) items.resize(static_cast<size_t>(limit));
  Target target = parse_url(url);
  target.api_key = api_key;
  std::vector<Outcome> outcomes(items.size());
  std::atomic<size_t> next{0};
  net::io_context ioc;
  const auto started = Clock::now();
  for (int w = 0; w < jobs; ++w) {
    net::co_spawn(
        ioc,
        [&]() -> awaitable<void> {
          for (size_t i; (i = next++) < items.size();) {
            try {
              outcomes[i] = co_await ask(target, items[i], std::chrono::seconds(timeout_s));
            } catch (const std::exception& e) {
              outcomes[i].error = e.what();
            }
          }
        },
        net::detached);
  }
  ioc.run();
  const double wall = std::chrono::duration<double>(Clock::now() - started).count();

  std::map<std::string, Scores> by;  // "en", "zh", "all"
  std::ofstream fail_out, all_out;
  if (!failures.empty()) fail_out.open(failures);
  if (!answers.empty()) all_out.open(answers);
  int failed = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    score(items[i], outcomes[i], by["all"]);
    const auto why = score(items[i], outcomes[i], by[items[i].language.empty() ? "?" : items[i].language]);
    failed += !why.empty();
    const bool to_failures = fail_out.is_open() && !why.empty();
    if (!all_out.is_open() && !to_failures) continue;
    sluice::JsonWriter w;
    w.begin_object().field("id", items[i].id).field("question", items[i].question).key("why").begin_array();
    for (const auto& y : why) w.value(y);
    w.end_array().key("sources").begin_array();
    for (const auto& s : outcomes[i].sources) w.value(s);
    w.end_array().key("expected").begin_array();
    for (const auto& s : items[i].expected) w.value(s);
    w.end_array().field("answer", outcomes[i].text);
    if (!outcomes[i].calls.empty()) w.field("call", outcomes[i].calls[0].second);
    const std::string line = w.end_object().take() + "\n";
    if (all_out.is_open()) all_out << line;
    if (to_failures) fail_out << line;
  }
  std::vector<std::string> columns;
  for (const char* k : {"en", "zh", "?", "all"}) {
    if (by.count(k)) columns.push_back(k);
  }
  std::printf("sluice-eval: %zu questions from %s against %s, %d at once, %.0f s; %d with a failed check\n\n",
              items.size(), questions.c_str(), url.c_str(), jobs, wall, failed);
  std::printf("| metric |");
  for (const auto& c : columns) std::printf(" %s |", c.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < columns.size(); ++i) std::printf("---:|");
  std::printf("\n");
  const std::vector<std::pair<std::string, Ratio Scores::*>> rows = {
      {"retrieval recall@1", &Scores::recall1}, {"retrieval recall@3", &Scores::recall3},
      {"citation accuracy", &Scores::citation}, {"fact accuracy", &Scores::facts},
      {"language match", &Scores::language},    {"tool-call arguments exact", &Scores::tool_args},
      {"no citation where none applies", &Scores::no_citation}};
  for (const auto& [name, member] : rows) {
    std::printf("| %s |", name.c_str());
    for (const auto& c : columns) std::printf(" %s |", cell(by[c].*member).c_str());
    std::printf("\n");
  }
  for (const auto& [name, p, tps] : std::vector<std::tuple<std::string, double, bool>>{
           {"TTFT p50 (ms)", 50, false}, {"TTFT p99 (ms)", 99, false}, {"tokens/s p50", 50, true}, {"tokens/s p99", 99, true}}) {
    std::printf("| %s |", name.c_str());
    for (const auto& c : columns) std::printf(" %.1f |", percentile(tps ? by[c].tps : by[c].ttft, p));
    std::printf("\n");
  }

  // --require name=value,...: exit 2 when a figure (over all questions) is below.
  const std::map<std::string, Ratio Scores::*> names = {
      {"recall@1", &Scores::recall1}, {"recall@3", &Scores::recall3}, {"citation", &Scores::citation},
      {"facts", &Scores::facts},      {"language", &Scores::language}, {"tool_args", &Scores::tool_args},
      {"no_citation", &Scores::no_citation}};
  int below = 0;
  std::stringstream spec(require);
  for (std::string pair; std::getline(spec, pair, ',');) {
    const auto eq = pair.find('=');
    const auto it = eq == std::string::npos ? names.end() : names.find(pair.substr(0, eq));
    if (it == names.end()) {
      std::fprintf(stderr, "sluice-eval: --require %s: unknown (one of recall@1, recall@3, citation, facts, language, "
                           "tool_args, no_citation)\n", pair.c_str());
      return 1;
    }
    const double want = std::stod(pair.substr(eq + 1));
    const double got = (by["all"].*(it->second)).value();
    if (got < want) {
      std::printf("BELOW: %s %.3f < %.3f\n", it->first.c_str(), got, want);
      ++below;
    }
  }
  return below ? 2 : 0;
}
