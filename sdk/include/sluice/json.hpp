// Typed tool arguments, results and settings for Sluice plugins, on
// nlohmann/json (Debian: nlohmann-json3-dev; CMake: find_package(nlohmann_json 3)).
// Optional: plugin.hpp alone does not need it.
//
//   #include "sluice/json.hpp"
//   class Weather {
//     ...
//     static constexpr auto tools() {
//       return std::array{sluice::tool<&Weather::forecast>("forecast", "Weather for a city",
//           R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}},
//               "required":["city"]})")};
//     }
//     sluice::Json forecast(const sluice::Args& args, sluice::ToolResult& result) {
//       const std::string city = args.get<std::string>("city");
//       const int days = args.get_or<int>("days", 3);
//       if (!known(city)) throw sluice::ToolError(SLUICE_ERR_NOT_FOUND, "no city named " + city);
//       return {{"city", city}, {"days", days}, {"high_c", 21}};
//     }
//   };
//
// A wrong type or a missing required argument is a ToolError with status
// SLUICE_ERR_INVALID_ARGUMENT and a message the model can act on
// ("argument \"days\" must be an integer, not a string"). The gateway checks
// the arguments against the tool's schema before the call; these reads are
// the plugin's own guard, and work the same under sluice-plugin-check.
#pragma once

#include <nlohmann/json.hpp>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/plugin.hpp"

namespace sluice {

using Json = nlohmann::json;

namespace detail {
inline const char* json_type(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "something else";
  }
}

// `j` as a T, or a message saying why not.
template <class T>
std::optional<T> json_as(const Json& j, std::string& why) {
  if constexpr (std::is_same_v<T, bool>) {
    if (j.is_boolean()) return j.get<bool>();
    why = "must be a boolean";
  } else if constexpr (std::is_integral_v<T>) {
    if (j.is_number_integer()) {
      if (j.is_number_unsigned()) {
        const auto v = j.get<uint64_t>();
        if (v <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
      } else {
        const auto v = j.get<int64_t>();
        if (v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
            (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
          return static_cast<T>(v);
        }
      }
      why = "is out of range";
      return std::nullopt;
    }
    why = "must be an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    if (j.is_number()) return j.get<T>();
    why = "must be a number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (j.is_string()) return j.get<std::string>();
    why = "must be a string";
  } else {
    try {
      return j.get<T>();
    } catch (const Json::exception&) {
      why = "has the wrong shape";
      return std::nullopt;
    }
  }
  return std::nullopt;
}
}  // namespace detail

// A tool's arguments, parsed once: typed reads with clear errors.
class Args {
 public:
  explicit Args(std::string_view json) {
    json_ = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
    if (!json_.is_object()) throw ToolError(SLUICE_ERR_INVALID_ARGUMENT, "the arguments must be a JSON object");
  }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // A required argument.
  template <class T>
  T get(std::string_view name) const {
    const Json* j = find(name);
    if (!j) throw ToolError(SLUICE_ERR_INVALID_ARGUMENT, "argument \"" + std::string(name) + "\" is required");
    return as<T>(name, *j);
  }
  // An optional one: `fallback` when absent or null.
  template <class T>
  T get_or(std::string_view name, T fallback) const {
    const Json* j = find(name);
    return j ? as<T>(name, *j) : fallback;
  }
  const Json& json() const { return json_; }

 private:
  const Json* find(std::string_view name) const {
    const auto it = json_.find(name);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }
  template <class T>
  static T as(std::string_view name, const Json& j) {
    std::string why;
    if (auto v = detail::json_as<T>(j, why)) return *std::move(v);
    throw ToolError(SLUICE_ERR_INVALID_ARGUMENT,
                    "argument \"" + std::string(name) + "\" " + why + ", not " + detail::json_type(j));
  }
  Json json_;
};

// The result the model reads. Text that is not UTF-8 is replaced (U+FFFD), not thrown.
inline void set_json(ToolResult& result, const Json& value) {
  result.set_json(value.dump(-1, ' ', false, Json::error_handler_t::replace));
}

// The plugin's settings as JSON; a ConfigError (the plugin refuses to start,
// with this message) when they are not an object.
inline Json settings(const Context& ctx) {
  const std::string_view text = ctx.config_json();
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (!j.is_object()) throw ConfigError("the settings must be a JSON object");
  return j;
}

// A typed setting: `fallback` when absent; a ConfigError naming it when of
// the wrong type.
template <class T>
T setting(const Json& settings, std::string_view name, T fallback) {
  const auto it = settings.find(name);
  if (it == settings.end() || it->is_null()) return fallback;
  std::string why;
  if (auto v = detail::json_as<T>(*it, why)) return *std::move(v);
  throw ConfigError("setting \"" + std::string(name) + "\" " + why + ", not " + detail::json_type(*it));
}

namespace detail {
// A tool method `Json C::f(const Args&, ToolResult&)`: its value is the
// result (sources still go through `result`).
template <class C>
struct ToolCaller<Json (C::*)(const Args&, ToolResult&)> {
  static void call(C& object, Json (C::*method)(const Args&, ToolResult&), std::string_view args_json,
                   ToolResult& result) {
    const Args args(args_json);
    set_json(result, (object.*method)(args, result));
  }
};
}  // namespace detail

// A retriever's request (plugin.h, sluice_retriever_v1), parsed.
struct RetrievalRequest {
  struct Message {
    std::string role, content;
  };
  std::string query;
  std::vector<Message> conversation;  // earlier messages, the latest last
  int top_k = 3;

  explicit RetrievalRequest(std::string_view json) {
    const Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("query") || !j["query"].is_string()) {
      throw ToolError(SLUICE_ERR_INVALID_ARGUMENT, "the retrieval request has no query");
    }
    query = j["query"].get<std::string>();
    if (j.contains("top_k") && j["top_k"].is_number_integer()) top_k = j["top_k"].get<int>();
    if (j.contains("conversation") && j["conversation"].is_array()) {
      for (const auto& m : j["conversation"]) {
        if (m.is_object() && m.value("role", Json()).is_string() && m.value("content", Json()).is_string()) {
          conversation.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
        }
      }
    }
  }
};

namespace detail {
template <class C>
struct RetrieverCaller<void (C::*)(const RetrievalRequest&, Passages&)> {
  static void call(C& object, void (C::*method)(const RetrievalRequest&, Passages&), std::string_view request_json,
                   Passages& out) {
    (object.*method)(RetrievalRequest(request_json), out);
  }
};
}  // namespace detail

}  // namespace sluice
