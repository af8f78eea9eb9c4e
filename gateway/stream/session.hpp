// Session: one chat conversation multiplexed on a client connection. It runs
// at most one turn at a time, numbers every event it emits with the next
// offset (1, 2, 3, ... no gaps) and hands the frames to its connection.
//
// Threads: everything runs on `executor` (the connection's strand); engine
// events are posted there by the turn's sink.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "gateway/engine/engine.hpp"
#include "gateway/stream/frame_sink.hpp"

namespace sluice {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::string id, boost::asio::any_io_executor executor, Engine& engine,
          std::weak_ptr<FrameSink> output);

  const std::string& id() const { return id_; }
  bool busy() const { return turn_ != nullptr; }
  std::chrono::steady_clock::time_point last_active() const { return last_active_; }

  // Starts a turn; the caller checked busy().
  void start_turn(const ChatCommand& chat);
  // Asks the running turn to stop; its `done` follows with "cancelled".
  void cancel();
  // The client went away: stop the turn, note it in the turn log.
  void abandon();

 private:
  class Sink;

  void on_delta(uint64_t turn, std::string text);
  void on_end(uint64_t turn, TurnResult result);
  void emit(std::string frame);

  struct TurnState {
    uint64_t number = 0;
    std::string request_id;
    std::string trace_id;
    size_t input_bytes = 0;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point first_token;
    bool got_first_token = false;
    size_t output_bytes = 0;
    std::unique_ptr<TurnHandle> handle;
  };

  std::string id_;
  boost::asio::any_io_executor executor_;
  Engine& engine_;
  std::weak_ptr<FrameSink> output_;
  uint64_t next_offset_ = 1;
  uint64_t turns_started_ = 0;
  std::unique_ptr<TurnState> turn_;
  bool client_gone_ = false;
  std::chrono::steady_clock::time_point last_active_;
};

}  // namespace sluice
