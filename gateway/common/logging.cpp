#include "gateway/common/logging.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>

namespace sluice {
namespace {
std::atomic<bool> g_access_enabled{false};
std::shared_ptr<spdlog::logger> g_access;

// I/O threads never wait on a slow stdout or stderr: lines go through a
// bounded queue to one logging thread; when it is full the oldest lines are
// dropped rather than blocking.
constexpr size_t kQueueLines = 16384;
}  // namespace

bool init_logging(std::string_view level, bool access_log_enabled) {
  const auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  spdlog::init_thread_pool(kQueueLines, 1);
  auto diag = std::make_shared<spdlog::async_logger>(
      "sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  diag->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  diag->set_level(lvl);
  diag->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(diag);

  g_access = std::make_shared<spdlog::async_logger>(
      "access", std::make_shared<spdlog::sinks::stdout_sink_mt>(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  g_access->set_pattern("%v");
  g_access->flush_on(spdlog::level::info);
  g_access_enabled = access_log_enabled;
  return true;
}

void write_access_line(std::string_view json_line) {
  if (!g_access_enabled.load(std::memory_order_relaxed) || !g_access) return;
  g_access->info("{}", json_line);
}

void shutdown_logging() {
  g_access_enabled = false;
  spdlog::shutdown();  // flushes both queues and joins the logging thread
  g_access.reset();
}

}  // namespace sluice
