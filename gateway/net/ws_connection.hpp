// WsConnection: one client WebSocket at /v1/ws speaking protocol v1
// (docs/protocol.md). It parses client frames, creates and resumes
// sessions, and is a reader of every session attached to it: its
// JournalPump moves their events from its own cursors into one bounded send
// queue, as fast as the client reads and no faster.
//
// Stream is PlainStream or TlsStream (transport.hpp).
//
// Threads: all members run on the connection's strand, except
// on_session_events and shutdown, which may be called from any thread.
#pragma once

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/container/deque.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "gateway/net/batching_stream.hpp"
#include "gateway/net/server_state.hpp"
#include "gateway/net/transport.hpp"
#include "gateway/protocol/client_parser.hpp"
#include "gateway/protocol/server_messages.hpp"
#include "gateway/stream/journal_pump.hpp"
#include "gateway/stream/reader_wakeup.hpp"
#include "gateway/stream/resume.hpp"
#include "gateway/stream/session_registry.hpp"
#include "gateway/net/connection_ticket.hpp"
#include "gateway/stream/session.hpp"
#include "gateway/stream/session_reader.hpp"

namespace sluice {

template <class Stream>
class WsConnection : public std::enable_shared_from_this<WsConnection<Stream>>,
                     public SessionReader,
                     public DrainableConnection {
 public:
  // `ticket` admitted the connection (limits.max_connections); the
  // principal's own connection limit is counted on it once the principal is
  // known. `principal` was authenticated at the upgrade ("" when the client will
  // send its token in a hello frame), and the connection closes (4001) when
  // its credential `expires` unless a hello refreshes it.
  WsConnection(Stream stream, std::shared_ptr<ServerState> state, ConnectionTicket ticket,
               std::string principal,
               std::optional<std::chrono::system_clock::time_point> expires, std::string client = {});
  ~WsConnection() override;

  void run(boost::beast::http::request<boost::beast::http::string_body> upgrade);
  // Drain: the running turns end (the server cancels them), their last
  // events are delivered, then the connection closes with 1001.
  void shutdown() override;

  void on_session_events(const Session& session) override;

 private:
  using Clock = std::chrono::steady_clock;

  void on_accept(boost::beast::error_code ec);
  void do_read();
  void pause_reading();
  void resume_reading();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void handle_frame(std::string_view frame);
  void handle_chat(const ChatCommand& chat);
  void handle_resume(const ResumeCommand& resume);
  void finish_cancel(const CancelCommand& cancel, std::shared_ptr<Session> session, SessionRegistry::Lookup why);
  // The turn, once the session is claimed (at once, or after the shared store answered).
  void start_turn(Session& session, const ChatCommand& chat, const Admission& claimed);
  // The resume once its session is looked up (at once, or after the shared
  // store has answered: reading waits meanwhile, so messages keep their order).
  void finish_resume(const ResumeCommand& resume, std::shared_ptr<Session> session, SessionRegistry::Lookup why);
  void admit_resume(const ResumeCommand& resume, const ResumeCheck& check);
  void handle_cancel(const CancelCommand& cancel);
  void handle_hello(const HelloCommand& hello);
  bool within_message_rate();
  // Counts the connection against its principal's limit; false (and closing) when over.
  bool count_principal();
  void arm_expiry(std::chrono::system_clock::time_point at);
  void send_error(ErrorCode code, std::string_view message, std::string_view session_id,
                  std::string_view request_id);
  // Makes room for one more attachment; false when all are running turns.
  bool make_room(std::string_view request_id);
  // `held`: its events wait until the client has the session's id (see JournalPump::follow).
  void attach(const std::shared_ptr<Session>& session, uint64_t cursor, bool held = false);

  // Journal -> send queue (the pump).
  void schedule_pull();
  void pull();
  void on_stalled();

  // A frame of the send queue: the connection's own (replies, errors) or a
  // journal entry's shared encoding.
  // A frame of the send queue: the connection's own (replies, errors,
  // merged deltas), a journal entry's shared encoding, or a delta framed
  // around its entry's text (head + json_text + kDeltaTail), which costs no
  // allocation.
  struct Outgoing {
    std::string own;
    JournalEntryPtr entry;  // keeps `shared` alive
    std::string_view shared;
    uint8_t head_len = 0;   // a framed delta: head[0, head_len) + shared + kDeltaTail
    std::array<char, 112> head;
    size_t size() const {
      if (!entry) return own.size();
      return head_len ? head_len + shared.size() + kDeltaTail.size() : shared.size();
    }
    std::array<boost::asio::const_buffer, 3> buffers() const;
  };
  void send(std::string frame);
  void send_entry(const JournalEntryPtr& entry, std::string_view frame);
  // Queues a journal delta of `session_id` framed around its text.
  size_t send_delta(const JournalEntryPtr& entry, std::string_view session_id);
  void enqueue(Outgoing o);
  // Changes queued_bytes_ (and the send-queue gauge) by `bytes`.
  void add_queued(int64_t bytes);
  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);
  void close(boost::beast::websocket::close_reason reason);
  void do_close();
  void on_close(boost::beast::error_code ec);
  void on_credential_expired(boost::beast::error_code ec);
  void arm_idle_timer();
  void on_idle(boost::beast::error_code ec);
  // Tears the connection down; `abortive` resets it (RST) instead of a FIN
  // queued behind data the client will never read.
  void end(std::string_view why, bool abortive = false);
  bool any_busy() const;

  // Frames ready together leave in one write (batching_stream.hpp).
  boost::beast::websocket::stream<BatchingStream<Stream>> ws_;
  std::shared_ptr<ServerState> state_;
  const uint64_t id_;
  std::string principal_;
  std::string client_;  // the client's address, for the access log
  boost::beast::flat_buffer buffer_;
  bool discarding_ = false;  // skipping the rest of an oversized message
  ClientParser parser_;
  JournalPump pump_;  // a cursor per attached session

  // Boost's deque allocates nothing until the first frame (std::deque: 600
  // bytes at construction, for every idle connection).
  boost::container::deque<Outgoing> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool pulling_ = false;  // pull() is queueing frames: it starts the write when done
  ReaderWakeup wakeup_;
  std::chrono::milliseconds coalesce_{0};
  bool coalesce_armed_ = false;
  boost::asio::steady_timer coalesce_timer_;
  SlowConsumerRule slow_;

  std::optional<boost::beast::websocket::close_reason> close_reason_;  // closing once flushed
  bool close_sent_ = false;
  bool accepted_ = false;  // the WebSocket handshake is done
  bool draining_ = false;
  bool ended_ = false;
  // A message that waits for the shared store (a resume, a claim) holds the
  // next read back, so that messages keep their order.
  int read_pauses_ = 0;
  bool dispatching_ = false;  // on_read is handling a frame
  boost::asio::steady_timer idle_timer_;
  std::optional<std::chrono::system_clock::time_point> expires_;
  double message_budget_ = -1;  // limits.messages_per_second token bucket
  Clock::time_point message_budget_at_;
  boost::asio::system_timer expiry_timer_;
  ConnectionTicket ticket_;
};

}  // namespace sluice
