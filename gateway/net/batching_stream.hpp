// BatchingStream: a stream layer under Beast's WebSocket stream that turns
// the frames of one burst into one write on the socket. Beast writes one
// message per async_write; a connection with ten sessions streaming would
// cost ten sendmsg calls for ten tokens that are ready together.
//
// Between hold() and release() every write is copied into the next batch
// and completes at once, while nothing is on the socket and the batch is
// under 64 KiB; release() (or the 64 KiB) sends the batch in one write.
// Outside a hold, a write goes out at once (after the batch in flight, if
// any) and completes when it is on the wire. Beast's own frames (pong,
// ping, close) pass through the same path, so nothing is ever written
// beside a write in flight, and at most one batch plus one frame is ever
// buffered here.
//
// Threads: one strand, like the stream under it.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <memory>
#include <string>
#include <utility>

namespace sluice {

template <class Next>
class BatchingStream {
 public:
  using executor_type = typename Next::executor_type;
  using next_layer_type = Next;

  explicit BatchingStream(Next&& next) : next_(std::move(next)) {}

  Next& next_layer() { return next_; }
  const Next& next_layer() const { return next_; }
  executor_type get_executor() noexcept { return next_.get_executor(); }

  // Writes from now on join the next batch and complete at once.
  void hold() { holding_ = true; }
  // Sends what the hold gathered. `owner` (the connection) is kept alive
  // until that write is done.
  void release(std::shared_ptr<void> owner) {
    holding_ = false;
    if (next_batch_.empty()) return;
    owner_ = std::move(owner);
    if (!flushing_) flush();
  }
  bool holding() const { return holding_; }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return boost::asio::async_initiate<WriteHandler, void(boost::beast::error_code, std::size_t)>(
        [this](auto&& h, const ConstBufferSequence& b) { start_write(std::move(h), b); }, handler,
        buffers);
  }

 private:
  // The one write that waits for its bytes to reach the socket (Beast never
  // starts a second write before the first completes).
  struct Waiting {
    virtual ~Waiting() = default;
    virtual void complete(boost::beast::error_code ec, std::size_t n) = 0;
  };
  template <class Handler>
  struct WaitingFor final : Waiting {
    explicit WaitingFor(Handler h) : handler(std::move(h)) {}
    void complete(boost::beast::error_code ec, std::size_t n) override {
      auto ex = boost::asio::get_associated_executor(handler, io_executor);
      boost::asio::post(ex, boost::beast::bind_handler(std::move(handler), ec, n));
    }
    Handler handler;
    executor_type io_executor;
  };

  template <class Handler, class ConstBufferSequence>
  void start_write(Handler handler, const ConstBufferSequence& buffers) {
    const std::size_t n = boost::asio::buffer_size(buffers);
    if (error_ || n == 0) {
      auto ex = boost::asio::get_associated_executor(handler, get_executor());
      boost::asio::post(ex, boost::beast::bind_handler(std::move(handler), error_, std::size_t{0}));
      return;
    }
    const std::size_t at = next_batch_.size();
    next_batch_.resize(at + n);
    boost::asio::buffer_copy(boost::asio::buffer(next_batch_.data() + at, n), buffers);
    // Held writes complete at once while nothing is on the socket and the
    // batch is small; past that they wait like any other, so a client that
    // stops reading stops the writer (and the slow-consumer rule sees it).
    if (holding_ && !flushing_ && next_batch_.size() < kMaxBatch) {
      auto ex = boost::asio::get_associated_executor(handler, get_executor());
      boost::asio::post(ex, boost::beast::bind_handler(std::move(handler), error_, n));
      return;
    }
    auto w = std::make_unique<WaitingFor<Handler>>(std::move(handler));
    w->io_executor = get_executor();
    waiting_ = std::move(w);
    waiting_bytes_ = n;
    if (!flushing_) flush();
  }

  void flush() {
    flushing_ = true;
    in_flight_.swap(next_batch_);
    next_batch_.clear();
    in_flight_waiting_ = std::move(waiting_);
    in_flight_waiting_bytes_ = waiting_bytes_;
    boost::asio::async_write(
        next_, boost::asio::buffer(in_flight_),
        [this, owner = std::exchange(owner_, {})](boost::beast::error_code ec, std::size_t) {
          on_flushed(ec);
        });
  }

  void on_flushed(boost::beast::error_code ec) {
    flushing_ = false;
    if (ec) error_ = ec;
    // A burst leaves its buffer for the next one; a large replay does not.
    constexpr std::size_t kKeep = 16 * 1024;
    if (in_flight_.capacity() > kKeep) {
      std::string().swap(in_flight_);
    } else {
      in_flight_.clear();
    }
    if (auto w = std::move(in_flight_waiting_)) {
      w->complete(ec, ec ? 0 : in_flight_waiting_bytes_);
    }
    if (error_) {
      next_batch_.clear();
      owner_.reset();
      if (auto w = std::move(waiting_)) w->complete(error_, 0);
      return;
    }
    // A write waiting for the wire goes now, held or not, with what the
    // hold gathered before it.
    if (waiting_ || (!holding_ && !next_batch_.empty())) flush();
  }

  static constexpr std::size_t kMaxBatch = 64 * 1024;

  Next next_;
  std::string next_batch_;  // bytes gathered for the next write
  std::string in_flight_;   // bytes of the write on the socket
  std::unique_ptr<Waiting> waiting_;  // completes once next_batch_ is written
  std::size_t waiting_bytes_ = 0;
  std::unique_ptr<Waiting> in_flight_waiting_;  // completes once in_flight_ is written
  std::size_t in_flight_waiting_bytes_ = 0;
  std::shared_ptr<void> owner_;
  bool holding_ = false;
  bool flushing_ = false;
  boost::beast::error_code error_;  // a write failed: every later one fails alike
};

// Closing a WebSocket tears down the stream under the batching layer.
template <class Next>
void teardown(boost::beast::role_type role, BatchingStream<Next>& stream, boost::beast::error_code& ec) {
  using boost::beast::websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

template <class Next, class TeardownHandler>
void async_teardown(boost::beast::role_type role, BatchingStream<Next>& stream, TeardownHandler&& handler) {
  using boost::beast::websocket::async_teardown;
  async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace sluice
