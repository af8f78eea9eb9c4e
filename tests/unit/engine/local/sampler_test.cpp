#include "gateway/engine/local/sampler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

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

// What a GPU hands back: the k largest logits in any order. The draw from
// them is the draw from the whole row, token for token, for the same seed.
TEST(Sampler, TheTopCandidatesAloneGiveTheSameTokensAsTheWholeRow) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0, 2);
  for (const SamplingParams& p : {SamplingParams{0.8f, 40, 0.95f, 1.0f, 11, 16, {}},
                                  SamplingParams{1.2f, 5, 1.0f, 1.0f, 12, 16, {}},
                                  SamplingParams{0.0f, 40, 0.95f, 1.0f, 13, 16, {}}}) {
    Sampler whole(p), top(p);
    for (int i = 0; i < 300; ++i) {
      std::vector<float> logits(500);
      for (auto& l : logits) l = n(rng);
      logits[static_cast<size_t>(i)] = logits[static_cast<size_t>(i) + 1];  // a tie: the lower id first
      std::vector<std::pair<float, int32_t>> pairs;
      for (size_t id = 0; id < logits.size(); ++id) pairs.emplace_back(logits[id], static_cast<int32_t>(id));
      std::sort(pairs.begin(), pairs.end(),
                [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      pairs.resize(static_cast<size_t>(p.top_k));
      std::shuffle(pairs.begin(), pairs.end(), rng);
      ASSERT_EQ(top.sample_top(pairs), whole.sample(logits, {})) << "temperature " << p.temperature << ", draw " << i;
    }
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
    if (s.text.find("退货") != std::string::npos) {
      EXPECT_FALSE(s.special);
    }
  }
  std::string l3;
  for (const auto& s : render_chat(ChatFormat::kLlama3, msgs)) l3 += s.text;  // tools: none
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

namespace sluice {
namespace {

TEST(ChatTemplate, ChatMLRendersToolsCallsAndResultsAsQwenDoes) {
  const std::string tools =
      R"([{"type":"function","function":{"name":"lookup_order","description":"Looks up an order 订单",)"
      R"("parameters":{"type":"object","properties":{"order_id":{"type":"string"}},"required":["order_id"]}}}])";
  const std::vector<ChatMessage> msgs = {
      {"user", "我的订单 A1001 在哪里？", {}, {}},
      {"assistant", "", R"([{"id":"call_1","type":"function","function":{"name":"lookup_order","arguments":"{\"order_id\":\"A1001\"}"}}])", {}},
      {"tool", R"({"found":true,"status":"shipped"})", {}, "call_1"},
      {"tool", R"({"found":false})", {}, "call_2"}};
  std::string all;
  bool tools_plain = false;
  for (const auto& s : render_chat(ChatFormat::kChatML, msgs, tools)) {
    all += s.text;
    if (s.text.find("lookup_order") != std::string::npos && s.text.find("Looks up") != std::string::npos) {
      tools_plain = !s.special;  // plugin text never makes control tokens
    }
  }
  EXPECT_TRUE(tools_plain);
  EXPECT_EQ(all,
            "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n\nYou may call one or more functions to "
            "assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML "
            "tags:\n<tools>\n"
            R"({"type": "function", "function": {"name": "lookup_order", "description": "Looks up an order 订单", )"
            R"("parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}})"
            "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n我的订单 A1001 在哪里？<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"lookup_order\", \"arguments\": {\"order_id\": \"A1001\"}}\n"
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n{\"found\":true,\"status\":\"shipped\"}\n</tool_response>\n"
            "<tool_response>\n{\"found\":false}\n</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n");
  // Without tools nothing about them appears.
  std::string plain;
  for (const auto& s : render_chat(ChatFormat::kChatML, {msgs[0]}, "")) plain += s.text;
  EXPECT_EQ(plain, "<|im_start|>user\n我的订单 A1001 在哪里？<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ToolCallTextUsesPythonJsonSpacingAndRefusesBadJson) {
  EXPECT_EQ(tool_call_text("lookup_order", R"({"order_id":"A1001","n":[1,2.5,true,null]})").value(),
            R"({"name": "lookup_order", "arguments": {"order_id": "A1001", "n": [1, 2.5, true, null]}})");
  EXPECT_FALSE(tool_call_text("x", "{not json").has_value());
}

}  // namespace
}  // namespace sluice
