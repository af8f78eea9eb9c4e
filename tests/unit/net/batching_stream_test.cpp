// BatchingStream under a real Beast WebSocket over loopback TCP: frames
// written during a hold leave in one write, in order; Beast's own close
// frame goes after them; a peer that stops reading stops the writer.
#include "gateway/net/batching_stream.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Counts the writes that reach the TCP stream.
class CountingStream {
 public:
  using executor_type = beast::tcp_stream::executor_type;
  explicit CountingStream(beast::tcp_stream s, int& writes) : next_(std::move(s)), writes_(&writes) {}
  beast::tcp_stream& next_layer() { return next_; }
  executor_type get_executor() { return next_.get_executor(); }
  template <class B, class H>
  auto async_read_some(const B& b, H&& h) {
    return next_.async_read_some(b, std::forward<H>(h));
  }
  template <class B, class H>
  auto async_write_some(const B& b, H&& h) {
    ++*writes_;
    return next_.async_write_some(b, std::forward<H>(h));
  }

 private:
  beast::tcp_stream next_;
  int* writes_;
};
[[maybe_unused]] void teardown(beast::role_type role, CountingStream& s, beast::error_code& ec) {
  websocket::teardown(role, s.next_layer().socket(), ec);
}
template <class H>
void async_teardown(beast::role_type role, CountingStream& s, H&& h) {
  websocket::async_teardown(role, s.next_layer().socket(), std::forward<H>(h));
}

using ServerWs = websocket::stream<BatchingStream<CountingStream>>;

struct Pair {
  net::io_context ioc;
  int writes = 0;
  std::unique_ptr<ServerWs> server;
  std::unique_ptr<websocket::stream<beast::tcp_stream>> client;

  Pair() {
    tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), 0});
    client = std::make_unique<websocket::stream<beast::tcp_stream>>(ioc);
    beast::get_lowest_layer(*client).connect(acceptor.local_endpoint());
    tcp::socket accepted = acceptor.accept();
    server = std::make_unique<ServerWs>(CountingStream(beast::tcp_stream(std::move(accepted)), writes));
    std::thread t([&] { client->handshake("127.0.0.1", "/v1/ws"); });
    server->async_accept([](beast::error_code ec) { EXPECT_FALSE(ec); });
    ioc.run();
    ioc.restart();
    t.join();
    writes = 0;
  }
  BatchingStream<CountingStream>& batch() { return server->next_layer(); }
};

std::string message(int i) { return "{\"type\":\"delta\",\"text\":\"你好🚀 " + std::to_string(i) + "\"}"; }

TEST(BatchingStream, HeldFramesLeaveInOneWriteInOrder) {
  Pair p;
  p.batch().hold();
  int done = 0;
  std::vector<std::string> frames;
  for (int i = 0; i < 10; ++i) frames.push_back(message(i));
  // Beast allows one write at a time: each starts when the last completes,
  // as a connection's send queue does.
  std::function<void(int)> write_from = [&](int i) {
    p.server->async_write(net::buffer(frames[i]), [&, i](beast::error_code ec, std::size_t) {
      ASSERT_FALSE(ec);
      ++done;
      if (i + 1 < 10) return write_from(i + 1);
      p.batch().release(nullptr);
    });
  };
  write_from(0);
  p.ioc.run();
  EXPECT_EQ(done, 10);
  EXPECT_EQ(p.writes, 1);  // ten frames, one write
  for (int i = 0; i < 10; ++i) {
    beast::flat_buffer b;
    p.client->read(b);
    EXPECT_EQ(beast::buffers_to_string(b.data()), frames[i]);
  }
}

TEST(BatchingStream, OutsideAHoldAWriteCompletesOnTheWire) {
  Pair p;
  bool done = false;
  const std::string f = message(1);
  p.server->async_write(net::buffer(f), [&](beast::error_code ec, std::size_t) {
    EXPECT_FALSE(ec);
    done = true;
  });
  EXPECT_FALSE(done);  // not before the socket took it
  p.ioc.run();
  EXPECT_TRUE(done);
  EXPECT_EQ(p.writes, 1);
  beast::flat_buffer b;
  p.client->read(b);
  EXPECT_EQ(beast::buffers_to_string(b.data()), f);
}

TEST(BatchingStream, CloseFrameFollowsWhatWasHeld) {
  Pair p;
  p.batch().hold();
  const std::string a = message(1), b = message(2);
  p.server->async_write(net::buffer(a), [&](beast::error_code ec, std::size_t) {
    ASSERT_FALSE(ec);
    p.server->async_write(net::buffer(b), [&](beast::error_code ec2, std::size_t) {
      ASSERT_FALSE(ec2);
      // The connection releases before it closes (WsConnection::do_close):
      // the close frame then waits for the wire, after the held frames.
      p.batch().release(nullptr);
      p.server->async_close(websocket::close_code::going_away, [](beast::error_code) {});
    });
  });
  std::thread client([&] {
    beast::flat_buffer buf;
    p.client->read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), a);
    buf.clear();
    p.client->read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), b);
    buf.clear();
    beast::error_code ec;
    p.client->read(buf, ec);
    EXPECT_EQ(ec, websocket::error::closed);
    EXPECT_EQ(p.client->reason().code, websocket::close_code::going_away);
  });
  p.ioc.run_for(5s);
  client.join();
}

TEST(BatchingStream, PeerThatStopsReadingStopsTheWriter) {
  Pair p;
  p.batch().hold();
  const std::string big(16 * 1024, 'x');
  int done = 0;
  std::function<void()> write_next = [&] {
    p.server->async_write(net::buffer(big), [&](beast::error_code ec, std::size_t) {
      if (ec) return;
      ++done;
      write_next();
    });
  };
  write_next();
  p.ioc.run_for(1s);
  // The client reads nothing: the socket buffers fill and the writes stop
  // completing; what is buffered in the layer stays within one batch.
  const int stalled_at = done;
  p.ioc.run_for(500ms);
  EXPECT_EQ(done, stalled_at);
  EXPECT_LT(done * big.size(), 64u << 20);
  EXPECT_GT(done, 0);
  beast::get_lowest_layer(*p.client).close();
  p.ioc.run_for(1s);
}

}  // namespace
}  // namespace sluice
