#include "gateway/store/event_record.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

StreamEvent roundtrip(const StreamEvent& e) {
  const std::string record = encode_event_record(e);
  EXPECT_EQ(record.find('\n'), std::string::npos) << "records travel one per line";
  auto back = decode_event_record(record);
  EXPECT_TRUE(back) << record;
  return back ? *back : StreamEvent{};
}

TEST(EventRecord, DeltasKeepTheirTextByteForByte) {
  const std::vector<std::string> texts = {"你好，世界！", "emoji 🚀✅ and \"quotes\"\n\ttabs",
                                         std::string("nul\0byte", 8), "\\ backslash", ""};
  for (const std::string& text : texts) {
    StreamEvent e;
    e.text = text;
    const StreamEvent back = roundtrip(e);
    EXPECT_EQ(back.type, StreamEventType::kDelta);
    EXPECT_EQ(back.text, text);
  }
  StreamEvent e;
  e.text = "hi";
  EXPECT_EQ(encode_event_record(e), R"({"t":"d","x":"hi"})") << "a delta stays small";
}

TEST(EventRecord, EveryEventTypeComesBack) {
  StreamEvent done;
  done.type = StreamEventType::kDone;
  done.finish_reason = FinishReason::kContentFilter;
  done.request_id = "r-7";
  done.usage = {12, 34};
  StreamEvent back = roundtrip(done);
  EXPECT_EQ(back.type, StreamEventType::kDone);
  EXPECT_EQ(back.finish_reason, FinishReason::kContentFilter);
  EXPECT_EQ(back.request_id.view(), "r-7");
  EXPECT_EQ(back.usage.prompt_tokens, 12);
  EXPECT_EQ(back.usage.completion_tokens, 34);

  StreamEvent error;
  error.type = StreamEventType::kError;
  error.code = ErrorCode::kUpstreamTimeout;
  error.text = "上游超时";
  back = roundtrip(error);
  EXPECT_EQ(back.type, StreamEventType::kError);
  EXPECT_EQ(back.code, ErrorCode::kUpstreamTimeout);
  EXPECT_EQ(back.text, "上游超时");

  StreamEvent mod;
  mod.type = StreamEventType::kModeration;
  mod.action = "redact";
  mod.plugin = "moderation";
  mod.text = "a word on the list";
  back = roundtrip(mod);
  EXPECT_EQ(back.action.view(), "redact");
  EXPECT_EQ(back.plugin.view(), "moderation");
  EXPECT_EQ(back.text, "a word on the list");

  StreamEvent result;
  result.type = StreamEventType::kToolResult;
  result.call_id = "call_1";
  result.name = "order_lookup";
  result.plugin = "orders";
  result.ok = false;
  result.text = "找不到订单 A123";
  back = roundtrip(result);
  EXPECT_EQ(back.type, StreamEventType::kToolResult);
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.call_id.view(), "call_1");
  EXPECT_EQ(back.name.view(), "order_lookup");
  EXPECT_EQ(back.text, "找不到订单 A123");

  StreamEvent sources;
  sources.type = StreamEventType::kSources;
  sources.json = R"([{"title":"订单 A7777","url":"https://shop.example/o/A7777","snippet":"🚚"}])";
  back = roundtrip(sources);
  EXPECT_EQ(back.type, StreamEventType::kSources);
  EXPECT_EQ(back.json.view(), sources.json.view());
}

TEST(EventRecord, UnreadableRecordsAreRefused) {
  EXPECT_FALSE(decode_event_record("not json"));
  EXPECT_FALSE(decode_event_record(R"({"t":"zz"})"));
  EXPECT_FALSE(decode_event_record(R"([1,2])"));
}

TEST(EventRecord, HistoryComesBack) {
  std::vector<ChatMessage> h = {{"system", "Be brief.", {}, {}},
                                {"user", "我的订单 A7777 在哪里？", {}, {}},
                                {"assistant", "", R"([{"id":"call_1","type":"function"}])", {}},
                                {"tool", R"({"status":"shipped"})", {}, "call_1"},
                                {"assistant", "已发货 🚚", {}, {}}};
  auto back = decode_history(encode_history(h));
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ((*back)[i].role, h[i].role);
    EXPECT_EQ((*back)[i].content, h[i].content);
    EXPECT_EQ((*back)[i].tool_calls_json, h[i].tool_calls_json);
    EXPECT_EQ((*back)[i].tool_call_id, h[i].tool_call_id);
  }
  EXPECT_FALSE(decode_history("{}"));
}

}  // namespace
}  // namespace sluice
