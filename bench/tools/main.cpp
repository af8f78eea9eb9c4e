// sluice-tool-bench: the round trip of one tool call through the gateway's
// ToolRunner (schema check, the plugin's queue and worker, the result's
// checks, the callback on the caller's strand), with the plugin's tools in
// the gateway's process and in a sluice-plugin-host process of their own.
// Calls go one at a time (latency, not throughput). Prints a table.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>

#include "gateway/plugin/loaded_plugin.hpp"
#include "gateway/plugin/plugin_process.hpp"
#include "gateway/plugin/tool_runner.hpp"

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p / 100 * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-tool-bench: tool call round trip, in process and out of process"};
  std::string plugin_path = SLUICE_BENCH_ECHO;
  std::string host_binary = SLUICE_PLUGIN_HOST_BIN;
  int calls = 2000;
  app.add_option("--plugin", plugin_path, "the plugin (one tool named echo)");
  app.add_option("--host-binary", host_binary, "sluice-plugin-host");
  app.add_option("--calls", calls, "calls per mode");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string error;
  auto plugin = sluice::LoadedPlugin::load(plugin_path, "{}", error);
  if (!plugin) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  sluice::PluginProcess process({host_binary, plugin_path, "{}", plugin->name(), 4, 0});
  if (!process.start(error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  boost::asio::io_context ioc;
  auto guard = boost::asio::make_work_guard(ioc);
  std::thread io([&] { ioc.run(); });
  auto strand = boost::asio::make_strand(ioc.get_executor());
  const std::string args = R"({"text":"你好，工具 🚀","n":42})";

  std::printf("| tools run | calls | round trip p50 (µs) | p99 (µs) | max (µs) |\n|---|---:|---:|---:|---:|\n");
  for (const bool isolated : {false, true}) {
    std::unordered_map<const sluice::LoadedPlugin*, sluice::PluginProcess*> processes;
    if (isolated) processes[plugin.get()] = &process;
    sluice::ToolsConfig config;
    config.max_in_flight = 1000;
    sluice::ToolRunner runner({plugin.get()}, config, processes);
    std::vector<double> us;
    for (int i = 0; i < calls + 100; ++i) {
      std::promise<bool> done;
      const auto t0 = std::chrono::steady_clock::now();
      runner.run({"c" + std::to_string(i), "echo", args}, strand,
                 [&](sluice::ToolOutcome o) { done.set_value(o.ok); });
      if (!done.get_future().get()) {
        std::fprintf(stderr, "a call failed\n");
        return 1;
      }
      if (i >= 100) {  // the first ones warm up
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
    }
    std::printf("| %s | %d | %.1f | %.1f | %.1f |\n", isolated ? "in their own process" : "in the gateway's process",
                calls, percentile(us, 50), percentile(us, 99), percentile(us, 100));
  }
  guard.reset();
  ioc.stop();
  io.join();
  process.stop();
  return 0;
}
