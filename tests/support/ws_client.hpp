// WsClient: a real WebSocket client (Boost.Beast) for tests, with timeouts.
// Single-threaded; one per test thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::test {

struct Frame {
  std::string raw;
  std::string type;
  std::string session_id;
  std::string request_id;
  std::string text;
  std::string code;
  std::string message;
  std::string finish_reason;
  std::string resume_token;
  std::string reason;  // resume_failed, moderation
  std::string action;  // moderation
  std::string plugin;  // moderation
  uint64_t offset = 0;
  uint64_t from_offset = 0;  // resumed
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
};

Frame parse_frame(std::string_view json);

class WsClient {
 public:
  // `receive_buffer` > 0 fixes SO_RCVBUF (no autotuning): a client that does
  // not read then fills up after that many bytes, as a stalled phone would.
  // `headers` go on the upgrade request (Origin, Sec-WebSocket-Protocol, ...).
  explicit WsClient(uint16_t port, std::string target = "/v1/ws", int receive_buffer = 0,
                    std::vector<std::pair<std::string, std::string>> headers = {});
  ~WsClient();

  void send(std::string_view text);
  void send_binary(std::string_view bytes);
  // The next frame; nullopt at timeout or when the connection closed.
  std::optional<Frame> read(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reads until a frame of `type` (for `session_id` if given) arrives.
  std::optional<Frame> read_until(std::string_view type, std::string_view session_id = {},
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool closed() const;
  // Waits, without reading, until the server has closed its side of the TCP
  // connection (POLLRDHUP); false at timeout.
  bool wait_peer_closed(std::chrono::milliseconds timeout);
  // The close code the server sent, once closed.
  std::optional<uint16_t> close_code() const;
  std::string close_reason() const;
  void close();  // a clean close handshake
  void drop();   // drops the TCP connection without a close frame

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct HttpReply {
  int status = 0;
  std::string body;
};

HttpReply http_get(uint16_t port, std::string target, std::string origin = "");
// A POST with a JSON body and extra headers; the whole response.
HttpReply http_post(uint16_t port, std::string target, std::string body,
                    std::vector<std::pair<std::string, std::string>> headers = {});
HttpReply http_get_with(uint16_t port, std::string target,
                        std::vector<std::pair<std::string, std::string>> headers);

}  // namespace sluice::test
