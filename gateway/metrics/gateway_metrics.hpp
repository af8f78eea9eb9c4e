// The gateway's metrics (docs/metrics.md lists them): one registry for the
// process, reached through active(), which is null when metrics.enabled is
// false so that every update costs one branch then.
//
// Label values are bounded sets (engines, finish reasons, error codes,
// plugin and tool names from the config): never a session id or user text.
#pragma once

#include <string_view>

#include "gateway/metrics/registry.hpp"

namespace sluice::metrics {

struct GatewayMetrics {
  explicit GatewayMetrics(Registry& r);

  Registry& registry;
  Family<Gauge>& turns_active;
  Family<Counter>& turns;                 // engine, finish_reason
  Family<Counter>& tokens;                // engine
  Family<Histogram>& ttft;                // engine
  Family<Histogram>& inter_token;         // engine
  Family<Histogram>& turn_duration;       // engine
  Family<Counter>& upstream_requests;     // upstream
  Family<Counter>& upstream_errors;       // reason
  Family<Counter>& resumes;               // result
  Family<Counter>& takeovers;             // outcome: continued, ended (a lost instance's turn)
  Family<Counter>& replayed_events;
  Family<Counter>& slow_consumer_closes;  // face
  Family<Gauge>& send_queue_bytes;
  Family<Histogram>& plugin_call_duration;  // plugin, hook
  Family<Counter>& tool_calls;            // tool, result
  Family<Counter>& retrievals;            // retriever, result (ok, timeout, ..., as tools)
  Family<Counter>& retrieval_turns;       // result: sources (passages found), none, failed
  Family<Counter>& moderation_actions;    // plugin, action
  Family<Counter>& connections_total;     // face
  Family<Counter>& connections_refused;   // reason: fd_exhausted, pending_limit, idle_evicted
  Family<Gauge>& build_info;              // version
  Family<Gauge>& local_batch_size;        // sequences in the local engine's last step
  Family<Gauge>& local_kv_blocks_used;
  Family<Gauge>& local_kv_blocks_total;
  Family<Counter>& local_steps;           // batching steps run
};

// The metrics a client face updates per frame, resolved once (when the
// server starts) and injected into the connections, as Envoy does with its
// stats structs: an update is one relaxed atomic operation, never a lookup.
// With metrics off they point at children of no registry.
struct FaceStats {
  Gauge* send_queue_bytes;
  Counter* slow_consumer_closes_ws;
  Counter* slow_consumer_closes_http;
  Counter* connections_ws;
  Counter* connections_http;

  static FaceStats resolve();
};

// The process's metrics; null while disabled (or before install()).
GatewayMetrics* active();
// Makes the process registry and its gateway metrics (metrics.enabled).
GatewayMetrics& install();
void uninstall_for_tests();

}  // namespace sluice::metrics
