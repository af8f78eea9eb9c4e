// The plugin the tool-call bench calls: one tool that answers its arguments.
#include "sluice/plugin.hpp"

class BenchEcho {
 public:
  static constexpr const char* kName = "bench_echo";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription = "answers its arguments (tool-call bench)";
  explicit BenchEcho(sluice::Context) {}
  static constexpr auto tools() {
    return std::array{sluice::tool<&BenchEcho::echo>("echo", "answers its arguments", R"({"type":"object"})")};
  }
  void echo(std::string_view args, sluice::ToolResult& result) { result.set_json(args); }
};

SLUICE_PLUGIN(BenchEcho)
