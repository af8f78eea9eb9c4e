// A delta framed around its journal entry's text (the WebSocket's head +
// json_text + tail, SSE's append_sse_delta) is byte for byte the frame the
// whole-message encoders make, for every kind of text.
#include <gtest/gtest.h>

#include "gateway/common/json_writer.hpp"
#include "gateway/protocol/openai_http.hpp"
#include "gateway/protocol/server_messages.hpp"
#include "gateway/stream/journal.hpp"

namespace sluice {
namespace {

const std::vector<std::string> kTexts = {
    "hello", "", "你好，世界", "🚀 emoji 👋🏽", "quote \" and \\ backslash", "line\nbreak\ttab\r",
    std::string("nul\0byte", 8), "bad \xff utf-8 \xc3", "\x01\x1f control", "</script>"};

JournalEntry delta_entry(const std::string& text, uint64_t offset) {
  StreamEvent e;
  e.type = StreamEventType::kDelta;
  e.text = text;
  e.offset = offset;
  return JournalEntry(std::move(e));
}

TEST(FramedDelta, WebSocketFrameMatchesTheWholeMessage) {
  for (const auto& text : kTexts) {
    for (uint64_t offset : {1ull, 42ull, 18446744073709551615ull}) {
      const JournalEntry entry = delta_entry(text, offset);
      char head[112];
      const size_t n = delta_head("s_AbC-123_xyz", offset, head, sizeof head);
      ASSERT_GT(n, 0u);
      const std::string framed = std::string(head, n) + std::string(entry.json_text()) + std::string(kDeltaTail);
      EXPECT_EQ(framed, delta_message("s_AbC-123_xyz", offset, text)) << text;
    }
  }
}

TEST(FramedDelta, PlainTextIsNotCopiedAndOtherTextIsEscapedOnce) {
  const JournalEntry plain = delta_entry("你好 🚀 plain", 1);
  EXPECT_EQ(plain.json_text().data(), plain.event().text.data());  // the text itself
  const JournalEntry quoted = delta_entry("say \"hi\"", 2);
  EXPECT_EQ(quoted.json_text(), "say \\\"hi\\\"");
  EXPECT_EQ(quoted.json_text().data(), quoted.json_text().data());  // kept, not remade
  const JournalEntry broken = delta_entry("a\xff", 3);
  EXPECT_EQ(broken.json_text(), "a\xEF\xBF\xBD");  // U+FFFD, as JsonWriter writes it
}

TEST(FramedDelta, AHeadThatDoesNotFitOrNeedsEscapingIsRefused) {
  char small[16];
  EXPECT_EQ(delta_head("s_1", 1, small, sizeof small), 0u);
  char head[112];
  EXPECT_EQ(delta_head("s_\"1", 1, head, sizeof head), 0u);
  EXPECT_EQ(delta_head(std::string(200, 'a'), 1, head, sizeof head), 0u);
}

TEST(FramedDelta, SseDeltaMatchesTheWholeEvent) {
  const CompletionIds ids{"chatcmpl-s_1-7", "qwen2.5-模型", 1764633600};
  const std::string prefix = sse_chunk_prefix(ids);
  for (const auto& text : kTexts) {
    const JournalEntry entry = delta_entry(text, 9);
    std::string framed;
    append_sse_delta(framed, prefix, "s_1", 9, entry.json_text());
    // What OpenAI's chunk looks like, written whole with JsonWriter.
    JsonWriter w;
    w.begin_object()
        .field("id", ids.id)
        .field("object", "chat.completion.chunk")
        .field("created", ids.created)
        .field("model", ids.model);
    w.key("choices").begin_array().begin_object().field("index", 0);
    w.key("delta").begin_object().field("content", text).end_object();
    w.key("finish_reason").null().end_object().end_array().end_object();
    EXPECT_EQ(framed, "id: s_1:9\ndata: " + w.take() + "\n\n") << text;
    EXPECT_EQ(framed, sse_event(ids, "s_1", entry.event(), false)) << text;
  }
}

}  // namespace
}  // namespace sluice
