// sluice-plugin-check: loads a plugin the way the gateway does, validates it
// against plugin ABI v1, lists its tools, moderators and retrievers, runs its
// self-test and, when asked, calls a tool, pushes text through its
// moderators or asks its retrievers, so that an author can test a plugin
// offline:
//
//   sluice-plugin-check weather.so --settings '{"api":"..."}' \
//       --call get_weather '{"city":"北京"}' --moderate "text to moderate" --split 3
//   sluice-plugin-check knowledge_base.so --settings '{"folder":"kb/demo-shop"}' --retrieve "怎么退货？"
//
// A tool call runs in a child process with a deadline (--timeout-ms), as a
// crash, an abort, an exit or a hang of the plugin must not be mistaken for
// an answer: each is reported as a failure naming the signal or the time.
// Exit status 0 when all is well (a not_found or invalid_argument status is
// an answer, and counts as well), 1 with the reason otherwise.
#include <CLI/CLI.hpp>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>

#include "gateway/common/utf8.hpp"
#include "gateway/plugin/host_protocol.hpp"
#include "gateway/plugin/json_schema.hpp"
#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/moderation_chain.hpp"

namespace {

namespace hp = sluice::hostproto;
constexpr size_t kMaxResultBytes = hp::kMaxResultBytes;  // as the gateway's tool runner

const char* status_name(int32_t s) {
  switch (s) {
    case SLUICE_OK: return "ok";
    case SLUICE_ERR_INVALID_ARGUMENT: return "invalid_argument";
    case SLUICE_ERR_NOT_FOUND: return "not_found";
    case SLUICE_ERR_UNAVAILABLE: return "unavailable";
    default: return "internal";
  }
}

struct Called {
  int32_t status = SLUICE_ERR_INTERNAL;
  sluice_tool_result result;
  size_t json_size = 0;
};

// Runs the tool in a child; nullopt (with `why`) when the child did not answer.
// `invoke` runs the tool (or the retriever) on the result object it is given.
std::optional<Called> call_in_child(const std::function<int32_t(sluice_tool_result*)>& invoke,
                                    std::chrono::milliseconds timeout, std::string& why) {
  int fds[2];
  if (pipe(fds) != 0) {
    why = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    why = std::string("fork: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (pid == 0) {
    close(fds[0]);
    sluice_tool_result r;
    r.deadline = std::chrono::steady_clock::now() + timeout;
    const int32_t status = invoke(&r);
    // The plugin host's result message (host_protocol.hpp), whole: the checker sees what the gateway would.
    hp::Writer w(hp::kResult);
    const bool too_big = r.json.size() > hp::kMaxResultBytes;  // travels without it, as from a host process
    w.u64(0).i32(status).str(too_big ? std::string_view() : std::string_view(r.json)).u64(r.json.size());
    w.str(r.error).u32(static_cast<uint32_t>(r.sources.size()));
    for (const auto& s : r.sources) w.str(s.title).str(s.url).str(s.snippet);
    w.u32(static_cast<uint32_t>(r.passages.size()));
    for (const auto& p : r.passages) w.str(p.id).str(p.title).str(p.url).str(p.text).f64(p.score).str(p.metadata_json);
    if (!hp::write_frame(fds[1], w.payload())) _exit(3);
    spdlog::default_logger()->flush();  // what the plugin logged
    std::fflush(nullptr);
    _exit(0);  // no atexit handlers or destructors of the parent's objects
  }
  close(fds[1]);
  std::string frame;
  const auto started = std::chrono::steady_clock::now();
  const bool answered = hp::read_frame(fds[0], frame, static_cast<int>(timeout.count()));
  const bool timed_out = !answered && std::chrono::steady_clock::now() - started >= timeout;
  close(fds[0]);
  if (timed_out) kill(pid, SIGKILL);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (timed_out) {
    why = "did not answer within " + std::to_string(timeout.count()) + " ms (a hang, or too slow: --timeout-ms)";
    return std::nullopt;
  }
  if (WIFSIGNALED(wstatus)) {
    const int sig = WTERMSIG(wstatus);
    why = std::string("crashed: killed by signal ") + std::to_string(sig) + " (" + sigdescr_np(sig) + ")";
    return std::nullopt;
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) {
    why = "exited the process (exit status " + std::to_string(WEXITSTATUS(wstatus)) + ")";
    return std::nullopt;
  }
  Called c;
  hp::Reader in(frame);
  uint8_t type = 0;
  uint64_t id = 0, size = 0;
  uint32_t count = 0;
  if (!answered || !in.u8(type) || !in.u64(id) || !in.i32(c.status) || !in.str(c.result.json) || !in.u64(size) ||
      !in.str(c.result.error) || !in.u32(count)) {
    why = "exited the process during the call (exit status 0)";
    return std::nullopt;
  }
  c.json_size = size;
  for (uint32_t i = 0; i < count; ++i) {
    sluice_tool_result::Source s;
    if (!in.str(s.title) || !in.str(s.url) || !in.str(s.snippet)) break;
    c.result.sources.push_back(std::move(s));
  }
  if (in.u32(count)) {
    for (uint32_t i = 0; i < count; ++i) {
      sluice_tool_result::Passage p;
      if (!in.str(p.id) || !in.str(p.title) || !in.str(p.url) || !in.str(p.text) || !in.f64(p.score) ||
          !in.str(p.metadata_json)) {
        break;
      }
      c.result.passages.push_back(std::move(p));
    }
  }
  return c;
}

// --call: true when the tool answered (a result, or a status that is an answer).
bool check_call(const sluice::LoadedPlugin& plugin, const std::string& name, const std::string& args,
                std::chrono::milliseconds timeout) {
  const sluice_tool_v1* tool = nullptr;
  for (const auto* t : plugin.tools()) {
    if (name == t->name) tool = t;
  }
  if (!tool) {
    std::fprintf(stderr, "FAIL there is no tool named %s\n", name.c_str());
    return false;
  }
  if (auto why = sluice::check_json_schema(tool->parameters_schema_json, args); !why.empty()) {
    std::fprintf(stderr, "FAIL call %s: the arguments break its schema (the gateway would not call it): %s\n",
                 name.c_str(), why.c_str());
    return false;
  }
  std::string why;
  const auto started = std::chrono::steady_clock::now();
  auto called = call_in_child(
      [&](sluice_tool_result* r) { return tool->invoke(plugin.instance(), {args.data(), args.size()}, r); }, timeout,
      why);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (!called) {
    std::fprintf(stderr, "FAIL call %s %s\n", name.c_str(), why.c_str());
    return false;
  }
  const sluice_tool_result& r = called->result;
  if (called->status != SLUICE_OK) {
    const bool answer = called->status == SLUICE_ERR_NOT_FOUND || called->status == SLUICE_ERR_INVALID_ARGUMENT;
    std::fprintf(answer ? stdout : stderr, "%s call %s status %s (%.1f ms): %s\n", answer ? "answer" : "FAIL",
                 name.c_str(), status_name(called->status), ms, r.error.empty() ? "(no message)" : r.error.c_str());
    if (answer) std::printf("            (an answer the model reads, not a failure)\n");
    return answer;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element parsed;
  if (called->json_size > kMaxResultBytes) {
    std::fprintf(stderr, "FAIL call %s: the result is %zu bytes, over the gateway's 64 KiB\n", name.c_str(),
                 called->json_size);
    return false;
  }
  if (r.json.empty()) {
    std::fprintf(stderr, "FAIL call %s: status ok but no result (result_set_json was not called)\n", name.c_str());
    return false;
  }
  if (const auto e = parser.parse(r.json).get(parsed); e != simdjson::SUCCESS) {
    std::fprintf(stderr, "FAIL call %s: the result is not JSON (%s): %s\n", name.c_str(),
                 simdjson::error_message(e), r.json.substr(0, 200).c_str());
    return false;
  }
  std::printf("call        %s (%.1f ms) -> %s\n", name.c_str(), ms, simdjson::minify(parsed).c_str());
  for (const auto& s : r.sources) {
    if (!sluice::valid_utf8(s.title) || !sluice::valid_utf8(s.url) || !sluice::valid_utf8(s.snippet)) {
      std::fprintf(stderr, "FAIL call %s: a source is not UTF-8 (the gateway would blank it)\n", name.c_str());
      return false;
    }
    std::printf("            source \"%s\" <%s> %s\n", s.title.c_str(), s.url.c_str(), s.snippet.c_str());
  }
  return true;
}

// --retrieve: asks every retriever of the plugin (in a child process) and
// checks the passages as the gateway would.
bool check_retrieve(const sluice::LoadedPlugin& plugin, const std::string& query, std::chrono::milliseconds timeout) {
  if (plugin.retrievers().empty()) {
    std::fprintf(stderr, "FAIL plugin %s has no retrievers\n", plugin.name().c_str());
    return false;
  }
  std::string request = R"({"query":)";
  request += "\"";
  for (char c : query) request += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  request += R"(","conversation":[],"top_k":3})";
  bool ok = true;
  for (const auto* retriever : plugin.retrievers()) {
    std::string why;
    const auto started = std::chrono::steady_clock::now();
    auto called = call_in_child(
        [&](sluice_tool_result* r) { return retriever->retrieve(plugin.instance(), {request.data(), request.size()}, r); },
        timeout, why);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (!called) {
      std::fprintf(stderr, "FAIL retrieve %s %s\n", retriever->name, why.c_str());
      ok = false;
      continue;
    }
    if (called->status != SLUICE_OK) {
      std::fprintf(stderr, "FAIL retrieve %s status %s (%.1f ms): %s (the answer would go on without it)\n",
                   retriever->name, status_name(called->status), ms, called->result.error.c_str());
      ok = false;
      continue;
    }
    std::printf("retrieve    %s (%.1f ms): %zu passages\n", retriever->name, ms, called->result.passages.size());
    simdjson::dom::parser parser;
    for (const auto& p : called->result.passages) {
      simdjson::dom::element meta;
      const bool valid = !p.id.empty() && !p.text.empty() && sluice::valid_utf8(p.id) && sluice::valid_utf8(p.text) &&
                         sluice::valid_utf8(p.title) && sluice::valid_utf8(p.url) &&
                         (p.metadata_json.empty() ||
                          (parser.parse(p.metadata_json).get(meta) == simdjson::SUCCESS && meta.is_object()));
      size_t cut = std::min<size_t>(p.text.size(), 100);
      while (cut < p.text.size() && cut > 0 && (static_cast<unsigned char>(p.text[cut]) & 0xC0) == 0x80) --cut;
      std::printf("            %.3f %s \"%s\" <%s> %s%s\n", p.score, p.id.c_str(), p.title.c_str(), p.url.c_str(),
                  p.text.substr(0, cut).c_str(), cut < p.text.size() ? "..." : "");
      if (!valid) {
        std::fprintf(stderr, "FAIL retrieve %s: passage %s has no id or text, text that is not UTF-8, or metadata "
                             "that is not a JSON object (the gateway drops it)\n",
                     retriever->name, p.id.c_str());
        ok = false;
      }
    }
  }
  return ok;
}

// --moderate: the text in pieces of `split` bytes (whole characters)
// through every moderator of the plugin, chained, as the gateway does.
bool check_moderate(const sluice::LoadedPlugin& plugin, const std::string& text, size_t split) {
  if (!sluice::valid_utf8(text)) {
    std::fprintf(stderr, "FAIL --moderate: the text is not UTF-8\n");
    return false;
  }
  std::vector<sluice::ModerationChain::Stage> stages;
  for (const auto* m : plugin.moderators()) stages.push_back({&plugin, m, false});
  if (stages.empty()) {
    std::fprintf(stderr, "FAIL --moderate: plugin %s has no moderator\n", plugin.name().c_str());
    return false;
  }
  sluice::ModerationChain chain(std::move(stages), {});
  std::vector<sluice::ModerationOutput> out;
  size_t pieces = 0;
  for (size_t pos = 0; pos < text.size() && !chain.stopped(); ++pieces) {
    size_t n = std::min(split, text.size() - pos);
    while (pos + n < text.size() && (static_cast<unsigned char>(text[pos + n]) & 0xC0) == 0x80) ++n;
    chain.feed(std::string_view(text).substr(pos, n), out);
    pos += n;
  }
  if (!chain.stopped()) chain.finish(out);
  std::string released;
  bool ok = true;
  for (const auto& o : out) {
    switch (o.kind) {
      case sluice::ModerationOutput::Kind::kText: released += o.text; break;
      case sluice::ModerationOutput::Kind::kNotice:
        std::printf("moderation  %s by %s: %s\n", o.action.c_str(), o.plugin.c_str(), o.reason.c_str());
        break;
      case sluice::ModerationOutput::Kind::kStop:
        std::printf("moderation  stop by %s: %s\n", o.plugin.c_str(), o.reason.c_str());
        if (o.reason == "moderation_error") ok = false;
        break;
    }
  }
  std::printf("moderated   %zu pieces of at most %zu bytes -> \"%s\"%s\n", pieces, split, released.c_str(),
              chain.stopped() ? " (the answer stops here)" : "");
  if (!ok) std::fprintf(stderr, "FAIL --moderate: a moderator failed (the gateway fails closed)\n");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-plugin-check: validate a Sluice plugin (.so), run its self-test, call its tools and "
               "moderators offline"};
  std::string path;
  std::string settings = "{}";
  std::string settings_file;
  std::vector<std::string> call;
  std::string moderate;
  size_t split = 4;
  int timeout_ms = 5000;
  app.add_option("plugin", path, "the plugin shared object")->required();
  app.add_option("--settings", settings, "the plugin's settings as a JSON object");
  app.add_option("--settings-file", settings_file, "... or read them from this file")
      ->check(CLI::ExistingFile);
  app.add_option("--call", call, "TOOL ARGS_JSON: calls the tool (in a child process) and validates its result")
      ->expected(2);
  app.add_option("--moderate", moderate, "TEXT: pushes the text through the plugin's moderators");
  std::string retrieve;
  app.add_option("--retrieve", retrieve, "QUESTION: asks the plugin's retrievers (in a child process)");
  app.add_option("--split", split, "with --moderate: the size of each piece, in bytes (whole characters)")
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout-ms", timeout_ms, "with --call: the deadline (the gateway's tools.timeout_ms)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  if (!settings_file.empty()) {
    std::ifstream f(settings_file);
    std::stringstream ss;
    ss << f.rdbuf();
    settings = ss.str();
  }
  // The plugin's log lines on stderr, beside the failures.
  spdlog::set_default_logger(spdlog::stderr_color_st("plugin"));
  spdlog::set_pattern("%l: %v");
  // A path without a slash would be searched in the library path by dlopen.
  if (path.find('/') == std::string::npos) path = "./" + path;

  std::string error;
  auto plugin = sluice::LoadedPlugin::load(path, settings, error);
  if (!plugin) {
    std::fprintf(stderr, "FAIL %s\n", error.c_str());
    return 1;
  }
  const uint32_t abi = plugin->abi_version();
  std::printf("plugin      %s %s (ABI %u.%u)\n", plugin->name().c_str(), plugin->version().c_str(),
              SLUICE_ABI_MAJOR_OF(abi), SLUICE_ABI_MINOR_OF(abi));
  std::printf("description %s\n", plugin->description().c_str());
  for (const auto* t : plugin->tools()) {
    std::printf("tool        %s: %s\n            parameters %s\n", t->name,
                t->description ? t->description : "", t->parameters_schema_json);
  }
  for (const auto* m : plugin->moderators()) std::printf("moderator   %s\n", m->name);
  for (const auto* r : plugin->retrievers()) {
    std::printf("retriever   %s: %s\n", r->name, r->description ? r->description : "");
  }
  if (plugin->tools().empty() && plugin->moderators().empty() && plugin->retrievers().empty()) {
    std::fprintf(stderr, "FAIL plugin %s offers no tools, moderators or retrievers\n", plugin->name().c_str());
    return 1;
  }
  if (!plugin->self_test(error)) {
    std::fprintf(stderr, "FAIL plugin %s: %s\n", plugin->name().c_str(), error.c_str());
    return 1;
  }
  bool ok = true;
  if (!call.empty()) ok = check_call(*plugin, call[0], call[1], std::chrono::milliseconds(timeout_ms)) && ok;
  if (!moderate.empty()) ok = check_moderate(*plugin, moderate, split) && ok;
  if (!retrieve.empty()) ok = check_retrieve(*plugin, retrieve, std::chrono::milliseconds(timeout_ms)) && ok;
  for (const auto& [name, value] : plugin->counters()) std::printf("counter     %s = %g\n", name.c_str(), value);
  if (!ok) return 1;
  std::printf("OK\n");
  return 0;
}
