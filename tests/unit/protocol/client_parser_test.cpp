#include "gateway/protocol/client_parser.hpp"

#include <gtest/gtest.h>

#include "gateway/common/utf8.hpp"
#include "gateway/protocol/openai_http.hpp"

namespace sluice {
namespace {

ProtocolError error_of(std::string_view frame) {
  ClientParser p;
  auto m = p.parse(frame);
  if (auto* e = std::get_if<ProtocolError>(&m)) return *e;
  ADD_FAILURE() << "accepted: " << frame;
  return {};
}

TEST(ClientParser, Chat) {
  ClientParser p;
  auto m = p.parse(
      R"({"type":"chat","request_id":"r1","input":"退货怎么办？📦","model":"m","params":{"temperature":0.5,"max_tokens":64,"stop":["\n\n"]}})");
  auto* chat = std::get_if<ChatCommand>(&m);
  ASSERT_TRUE(chat);
  EXPECT_FALSE(chat->session_id);
  EXPECT_EQ(chat->request_id, "r1");
  ASSERT_EQ(chat->messages.size(), 1u);
  EXPECT_EQ(chat->messages[0].role, "user");
  EXPECT_EQ(chat->messages[0].content, "退货怎么办？📦");
  EXPECT_EQ(chat->model, "m");
  ASSERT_EQ(chat->params.fields.size(), 3u);
  EXPECT_EQ(chat->params.fields[0], (std::pair<std::string, std::string>{"temperature", "0.5"}));
  EXPECT_EQ(chat->params.fields[2].second, R"(["\n\n"])");
}

TEST(ClientParser, ChatWithMessagesAndSession) {
  ClientParser p;
  auto m = p.parse(
      R"({"type":"chat","session_id":"s_1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]})");
  auto* chat = std::get_if<ChatCommand>(&m);
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->session_id, "s_1");
  ASSERT_EQ(chat->messages.size(), 2u);
  EXPECT_EQ(chat->messages[0].role, "system");
}

TEST(ClientParser, CancelAndPing) {
  ClientParser p;
  auto c = p.parse(R"({"type":"cancel","session_id":"s_9","request_id":"x"})");
  ASSERT_TRUE(std::holds_alternative<CancelCommand>(c));
  EXPECT_EQ(std::get<CancelCommand>(c).session_id, "s_9");
  auto ping = p.parse(R"({"type":"ping"})");
  ASSERT_TRUE(std::holds_alternative<PingCommand>(ping));
}

TEST(ClientParser, MalformedInput) {
  struct Case {
    std::string frame;
    ErrorCode code;
  };
  const std::vector<Case> cases = {
      {"", ErrorCode::kBadJson},
      {"nope", ErrorCode::kBadJson},
      {"{\"type\":\"chat\"", ErrorCode::kBadJson},
      {"[]", ErrorCode::kBadJson},
      {"{\"type\":\"ping\"} trailing", ErrorCode::kBadJson},
      {"{\"type\":\"ping\",\"x\":\"\xff\"}", ErrorCode::kBadJson},  // invalid UTF-8
      {std::string(100, '[') + std::string(100, ']'), ErrorCode::kBadJson},
      {R"({})", ErrorCode::kBadMessage},
      {R"({"type":null})", ErrorCode::kBadMessage},
      {R"({"type":"pong"})", ErrorCode::kUnknownType},
      {R"({"type":"chat","input":5})", ErrorCode::kBadMessage},
      {R"({"type":"chat","messages":"hi"})", ErrorCode::kBadMessage},
      {R"({"type":"chat","messages":[{"role":"user"}]})", ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","session_id":7})", ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","request_id":")" + std::string(200, 'r') + "\"}",
       ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","params":[]})", ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","params":{"top_p":2}})", ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","params":{"stop":[1]}})", ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","params":{"stop":["a","b","c","d","e"]}})",
       ErrorCode::kBadMessage},
      {R"({"type":"chat","input":"x","model":{}})", ErrorCode::kBadMessage},
      {R"({"type":"cancel","session_id":""})", ErrorCode::kBadMessage},
  };
  for (const auto& c : cases) {
    const auto e = error_of(c.frame);
    EXPECT_EQ(e.code, c.code) << c.frame << " -> " << e.message;
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(ClientParser, RequestIdIsKeptOnErrors) {
  const auto e = error_of(R"({"type":"chat","request_id":"keep-me"})");
  EXPECT_EQ(e.request_id, "keep-me");
}

TEST(ClientParser, CancelCarriesTheResumeToken) {
  ClientParser p;
  auto c = p.parse(R"({"type":"cancel","session_id":"s_9","resume_token":"rt_1"})");
  ASSERT_TRUE(std::holds_alternative<CancelCommand>(c));
  EXPECT_EQ(std::get<CancelCommand>(c).resume_token, "rt_1");
  EXPECT_EQ(error_of(R"({"type":"cancel","session_id":"s_9","resume_token":5})").code, ErrorCode::kBadMessage);
}

TEST(ClientParser, EchoedTextIsCutOnACharacterBoundaryAtEveryPosition) {
  // A type of 63 ASCII bytes and an "é" once got an error cut inside the
  // "é": invalid UTF-8 that makes a browser drop the connection.
  for (const std::string ch : {"é", "你", "🚀"}) {
    for (size_t ascii = 50; ascii <= 70; ++ascii) {
      std::string text(ascii, 'a');
      for (int i = 0; i < 4; ++i) text += ch;
      const auto type = error_of(R"({"type":")" + text + R"("})");
      EXPECT_EQ(type.code, ErrorCode::kUnknownType);
      EXPECT_TRUE(valid_utf8(type.message)) << ascii << " " << ch << ": " << type.message;
      const auto param = error_of(R"({"type":"chat","input":"x","params":{")" + text + R"(":1}})");
      EXPECT_EQ(param.code, ErrorCode::kBadMessage);
      EXPECT_TRUE(valid_utf8(param.message)) << ascii << " " << ch << ": " << param.message;
      EXPECT_LT(param.message.size(), 300u);
    }
  }
}

TEST(OpenAiChatRequest, FieldsOfTheWrongTypeAreRefused) {
  const std::string messages = R"("messages":[{"role":"user","content":"你好 🚀"}])";
  for (const std::string extra : {R"("stream":"yes")", R"("stream":1)", R"("model":7)",
                                  R"("stream_options":{"include_usage":"yes"})", R"("stream_options":[])",
                                  R"("n":"1")", R"("n":2)"}) {
    const auto r = parse_openai_chat_request("{" + messages + "," + extra + "}");
    ASSERT_TRUE(std::holds_alternative<ProtocolError>(r)) << extra;
    EXPECT_EQ(std::get<ProtocolError>(r).code, ErrorCode::kBadMessage) << extra;
  }
  const auto ok = parse_openai_chat_request("{" + messages + R"(,"stream":true,"model":null,"n":1,)" +
                                            R"("stream_options":{"include_usage":true}})");
  ASSERT_TRUE(std::holds_alternative<OpenAiChatRequest>(ok));
  EXPECT_TRUE(std::get<OpenAiChatRequest>(ok).stream);
  EXPECT_TRUE(std::get<OpenAiChatRequest>(ok).include_usage);
  const auto null_stream = parse_openai_chat_request("{" + messages + R"(,"stream":null})");
  ASSERT_TRUE(std::holds_alternative<OpenAiChatRequest>(null_stream));
  EXPECT_FALSE(std::get<OpenAiChatRequest>(null_stream).stream);
}

TEST(ClientParser, ParserIsReusableAfterErrors) {
  ClientParser p;
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(p.parse("{{{{")));
  EXPECT_TRUE(std::holds_alternative<PingCommand>(p.parse(R"({"type":"ping"})")));
}

}  // namespace
}  // namespace sluice
