#include "gateway/common/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace sluice {
namespace {
std::atomic<bool> g_access_enabled{false};

spdlog::logger& access_logger() {
  // Created on first use; spdlog loggers are thread-safe (_mt sinks).
  static auto logger = [] {
    auto l = std::make_shared<spdlog::logger>(
        "access", std::make_shared<spdlog::sinks::stdout_sink_mt>());
    l->set_pattern("%v");
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return *logger;
}
}  // namespace

bool init_logging(std::string_view level, bool access_log_enabled) {
  const auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::default_logger();
  logger->sinks().clear();
  logger->sinks().push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  g_access_enabled = access_log_enabled;
  return true;
}

void write_access_line(std::string_view json_line) {
  if (!g_access_enabled.load(std::memory_order_relaxed)) return;
  access_logger().info("{}", json_line);
}

}  // namespace sluice
