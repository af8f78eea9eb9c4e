// The gateway's configuration: parsed and validated once at start-up into
// these immutable structs (see docs/configuration.md for every key).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

using Millis = std::chrono::milliseconds;

struct ServerConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  int threads = 0;  // 0: one per CPU core
  Millis drain_timeout{5000};
  // Browser origins allowed to connect ("https://shop.example"); empty: any.
  // Requests without an Origin header (non-browser clients) are not affected.
  std::vector<std::string> allowed_origins;
  // Behind a proxy (nginx): the client's address is the last one in
  // X-Forwarded-For (the address the proxy saw), not the proxy's.
  bool trust_x_forwarded_for = false;
};

// TLS on the listener: on when both files are set. PEM files; the
// certificate file may hold the chain after the leaf. Re-read on SIGHUP.
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string min_version = "1.2";  // "1.2" | "1.3"
  bool enabled() const { return !cert_file.empty(); }
};

struct LimitsConfig {
  size_t max_frame_bytes = 64 * 1024;
  size_t max_connections = 10000;
  size_t max_sessions_per_connection = 16;
  Millis idle_timeout{300'000};
  size_t send_queue_bytes = 1 << 20;
  // A reader whose send queue stays full this long is closed (4008); it can resume.
  Millis slow_consumer_timeout{30'000};
  size_t max_http_header_bytes = 8192;
  // Accepted connections that are not yet a WebSocket or a streaming answer
  // (idle keep-alive, slow request heads, TLS handshakes); past it a new
  // connection is closed at once.
  size_t max_pending_connections = 1024;
  uint32_t messages_per_second = 0;  // per connection, bursts of twice that; 0: unlimited
  // Per principal, counted once across WebSocket and HTTP; 0: unlimited.
  uint32_t principal_connections = 0;
  uint32_t principal_concurrent_turns = 0;
  uint32_t principal_turns_per_minute = 0;
  uint32_t principal_tokens_per_minute = 0;
};

struct ResumeConfig {
  Millis grace{600'000};      // a turn with nobody attached runs on this long
  Millis retention{600'000};  // finished turns and idle sessions stay resumable this long
  size_t memory_budget_bytes = size_t{256} << 20;  // journal memory over all sessions
};

// Where sessions and journals live: this process ("memory", the embedded
// default) or Redis, shared by every instance of a fleet (docs/scale-out.md).
struct StoreConfig {
  std::string backend = "memory";  // "memory" | "redis"
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::string redis_password;      // when set, overrides the URL's
  std::string key_prefix = "sluice";
  size_t stream_max_events = 100'000;  // per session: the stream's cap (MAXLEN ~)
  Millis lease{3000};              // an instance's hold on a running turn; lost after this long
  Millis write_timeout{10'000};    // a running answer waits this long for Redis, then ends (store_unavailable)
  Millis command_timeout{3000};    // a Redis connection with no reply this long is dropped and made again
  std::chrono::microseconds flush_interval{5000};  // under load, batches go to Redis at most this often
  size_t sessions_per_call = 64;   // the batches of this many sessions share one script call (1 for Redis Cluster)
  std::string instance_id;         // empty: host name, pid and a random suffix
  bool continue_taken_over_turns = true;  // false: a lost instance's turn ends with instance_lost
};

struct SessionConfig {
  size_t history_max_bytes = 64 * 1024;  // conversation sent upstream, oldest dropped first
};

struct StreamConfig {
  Millis coalesce{0};  // merge consecutive deltas within this window (0: every delta a frame)
};

struct OpenAiConfig {
  std::vector<std::string> urls{"http://127.0.0.1:8000/v1"};
  std::string model = "default";
  std::string api_key;
  // Members of a JSON object (without the braces) merged into every request.
  std::string extra_fields_json;
  std::vector<std::string> extra_field_names;  // keys of extra_fields_json
  Millis connect_timeout{3000};
  Millis first_token_timeout{30'000};
  Millis idle_timeout{30'000};
  int max_attempts = 3;
  Millis retry_backoff{100};
  int eject_after_failures = 2;
  Millis eject_duration{10'000};
  size_t max_event_bytes = 1 << 20;
  int shards = 0;  // curl multi handles; 0: one per I/O thread
};

// engine = "local": a GGUF model run in process.
struct LocalConfig {
  std::string model;               // the .gguf file
  std::string device = "cpu";      // cpu | cuda | auto (CUDA when a GPU is found, else the CPU)
  bool cuda_graphs = true;         // CUDA: decode steps replayed from a graph per batch-size bucket
  std::string cuda_prompt_gemm = "f32";  // CUDA: prompt tokens' GEMMs in f32 | bf16 (tensor cores)
  int threads = 0;                 // compute threads; 0: one per core
  int64_t context_length = 2048;   // positions per sequence (prompt + answer)
  int max_batch = 16;              // sequences decoding at once
  int64_t max_batch_tokens = 256;  // tokens per step (prefill is chunked to fit)
  int64_t kv_cache_mb = 0;         // 0: enough for max_batch full contexts
  std::string chat_format = "auto";  // auto | chatml | llama3 | llama2
  int max_tokens = 512;            // per answer, unless the client asks for fewer
  // No repetition penalty by default (as llama.cpp and vLLM): it pushes a
  // model away from tokens it must copy, such as an order number out of a
  // tool result, or the digits of "30" just after the "3".
  double temperature = 0.7, top_p = 0.95, repetition_penalty = 1.0;
  int top_k = 40;
};

struct ApiKeyEntry {
  std::string principal;
  std::string sha256_hex;  // SHA-256 of the key, lowercase hex: keys are never stored
};

struct AuthConfig {
  std::string mode = "none";  // "none" | "token"
  std::vector<ApiKeyEntry> api_keys;
  std::string jwt_hs256_secret;          // HS256 shared secret (or SLUICE_AUTH_JWT_HS256_SECRET)
  std::string jwt_rs256_public_key_file; // PEM public key for RS256
  std::string jwt_issuer;                // checked when set
  std::string jwt_audience;              // checked when set
  std::string jwt_principal_claim = "sub";
  Millis jwt_leeway{30'000};             // clock skew allowed on exp / nbf
  Millis hello_timeout{5000};  // a WebSocket without a token at the upgrade must send hello by then
};

// One plugin shared object to load ([[plugins]] in TOML).
struct PluginConfig {
  std::string path;                     // the .so; relative paths are from the working directory
  std::string on_error = "fail_start";  // "fail_start" | "skip": when it cannot be loaded
  bool fail_open = false;               // moderators: a failing call lets text through (default: stop)
  // Where its tools run: "process" (a sluice-plugin-host process of its own:
  // a crash or hang ends only that) or "in_process". Moderators run in the
  // gateway either way.
  std::string isolation = "process";
  // Where its moderators run: "in_process" (the default: they are called on
  // every piece of text) or "process" (with its tools, if any).
  std::string moderator_isolation = "in_process";
  std::string settings_json = "{}";     // [plugins.settings] as one JSON object
};

struct ModerationConfig {
  size_t max_hold_bytes = 1024;  // text a moderator may hold back before it must decide
  Millis max_hold{500};          // ... and for how long
  Millis process_timeout{1000};  // a moderator in its own process answers each call within this
};

struct ToolsConfig {
  int workers = 4;             // per plugin: threads running its tool calls (never the I/O threads)
  Millis timeout{5000};        // per call; past it the model is told the tool timed out
  int max_in_flight = 16;      // calls running at once per plugin; more are refused
  int max_rounds = 4;          // tool rounds per turn before the answer must be final
  int breaker_failures = 5;    // consecutive failures that open a plugin's breaker
  Millis breaker_cooldown{30'000};  // how long an open breaker refuses calls
  std::string host_binary;     // sluice-plugin-host; empty: the one beside the gateway's executable
  size_t process_memory_mb = 2048;  // a plugin host process's address space; 0: no cap
};

// Retrieval-augmented answers: before the first round of a turn the
// gateway asks the loaded plugins' retrievers for passages, journals them as
// one `sources` event and puts them into the prompt (docs/protocol.md,
// "Answers from a knowledge base").
struct RetrievalConfig {
  bool enabled = true;        // with no retriever loaded there is nothing to do either way
  int top_k = 3;              // passages put into the prompt and sent as sources
  Millis timeout{1500};       // for all retrievers of a turn; past it the answer goes on without them
  int context_messages = 4;   // earlier messages of the conversation a retriever sees
};

struct MetricsConfig {
  bool enabled = true;
  std::string listen_host;  // set: /metrics is served there only, not on server.listen
  uint16_t listen_port = 0;
};

// Static files (the chat widget) served at / from a directory, read once at
// start-up; "" serves none.
struct WebConfig {
  std::string root;
};

struct LogConfig {
  std::string level = "info";
  std::string format = "text";  // "text" | "json": the diagnostics on stderr
  bool access_log = true;
};

struct Config {
  ServerConfig server;
  TlsConfig tls;
  LimitsConfig limits;
  std::string engine = "openai";
  OpenAiConfig openai;
  LocalConfig local;
  ResumeConfig resume;
  StoreConfig store;
  SessionConfig session;
  StreamConfig stream;
  AuthConfig auth;
  std::vector<PluginConfig> plugins;
  ModerationConfig moderation;
  ToolsConfig tools;
  RetrievalConfig retrieval;
  MetricsConfig metrics;
  WebConfig web;
  LogConfig log;
};

// Where configuration comes from, in increasing priority: defaults, the
// TOML file, SLUICE_* environment variables, command-line flags.
struct ConfigSources {
  std::string file;                     // empty: `text`, or defaults only
  std::vector<std::string> env;         // "NAME=value" entries (environ)
  std::string listen;                   // --listen HOST:PORT
  std::string upstream;                 // --upstream URL[,URL...]
  std::string text;                     // TOML text, when no file is given (tests, fuzzing)
};

struct ConfigResult {
  bool ok = false;
  Config config;
  std::string error;  // "key: what is wrong; what is allowed"
};

ConfigResult load_config(const ConfigSources& sources);

// Settings that are valid but probably not meant, one sentence each (the
// gateway logs them at start; --check-config prints them).
std::vector<std::string> config_warnings(const Config& config);

// The environment variable that overrides `key` ("server.threads" ->
// "SLUICE_SERVER_THREADS").
std::string env_name_for_key(const std::string& key);

// Every key the configuration has, in the schema's order (`sluice
// --config-keys` prints them with their variables).
std::vector<std::string> config_keys();

}  // namespace sluice
