// Authentication and ownership: tokens at the WebSocket upgrade (query or
// subprotocol) and on HTTP; one principal's sessions are untouchable by
// another, with the same answer as an unknown session.
#include <jwt.h>

#include <chrono>

#include "gateway/auth/authenticator.hpp"
#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

const std::string kSecret = "integration-secret-🔐";
const std::string kShopBKey = "sk-shop-b-0123456789";

std::string jwt_for(const std::string& sub, long exp_from_now) {
  const long now = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  jwt_add_grant(jwt, "sub", sub.c_str());
  jwt_add_grant(jwt, "aud", "sluice");
  jwt_add_grant_int(jwt, "exp", now + exp_from_now);
  jwt_set_alg(jwt, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
              static_cast<int>(kSecret.size()));
  char* s = jwt_encode_str(jwt);
  std::string out = s;
  free(s);
  jwt_free(jwt);
  return out;
}

class Auth : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = start_sim({"--rate", "50"});
    gw_ = start_gateway(sim_url(*sim_),
                        {"SLUICE_AUTH_MODE=token", "SLUICE_AUTH_JWT_HS256_SECRET=" + kSecret,
                         "SLUICE_AUTH_JWT_AUDIENCE=sluice", "SLUICE_AUTH_JWT_LEEWAY_MS=0",
                         "SLUICE_AUTH_HELLO_TIMEOUT_MS=1000",
                         R"(SLUICE_AUTH_API_KEYS=[{principal = "shop-b", sha256 = ")" +
                             sha256_hex(kShopBKey) + R"("}])"});
  }
  std::unique_ptr<Process> sim_;
  std::unique_ptr<Process> gw_;
};

TEST_F(Auth, BadTokenIsRefusedAtTheUpgrade) {
  EXPECT_THROW(WsClient(gw_->port(), "/v1/ws?token=" + jwt_for("shop-a", -60)), std::exception);
  EXPECT_THROW(WsClient(gw_->port(), "/v1/ws?token=sk-wrong"), std::exception);
  const auto refused = http_get_with(gw_->port(), "/v1/ws", {{"Authorization", "Bearer sk-wrong"}});
  EXPECT_EQ(refused.status, 401);
  EXPECT_NE(refused.body.find("unauthorized"), std::string::npos);
  EXPECT_EQ(http_get(gw_->port(), "/healthz").status, 200);  // probes need no token
}

TEST_F(Auth, WithoutATokenOnlyHelloIsAccepted) {
  WsClient c(gw_->port());
  c.send(chat("sneaky"));
  auto err = c.read_until("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "unauthorized");
  EXPECT_FALSE(c.read());
  EXPECT_EQ(c.close_code(), 4001);
}

TEST_F(Auth, HelloAuthenticatesAndRefreshes) {
  WsClient c(gw_->port());
  JsonWriter hello;
  hello.begin_object().field("type", "hello").field("token", jwt_for("shop-a", 600))
      .field("client", "widget/1.0").field("request_id", "h1").end_object();
  c.send(hello.str());
  auto ready = c.read_until("ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->request_id, "h1");
  EXPECT_NE(ready->raw.find(R"("principal":"shop-a")"), std::string::npos);
  EXPECT_NE(ready->raw.find(R"("max_frame_bytes")"), std::string::npos);
  c.send(chat("after hello"));
  auto session = c.read_until("session");
  ASSERT_TRUE(session);
  EXPECT_EQ(read_turn(c, session->session_id).text, expected_text("after hello"));

  // Refresh: the same principal is accepted, another one is not.
  JsonWriter same;
  same.begin_object().field("type", "hello").field("token", jwt_for("shop-a", 1200)).end_object();
  c.send(same.str());
  EXPECT_TRUE(c.read_until("ready"));
  JsonWriter other;
  other.begin_object().field("type", "hello").field("token", kShopBKey).end_object();
  c.send(other.str());
  auto refused = c.read_until("error");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "unauthorized");
  c.send(R"({"type":"ping"})");
  EXPECT_TRUE(c.read_until("pong"));  // still connected, as shop-a
}

TEST_F(Auth, NoHelloInTimeClosesTheConnection) {
  WsClient c(gw_->port());
  EXPECT_FALSE(c.read(std::chrono::seconds(15)));
  EXPECT_EQ(c.close_code(), 4001);
}

TEST_F(Auth, SessionsBelongToTheirPrincipal) {
  // shop-a with a JWT in the query string.
  WsClient a(gw_->port(), "/v1/ws?token=" + jwt_for("shop-a", 600));
  a.send(chat("mine 🔒", "a1"));
  auto session = a.read_until("session");
  ASSERT_TRUE(session);

  // shop-b with an API key as a WebSocket subprotocol, as a browser sends it;
  // it knows shop-a's session id and even its resume token.
  WsClient b(gw_->port(), "/v1/ws", 0,
             {{"Sec-WebSocket-Protocol", "sluice.v1, bearer." + kShopBKey}});
  b.send(resume(session->session_id, 0, session->resume_token));
  auto refused = b.read_until("resume_failed");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->reason, "unknown_session");  // the same as a session that never was
  b.send(cancel(session->session_id));
  auto err = b.read_until("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, "unknown_session");
  const auto sse = http_get_with(gw_->port(),
                                 "/v1/sessions/" + session->session_id +
                                     "/stream?resume_token=" + session->resume_token,
                                 {{"Authorization", "Bearer " + kShopBKey}});
  EXPECT_EQ(sse.status, 404);

  // shop-a's turn was not disturbed, and shop-a itself may resume.
  auto turn = read_turn(a, session->session_id);
  ASSERT_TRUE(turn.done);
  EXPECT_EQ(turn.done->finish_reason, "stop");
  EXPECT_EQ(turn.text, expected_text("mine 🔒"));
  WsClient a2(gw_->port(), "/v1/ws", 0, {{"Authorization", "Bearer " + jwt_for("shop-a", 600)}});
  a2.send(resume(session->session_id, 0, session->resume_token));
  EXPECT_TRUE(a2.read_until("resumed"));
}

TEST_F(Auth, HttpFaceNeedsABearerToken) {
  const std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  const auto anonymous = http_post(gw_->port(), "/v1/chat/completions", body);
  EXPECT_EQ(anonymous.status, 401);
  const auto ok = http_post(gw_->port(), "/v1/chat/completions", body,
                            {{"Authorization", "Bearer " + kShopBKey}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("chat.completion"), std::string::npos) << ok.body;
}

TEST_F(Auth, ConnectionClosesWhenItsTokenExpires) {
  WsClient c(gw_->port(), "/v1/ws?token=" + jwt_for("shop-a", 2));
  c.send(R"({"type":"ping"})");
  EXPECT_TRUE(c.read_until("pong"));
  EXPECT_FALSE(c.read(std::chrono::seconds(10)));
  EXPECT_EQ(c.close_code(), 4001);
  EXPECT_EQ(c.close_reason(), "token expired");
}

TEST(AuthConfig, WarnsWhenOpenBeyondLoopbackWithoutAuth) {
  // --check-config reports it without binding anything.
  Process open({SLUICE_GATEWAY_BIN, "--check-config", "--listen", "0.0.0.0:8080"}, {}, false);
  ASSERT_EQ(open.wait(std::chrono::seconds(10)), 0);
  EXPECT_NE(open.stderr_text().find("auth.mode = \"none\""), std::string::npos);
  Process local({SLUICE_GATEWAY_BIN, "--check-config", "--listen", "127.0.0.1:8080"}, {}, false);
  ASSERT_EQ(local.wait(std::chrono::seconds(10)), 0);
  EXPECT_EQ(local.stderr_text().find("warning"), std::string::npos);
  Process secured({SLUICE_GATEWAY_BIN, "--check-config", "--listen", "0.0.0.0:8080"},
                  {"SLUICE_AUTH_MODE=token", "SLUICE_AUTH_JWT_HS256_SECRET=x"}, false);
  ASSERT_EQ(secured.wait(std::chrono::seconds(10)), 0);
  EXPECT_EQ(secured.stderr_text().find("warning"), std::string::npos);
}

}  // namespace
}  // namespace sluice::test
