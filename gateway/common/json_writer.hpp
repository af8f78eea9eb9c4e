// JsonWriter: builds compact JSON text for wire messages and log lines.
// Strings should be valid UTF-8 (they come from simdjson-validated input or
// from the gateway itself); any byte that is not is written as U+FFFD, so
// the output always is. Control characters are escaped.
// Not thread-safe; one writer per message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(int64_t v);
  JsonWriter& value(uint64_t v);
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(double v);
  JsonWriter& value(bool v);
  JsonWriter& null();
  // Inserts already-serialized JSON (a value taken from validated input).
  JsonWriter& raw(std::string_view json);

  template <typename T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void separate();
  std::string out_;
  bool need_comma_ = false;
};

// Appends `s` to `out` as a quoted JSON string.
void append_json_string(std::string& out, std::string_view s);
// The same without the quotes: what goes between them.
void append_json_string_body(std::string& out, std::string_view s);
// Whether `s` goes between a JSON string's quotes as it is: no byte to
// escape, none to replace (valid UTF-8).
bool json_string_is_plain(std::string_view s);

}  // namespace sluice
