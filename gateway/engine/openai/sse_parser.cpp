#include "gateway/engine/openai/sse_parser.hpp"

namespace sluice {
namespace {
constexpr std::string_view kBom = "\xEF\xBB\xBF";
}

SseParser::Status SseParser::feed(std::string_view bytes, const Handler& on_event) {
  if (failed_) return Status::kEventTooLarge;
  if (!bom_checked_) {
    while (!bytes.empty() && head_.size() < kBom.size() && bytes.front() == kBom[head_.size()]) {
      head_.push_back(bytes.front());
      bytes.remove_prefix(1);
    }
    if (head_.size() == kBom.size()) {
      head_.clear();  // a whole BOM: dropped
    } else if (bytes.empty()) {
      return Status::kOk;  // may still become a BOM
    }
    bom_checked_ = true;
    if (!head_.empty()) {
      const std::string head = std::move(head_);
      head_.clear();
      if (scan(head, on_event) != Status::kOk) return Status::kEventTooLarge;
    }
  }
  return scan(bytes, on_event);
}

SseParser::Status SseParser::scan(std::string_view bytes, const Handler& on_event) {
  while (!bytes.empty()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const size_t end = bytes.find_first_of("\r\n");
    const std::string_view part = bytes.substr(0, end);
    if (line_.size() + part.size() + event_.data.size() > max_event_bytes_) {
      failed_ = true;
      return Status::kEventTooLarge;
    }
    if (end == std::string_view::npos) {
      line_.append(part);
      return Status::kOk;
    }
    after_cr_ = bytes[end] == '\r';
    if (line_.empty()) {
      process_line(part, on_event);
    } else {
      line_.append(part);
      process_line(line_, on_event);
      line_.clear();
    }
    bytes.remove_prefix(end + 1);
  }
  return Status::kOk;
}

void SseParser::process_line(std::string_view line, const Handler& on_event) {
  if (line.empty()) {
    if (has_data_) on_event(event_);
    event_.event.clear();
    event_.data.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment, used by servers as keep-alive
  const size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) event_.data.push_back('\n');
    event_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_.event.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) event_.id.assign(value);
  }
  // "retry" and unknown fields are ignored, as the specification says.
}

}  // namespace sluice
