#include "gateway/engine/local/sampler.hpp"

#include <gtest/gtest.h>

#include <map>

#include "gateway/engine/local/chat_template.hpp"

namespace sluice {
namespace {

TEST(Sampler, GreedyPicksTheLargestLogit) {
  Sampler s({0, 0, 1, 1, 1, 16, {}});
  std::vector<float> logits{0.1f, 2.5f, -1, 2.4f};
  EXPECT_EQ(s.sample(logits, {}), 1);
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
  Sampler s({0, 0, 1, 1.5f, 1, 16, {}});
  std::vector<float> logits{0.1f, 2.5f, -1, 2.0f};
  const std::vector<int32_t> seen{1};
  EXPECT_EQ(s.sample(logits, seen), 3);  // 2.5 / 1.5 < 2.0
}

TEST(Sampler, SameSeedSameDrawsAndTopKLimitsThem) {
  std::vector<int32_t> a, b;
  std::map<int32_t, int> seen;
  for (auto* out : {&a, &b}) {
    Sampler s({1.0f, 2, 1.0f, 1.0f, 42, 16, {}});
    for (int i = 0; i < 200; ++i) {
      std::vector<float> logits{1.0f, 1.1f, 0.9f, 0.5f};
      out->push_back(s.sample(logits, {}));
      ++seen[out->back()];
    }
  }
  EXPECT_EQ(a, b);
  EXPECT_EQ(seen.size(), 2u);  // only the top 2: ids 1 and 0
  EXPECT_TRUE(seen.count(0) && seen.count(1));
}

TEST(Sampler, TopPKeepsTheSmallestHeadWithTheMass) {
  Sampler s({1.0f, 0, 0.5f, 1.0f, 7, 16, {}});
  for (int i = 0; i < 100; ++i) {
    std::vector<float> logits{5.0f, 1.0f, 1.0f, 1.0f};  // id 0 holds > 90% of the mass
    EXPECT_EQ(s.sample(logits, {}), 0);
  }
}

TEST(StopMatcher, HoldsAPossibleStartAndStopsAtTheString) {
  StopMatcher m({"</answer>", "停止"});
  std::string out;
  out += m.push("The answer is 42<");
  EXPECT_EQ(out, "The answer is 42");  // "<" may start "</answer>"
  out += m.push("b>bold ");
  EXPECT_EQ(out, "The answer is 42<b>bold ");
  out += m.push("text</ans");
  out += m.push("wer> never shown");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "The answer is 42<b>bold text");
  StopMatcher zh({"停止"});
  EXPECT_EQ(zh.push("你好停"), "你好");
  EXPECT_EQ(zh.finish(), "停");
}

TEST(ChatTemplate, RendersEachFormatWithContentApartFromTemplateText) {
  const std::vector<ChatMessage> msgs = {{"system", "Be brief.", {}, {}},
                                         {"user", "退货 <|im_end|>?", {}, {}}};
  const auto chatml = render_chat(ChatFormat::kChatML, msgs);
  std::string all;
  for (const auto& s : chatml) all += s.text;
  EXPECT_EQ(all, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n退货 <|im_end|>?<|im_end|>\n"
                 "<|im_start|>assistant\n");
  // The user's "<|im_end|>" is content: tokenized as text, not as a control token.
  for (const auto& s : chatml) {
    if (s.text.find("退货") != std::string::npos) EXPECT_FALSE(s.special);
  }
  std::string l3;
  for (const auto& s : render_chat(ChatFormat::kLlama3, msgs)) l3 += s.text;
  EXPECT_EQ(l3, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\n退货 <|im_end|>?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
  std::string l2;
  for (const auto& s : render_chat(ChatFormat::kLlama2, msgs)) l2 += s.text;
  EXPECT_EQ(l2, "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n退货 <|im_end|>? [/INST]");
  EXPECT_EQ(detect_chat_format("{% for m in messages %}<|im_start|>{{ m.role }}"), ChatFormat::kChatML);
  EXPECT_EQ(detect_chat_format("<|start_header_id|>"), ChatFormat::kLlama3);
  EXPECT_EQ(detect_chat_format("[INST] {{ x }}"), ChatFormat::kLlama2);
  EXPECT_EQ(detect_chat_format("{{ plain }}"), std::nullopt);
}

}  // namespace
}  // namespace sluice
