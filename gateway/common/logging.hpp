// Process-wide logging: diagnostics go to stderr through spdlog's default
// logger; one JSON line per finished turn goes to the access log on stdout.
// Both are asynchronous (a bounded queue and one logging thread) and
// thread-safe: no I/O thread waits on a slow terminal or pipe.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <string>
#include <string_view>

namespace sluice {

// Returns false if `level` is not a spdlog level name. `json`: diagnostics as
// one JSON object per line ({"ts","level","msg"}) instead of text.
bool init_logging(std::string_view level, bool access_log_enabled, bool json = false);

// Writes one line, as is, to the access log (no-op when disabled).
void write_access_line(std::string_view json_line);

// "2026-11-21T07:03:10.123Z" (UTC, milliseconds), as every log line writes it.
std::string utc_timestamp(std::chrono::system_clock::time_point t);

// Flushes and stops logging; call once before exit.
void shutdown_logging();

}  // namespace sluice
