#include "gateway/protocol/finish_reason.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(FinishReason, EachReasonHasItsProtocolWord) {
  EXPECT_EQ(to_string(FinishReason::kStop), "stop");
  EXPECT_EQ(to_string(FinishReason::kLength), "length");
  EXPECT_EQ(to_string(FinishReason::kToolCalls), "tool_calls");
  EXPECT_EQ(to_string(FinishReason::kContentFilter), "content_filter");
  EXPECT_EQ(to_string(FinishReason::kCancelled), "cancelled");
  EXPECT_EQ(to_string(FinishReason::kError), "error");
}

TEST(FinishReason, UpstreamWordsMapToTheGatewaysOwn) {
  EXPECT_EQ(finish_reason_from_upstream("stop"), FinishReason::kStop);
  EXPECT_EQ(finish_reason_from_upstream("length"), FinishReason::kLength);
  EXPECT_EQ(finish_reason_from_upstream("tool_calls"), FinishReason::kToolCalls);
  EXPECT_EQ(finish_reason_from_upstream("function_call"), FinishReason::kToolCalls);
  EXPECT_EQ(finish_reason_from_upstream("content_filter"), FinishReason::kContentFilter);
  EXPECT_EQ(finish_reason_from_upstream("abort"), FinishReason::kError);
  // An upstream's own word (or none) ends the answer normally; a client
  // never sees a value outside the documented set.
  EXPECT_EQ(finish_reason_from_upstream("eos_token"), FinishReason::kStop);
  EXPECT_EQ(finish_reason_from_upstream(""), FinishReason::kStop);
  EXPECT_EQ(finish_reason_from_upstream("停止"), FinishReason::kStop);
}

}  // namespace
}  // namespace sluice
