// Loads Config from defaults, a TOML file, SLUICE_* environment variables and
// command-line flags. One schema table drives all three sources, so a key has
// the same name, type and range wherever it is set.
#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include "gateway/common/json_writer.hpp"
#include "gateway/config/config.hpp"

namespace sluice {
namespace {

using Apply = std::function<std::string(const toml::node&, Config&)>;

struct Option {
  std::string key;
  Apply apply;  // returns an error sentence, or "" on success
};

std::string describe(const toml::node& n) {
  std::ostringstream os;
  if (n.is_string()) {
    os << '"' << n.as_string()->get() << '"';
  } else if (n.is_table()) {
    os << "a table";
  } else if (n.is_array()) {
    os << "an array";
  } else {
    n.visit([&](const auto& v) { os << v; });
  }
  return os.str();
}

// An integer key within [min, max], stored as T (an integer type or a
// duration); `what` names the unit in the error.
template <typename T, typename Access>
Option ranged(std::string key, int64_t min, int64_t max, std::string what, Access access) {
  return {key, [=](const toml::node& n, Config& c) -> std::string {
            // is_integer() first: value<int64_t>() of a float casts it,
            // which is undefined behaviour past the range of int64_t.
            const auto v = n.is_integer() ? n.value<int64_t>() : std::nullopt;
            if (!v || *v < min || *v > max) {
              return "must be " + what + " from " + std::to_string(min) + " to " +
                     std::to_string(max) + " (got " + describe(n) + ")";
            }
            access(c) = T(*v);
            return {};
          }};
}

template <typename T, typename Access>
Option integer(std::string key, int64_t min, int64_t max, Access access) {
  return ranged<T>(std::move(key), min, max, "an integer", access);
}

template <typename Access>
Option millis(std::string key, int64_t min, int64_t max, Access access) {
  return ranged<Millis>(std::move(key), min, max, "a number of milliseconds", access);
}

// A number (integer or float) within [min, max].
template <typename Access>
Option real(std::string key, double min, double max, Access access) {
  return {key, [=](const toml::node& n, Config& c) -> std::string {
            const auto v = n.value<double>();
            if (!(n.is_floating_point() || n.is_integer()) || !v || *v < min || *v > max) {
              std::ostringstream os;
              os << "must be a number from " << min << " to " << max << " (got " << describe(n) << ")";
              return os.str();
            }
            access(c) = *v;
            return {};
          }};
}

template <typename Access>
Option boolean(std::string key, Access access) {
  return {key, [=](const toml::node& n, Config& c) -> std::string {
            if (!n.is_boolean()) return "must be true or false (got " + describe(n) + ")";
            access(c) = n.as_boolean()->get();
            return {};
          }};
}

template <typename Access>
Option string(std::string key, Access access) {
  return {key, [=](const toml::node& n, Config& c) -> std::string {
            if (!n.is_string()) return "must be a string (got " + describe(n) + ")";
            access(c) = n.as_string()->get();
            return {};
          }};
}

template <typename Access>
Option one_of(std::string key, std::vector<std::string> allowed, Access access) {
  return {key, [=](const toml::node& n, Config& c) -> std::string {
            const auto v = n.value<std::string>();
            if (!n.is_string() || std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
              std::string list;
              for (const auto& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
              return "must be one of " + list + " (got " + describe(n) + ")";
            }
            access(c) = *v;
            return {};
          }};
}

bool parse_listen(const std::string& s, std::string& host, uint16_t& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return false;
    host = host.substr(1, host.size() - 2);
  }
  const auto digits = s.substr(colon + 1);
  if (digits.size() > 5 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return false;
  const long p = std::stol(digits);
  if (p > 65535) return false;
  port = static_cast<uint16_t>(p);
  return true;
}

std::string normalize_url(std::string url, std::string& error) {
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    error = "must be an http:// or https:// base URL such as http://127.0.0.1:8000/v1 (got \"" +
            url + "\")";
    return {};
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// A list of strings, given as a TOML array or as one comma-separated string
// (the form environment variables and flags use); `what` names the items.
std::string read_string_list(const toml::node& n, std::string_view what,
                             std::vector<std::string>& out) {
  if (const auto* s = n.as_string()) {
    std::stringstream ss(s->get());
    for (std::string part; std::getline(ss, part, ',');) {
      if (!part.empty()) out.push_back(part);
    }
    return {};
  }
  const auto* arr = n.as_array();
  if (!arr) return "must be a list of " + std::string(what) + " strings (got " + describe(n) + ")";
  for (const auto& e : *arr) {
    if (!e.is_string()) {
      return "must be a list of " + std::string(what) + " strings (got " + describe(e) + ")";
    }
    out.push_back(e.as_string()->get());
  }
  return {};
}

Option urls_option(std::string key) {
  return {key, [](const toml::node& n, Config& c) -> std::string {
            std::vector<std::string> raw;
            if (auto err = read_string_list(n, "URL", raw); !err.empty()) return err;
            if (raw.empty()) return "must name at least one upstream base URL";
            std::vector<std::string> out;
            for (auto& u : raw) {
              std::string error;
              out.push_back(normalize_url(u, error));
              if (!error.empty()) return error;
            }
            c.openai.urls = std::move(out);
            return {};
          }};
}

Option origins_option() {
  return {"server.allowed_origins", [](const toml::node& n, Config& c) -> std::string {
            std::vector<std::string> out;
            if (auto err = read_string_list(n, "origin", out); !err.empty()) return err;
            for (auto& o : out) {
              while (!o.empty() && o.back() == '/') o.pop_back();
              if (o != "*" && o.rfind("http://", 0) != 0 && o.rfind("https://", 0) != 0) {
                return "entries must be origins such as \"https://shop.example\" (got \"" + o +
                       "\")";
              }
            }
            c.server.allowed_origins = std::move(out);
            return {};
          }};
}

Option api_keys_option() {
  return {"auth.api_keys", [](const toml::node& n, Config& c) -> std::string {
            const auto* arr = n.as_array();
            if (!arr) return "must be a list of {principal, sha256} tables";
            std::vector<ApiKeyEntry> keys;
            for (const auto& e : *arr) {
              const auto* t = e.as_table();
              const auto principal = t ? t->get_as<std::string>("principal") : nullptr;
              const auto hash = t ? t->get_as<std::string>("sha256") : nullptr;
              if (!principal || !hash || t->size() != 2) {
                return "each entry must be {principal = \"name\", sha256 = \"<64 hex digits>\"}";
              }
              std::string hex = hash->get();
              std::transform(hex.begin(), hex.end(), hex.begin(), ::tolower);
              if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
                return "sha256 must be 64 hex digits (sha256sum of the key), for principal \"" +
                       principal->get() + "\"";
              }
              if (principal->get().empty()) return "principal must not be empty";
              keys.push_back({principal->get(), hex});
            }
            c.auth.api_keys = std::move(keys);
            return {};
          }};
}

Option listen_option(std::string key = "server.listen") {
  const bool metrics = key == "metrics.listen";
  return {key, [metrics](const toml::node& n, Config& c) -> std::string {
            const auto v = n.value<std::string>();
            if (metrics && v && v->empty()) {
              c.metrics.listen_host.clear();
              return {};
            }
            auto& host = metrics ? c.metrics.listen_host : c.server.listen_host;
            auto& port = metrics ? c.metrics.listen_port : c.server.listen_port;
            if (!n.is_string() || !parse_listen(*v, host, port)) {
              return "must be HOST:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\" (got " +
                     describe(n) + ")";
            }
            return {};
          }};
}

// Writes a TOML value as compact JSON; dates and times have no JSON form.
std::string to_json(const toml::node& n, JsonWriter& w) {
  if (const auto* t = n.as_table()) {
    w.begin_object();
    for (const auto& [k, v] : *t) {
      w.key(k.str());
      if (auto err = to_json(v, w); !err.empty()) return err;
    }
    w.end_object();
  } else if (const auto* a = n.as_array()) {
    w.begin_array();
    for (const auto& v : *a) {
      if (auto err = to_json(v, w); !err.empty()) return err;
    }
    w.end_array();
  } else if (const auto* s = n.as_string()) {
    w.value(std::string_view(s->get()));
  } else if (const auto* i = n.as_integer()) {
    w.value(static_cast<int64_t>(i->get()));
  } else if (const auto* f = n.as_floating_point()) {
    w.value(f->get());
  } else if (const auto* b = n.as_boolean()) {
    w.value(b->get());
  } else {
    return "dates and times cannot be sent as JSON (got " + describe(n) + ")";
  }
  return {};
}

Option extra_option() {
  return {"openai.extra", [](const toml::node& n, Config& c) -> std::string {
            const auto* t = n.as_table();
            if (!t) return "must be a table of extra request fields (got " + describe(n) + ")";
            c.openai.extra_field_names.clear();
            for (const auto& [k, v] : *t) {
              c.openai.extra_field_names.emplace_back(k.str());
              const std::string_view name = k.str();
              if (name == "model" || name == "messages" || name == "stream" ||
                  name == "stream_options") {
                return "may not set \"" + std::string(name) +
                       "\": the gateway sets it for every request";
              }
            }
            JsonWriter w;
            if (auto err = to_json(*t, w); !err.empty()) return err;
            // Keep only the members: the gateway splices them into its own object.
            const std::string& json = w.str();
            c.openai.extra_fields_json = json.substr(1, json.size() - 2);
            return {};
          }};
}

Option plugins_option() {
  return {"plugins", [](const toml::node& n, Config& c) -> std::string {
            const auto* arr = n.as_array();
            if (!arr) return "must be a list of [[plugins]] tables (got " + describe(n) + ")";
            std::vector<PluginConfig> out;
            for (const auto& e : *arr) {
              const auto* t = e.as_table();
              if (!t) return "each entry must be a table with at least path = \"...\"";
              PluginConfig p;
              for (const auto& [k, v] : *t) {
                const std::string_view key = k.str();
                if (key == "path" && v.is_string()) {
                  p.path = v.as_string()->get();
                } else if (key == "on_error" && v.is_string() &&
                           (v.as_string()->get() == "fail_start" || v.as_string()->get() == "skip")) {
                  p.on_error = v.as_string()->get();
                } else if (key == "fail_open" && v.is_boolean()) {
                  p.fail_open = v.as_boolean()->get();
                } else if (key == "isolation" && v.is_string() &&
                           (v.as_string()->get() == "process" || v.as_string()->get() == "in_process")) {
                  p.isolation = v.as_string()->get();
                } else if (key == "moderator_isolation" && v.is_string() &&
                           (v.as_string()->get() == "process" || v.as_string()->get() == "in_process")) {
                  p.moderator_isolation = v.as_string()->get();
                } else if (key == "settings" && v.is_table()) {
                  JsonWriter w;
                  if (auto err = to_json(v, w); !err.empty()) return "settings: " + err;
                  p.settings_json = w.take();
                } else {
                  return "\"" + std::string(key) + "\" = " + describe(v) +
                         " is not a plugin setting (path = \"FILE.so\", on_error = \"fail_start\" | "
                         "\"skip\", fail_open = true | false, isolation and moderator_isolation = \"process\" | \"in_process\", "
                         "[plugins.settings] table)";
                }
              }
              if (p.path.empty()) return "each entry needs path = \"FILE.so\"";
              out.push_back(std::move(p));
            }
            c.plugins = std::move(out);
            return {};
          }};
}

const std::vector<Option>& schema() {
  constexpr int64_t kMaxI = std::numeric_limits<int32_t>::max();
  static const std::vector<Option> options = {
      listen_option(),
      origins_option(),
      integer<int>("server.threads", 0, 256, [](Config& c) -> int& { return c.server.threads; }),
      boolean("server.trust_x_forwarded_for",
              [](Config& c) -> bool& { return c.server.trust_x_forwarded_for; }),
      string("tls.cert_file", [](Config& c) -> std::string& { return c.tls.cert_file; }),
      string("tls.key_file", [](Config& c) -> std::string& { return c.tls.key_file; }),
      one_of("tls.min_version", {"1.2", "1.3"}, [](Config& c) -> std::string& { return c.tls.min_version; }),
      millis("server.drain_timeout_ms", 0, 600'000,
             [](Config& c) -> Millis& { return c.server.drain_timeout; }),
      integer<size_t>("limits.max_frame_bytes", 256, 64 << 20,
                      [](Config& c) -> size_t& { return c.limits.max_frame_bytes; }),
      integer<size_t>("limits.max_connections", 1, 1'000'000,
                      [](Config& c) -> size_t& { return c.limits.max_connections; }),
      integer<size_t>("limits.max_sessions_per_connection", 1, 4096,
                      [](Config& c) -> size_t& { return c.limits.max_sessions_per_connection; }),
      millis("limits.idle_timeout_ms", 1000, 86'400'000,
             [](Config& c) -> Millis& { return c.limits.idle_timeout; }),
      integer<size_t>("limits.send_queue_bytes", 4096, 1 << 30,
                      [](Config& c) -> size_t& { return c.limits.send_queue_bytes; }),
      millis("limits.slow_consumer_timeout_ms", 100, 3'600'000,
             [](Config& c) -> Millis& { return c.limits.slow_consumer_timeout; }),
      millis("resume.grace_ms", 0, 86'400'000, [](Config& c) -> Millis& { return c.resume.grace; }),
      millis("resume.retention_ms", 100, 7 * 86'400'000LL,
             [](Config& c) -> Millis& { return c.resume.retention; }),
      integer<size_t>("resume.memory_budget_bytes", 1 << 16, int64_t{1} << 40,
                      [](Config& c) -> size_t& { return c.resume.memory_budget_bytes; }),
      one_of("store.backend", {"memory", "redis"}, [](Config& c) -> std::string& { return c.store.backend; }),
      string("store.redis_url", [](Config& c) -> std::string& { return c.store.redis_url; }),
      string("store.redis_password", [](Config& c) -> std::string& { return c.store.redis_password; }),
      string("store.key_prefix", [](Config& c) -> std::string& { return c.store.key_prefix; }),
      integer<size_t>("store.stream_max_events", 16, 100'000'000,
                      [](Config& c) -> size_t& { return c.store.stream_max_events; }),
      millis("store.lease_ms", 300, 600'000, [](Config& c) -> Millis& { return c.store.lease; }),
      millis("store.write_timeout_ms", 100, 3'600'000, [](Config& c) -> Millis& { return c.store.write_timeout; }),
      millis("store.command_timeout_ms", 100, 600'000, [](Config& c) -> Millis& { return c.store.command_timeout; }),
      ranged<std::chrono::microseconds>("store.flush_interval_us", 0, 100'000, "a number of microseconds",
                                        [](Config& c) -> std::chrono::microseconds& { return c.store.flush_interval; }),
      integer<size_t>("store.sessions_per_call", 1, 1024, [](Config& c) -> size_t& { return c.store.sessions_per_call; }),
      string("store.instance_id", [](Config& c) -> std::string& { return c.store.instance_id; }),
      boolean("store.continue_taken_over_turns",
              [](Config& c) -> bool& { return c.store.continue_taken_over_turns; }),
      integer<size_t>("session.history_max_bytes", 256, 64 << 20,
                      [](Config& c) -> size_t& { return c.session.history_max_bytes; }),
      millis("stream.coalesce_ms", 0, 1000, [](Config& c) -> Millis& { return c.stream.coalesce; }),
      integer<uint32_t>("limits.messages_per_second", 0, 1'000'000,
                        [](Config& c) -> uint32_t& { return c.limits.messages_per_second; }),
      integer<uint32_t>("limits.principal_connections", 0, 10'000'000,
                        [](Config& c) -> uint32_t& { return c.limits.principal_connections; }),
      integer<uint32_t>("limits.principal_concurrent_turns", 0, 10'000'000,
                        [](Config& c) -> uint32_t& { return c.limits.principal_concurrent_turns; }),
      integer<uint32_t>("limits.principal_turns_per_minute", 0, 10'000'000,
                        [](Config& c) -> uint32_t& { return c.limits.principal_turns_per_minute; }),
      integer<uint32_t>("limits.principal_tokens_per_minute", 0, 1'000'000'000,
                        [](Config& c) -> uint32_t& { return c.limits.principal_tokens_per_minute; }),
      integer<size_t>("limits.max_pending_connections", 1, 1'000'000,
                      [](Config& c) -> size_t& { return c.limits.max_pending_connections; }),
      integer<size_t>("limits.max_http_header_bytes", 1024, 1 << 20,
                      [](Config& c) -> size_t& { return c.limits.max_http_header_bytes; }),
      one_of("engine", {"openai", "local"}, [](Config& c) -> std::string& { return c.engine; }),
      string("local.model", [](Config& c) -> std::string& { return c.local.model; }),
      string("web.root", [](Config& c) -> std::string& { return c.web.root; }),
      integer<int>("local.threads", 0, 256, [](Config& c) -> int& { return c.local.threads; }),
      integer<int64_t>("local.context_length", 16, 1 << 20, [](Config& c) -> int64_t& { return c.local.context_length; }),
      integer<int>("local.max_batch", 1, 1024, [](Config& c) -> int& { return c.local.max_batch; }),
      integer<int64_t>("local.max_batch_tokens", 1, 1 << 16, [](Config& c) -> int64_t& { return c.local.max_batch_tokens; }),
      integer<int64_t>("local.kv_cache_mb", 0, 1 << 20, [](Config& c) -> int64_t& { return c.local.kv_cache_mb; }),
      one_of("local.device", {"cpu", "cuda", "auto"}, [](Config& c) -> std::string& { return c.local.device; }),
      boolean("local.cuda_graphs", [](Config& c) -> bool& { return c.local.cuda_graphs; }),
      one_of("local.cuda_prompt_gemm", {"f32", "bf16"},
             [](Config& c) -> std::string& { return c.local.cuda_prompt_gemm; }),
      one_of("local.chat_format", {"auto", "chatml", "llama3", "llama2"},
             [](Config& c) -> std::string& { return c.local.chat_format; }),
      integer<int>("local.max_tokens", 1, 1 << 20, [](Config& c) -> int& { return c.local.max_tokens; }),
      integer<int>("local.top_k", 0, 1 << 20, [](Config& c) -> int& { return c.local.top_k; }),
      real("local.temperature", 0, 2, [](Config& c) -> double& { return c.local.temperature; }),
      real("local.top_p", 0, 1, [](Config& c) -> double& { return c.local.top_p; }),
      real("local.repetition_penalty", 0.5, 2, [](Config& c) -> double& { return c.local.repetition_penalty; }),
      urls_option("openai.urls"),
      string("openai.model", [](Config& c) -> std::string& { return c.openai.model; }),
      string("openai.api_key", [](Config& c) -> std::string& { return c.openai.api_key; }),
      extra_option(),
      millis("openai.connect_timeout_ms", 10, kMaxI,
             [](Config& c) -> Millis& { return c.openai.connect_timeout; }),
      millis("openai.first_token_timeout_ms", 10, kMaxI,
             [](Config& c) -> Millis& { return c.openai.first_token_timeout; }),
      millis("openai.idle_timeout_ms", 10, kMaxI,
             [](Config& c) -> Millis& { return c.openai.idle_timeout; }),
      integer<int>("openai.max_attempts", 1, 10,
                   [](Config& c) -> int& { return c.openai.max_attempts; }),
      millis("openai.retry_backoff_ms", 0, 60'000,
             [](Config& c) -> Millis& { return c.openai.retry_backoff; }),
      integer<int>("openai.eject_after_failures", 1, 1000,
                   [](Config& c) -> int& { return c.openai.eject_after_failures; }),
      millis("openai.eject_duration_ms", 0, 3'600'000,
             [](Config& c) -> Millis& { return c.openai.eject_duration; }),
      integer<size_t>("openai.max_event_bytes", 1024, 64 << 20,
                      [](Config& c) -> size_t& { return c.openai.max_event_bytes; }),
      integer<int>("openai.shards", 0, 256, [](Config& c) -> int& { return c.openai.shards; }),
      one_of("auth.mode", {"none", "token"}, [](Config& c) -> std::string& { return c.auth.mode; }),
      api_keys_option(),
      string("auth.jwt_hs256_secret", [](Config& c) -> std::string& { return c.auth.jwt_hs256_secret; }),
      string("auth.jwt_rs256_public_key_file",
             [](Config& c) -> std::string& { return c.auth.jwt_rs256_public_key_file; }),
      string("auth.jwt_issuer", [](Config& c) -> std::string& { return c.auth.jwt_issuer; }),
      string("auth.jwt_audience", [](Config& c) -> std::string& { return c.auth.jwt_audience; }),
      string("auth.jwt_principal_claim",
             [](Config& c) -> std::string& { return c.auth.jwt_principal_claim; }),
      millis("auth.jwt_leeway_ms", 0, 600'000, [](Config& c) -> Millis& { return c.auth.jwt_leeway; }),
      millis("auth.hello_timeout_ms", 100, 600'000,
             [](Config& c) -> Millis& { return c.auth.hello_timeout; }),
      plugins_option(),
      integer<size_t>("moderation.max_hold_bytes", 16, 1 << 20,
                      [](Config& c) -> size_t& { return c.moderation.max_hold_bytes; }),
      millis("moderation.max_hold_ms", 1, 60'000, [](Config& c) -> Millis& { return c.moderation.max_hold; }),
      millis("moderation.process_timeout_ms", 10, 60'000,
             [](Config& c) -> Millis& { return c.moderation.process_timeout; }),
      integer<int>("tools.workers", 1, 256, [](Config& c) -> int& { return c.tools.workers; }),
      millis("tools.timeout_ms", 10, 600'000, [](Config& c) -> Millis& { return c.tools.timeout; }),
      integer<int>("tools.max_in_flight", 1, 100'000, [](Config& c) -> int& { return c.tools.max_in_flight; }),
      integer<int>("tools.max_rounds", 1, 32, [](Config& c) -> int& { return c.tools.max_rounds; }),
      integer<int>("tools.breaker_failures", 1, 1000,
                   [](Config& c) -> int& { return c.tools.breaker_failures; }),
      millis("tools.breaker_cooldown_ms", 0, 3'600'000,
             [](Config& c) -> Millis& { return c.tools.breaker_cooldown; }),
      string("tools.host_binary", [](Config& c) -> std::string& { return c.tools.host_binary; }),
      integer<size_t>("tools.process_memory_mb", 0, 1 << 20,
                      [](Config& c) -> size_t& { return c.tools.process_memory_mb; }),
      boolean("retrieval.enabled", [](Config& c) -> bool& { return c.retrieval.enabled; }),
      integer<int>("retrieval.top_k", 1, 16, [](Config& c) -> int& { return c.retrieval.top_k; }),
      millis("retrieval.timeout_ms", 10, 60'000, [](Config& c) -> Millis& { return c.retrieval.timeout; }),
      integer<int>("retrieval.context_messages", 0, 32,
                   [](Config& c) -> int& { return c.retrieval.context_messages; }),
      one_of("log.level", {"trace", "debug", "info", "warn", "error", "critical", "off"},
             [](Config& c) -> std::string& { return c.log.level; }),
      boolean("metrics.enabled", [](Config& c) -> bool& { return c.metrics.enabled; }),
      listen_option("metrics.listen"),
      one_of("log.format", {"text", "json"}, [](Config& c) -> std::string& { return c.log.format; }),
      boolean("log.access_log", [](Config& c) -> bool& { return c.log.access_log; }),
  };
  return options;
}

const Option* find_option(std::string_view key) {
  for (const auto& o : schema()) {
    if (o.key == key) return &o;
  }
  return nullptr;
}

// Applies every leaf of `table`; reports the first unknown key or bad value.
std::string apply_table(const toml::table& table, const std::string& prefix, Config& c) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const Option* o = find_option(key)) {
      if (auto err = o->apply(node, c); !err.empty()) return key + ": " + err;
      continue;
    }
    if (const auto* sub = node.as_table()) {
      if (auto err = apply_table(*sub, key, c); !err.empty()) return err;
      continue;
    }
    return key + ": unknown key (see docs/configuration.md for the keys Sluice reads)";
  }
  return {};
}

// An environment value is read as a TOML value ("4", "true", "[\"a\"]"),
// and as a plain string when it is not one.
std::string apply_env_value(const Option& o, const std::string& value, Config& c) {
  try {
    auto doc = toml::parse("v = " + value);
    if (const auto* n = doc.get("v"); n && !n->is_table()) return o.apply(*n, c);
  } catch (const toml::parse_error&) {
  }
  return o.apply(toml::value<std::string>(value), c);
}

}  // namespace

std::vector<std::string> config_warnings(const Config& config) {
  std::vector<std::string> out;
  const auto& host = config.server.listen_host;
  const bool loopback = host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
  if (config.auth.mode == "none" && !loopback) {
    out.push_back("listening on " + host + " with auth.mode = \"none\": anyone who can reach "
                  "this address can use the gateway and its upstream");
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& o : schema()) out.push_back(o.key);
  return out;
}

std::string env_name_for_key(const std::string& key) {
  std::string name = "SLUICE_";
  for (char ch : key) name.push_back(ch == '.' ? '_' : static_cast<char>(std::toupper(ch)));
  return name;
}

ConfigResult load_config(const ConfigSources& sources) {
  ConfigResult r;
  if (!sources.file.empty() || !sources.text.empty()) {
    const std::string name = sources.file.empty() ? "<config text>" : sources.file;
    try {
      const toml::table doc = sources.file.empty() ? toml::parse(sources.text, std::string_view("<config text>"))
                                                   : toml::parse_file(sources.file);
      if (auto err = apply_table(doc, "", r.config); !err.empty()) {
        r.error = name + ": " + err;
        return r;
      }
    } catch (const toml::parse_error& e) {
      std::ostringstream os;
      os << name << ":" << e.source().begin.line << ":" << e.source().begin.column
         << ": not valid TOML: " << e.description();
      r.error = os.str();
      return r;
    }
  }
  for (const auto& entry : sources.env) {
    if (entry.rfind("SLUICE_", 0) != 0) continue;
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    const Option* match = nullptr;
    for (const auto& o : schema()) {
      if (env_name_for_key(o.key) == name) match = &o;
    }
    if (!match) continue;  // other SLUICE_* variables belong to tools and tests
    if (auto err = apply_env_value(*match, entry.substr(eq + 1), r.config); !err.empty()) {
      r.error = "environment " + name + " (" + match->key + "): " + err;
      return r;
    }
  }
  if (!sources.listen.empty()) {
    if (auto err = find_option("server.listen")
                       ->apply(toml::value<std::string>(sources.listen), r.config);
        !err.empty()) {
      r.error = "--listen: " + err;
      return r;
    }
  }
  if (!sources.upstream.empty()) {
    if (auto err = find_option("openai.urls")
                       ->apply(toml::value<std::string>(sources.upstream), r.config);
        !err.empty()) {
      r.error = "--upstream: " + err;
      return r;
    }
    // The flag means what it says: answers come from that upstream, even
    // when the file chose the local engine.
    r.config.engine = "openai";
  }
  if (r.config.tls.cert_file.empty() != r.config.tls.key_file.empty()) {
    r.error = "tls: set both tls.cert_file and tls.key_file (TLS on), or neither (plain TCP)";
    return r;
  }
  if (r.config.engine == "local" && r.config.local.model.empty()) {
    r.error = "engine = \"local\" needs local.model = \"FILE.gguf\"";
    return r;
  }
  if (r.config.store.key_prefix.empty() ||
      r.config.store.key_prefix.find_first_of("{} \t\r\n") != std::string::npos) {
    r.error = "store.key_prefix: must be non-empty, without braces or spaces (it prefixes every Redis key)";
    return r;
  }
  const auto& a = r.config.auth;
  if (a.mode == "token" && a.api_keys.empty() && a.jwt_hs256_secret.empty() &&
      a.jwt_rs256_public_key_file.empty()) {
    r.error = "auth.mode: \"token\" needs auth.api_keys, auth.jwt_hs256_secret or "
              "auth.jwt_rs256_public_key_file";
    return r;
  }
  r.ok = true;
  return r;
}

}  // namespace sluice
