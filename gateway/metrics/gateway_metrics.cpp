#include "gateway/metrics/gateway_metrics.hpp"

#include <atomic>

namespace sluice::metrics {

namespace {
// Latency buckets in seconds: from a fast local token to a slow cold start.
const std::vector<double> kTtft = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const std::vector<double> kInterToken = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                         0.15, 0.2, 0.3, 0.5, 1, 2.5};
const std::vector<double> kTurn = {0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320};
const std::vector<double> kPlugin = {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                     0.1, 0.5, 1, 5};

std::atomic<GatewayMetrics*> g_active{nullptr};
}  // namespace

GatewayMetrics::GatewayMetrics(Registry& r)
    : registry(r),
      turns_active(r.gauge("sluice_turns_active", "Turns running now", {})),
      turns(r.counter("sluice_turns_total", "Turns ended, by engine and finish reason",
                      {"engine", "finish_reason"})),
      tokens(r.counter("sluice_tokens_streamed_total", "Output tokens streamed to clients, by engine",
                       {"engine"})),
      ttft(r.histogram("sluice_time_to_first_token_seconds",
                       "From the chat to the first token of the answer", {"engine"}, kTtft)),
      inter_token(r.histogram("sluice_inter_token_latency_seconds", "Time between two tokens of an answer",
                              {"engine"}, kInterToken)),
      turn_duration(r.histogram("sluice_turn_duration_seconds", "From the chat to the end of the turn",
                                {"engine"}, kTurn)),
      upstream_requests(r.counter("sluice_upstream_requests_total",
                                  "Requests sent to OpenAI-compatible upstreams, by endpoint", {"upstream"})),
      upstream_errors(r.counter("sluice_upstream_errors_total",
                                "Failed upstream attempts, by error code", {"reason"})),
      resumes(r.counter("sluice_resumes_total", "Resume requests, by result", {"result"})),
      takeovers(r.counter("sluice_turn_takeovers_total",
                          "Turns of a lost instance taken over by this one, by outcome", {"outcome"})),
      replayed_events(r.counter("sluice_replayed_events_total",
                                "Journal events sent again to resuming clients", {})),
      slow_consumer_closes(r.counter("sluice_slow_consumer_closes_total",
                                     "Clients closed for not reading (WebSocket 4008, HTTP streams)",
                                     {"face"})),
      send_queue_bytes(r.gauge("sluice_send_queue_bytes", "Bytes queued for WebSocket clients", {})),
      plugin_call_duration(r.histogram("sluice_plugin_call_duration_seconds",
                                       "Time in plugin calls, by plugin and hook", {"plugin", "hook"},
                                       kPlugin)),
      tool_calls(r.counter("sluice_tool_calls_total", "Tool calls, by tool and result", {"tool", "result"})),
      retrievals(r.counter("sluice_retrievals_total", "Retriever calls, by retriever and result",
                           {"retriever", "result"})),
      retrieval_turns(r.counter("sluice_retrieval_turns_total",
                                "Turns that asked the retrievers, by what the answer got: sources (passages "
                                "in the prompt), none (no passage found), failed (every retriever failed or "
                                "timed out)",
                                {"result"})),
      moderation_actions(r.counter("sluice_moderation_actions_total",
                                   "Moderation verdicts that changed an answer, by plugin and action",
                                   {"plugin", "action"})),
      connections_total(r.counter("sluice_connections_total", "Client connections accepted, by face",
                                  {"face"})),
      connections_refused(r.counter("sluice_connections_refused_total",
                                    "Connections turned away at accept or closed to make room, by "
                                    "reason (fd_exhausted, pending_limit, idle_evicted)",
                                    {"reason"})),
      build_info(r.gauge("sluice_build_info", "Always 1; the labels say which build runs", {"version"})),
      local_batch_size(r.gauge("sluice_local_batch_size", "Sequences in the local engine's last batching step", {})),
      local_kv_blocks_used(r.gauge("sluice_local_kv_blocks_used", "Local engine KV cache blocks in use (16 tokens each)", {})),
      local_kv_blocks_total(r.gauge("sluice_local_kv_blocks_capacity", "Local engine KV cache blocks in all", {})),
      local_steps(r.counter("sluice_local_steps_total", "Batching steps the local engine ran", {})) {
  // Unlabelled series exist from the start (0), as Prometheus expects.
  turns_active.get();
  replayed_events.get();
  send_queue_bytes.get();
  local_batch_size.get();
  local_kv_blocks_used.get();
  local_kv_blocks_total.get();
  local_steps.get();
}

FaceStats FaceStats::resolve() {
  if (GatewayMetrics* m = active()) {
    return {&m->send_queue_bytes.get(), &m->slow_consumer_closes.with({"websocket"}),
            &m->slow_consumer_closes.with({"http"}), &m->connections_total.with({"websocket"}),
            &m->connections_total.with({"http"})};
  }
  static Gauge unused_gauge;
  static Counter unused[4];
  return {&unused_gauge, &unused[0], &unused[1], &unused[2], &unused[3]};
}

GatewayMetrics* active() { return g_active.load(std::memory_order_acquire); }

GatewayMetrics& install() {
  static Registry registry;
  static GatewayMetrics metrics(registry);
  g_active.store(&metrics, std::memory_order_release);
  return metrics;
}

void uninstall_for_tests() { g_active.store(nullptr, std::memory_order_release); }

}  // namespace sluice::metrics
