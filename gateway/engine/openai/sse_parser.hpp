// SseParser: an incremental parser for text/event-stream (WHATWG HTML,
// "server-sent events"). Bytes may arrive split at any point, including
// inside a CRLF pair, a BOM or a UTF-8 character; events come out whole.
// Not thread-safe; one parser per HTTP response.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace sluice {

struct SseEvent {
  std::string event;  // "" when the stream named none ("message")
  std::string data;   // data lines joined with '\n'
  std::string id;     // the last event id seen on the stream
};

class SseParser {
 public:
  enum class Status { kOk, kEventTooLarge };
  using Handler = std::function<void(const SseEvent&)>;

  explicit SseParser(size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}

  // Parses `bytes`, calling `on_event` for every event they complete.
  // After kEventTooLarge the parser stays failed.
  Status feed(std::string_view bytes, const Handler& on_event);

 private:
  Status scan(std::string_view bytes, const Handler& on_event);
  void process_line(std::string_view line, const Handler& on_event);

  size_t max_event_bytes_;
  std::string head_;   // the first bytes while they may still be a UTF-8 BOM
  std::string line_;   // the incomplete line carried over from the last feed
  SseEvent event_;     // fields of the event being assembled
  bool has_data_ = false;
  bool after_cr_ = false;  // the last byte was CR: an LF right after it belongs to it
  bool bom_checked_ = false;
  bool failed_ = false;
};

}  // namespace sluice
