// The C++ layer of the Sluice plugin SDK: header-only, over plugin.h. A
// plugin is one class; SLUICE_PLUGIN(Class) exports it through the C ABI.
// Every exception thrown by the class becomes an error status at the C
// boundary; nothing C++ crosses it.
//
//   class Hello {
//    public:
//     static constexpr const char* kName = "hello";
//     static constexpr const char* kVersion = "1.0.0";
//     static constexpr const char* kDescription = "Greets people";
//     explicit Hello(sluice::Context ctx) : ctx_(ctx) {}  // throw to refuse the config
//     static constexpr auto tools() {
//       return std::array{sluice::tool<&Hello::greet>("greet", "Greets someone",
//           R"({"type":"object","properties":{"who":{"type":"string"}},"required":["who"]})")};
//     }
//     void greet(std::string_view args_json, sluice::ToolResult& result) {
//       result.set_json(R"({"greeting":"hello"})");
//     }
//    private:
//     sluice::Context ctx_;
//   };
//   SLUICE_PLUGIN(Hello)
//
// A class that also defines `struct Stream` and
//   void on_text(Stream&, std::string_view pending, size_t new_from,
//                uint32_t flags, sluice::Verdict&)
// is a moderator as well (named after the plugin). `void self_test()` (throw
// on failure) is used by sluice-plugin-check.
//
// A class with `static constexpr auto retrievers()` (an array of
// sluice::retriever<&C::search>("name", "description") entries) offers
// retrievers (ABI 1.2): `void C::search(std::string_view request_json,
// sluice::Passages& out)` adds the passages for the request (plugin.h,
// sluice_retriever_v1, documents it; sluice/json.hpp parses it into a
// sluice::RetrievalRequest).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "sluice/plugin.h"

namespace sluice {

namespace detail {
inline const sluice_host_v1*& host_table() {
  static const sluice_host_v1* host = nullptr;
  return host;
}
inline sluice_str view(std::string_view s) { return {s.data(), s.size()}; }
}  // namespace detail

// `s` as a quoted JSON string (for building tool results).
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Thrown by a constructor for settings it cannot accept (SLUICE_ERR_INVALID_ARGUMENT).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by a tool with a status of its own choosing.
struct ToolError : std::runtime_error {
  ToolError(sluice_status status, const std::string& message)
      : std::runtime_error(message), status(status) {}
  sluice_status status;
};

// The plugin's handle on the host: logging, settings, counters.
class Context {
 public:
  explicit Context(sluice_plugin_ctx* ctx) : ctx_(ctx) {}
  void log(sluice_log_level level, std::string_view message) const {
    detail::host_table()->log(ctx_, level, detail::view(message));
  }
  void debug(std::string_view m) const { log(SLUICE_LOG_DEBUG, m); }
  void info(std::string_view m) const { log(SLUICE_LOG_INFO, m); }
  void warn(std::string_view m) const { log(SLUICE_LOG_WARN, m); }
  void error(std::string_view m) const { log(SLUICE_LOG_ERROR, m); }
  // The plugin's settings, one JSON object ("{}" when none).
  std::string_view config_json() const {
    const sluice_str s = detail::host_table()->config_json(ctx_);
    return {s.ptr, s.len};
  }
  void counter_add(std::string_view name, double value = 1) const {
    detail::host_table()->counter_add(ctx_, detail::view(name), value);
  }
  sluice_plugin_ctx* raw() const { return ctx_; }

 private:
  sluice_plugin_ctx* ctx_;
};

class ToolResult {
 public:
  explicit ToolResult(sluice_tool_result* r) : r_(r) {}
  void set_json(std::string_view json) { detail::host_table()->result_set_json(r_, detail::view(json)); }
  void add_source(std::string_view title, std::string_view url, std::string_view snippet) {
    detail::host_table()->result_add_source(r_, detail::view(title), detail::view(url),
                                            detail::view(snippet));
  }
  void set_error(std::string_view message) {
    detail::host_table()->result_set_error(r_, detail::view(message));
  }
  // For a long tool, between steps: the call was abandoned (its deadline
  // passed, or the gateway is stopping) and its result will be discarded.
  // Always false in a 1.0 host.
  bool cancelled() const {
    const sluice_host_v1* h = detail::host_table();
    return SLUICE_HAS_FIELD(h, sluice_host_v1, result_cancelled) && h->result_cancelled(r_) != 0;
  }
  // Time left before the deadline (for a query's own timeout); the
  // maximum in a 1.0 host, which does not say.
  std::chrono::milliseconds time_left() const {
    const sluice_host_v1* h = detail::host_table();
    if (!SLUICE_HAS_FIELD(h, sluice_host_v1, result_time_left_ms)) return std::chrono::milliseconds::max();
    const uint64_t ms = h->result_time_left_ms(r_);
    return ms > static_cast<uint64_t>(std::chrono::milliseconds::max().count()) ? std::chrono::milliseconds::max()
                                                                               : std::chrono::milliseconds(ms);
  }

 private:
  sluice_tool_result* r_;
};

// Where a retriever writes its passages, best first.
class Passages {
 public:
  explicit Passages(sluice_tool_result* r) : r_(r) {}
  // `metadata_json`: a JSON object, or empty. Refused (ignored) by a host
  // older than ABI 1.2, which never calls a retriever anyway.
  void add(std::string_view id, std::string_view title, std::string_view url, std::string_view text, double score,
           std::string_view metadata_json = {}) {
    const sluice_host_v1* h = detail::host_table();
    if (!SLUICE_HAS_FIELD(h, sluice_host_v1, result_add_passage)) return;
    h->result_add_passage(r_, detail::view(id), detail::view(title), detail::view(url), detail::view(text), score,
                          detail::view(metadata_json));
  }
  void set_error(std::string_view message) { ToolResult(r_).set_error(message); }
  bool cancelled() const { return ToolResult(r_).cancelled(); }
  std::chrono::milliseconds time_left() const { return ToolResult(r_).time_left(); }

 private:
  sluice_tool_result* r_;
};

class Verdict {
 public:
  explicit Verdict(sluice_verdict* v) : v_(v) {}
  void pass(size_t hold = 0) { detail::host_table()->verdict_pass(v_, hold); }
  void hold() { detail::host_table()->verdict_hold(v_); }
  void replace(std::string_view text, size_t hold, std::string_view reason) {
    detail::host_table()->verdict_replace(v_, detail::view(text), hold, detail::view(reason));
  }
  void stop(std::string_view reason) { detail::host_table()->verdict_stop(v_, detail::view(reason)); }

 private:
  sluice_verdict* v_;
};

namespace detail {

template <class T>
struct member_of;
template <class C, class R, class... A>
struct member_of<R (C::*)(A...)> {
  using type = C;
};

// What the host holds as the instance: the object and its context.
template <class C>
struct Holder {
  explicit Holder(sluice_plugin_ctx* c) : ctx(c), object(Context(c)) {}
  sluice_plugin_ctx* ctx;
  C object;
};

// How a tool method is called: `void C::f(std::string_view args_json,
// ToolResult&)` here; sluice/json.hpp adds `Json C::f(const Args&, ToolResult&)`.
template <class M>
struct ToolCaller {
  template <class C>
  static void call(C& object, M method, std::string_view args_json, ToolResult& result) {
    (object.*method)(args_json, result);
  }
};

// Runs `body`, turning what it throws into a status at the C boundary: a
// ToolError's own status and message; anything else an internal error. The
// model and the user then read "the tool failed with an internal error": a
// what() ("vector::at: index 7 >= 3") is for the operator's log ("a tool
// threw: ..."), never for them.
template <class SetError, class Body>
int32_t guarded(sluice_plugin_ctx* ctx, const char* who, SetError set_error, Body body) noexcept {
  auto internal = [&](std::string_view what) noexcept {
    try {
      Context(ctx).error(std::string("a ") + who + " threw: " + std::string(what));
    } catch (...) {
    }
    set_error(std::string("the ") + who + " failed with an internal error");
    return int32_t{SLUICE_ERR_INTERNAL};
  };
  try {
    body();
    return SLUICE_OK;
  } catch (const ToolError& e) {
    set_error(e.what());
    return e.status;
  } catch (const std::exception& e) {
    return internal(e.what());
  } catch (...) {
    return internal("an exception that is not a std::exception");
  }
}

template <auto Method>
int32_t invoke_tool(void* instance, sluice_str args, sluice_tool_result* result) noexcept {
  using C = typename member_of<decltype(Method)>::type;
  auto* holder = static_cast<Holder<C>*>(instance);
  ToolResult r(result);
  return guarded(
      holder->ctx, "tool", [&](std::string_view m) { r.set_error(m); },
      [&] { ToolCaller<decltype(Method)>::call(holder->object, Method, std::string_view(args.ptr, args.len), r); });
}

// How a retriever method is called: `void C::f(std::string_view request_json,
// Passages&)` here; sluice/json.hpp adds `void C::f(const RetrievalRequest&, Passages&)`.
template <class M>
struct RetrieverCaller {
  template <class C>
  static void call(C& object, M method, std::string_view request_json, Passages& out) {
    (object.*method)(request_json, out);
  }
};

template <auto Method>
int32_t invoke_retriever(void* instance, sluice_str request, sluice_tool_result* result) noexcept {
  using C = typename member_of<decltype(Method)>::type;
  auto* holder = static_cast<Holder<C>*>(instance);
  Passages out(result);
  return guarded(holder->ctx, "retriever", [&](std::string_view m) { out.set_error(m); }, [&] {
    RetrieverCaller<decltype(Method)>::call(holder->object, Method, std::string_view(request.ptr, request.len), out);
  });
}

template <class C>
concept HasTools = requires { C::tools(); };
template <class C>
concept HasRetrievers = requires { C::retrievers(); };
template <class C>
concept HasModerator = requires(C& c, typename C::Stream& s, Verdict& v) {
  c.on_text(s, std::string_view{}, size_t{}, uint32_t{}, v);
};
template <class C>
concept HasSelfTest = requires(C& c) { c.self_test(); };

inline void report(sluice_plugin_ctx* ctx, std::string_view message) {
  host_table()->set_error(ctx, view(message));
}

template <class C>
struct Glue {
  static int32_t create(sluice_plugin_ctx* ctx, sluice_str, void** instance) noexcept {
    try {
      *instance = new Holder<C>(ctx);
      return SLUICE_OK;
    } catch (const ConfigError& e) {
      report(ctx, e.what());
      return SLUICE_ERR_INVALID_ARGUMENT;
    } catch (const std::exception& e) {
      report(ctx, e.what());
      return SLUICE_ERR_INTERNAL;
    } catch (...) {
      report(ctx, "unknown exception");
      return SLUICE_ERR_INTERNAL;
    }
  }
  static void destroy(void* instance) noexcept { delete static_cast<Holder<C>*>(instance); }

  static int32_t self_test(void* instance) noexcept {
    if constexpr (HasSelfTest<C>) {
      auto* h = static_cast<Holder<C>*>(instance);
      try {
        h->object.self_test();
        return SLUICE_OK;
      } catch (const std::exception& e) {
        report(h->ctx, e.what());
      } catch (...) {
        report(h->ctx, "unknown exception");
      }
      return SLUICE_ERR_INTERNAL;
    } else {
      return SLUICE_OK;
    }
  }

  static int32_t stream_open(void*, void** stream) noexcept {
    if constexpr (HasModerator<C>) {
      try {
        *stream = new typename C::Stream();
        return SLUICE_OK;
      } catch (...) {
        return SLUICE_ERR_INTERNAL;
      }
    } else {
      return SLUICE_ERR_INTERNAL;
    }
  }
  static int32_t on_text(void* instance, void* stream, sluice_str pending, size_t new_from,
                         uint32_t flags, sluice_verdict* verdict) noexcept {
    if constexpr (HasModerator<C>) {
      auto* h = static_cast<Holder<C>*>(instance);
      Verdict v(verdict);
      try {
        h->object.on_text(*static_cast<typename C::Stream*>(stream),
                          std::string_view(pending.ptr, pending.len), new_from, flags, v);
        return SLUICE_OK;
      } catch (const std::exception& e) {
        Context(h->ctx).error(std::string("on_text: ") + e.what());
      } catch (...) {
        Context(h->ctx).error("on_text: unknown exception");
      }
      return SLUICE_ERR_INTERNAL;
    } else {
      return SLUICE_ERR_INTERNAL;
    }
  }
  static void stream_close(void*, void* stream) noexcept {
    if constexpr (HasModerator<C>) delete static_cast<typename C::Stream*>(stream);
  }
};

template <class C>
const sluice_plugin_v1* describe(const sluice_host_v1* host) noexcept {
  if (host == nullptr || SLUICE_ABI_MAJOR_OF(host->abi_version) != SLUICE_PLUGIN_ABI_MAJOR ||
      host->struct_size < SLUICE_HOST_V1_0_SIZE) {
    return nullptr;  // a host of another major (any minor works: newer functions are checked before use)
  }
  host_table() = host;
  static constexpr auto tools = [] {
    if constexpr (HasTools<C>) {
      return C::tools();
    } else {
      return std::array<sluice_tool_v1, 0>{};
    }
  }();
  static const auto tool_ptrs = [] {
    std::array<const sluice_tool_v1*, tools.size() + 1> p{};
    for (size_t i = 0; i < tools.size(); ++i) p[i] = &tools[i];
    return p;
  }();
  static const sluice_moderator_v1 moderator = {sizeof(sluice_moderator_v1), C::kName,
                                                &Glue<C>::stream_open, &Glue<C>::on_text,
                                                &Glue<C>::stream_close};
  static const sluice_moderator_v1* const moderators[] = {&moderator};
  static constexpr auto retrievers = [] {
    if constexpr (HasRetrievers<C>) {
      return C::retrievers();
    } else {
      return std::array<sluice_retriever_v1, 0>{};
    }
  }();
  static const auto retriever_ptrs = [] {
    std::array<const sluice_retriever_v1*, retrievers.size() + 1> p{};
    for (size_t i = 0; i < retrievers.size(); ++i) p[i] = &retrievers[i];
    return p;
  }();
  static const sluice_plugin_v1 plugin = {
      sizeof(sluice_plugin_v1),
      SLUICE_PLUGIN_ABI_VERSION,
      C::kName,
      C::kVersion,
      C::kDescription,
      &Glue<C>::create,
      &Glue<C>::destroy,
      tool_ptrs.data(),
      static_cast<uint32_t>(tools.size()),
      moderators,
      HasModerator<C> ? 1u : 0u,
      HasSelfTest<C> ? &Glue<C>::self_test : nullptr,
      retriever_ptrs.data(),
      static_cast<uint32_t>(retrievers.size()),
  };
  return &plugin;
}

}  // namespace detail

// A tool entry for C::tools(): `Method` is `void C::f(std::string_view args_json, ToolResult&)`,
// or, with sluice/json.hpp, `Json C::f(const Args&, ToolResult&)`.
// `timeout_ms`: the tool's own deadline when shorter than the gateway's
// tools.timeout_ms (0: the gateway's).
template <auto Method>
constexpr sluice_tool_v1 tool(const char* name, const char* description, const char* parameters_schema_json,
                              uint32_t timeout_ms = 0) {
  return {sizeof(sluice_tool_v1), name, description, parameters_schema_json, &detail::invoke_tool<Method>,
          timeout_ms};
}

// A retriever entry for C::retrievers(): `Method` is `void C::f(std::string_view
// request_json, Passages&)`, or, with sluice/json.hpp, `void C::f(const
// RetrievalRequest&, Passages&)`. `timeout_ms`: its own deadline when
// shorter than the gateway's retrieval.timeout_ms (0: the gateway's).
template <auto Method>
constexpr sluice_retriever_v1 retriever(const char* name, const char* description, uint32_t timeout_ms = 0) {
  return {sizeof(sluice_retriever_v1), name, description, &detail::invoke_retriever<Method>, timeout_ms};
}

}  // namespace sluice

// Exports `Class` as the plugin of this shared object.
#define SLUICE_PLUGIN(Class)                                                                  \
  extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_entry(                \
      const sluice_host_v1* host) {                                                           \
    return ::sluice::detail::describe<Class>(host);                                           \
  }
