#include "gateway/plugin/json_schema.hpp"

#include <simdjson.h>

#include <regex>

#include "gateway/common/json_writer.hpp"

namespace sluice {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string_view type_name(const element& e) {
  switch (e.type()) {
    case element_type::ARRAY: return "array";
    case element_type::OBJECT: return "object";
    case element_type::INT64:
    case element_type::UINT64: return "integer";
    case element_type::DOUBLE: return "number";
    case element_type::STRING: return "string";
    case element_type::BOOL: return "boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "value";
}

bool has_type(const element& e, std::string_view t) {
  const auto actual = type_name(e);
  if (actual == t) return true;
  if (t == "number" && actual == "integer") return true;
  // 3.0 is an integer for JSON Schema.
  if (t == "integer" && actual == "number") {
    const double d = double(e);
    return d == static_cast<double>(static_cast<int64_t>(d));
  }
  return false;
}

double number_of(const element& e) {
  if (e.is_int64()) return static_cast<double>(int64_t(e));
  if (e.is_uint64()) return static_cast<double>(uint64_t(e));
  return double(e);
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string where(const std::string& path) { return path.empty() ? "the arguments" : path; }

std::string check(const element& schema, const element& v, const std::string& path) {
  simdjson::dom::object s;
  if (schema.get(s) != simdjson::SUCCESS) return {};  // true/false schemas: accept
  element t;
  if (s["type"].get(t) == simdjson::SUCCESS) {
    bool ok = false;
    std::string allowed;
    if (t.is_string()) {
      ok = has_type(v, std::string_view(t));
      allowed = std::string(std::string_view(t));
    } else if (t.is_array()) {
      for (element x : simdjson::dom::array(t)) {
        if (!x.is_string()) continue;
        ok = ok || has_type(v, std::string_view(x));
        allowed += (allowed.empty() ? "" : " or ") + std::string(std::string_view(x));
      }
    } else {
      ok = true;
    }
    if (!ok) return where(path) + ": must be " + allowed + " (got " + std::string(type_name(v)) + ")";
  }
  simdjson::dom::array list;
  if (s["enum"].get(list) == simdjson::SUCCESS) {
    bool found = false;
    const std::string mine = simdjson::minify(v);
    for (element x : list) found = found || simdjson::minify(x) == mine;
    if (!found) return where(path) + ": must be one of " + simdjson::minify(s["enum"].value_unsafe());
  }
  element c;
  if (s["const"].get(c) == simdjson::SUCCESS && simdjson::minify(c) != simdjson::minify(v)) {
    return where(path) + ": must be " + simdjson::minify(c);
  }
  if (v.is_string()) {
    const std::string_view str(v);
    uint64_t n = 0;
    if (s["minLength"].get(n) == simdjson::SUCCESS && utf8_length(str) < n) {
      return where(path) + ": must be at least " + std::to_string(n) + " characters";
    }
    if (s["maxLength"].get(n) == simdjson::SUCCESS && utf8_length(str) > n) {
      return where(path) + ": must be at most " + std::to_string(n) + " characters";
    }
    std::string_view pattern;
    if (s["pattern"].get(pattern) == simdjson::SUCCESS) {
      try {
        if (!std::regex_search(std::string(str), std::regex(std::string(pattern), std::regex::ECMAScript))) {
          return where(path) + ": must match " + std::string(pattern);
        }
      } catch (const std::regex_error&) {
        // A pattern std::regex cannot read is not the caller's fault.
      }
    }
  }
  if (v.is_number()) {
    const double x = number_of(v);
    element bound;
    if (s["minimum"].get(bound) == simdjson::SUCCESS && bound.is_number() && x < number_of(bound)) {
      return where(path) + ": must be at least " + simdjson::minify(bound);
    }
    if (s["maximum"].get(bound) == simdjson::SUCCESS && bound.is_number() && x > number_of(bound)) {
      return where(path) + ": must be at most " + simdjson::minify(bound);
    }
  }
  if (v.is_array()) {
    const simdjson::dom::array arr(v);
    uint64_t n = 0;
    if (s["minItems"].get(n) == simdjson::SUCCESS && arr.size() < n) {
      return where(path) + ": needs at least " + std::to_string(n) + " items";
    }
    if (s["maxItems"].get(n) == simdjson::SUCCESS && arr.size() > n) {
      return where(path) + ": takes at most " + std::to_string(n) + " items";
    }
    element items;
    if (s["items"].get(items) == simdjson::SUCCESS) {
      size_t i = 0;
      for (element x : arr) {
        if (auto e = check(items, x, path + "[" + std::to_string(i++) + "]"); !e.empty()) return e;
      }
    }
  }
  if (v.is_object()) {
    const simdjson::dom::object obj(v);
    simdjson::dom::array required;
    if (s["required"].get(required) == simdjson::SUCCESS) {
      for (element r : required) {
        std::string_view key;
        if (r.get(key) != simdjson::SUCCESS) continue;
        element ignored;
        if (obj[key].get(ignored) != simdjson::SUCCESS) {
          return (path.empty() ? "" : path + ".") + std::string(key) + ": is required";
        }
      }
    }
    simdjson::dom::object props;
    const bool has_props = s["properties"].get(props) == simdjson::SUCCESS;
    bool additional = true;
    element extra;
    if (s["additionalProperties"].get(extra) == simdjson::SUCCESS && extra.is_bool()) additional = bool(extra);
    for (auto [key, value] : obj) {
      const std::string sub = (path.empty() ? "" : path + ".") + std::string(key);
      element prop;
      if (has_props && props[key].get(prop) == simdjson::SUCCESS) {
        if (auto e = check(prop, value, sub); !e.empty()) return e;
      } else if (!additional) {
        return sub + ": is not an accepted argument";
      }
    }
  }
  return {};
}

}  // namespace

std::string check_json_schema(std::string_view schema, std::string_view instance) {
  simdjson::dom::parser schema_parser;
  simdjson::dom::parser instance_parser;
  element s;
  element v;
  if (schema_parser.parse(schema.data(), schema.size()).get(s) != simdjson::SUCCESS) {
    return "the tool's schema is not JSON";
  }
  if (instance_parser.parse(instance.data(), instance.size()).get(v) != simdjson::SUCCESS) {
    return "the arguments are not valid JSON";
  }
  return check(s, v, "");
}

std::string json_or_string(std::string_view text) {
  simdjson::dom::parser parser;
  element v;
  if (parser.parse(text.data(), text.size()).get(v) == simdjson::SUCCESS) return simdjson::minify(v);
  std::string out;
  append_json_string(out, text);
  return out;
}

}  // namespace sluice
