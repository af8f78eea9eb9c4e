// HttpChatStream: the answer to one OpenAI-compatible HTTP request
// (POST /v1/chat/completions, or GET /v1/sessions/{id}/stream to resume).
// It is a reader of one session: its JournalPump moves the session's events
// from its cursor, and it writes either SSE chunks (each with
// "id: <session>:<offset>") or, when not streaming, one chat.completion
// object at the turn's end. The slow-consumer rule is the pump's
// (journal_pump.hpp): behind a full buffer (limits.send_queue_bytes) with no
// write finished for limits.slow_consumer_timeout, the stream ends.
//
// Stream is PlainStream or TlsStream (transport.hpp).
//
// Threads: runs on its socket's strand; on_session_events from any thread.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/net/transport.hpp"
#include "gateway/protocol/openai_http.hpp"
#include "gateway/stream/journal_pump.hpp"
#include "gateway/stream/reader_wakeup.hpp"
#include "gateway/net/connection_ticket.hpp"
#include "gateway/stream/session.hpp"
#include "gateway/stream/session_reader.hpp"

namespace sluice {

struct ServerState;

// What the answer looks like; the same for both transports.
struct HttpChatOptions {
  bool sse = true;             // false: one chat.completion JSON at the end
  bool include_usage = false;  // SSE: the usage chunk before [DONE]
  bool role_chunk = true;      // SSE: start with the role-only chunk (new turns)
  CompletionIds ids;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

template <class Stream>
class HttpChatStream : public std::enable_shared_from_this<HttpChatStream<Stream>>,
                       public SessionReader {
 public:
  using Options = HttpChatOptions;

  // `ticket` admitted the connection and counted it against the
  // principal's limit; the stream gives both back when it goes.
  HttpChatStream(Stream stream, std::shared_ptr<ServerState> state,
                 ConnectionTicket ticket, std::shared_ptr<Session> session, uint64_t cursor,
                 Options options);
  ~HttpChatStream() override;

  // Sends the response head (SSE) and starts reading the journal.
  void start();
  void on_session_events(const Session& session) override;

 private:
  void pull();
  JournalPump::Emitted take(const JournalEntryPtr& entry);
  void write(std::string bytes, bool chunk);
  void on_written(boost::beast::error_code ec);
  void finish_sse();
  void reply_json(unsigned status, std::string body);
  void watch_peer();
  void stop(std::string_view why);

  void arm_write_deadline(std::chrono::steady_clock::duration d);

  Stream stream_;
  std::shared_ptr<ServerState> state_;
  const uint64_t id_;
  ConnectionTicket ticket_;
  std::shared_ptr<Session> session_;
  Options options_;
  const std::string chunk_prefix_;  // SSE: what every chunk of this response starts with
  JournalPump pump_;                // one cursor, in session_'s journal
  SlowConsumerRule slow_;
  ReaderWakeup wakeup_;
  bool writing_ = false;
  bool done_ = false;      // the turn's done was written (or the reply was)
  bool stopped_ = false;
  std::string pending_;    // SSE bytes waiting for the current write
  std::string text_;       // non-streaming: the answer so far
  std::string sources_;    // non-streaming: the retrieval sources' items, if any
  char probe_ = 0;         // one byte for noticing the client leave
  // The answer's last write (the final chunk, or the whole JSON reply) gets
  // this long; the socket's own timeouts stay off, as the probe read is
  // always pending.
  boost::asio::steady_timer write_deadline_;
  uint64_t writes_ = 0;    // writes started, to match a deadline to its write
};

}  // namespace sluice
