// Bad client input gets an `error` with a stable code, and the connection and
// its other sessions carry on.
#include <atomic>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

class ProtocolErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = start_sim({"--rate", "100"});
    gw_ = start_gateway(sim_url(*sim_), {"SLUICE_LIMITS_MAX_FRAME_BYTES=4096",
                                         "SLUICE_LIMITS_MAX_SESSIONS_PER_CONNECTION=2"});
  }

  // Sends `frame` and returns the error it draws.
  Frame error_for(WsClient& c, std::string_view frame) {
    c.send(frame);
    auto f = c.read_until("error");
    return f ? *f : Frame{};
  }

  std::unique_ptr<Process> sim_;
  std::unique_ptr<Process> gw_;
};

TEST_F(ProtocolErrors, EachBadFrameGetsItsCodeAndTheRunningTurnGoesOn) {
  WsClient c(gw_->port());
  c.send(chat("keep streaming 不要停", "main"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);

  struct Case {
    std::string frame;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"not json at all", "bad_json"},
      {"{\"type\":\"chat\",", "bad_json"},
      {"[1,2,3]", "bad_json"},
      {"\"just a string\"", "bad_json"},
      {std::string(40, '[') + std::string(40, ']'), "bad_json"},
      {R"({"no_type":1})", "bad_message"},
      {R"({"type":42})", "bad_message"},
      {R"({"type":"launch_rockets"})", "unknown_type"},
      {R"({"type":"chat"})", "bad_message"},
      {R"({"type":"chat","input":""})", "bad_message"},
      {R"({"type":"chat","input":"x","messages":[]})", "bad_message"},
      {R"({"type":"chat","messages":[{"role":"wizard","content":"x"}]})", "bad_message"},
      {R"({"type":"chat","input":"x","params":{"temperature":"hot"}})", "bad_message"},
      {R"({"type":"chat","input":"x","params":{"temperature":7}})", "bad_message"},
      {R"({"type":"chat","input":"x","params":{"max_tokens":1.5}})", "bad_message"},
      {R"({"type":"chat","input":"x","params":{"logit_bias":{}}})", "bad_message"},
      {R"({"type":"cancel"})", "bad_message"},
      {R"({"type":"cancel","session_id":"s_nope"})", "unknown_session"},
      {R"({"type":"chat","input":"x","session_id":"s_nope"})", "unknown_session"},
      {R"({"type":"chat","input":"x","request_id":7})", "bad_message"},
  };
  for (const auto& k : cases) {
    const Frame e = error_for(c, k.frame);
    EXPECT_EQ(e.code, k.code) << "frame: " << k.frame << " -> " << e.raw;
    EXPECT_FALSE(e.message.empty());
  }
  // Still the same connection, and the turn that was running completed.
  auto turn = read_turn(c, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "stop");
}

TEST_F(ProtocolErrors, ErrorEchoesRequestId) {
  WsClient c(gw_->port());
  const Frame e = error_for(c, R"({"type":"nope","request_id":"abc-1"})");
  EXPECT_EQ(e.code, "unknown_type");
  EXPECT_EQ(e.request_id, "abc-1");
}

TEST_F(ProtocolErrors, OversizedFrameIsSkippedAndConnectionContinues) {
  WsClient c(gw_->port());
  const std::string big = chat(std::string(20000, 'x'), "big");
  const Frame e = error_for(c, big);
  EXPECT_EQ(e.code, "frame_too_large");
  c.send(chat("小一点", "small"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  EXPECT_EQ(session->request_id, "small");
  auto turn = read_turn(c, session->session_id);
  EXPECT_EQ(turn.text, expected_text("小一点"));
}

TEST_F(ProtocolErrors, BinaryFrameIsRefused) {
  WsClient c(gw_->port());
  c.send_binary(std::string("\x00\x01\x02", 3));
  auto e = c.read_until("error");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, "bad_json");
}

TEST_F(ProtocolErrors, SecondChatOnBusySessionIsRefused) {
  WsClient c(gw_->port());
  c.send(chat("[[sim rate=20]] slow"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  const Frame e = error_for(c, chat("again", "r2", session->session_id));
  EXPECT_EQ(e.code, "session_busy");
  EXPECT_EQ(e.session_id, session->session_id);
  c.send(cancel(session->session_id));
  auto turn = read_turn(c, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "cancelled");
}

TEST_F(ProtocolErrors, SessionLimitPerConnection) {
  WsClient c(gw_->port());
  c.send(chat("[[sim rate=20]] one"));
  c.send(chat("[[sim rate=20]] two"));
  ASSERT_TRUE(c.read_until("session"));
  ASSERT_TRUE(c.read_until("session"));
  const Frame e = error_for(c, chat("three", "r3"));
  EXPECT_EQ(e.code, "too_many_sessions");
  EXPECT_EQ(e.request_id, "r3");
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

TEST(HostileInput, FloodOfBadFramesLeavesOtherClientsUndisturbed) {
  auto sim = start_sim({"--rate", "200"});
  auto gw = start_gateway(sim_url(*sim));
  WsClient victim(gw->port());
  victim.send(chat("我在正常聊天 🙂", "ok"));
  auto session = victim.read_until("session");
  ASSERT_TRUE(session);

  std::atomic<bool> stop{false};
  std::thread attacker([&] {
    WsClient bad(gw->port());
    const std::vector<std::string> junk = {
        "{", "null", std::string(200, '['), R"({"type":"chat","input":""})",
        R"({"type":"resume","session_id":"s_x","offset":-1,"resume_token":"t"})",
        std::string("\xff\xfe\xfd", 3), R"({"type":"cancel","session_id":")" + std::string(500, 'x') + "\"}"};
    for (int i = 0; !stop && i < 20000; ++i) {
      try {
        bad.send(junk[i % junk.size()]);
      } catch (const std::exception&) {
        break;  // the gateway may cut a client that sends without reading
      }
    }
  });
  auto turn = read_turn(victim, session->session_id);
  stop = true;
  attacker.join();
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.text, expected_text("我在正常聊天 🙂"));
  EXPECT_EQ(turn.done->finish_reason, "stop");
  EXPECT_EQ(http_get(gw->port(), "/healthz").status, 200);
}

}  // namespace
}  // namespace sluice::test
