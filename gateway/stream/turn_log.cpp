#include "gateway/stream/turn_log.hpp"

#include <chrono>
#include <ctime>

#include "gateway/common/json_writer.hpp"
#include "gateway/common/logging.hpp"

namespace sluice {

std::string format_turn_log(const TurnLogEntry& e) {
  const std::string ts = utc_timestamp(std::chrono::system_clock::now());

  const TurnResult& r = *e.result;
  JsonWriter w;
  w.begin_object()
      .field("ts", ts)
      .field("event", "turn")
      .field("trace_id", e.trace_id)
      .field("session_id", e.session_id)
      .field("principal", e.principal);
  if (!e.request_id.empty()) w.field("request_id", e.request_id);
  if (!e.client.empty()) w.field("client", e.client);
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
      .field("finish_reason", to_string(r.finish_reason));
  if (r.error) w.field("error", to_string(r.error->code));
  w.field("client_gone", e.client_gone)
      .field("disconnects", e.disconnects)
      .field("resumes", e.resumes);
  return w.end_object().take();
}

}  // namespace sluice
