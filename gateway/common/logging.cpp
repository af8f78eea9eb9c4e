#include "gateway/common/logging.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gateway/common/json_writer.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace sluice {
namespace {
std::atomic<bool> g_access_enabled{false};
std::shared_ptr<spdlog::logger> g_access;

// I/O threads never wait on a slow stdout or stderr: lines go through a
// bounded queue to one logging thread; when it is full the oldest lines are
// dropped rather than blocking.
constexpr size_t kQueueLines = 16384;

// {"ts":"2026-11-21T07:03:10.123Z","level":"info","msg":"..."}: one object a line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string ts = utc_timestamp(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string line = R"({"ts":")" + ts + R"(","level":")" +
                       std::string(level.data(), level.size()) + R"(","msg":)";
    append_json_string(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};
}  // namespace

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  const size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ms.count() % 1000));
  return ts;
}

bool init_logging(std::string_view level, bool access_log_enabled, bool json) {
  const auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  spdlog::init_thread_pool(kQueueLines, 1);
  auto diag = std::make_shared<spdlog::async_logger>(
      "sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>(), spdlog::thread_pool(),
      spdlog::async_overflow_policy::overrun_oldest);
  if (json) {
    diag->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    diag->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
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
  // spdlog::shutdown() flushes both queues, drops the loggers from its
  // registry and then joins the logging thread. Both loggers are held here
  // until that join, so they are destroyed after the thread's last line,
  // never beside it.
  const std::shared_ptr<spdlog::logger> diag = spdlog::default_logger();
  spdlog::shutdown();
  g_access.reset();
}

}  // namespace sluice
