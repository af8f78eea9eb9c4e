#include "gateway/plugin/loaded_plugin.hpp"

#include <dlfcn.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace sluice {

namespace {

constexpr size_t kMaxCounters = 64;    // per plugin: label values stay a bounded set
constexpr size_t kMaxSources = 16;     // per tool result
constexpr size_t kMaxSourceField = 2048;
constexpr size_t kMaxPassages = 32;       // per retrieval
constexpr size_t kMaxPassageText = 4096;

std::string to_string(sluice_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); }

bool valid_name(std::string_view s, bool tool) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [&](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           (tool && ((ch >= 'A' && ch <= 'Z') || ch == '-'));
  });
}

std::string clip(sluice_str s, size_t max) {
  std::string out = to_string(s);
  if (out.size() > max) out.resize(max);
  return out;
}

// ---- the host table ----

void host_log(sluice_plugin_ctx* ctx, int32_t level, sluice_str message) {
  const std::string text = to_string(message);
  switch (level) {
    case SLUICE_LOG_DEBUG: spdlog::debug("plugin {}: {}", ctx->plugin, text); break;
    case SLUICE_LOG_INFO: spdlog::info("plugin {}: {}", ctx->plugin, text); break;
    case SLUICE_LOG_WARN: spdlog::warn("plugin {}: {}", ctx->plugin, text); break;
    default: spdlog::error("plugin {}: {}", ctx->plugin, text); break;
  }
}

sluice_str host_config_json(sluice_plugin_ctx* ctx) {
  return {ctx->config_json.data(), ctx->config_json.size()};
}

void host_set_error(sluice_plugin_ctx* ctx, sluice_str message) {
  std::lock_guard lock(ctx->mutex);
  ctx->error = clip(message, 4096);
}

void host_counter_add(sluice_plugin_ctx* ctx, sluice_str name, double value) {
  const std::string n = to_string(name);
  if (!valid_name(n, false) || !std::isfinite(value) || value < 0) {
    spdlog::warn("plugin {}: counter_add refused (name must be [a-z0-9_]{{1,64}}, value >= 0)",
                 ctx->plugin);
    return;
  }
  std::lock_guard lock(ctx->mutex);
  if (ctx->counters.size() >= kMaxCounters && !ctx->counters.count(n)) return;
  ctx->counters[n] += value;
}

void host_result_set_json(sluice_tool_result* r, sluice_str json) { r->json = to_string(json); }

void host_result_add_source(sluice_tool_result* r, sluice_str title, sluice_str url,
                            sluice_str snippet) {
  if (r->sources.size() >= kMaxSources) return;
  r->sources.push_back({clip(title, kMaxSourceField), clip(url, kMaxSourceField),
                        clip(snippet, kMaxSourceField)});
}

void host_result_add_passage(sluice_tool_result* r, sluice_str id, sluice_str title, sluice_str url,
                             sluice_str text, double score, sluice_str metadata_json) {
  if (r->passages.size() >= kMaxPassages) return;
  r->passages.push_back({clip(id, 256), clip(title, kMaxSourceField), clip(url, kMaxSourceField),
                         clip(text, kMaxPassageText), std::isfinite(score) ? score : 0.0,
                         clip(metadata_json, kMaxSourceField)});
}

void host_result_set_error(sluice_tool_result* r, sluice_str message) {
  r->error = clip(message, 4096);
}

int32_t host_result_cancelled(const sluice_tool_result* r) {
  return (r->stopping && r->stopping->load()) || std::chrono::steady_clock::now() >= r->deadline ? 1 : 0;
}

uint64_t host_result_time_left_ms(const sluice_tool_result* r) {
  const auto now = std::chrono::steady_clock::now();
  if (r->deadline == std::chrono::steady_clock::time_point::max()) return UINT64_MAX;
  if (now >= r->deadline) return 0;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(r->deadline - now).count());
}

void host_verdict_pass(sluice_verdict* v, size_t hold) {
  ++v->calls;
  v->action = SLUICE_PASS;
  v->hold = hold;
}

void host_verdict_hold(sluice_verdict* v) {
  ++v->calls;
  v->action = SLUICE_HOLD;
}

void host_verdict_replace(sluice_verdict* v, sluice_str text, size_t hold, sluice_str reason) {
  ++v->calls;
  v->action = SLUICE_REPLACE;
  v->text = to_string(text);
  v->hold = hold;
  v->reason = clip(reason, 128);
}

void host_verdict_stop(sluice_verdict* v, sluice_str reason) {
  ++v->calls;
  v->action = SLUICE_STOP;
  v->reason = clip(reason, 128);
}

const sluice_host_v1 kHost = {
    sizeof(sluice_host_v1),
    SLUICE_PLUGIN_ABI_VERSION,
    &host_log,
    &host_config_json,
    &host_set_error,
    &host_counter_add,
    &host_result_set_json,
    &host_result_add_source,
    &host_result_set_error,
    &host_verdict_pass,
    &host_verdict_hold,
    &host_verdict_replace,
    &host_verdict_stop,
    &host_result_cancelled,
    &host_result_time_left_ms,
    &host_result_add_passage,
};
static_assert(SLUICE_HOST_V1_0_SIZE < sizeof(sluice_host_v1), "1.1 grew the host table");

std::string abi_text(uint32_t v) {
  return std::to_string(SLUICE_ABI_MAJOR_OF(v)) + "." + std::to_string(SLUICE_ABI_MINOR_OF(v));
}

}  // namespace

const sluice_host_v1& plugin_host_table() { return kHost; }

std::unique_ptr<LoadedPlugin> LoadedPlugin::load(const std::string& path,
                                                 const std::string& settings_json,
                                                 std::string& error) {
  std::unique_ptr<LoadedPlugin> p(new LoadedPlugin());
  p->path_ = path;
  p->ctx_ = std::make_unique<sluice_plugin_ctx>();
  p->ctx_->plugin = path;
  p->ctx_->config_json = settings_json.empty() ? "{}" : settings_json;
  const std::string where = "plugin " + path + ": ";

  p->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle_) {
    const char* why = dlerror();
    error = where + "cannot load it: " + (why ? why : "unknown dlopen error");
    return nullptr;
  }
  dlerror();
  auto entry = reinterpret_cast<sluice_plugin_entry_fn>(dlsym(p->handle_, SLUICE_PLUGIN_ENTRY_SYMBOL));
  if (!entry) {
    error = where + "no " SLUICE_PLUGIN_ENTRY_SYMBOL
                    " symbol: not a Sluice plugin (export it with SLUICE_PLUGIN or "
                    "SLUICE_PLUGIN_EXPORT)";
    return nullptr;
  }
  p->plugin_ = entry(&kHost);
  if (!p->plugin_) {
    error = where + "it refused this gateway (plugin ABI " + abi_text(SLUICE_PLUGIN_ABI_VERSION) +
            "): it was built for another ABI version";
    return nullptr;
  }
  if (auto why = p->check_descriptor(); !why.empty()) {
    error = where + why;
    return nullptr;
  }
  p->ctx_->plugin = p->name_;
  const int32_t status =
      p->plugin_->create(p->ctx_.get(), {p->ctx_->config_json.data(), p->ctx_->config_json.size()},
                         &p->instance_);
  if (status != SLUICE_OK || !p->instance_) {
    std::lock_guard lock(p->ctx_->mutex);
    error = where + "create failed (status " + std::to_string(status) + ")" +
            (p->ctx_->error.empty() ? std::string() : ": " + p->ctx_->error);
    p->instance_ = nullptr;
    return nullptr;
  }
  return p;
}

std::string LoadedPlugin::check_descriptor() {
  const sluice_plugin_v1* d = plugin_;
  // Read the two leading fields before trusting anything else.
  if (d->struct_size < offsetof(sluice_plugin_v1, abi_version) + sizeof(uint32_t)) {
    return "its descriptor is too small (" + std::to_string(d->struct_size) + " bytes)";
  }
  if (SLUICE_ABI_MAJOR_OF(d->abi_version) != SLUICE_PLUGIN_ABI_MAJOR) {
    return "it was built for plugin ABI " + abi_text(d->abi_version) + "; this gateway speaks " +
           abi_text(SLUICE_PLUGIN_ABI_VERSION) + " (rebuild it against this SDK)";
  }
  // Any minor of this major: at least the 1.0 layout; fields past its
  // struct_size are absent (ABI growth, plugin.h).
  if (d->struct_size < SLUICE_PLUGIN_V1_0_SIZE) {
    return "its descriptor is " + std::to_string(d->struct_size) + " bytes; ABI 1.0 needs at least " +
           std::to_string(SLUICE_PLUGIN_V1_0_SIZE);
  }
  if (!d->name || !valid_name(d->name, false)) return "its name must be [a-z0-9_]{1,64}";
  name_ = d->name;
  version_ = d->version ? d->version : "";
  if (!d->create || !d->destroy) return "it has no create or destroy function";
  if (d->tool_count > 0 && !d->tools) return "tool_count is set but tools is NULL";
  if (d->moderator_count > 0 && !d->moderators) return "moderator_count is set but moderators is NULL";
  simdjson::dom::parser parser;
  for (uint32_t i = 0; i < d->tool_count; ++i) {
    const sluice_tool_v1* t = d->tools[i];
    if (!t || t->struct_size < SLUICE_TOOL_V1_0_SIZE) {
      return "tool " + std::to_string(i) + " is missing or its struct is too small";
    }
    if (!t->name || !valid_name(t->name, true)) return "tool names must be [A-Za-z0-9_-]{1,64}";
    if (!t->invoke) return std::string("tool ") + t->name + " has no invoke function";
    simdjson::dom::element schema;
    const std::string text = t->parameters_schema_json ? t->parameters_schema_json : "";
    if (parser.parse(text).get(schema) != simdjson::SUCCESS || !schema.is_object()) {
      return std::string("tool ") + t->name + ": parameters_schema_json is not a JSON object";
    }
    for (const auto* other : tools_) {
      if (std::string_view(other->name) == t->name) return std::string("tool ") + t->name + " is listed twice";
    }
    tools_.push_back(t);
  }
  for (uint32_t i = 0; i < d->moderator_count; ++i) {
    const sluice_moderator_v1* m = d->moderators[i];
    if (!m || m->struct_size < SLUICE_MODERATOR_V1_0_SIZE) {
      return "moderator " + std::to_string(i) + " is missing or its struct is too small";
    }
    if (!m->name || !m->stream_open || !m->on_text || !m->stream_close) {
      return "moderator " + std::to_string(i) + " lacks a name or a function";
    }
    moderators_.push_back(m);
  }
  if (SLUICE_HAS_FIELD(d, sluice_plugin_v1, retriever_count)) {
    if (d->retriever_count > 0 && !d->retrievers) return "retriever_count is set but retrievers is NULL";
    for (uint32_t i = 0; i < d->retriever_count; ++i) {
      const sluice_retriever_v1* r = d->retrievers[i];
      if (!r || r->struct_size < SLUICE_RETRIEVER_V1_2_SIZE) {
        return "retriever " + std::to_string(i) + " is missing or its struct is too small";
      }
      if (!r->name || !valid_name(r->name, false)) return "retriever names must be [a-z0-9_]{1,64}";
      if (!r->retrieve) return std::string("retriever ") + r->name + " has no retrieve function";
      retrievers_.push_back(r);
    }
  }
  return {};
}

LoadedPlugin::~LoadedPlugin() {
  if (instance_) plugin_->destroy(instance_);
  // Shared objects stay mapped: code of theirs (thread-local destructors,
  // atexit handlers) may still run at exit. RTLD_LOCAL keeps them apart.
  (void)handle_;
}

std::string LoadedPlugin::description() const {
  return plugin_->description ? plugin_->description : "";
}

bool LoadedPlugin::self_test(std::string& error) {
  if (!plugin_->self_test) return true;
  const int32_t status = plugin_->self_test(instance_);
  if (status == SLUICE_OK) return true;
  std::lock_guard lock(ctx_->mutex);
  error = "self-test failed (status " + std::to_string(status) + ")" +
          (ctx_->error.empty() ? std::string() : ": " + ctx_->error);
  return false;
}

std::map<std::string, double> LoadedPlugin::counters() const {
  std::lock_guard lock(ctx_->mutex);
  return ctx_->counters;
}

}  // namespace sluice
