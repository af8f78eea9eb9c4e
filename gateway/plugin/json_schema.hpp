// A JSON Schema check for tool arguments: the subset tools use (type,
// properties, required, additionalProperties, enum, const, minLength,
// maxLength, pattern, minimum, maximum, items, minItems, maxItems). Other
// keywords are ignored.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// "" when `instance` (JSON text) satisfies `schema` (JSON text); otherwise
// one sentence naming the first offending place ("order_id: must be a string").
std::string check_json_schema(std::string_view schema, std::string_view instance);

// `text` as a JSON value: itself (minified) when it is valid JSON, else a
// JSON string holding it.
std::string json_or_string(std::string_view text);

}  // namespace sluice
