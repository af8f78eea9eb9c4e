#include "gateway/stream/turn_log.hpp"

#include <chrono>
#include <ctime>

#include "gateway/common/json_writer.hpp"

namespace sluice {

std::string format_turn_log(const TurnLogEntry& e) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  const size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ms.count() % 1000));

  const TurnResult& r = *e.result;
  JsonWriter w;
  w.begin_object()
      .field("ts", ts)
      .field("event", "turn")
      .field("trace_id", e.trace_id)
      .field("session_id", e.session_id)
      .field("principal", e.principal);
  if (!e.request_id.empty()) w.field("request_id", e.request_id);
  w.field("engine", r.engine).field("upstream", r.upstream).field("model", e.model);
  w.field("attempts", r.attempts).field("input_bytes", static_cast<uint64_t>(e.input_bytes));
  if (e.ttft_ms >= 0) {
    w.field("ttft_ms", e.ttft_ms);
  } else {
    w.key("ttft_ms").null();
  }
  w.field("duration_ms", e.duration_ms)
      .field("output_tokens", r.usage.completion_tokens)
      .field("output_tokens_reported", r.has_usage)
      .field("output_bytes", static_cast<uint64_t>(e.output_bytes))
      .field("finish_reason", r.finish_reason);
  if (r.error) w.field("error", to_string(r.error->code));
  w.field("client_gone", e.client_gone)
      .field("disconnects", e.disconnects)
      .field("resumes", e.resumes);
  return w.end_object().take();
}

}  // namespace sluice
