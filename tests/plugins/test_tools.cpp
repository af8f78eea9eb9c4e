// Tools that misbehave, for the tool runner's tests (built with the C++ SDK
// layer, as a third party would): one throws, one hangs past any deadline,
// one echoes its arguments, one echoes them after a nap (a kill can land
// while a tool runs), one finds nothing (an answer), one's dependency is
// down, one returns no JSON. Built twice: as test_tools, and as
// test_tools_b (tools named b_*), a second plugin beside it.
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "sluice/plugin.hpp"

#ifdef TEST_TOOLS_B
#define TOOL(name) "b_" name
#define PLUGIN_NAME "test_tools_b"
#else
#define TOOL(name) name
#define PLUGIN_NAME "test_tools"
#endif

class TestTools {
 public:
  static constexpr const char* kName = PLUGIN_NAME;
  static constexpr const char* kVersion = "0.1.0";
  static constexpr const char* kDescription = "misbehaving tools for tests";

  explicit TestTools(sluice::Context ctx) : ctx_(ctx) {}

  static constexpr auto tools() {
    return std::array{
        sluice::tool<&TestTools::throws>(TOOL("throws"), "always throws", R"({"type":"object"})"),
        sluice::tool<&TestTools::hangs>(TOOL("hangs"), "never answers in time", R"({"type":"object"})"),
        sluice::tool<&TestTools::echo>(
            TOOL("echo"), "returns its arguments",
            R"({"type":"object","properties":{"text":{"type":"string","maxLength":20}},"required":["text"]})"),
        sluice::tool<&TestTools::naps>(TOOL("naps"), "returns its arguments after 400 ms", R"({"type":"object"})"),
        sluice::tool<&TestTools::missing>(TOOL("missing"), "finds no such city", R"({"type":"object"})"),
        sluice::tool<&TestTools::down>(TOOL("down"), "its weather service is down", R"({"type":"object"})"),
        sluice::tool<&TestTools::bad_json>(TOOL("bad_json"), "answers with no JSON", R"({"type":"object"})"),
        // ABI 1.1: a deadline of its own (300 ms), and a tool that works
        // until it is told its call was abandoned.
        sluice::tool<&TestTools::patient>(TOOL("patient"), "works until told to stop", R"({"type":"object"})", 300),
        // Only for sluice-plugin-check and out-of-process hosts: in process
        // they take the whole gateway down.
        sluice::tool<&TestTools::crashes>(TOOL("crashes"), "dereferences a null pointer", R"({"type":"object"})"),
        sluice::tool<&TestTools::exits>(TOOL("exits"), "calls exit(1)", R"({"type":"object"})"),
        sluice::tool<&TestTools::aborts>(TOOL("aborts"), "calls abort()", R"({"type":"object"})"),
        sluice::tool<&TestTools::spins>(TOOL("spins"), "loops for ever", R"({"type":"object"})"),
        sluice::tool<&TestTools::sleeps>(TOOL("sleeps"), "sleeps 30 s", R"({"type":"object"})"),
        sluice::tool<&TestTools::hogs>(TOOL("hogs"), "allocates until it cannot", R"({"type":"object"})"),
        sluice::tool<&TestTools::prints>(TOOL("prints"), "writes to stdout and stderr", R"({"type":"object"})"),
        sluice::tool<&TestTools::huge>(TOOL("huge"), "answers 1 MiB of JSON", R"({"type":"object"})"),
    };
  }

  void throws(std::string_view, sluice::ToolResult&) { throw std::runtime_error("disk on fire 🔥"); }

  void missing(std::string_view, sluice::ToolResult&) {
    throw sluice::ToolError(SLUICE_ERR_NOT_FOUND, "no city named 亚特兰蒂斯");
  }

  void down(std::string_view, sluice::ToolResult&) {
    throw sluice::ToolError(SLUICE_ERR_UNAVAILABLE, "the weather service is down");
  }

  void patient(std::string_view, sluice::ToolResult& result) {
    const auto left = result.time_left().count();
    const auto start = std::chrono::steady_clock::now();
    while (!result.cancelled() && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    // Winds down after the deadline (so its late result is surely the one dropped).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ctx_.info("patient: " + std::to_string(left) + " ms left at the start, told to stop after " +
              std::to_string(ms.count() / 100 * 100) + "+ ms, " + std::to_string(result.time_left().count()) +
              " ms left");
    result.set_json(R"({"late":true})");
  }

  void crashes(std::string_view, sluice::ToolResult& result) {
    volatile int* nowhere = nullptr;
    result.set_json(std::to_string(*nowhere));
  }

  [[noreturn]] void exits(std::string_view, sluice::ToolResult&) { std::exit(1); }
  [[noreturn]] void aborts(std::string_view, sluice::ToolResult&) { std::abort(); }

  void sleeps(std::string_view, sluice::ToolResult& result) {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    result.set_json(R"({"woke":true})");
  }

  [[noreturn]] void spins(std::string_view, sluice::ToolResult&) {
    volatile unsigned long n = 0;
    for (;;) n = n + 1;
  }

  // Touches every page it gets, 16 MiB at a time, up to 64 GiB.
  void hogs(std::string_view, sluice::ToolResult& result) {
    std::vector<std::unique_ptr<char[]>> held;
    for (int i = 0; i < 4096; ++i) {
      held.emplace_back(new char[16 << 20]);
      std::memset(held.back().get(), 1, 16 << 20);
    }
    result.set_json(std::to_string(held.size()));
  }

  void prints(std::string_view, sluice::ToolResult& result) {
    std::printf("printed by a plugin on stdout\n");
    std::fflush(stdout);
    std::fprintf(stderr, "printed by a plugin on stderr\n");
    result.set_json(R"({"printed":true})");
  }

  void huge(std::string_view, sluice::ToolResult& result) {
    result.set_json("\"" + std::string(1 << 20, 'x') + "\"");
  }

  void bad_json(std::string_view, sluice::ToolResult& result) { result.set_json("{\"temp\": 21,"); }

  void hangs(std::string_view, sluice::ToolResult& result) {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    result.set_json(R"({"late":true})");
  }

  void naps(std::string_view args, sluice::ToolResult& result) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    result.set_json(args);
  }

  void echo(std::string_view args, sluice::ToolResult& result) {
    result.set_json(args);
    result.add_source("Echo 回声", "https://example.com/echo", "what you said");
  }
 private:
  sluice::Context ctx_;
};

SLUICE_PLUGIN(TestTools)
