// Tools that misbehave, for the tool runner's tests (built with the C++ SDK
// layer, as a third party would): one throws, one hangs past any deadline,
// one echoes its arguments, one echoes them after a nap (a kill can land
// while a tool runs), one finds nothing (an answer), one's dependency is
// down, one returns no JSON. Built twice: as test_tools, and as
// test_tools_b (tools named b_*), a second plugin beside it.
#include <chrono>
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

  explicit TestTools(sluice::Context) {}

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
    };
  }

  void throws(std::string_view, sluice::ToolResult&) { throw std::runtime_error("disk on fire 🔥"); }

  void missing(std::string_view, sluice::ToolResult&) {
    throw sluice::ToolError(SLUICE_ERR_NOT_FOUND, "no city named 亚特兰蒂斯");
  }

  void down(std::string_view, sluice::ToolResult&) {
    throw sluice::ToolError(SLUICE_ERR_UNAVAILABLE, "the weather service is down");
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
};

SLUICE_PLUGIN(TestTools)
