// Tools that misbehave, for the tool runner's tests (built with the C++ SDK
// layer, as a third party would): one throws, one hangs past any deadline,
// one echoes its arguments, one echoes them after a nap (a kill can land
// while a tool runs).
#include <chrono>
#include <thread>

#include "sluice/plugin.hpp"

class TestTools {
 public:
  static constexpr const char* kName = "test_tools";
  static constexpr const char* kVersion = "0.1.0";
  static constexpr const char* kDescription = "misbehaving tools for tests";

  explicit TestTools(sluice::Context) {}

  static constexpr auto tools() {
    return std::array{
        sluice::tool<&TestTools::throws>("throws", "always throws", R"({"type":"object"})"),
        sluice::tool<&TestTools::hangs>("hangs", "never answers in time", R"({"type":"object"})"),
        sluice::tool<&TestTools::echo>(
            "echo", "returns its arguments",
            R"({"type":"object","properties":{"text":{"type":"string","maxLength":20}},"required":["text"]})"),
        sluice::tool<&TestTools::naps>("naps", "returns its arguments after 400 ms", R"({"type":"object"})"),
    };
  }

  void throws(std::string_view, sluice::ToolResult&) { throw std::runtime_error("disk on fire 🔥"); }

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
