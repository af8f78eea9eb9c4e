#include "gateway/stream/session.hpp"

#include <boost/asio/post.hpp>

#include "gateway/common/logging.hpp"
#include "gateway/common/random_id.hpp"
#include "gateway/protocol/server_messages.hpp"
#include "gateway/stream/turn_log.hpp"

namespace sluice {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

// Carries engine events from the engine's threads to the session's executor.
class Session::Sink final : public TurnSink {
 public:
  Sink(std::shared_ptr<Session> session, uint64_t turn)
      : session_(std::move(session)), turn_(turn) {}
  void on_delta(std::string text) override {
    net::post(session_->executor_, [s = session_, t = turn_, text = std::move(text)]() mutable {
      s->on_delta(t, std::move(text));
    });
  }
  void on_end(TurnResult result) override {
    net::post(session_->executor_, [s = session_, t = turn_, r = std::move(result)]() mutable {
      s->on_end(t, std::move(r));
    });
  }

 private:
  std::shared_ptr<Session> session_;
  uint64_t turn_;
};

Session::Session(std::string id, net::any_io_executor executor, Engine& engine,
                 std::weak_ptr<FrameSink> output)
    : id_(std::move(id)),
      executor_(std::move(executor)),
      engine_(engine),
      output_(std::move(output)),
      last_active_(Clock::now()) {}

void Session::start_turn(const ChatCommand& chat) {
  last_active_ = Clock::now();
  auto t = std::make_unique<TurnState>();
  t->number = ++turns_started_;
  t->request_id = chat.request_id;
  t->trace_id = make_trace_id();
  t->started = last_active_;
  for (const auto& m : chat.messages) t->input_bytes += m.content.size();

  TurnRequest req;
  req.trace_id = t->trace_id;
  req.model = chat.model;
  req.messages = chat.messages;
  req.params = chat.params;
  turn_ = std::move(t);
  turn_->handle =
      engine_.start(std::move(req), std::make_shared<Sink>(shared_from_this(), turn_->number));
}

void Session::cancel() {
  if (turn_) turn_->handle->cancel();
}

void Session::abandon() {
  client_gone_ = true;
  cancel();
}

void Session::on_delta(uint64_t turn, std::string text) {
  if (!turn_ || turn_->number != turn) return;
  if (!turn_->got_first_token) {
    turn_->got_first_token = true;
    turn_->first_token = Clock::now();
  }
  turn_->output_bytes += text.size();
  emit(delta_message(id_, next_offset_++, text));
}

void Session::on_end(uint64_t turn, TurnResult result) {
  if (!turn_ || turn_->number != turn) return;
  const auto now = Clock::now();
  last_active_ = now;
  if (result.error) {
    emit(error_message(result.error->code, result.error->message, id_, turn_->request_id,
                       next_offset_++));
  }
  emit(done_message(id_, next_offset_++, turn_->request_id, result.finish_reason, result.usage));

  using Ms = std::chrono::duration<double, std::milli>;
  TurnLogEntry log;
  log.trace_id = turn_->trace_id;
  log.session_id = id_;
  log.request_id = turn_->request_id;
  log.model = result.model;
  log.input_bytes = turn_->input_bytes;
  log.output_bytes = turn_->output_bytes;
  log.ttft_ms = turn_->got_first_token ? Ms(turn_->first_token - turn_->started).count() : -1;
  log.duration_ms = Ms(now - turn_->started).count();
  log.client_gone = client_gone_;
  log.result = &result;
  write_access_line(format_turn_log(log));

  turn_.reset();
  if (auto out = output_.lock()) out->on_turn_end();
}

void Session::emit(std::string frame) {
  if (auto out = output_.lock()) out->send_frame(std::move(frame));
}

}  // namespace sluice
