#include "gateway/engine/openai/chunk_decoder.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(ChunkDecoder, RoleOnlyFirstChunkHasNoContent) {
  ChunkDecoder d;
  auto c = d.decode(
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(c.kind, StreamChunk::Kind::kData);
  EXPECT_EQ(c.content, "");
  EXPECT_EQ(c.finish_reason, "");
  EXPECT_FALSE(c.usage);
}

TEST(ChunkDecoder, ContentWithEscapesChineseAndEmoji) {
  ChunkDecoder d;
  auto c = d.decode(
      R"({"choices":[{"index":0,"delta":{"content":"你好 \"quoted\"\n\ud83d\ude80"},"finish_reason":null}]})");
  EXPECT_EQ(c.kind, StreamChunk::Kind::kData);
  EXPECT_EQ(c.content, "你好 \"quoted\"\n🚀");
}

TEST(ChunkDecoder, FinishReasonAndUsageChunk) {
  ChunkDecoder d;
  auto fin = d.decode(
      R"({"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}]})");
  EXPECT_EQ(fin.finish_reason, "length");
  auto usage = d.decode(
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":12,"total_tokens":30,"completion_tokens":18}})");
  EXPECT_EQ(usage.kind, StreamChunk::Kind::kData);
  ASSERT_TRUE(usage.usage);
  EXPECT_EQ(usage.usage->prompt_tokens, 12);
  EXPECT_EQ(usage.usage->completion_tokens, 18);
  // usage: null in every chunk (continuous usage off) is not a usage chunk.
  auto plain = d.decode(R"({"choices":[{"delta":{"content":"a"}}],"usage":null})");
  EXPECT_FALSE(plain.usage);
  EXPECT_EQ(plain.content, "a");
}

// vLLM's tool-call stream (hermes parser): the id and name come first, the
// arguments in pieces; two parallel calls by index.
TEST(ChunkDecoder, ToolCallFragments) {
  ChunkDecoder d;
  auto head = d.decode(
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-1a2b","type":"function","index":0,"function":{"name":"lookup_order","arguments":""}}]},"logprobs":null,"finish_reason":null}]})");
  ASSERT_EQ(head.tool_calls.size(), 1u);
  EXPECT_EQ(head.tool_calls[0].index, 0);
  EXPECT_EQ(head.tool_calls[0].id, "chatcmpl-tool-1a2b");
  EXPECT_EQ(head.tool_calls[0].name, "lookup_order");
  EXPECT_EQ(head.content, "");
  auto piece = d.decode(
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"order_id\": \"订单"}}]},"finish_reason":null}]})");
  ASSERT_EQ(piece.tool_calls.size(), 1u);
  EXPECT_EQ(piece.tool_calls[0].index, 1);
  EXPECT_EQ(piece.tool_calls[0].id, "");
  EXPECT_EQ(piece.tool_calls[0].arguments, "{\"order_id\": \"订单");
  auto fin = d.decode(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
  EXPECT_EQ(fin.finish_reason, "tool_calls");
  EXPECT_TRUE(fin.tool_calls.empty());
}

TEST(ChunkDecoder, DoneAndErrors) {
  ChunkDecoder d;
  EXPECT_EQ(d.decode("[DONE]").kind, StreamChunk::Kind::kDone);
  auto e1 = d.decode(R"({"error":{"message":"CUDA out of memory","type":"x","code":500}})");
  EXPECT_EQ(e1.kind, StreamChunk::Kind::kError);
  EXPECT_EQ(e1.message, "CUDA out of memory");
  auto e2 = d.decode(R"({"object":"error","message":"bad things","type":"BadRequestError","code":400})");
  EXPECT_EQ(e2.kind, StreamChunk::Kind::kError);
  EXPECT_EQ(e2.message, "bad things");
}

TEST(ChunkDecoder, MalformedEvents) {
  ChunkDecoder d;
  for (std::string_view bad : {"", "{", "[1]", "null", R"({"id":"x"})", R"({"choices":[7]})",
                               "\xff\xfe", R"({"choices":[{"delta":{"content":"\xc3"}}]})"}) {
    EXPECT_EQ(d.decode(bad).kind, StreamChunk::Kind::kMalformed) << bad;
  }
}

TEST(ChunkDecoder, ErrorBodies) {
  ChunkDecoder d;
  EXPECT_EQ(d.error_body_message(
                R"({"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404})"),
            "The model `x` does not exist.");
  EXPECT_EQ(d.error_body_message(R"({"error":{"message":"Rate limit","type":"rate"}})"),
            "Rate limit");
  EXPECT_EQ(d.error_body_message(R"({"detail":"Not Found"})"), "Not Found");
  EXPECT_EQ(d.error_body_message("<html>502 Bad Gateway</html>\n"),
            "<html>502 Bad Gateway</html> ");
  EXPECT_EQ(d.error_body_message(""), "(empty body)");
  EXPECT_EQ(d.error_body_message("\xff\xfe bytes"), "   bytes");
}

}  // namespace
}  // namespace sluice
