#include "gateway/common/trace_context.hpp"


#include "gateway/common/random_id.hpp"

namespace sluice {
namespace {
bool lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }
}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags; later versions may append "-..."
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  const auto version = v.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" && v.size() != 55) return std::nullopt;
  if (version != "00" && v.size() > 55 && v[55] != '-') return std::nullopt;
  TraceParent t{std::string(v.substr(3, 32)), std::string(v.substr(36, 16)), std::string(v.substr(53, 2))};
  if (!lower_hex(t.trace_id) || all_zero(t.trace_id) || !lower_hex(t.parent_id) || all_zero(t.parent_id) ||
      !lower_hex(t.flags)) {
    return std::nullopt;
  }
  return t;
}

std::string format_traceparent(std::string_view trace_id, std::string_view span_id, std::string_view flags) {
  std::string out = "00-";
  out.append(trace_id).append("-").append(span_id).append("-").append(flags);
  return out;
}

std::string make_span_id() { return make_random_hex(8); }

}  // namespace sluice
