// The gateway's side of retrieval without I/O: the request a retriever
// gets, how passages of several retrievers are merged, the sources items
// and the prompt the model reads (docs/protocol.md is the contract).
#include "gateway/stream/retrieval.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

namespace sluice {
namespace {

Passage passage(std::string id, double score, std::string text = "text") {
  Passage p;
  p.id = std::move(id);
  p.title = "Title of " + p.id;
  p.text = std::move(text);
  p.score = score;
  return p;
}

TEST(Retrieval, TheRequestHasTheLastUserMessageAndTheConversationBeforeIt) {
  RetrievalConfig config;
  config.context_messages = 2;
  const std::vector<ChatMessage> history = {
      {"system", "You are the shop's assistant.", {}, {}},
      {"user", "How long does shipping to France take?", {}, {}},
      {"assistant", "Standard shipping to France takes 9 to 12 business days [1].", {}, {}},
      {"user", "那德国呢？🇩🇪", {}, {}},
  };
  const std::string req = retrieval_request(history, config);
  EXPECT_EQ(req,
            R"({"query":"那德国呢？🇩🇪","conversation":[{"role":"user","content":"How long does shipping to France take?"},)"
            R"({"role":"assistant","content":"Standard shipping to France takes 9 to 12 business days [1]."}],"top_k":3})");
  EXPECT_EQ(retrieval_request({{"system", "x", {}, {}}}, config), "");
  config.context_messages = 0;
  EXPECT_EQ(retrieval_request(history, config), R"({"query":"那德国呢？🇩🇪","conversation":[],"top_k":3})");
}

TEST(Retrieval, PassagesOfAllRetrieversAreRankedByScoreOncePerIdAndCut) {
  ToolOutcome a, b, failed;
  a.ok = b.ok = true;
  a.passages = {passage("a1", 5), passage("a2", 1)};
  b.passages = {passage("b1", 7), passage("a1", 4), passage("b2", 1)};
  failed.ok = false;
  failed.passages = {passage("f", 100)};  // a failed retriever's passages are not used
  const auto top = top_passages({a, b, failed}, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].id, "b1");
  EXPECT_EQ(top[1].id, "a1");
  EXPECT_EQ(top[1].score, 5);  // the better of the two
  EXPECT_EQ(top[2].id, "a2");  // a tie keeps the retrievers' order
  EXPECT_TRUE(top_passages({failed}, 3).empty());
}

TEST(Retrieval, SourcesItemsCarryThePassagesAndComeBackFromTheJournal) {
  auto p = passage("zh/returns#policy", 2.5, "收货后30天内可以退货 📦。\n\"quoted\"");
  p.url = "https://shop.example/zh/help/returns#policy";
  p.metadata_json = R"({"lang":"zh"})";
  const std::vector<Passage> in = {p, passage("en/x", 1)};
  const std::string items = sources_items_json(in);
  simdjson::dom::parser parser;
  simdjson::dom::array array;
  ASSERT_EQ(parser.parse(items).get(array), simdjson::SUCCESS) << items;
  ASSERT_EQ(array.size(), 2u);
  EXPECT_EQ(std::string_view(array.at(0)["kind"]), "passage");
  EXPECT_EQ(std::string_view(array.at(0)["snippet"]), p.text);
  EXPECT_EQ(double(array.at(0)["score"]), 2.5);
  EXPECT_EQ(std::string_view(array.at(0)["metadata"]["lang"]), "zh");
  const auto back = passages_from_items(items);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].id, p.id);
  EXPECT_EQ(back[0].title, p.title);
  EXPECT_EQ(back[0].url, p.url);
  EXPECT_EQ(back[0].text, p.text);
  EXPECT_EQ(back[0].metadata_json, p.metadata_json);
  // A tool's source cards are not passages.
  EXPECT_TRUE(passages_from_items(R"([{"title":"Order A1001","url":"u","snippet":"s"}])").empty());
  EXPECT_TRUE(passages_from_items("not json").empty());
}

TEST(Retrieval, ThePromptNumbersThePassagesBeforeTheQuestionInTheLastUserMessage) {
  std::vector<ChatMessage> messages = {{"user", "first question", {}, {}},
                                       {"assistant", "answer", {}, {}},
                                       {"user", "寄到德国要多久？", {}, {}},
                                       {"tool", "{}", {}, "call_1"}};
  put_sources_into_prompt(messages, {passage("a", 2, "Germany: 9 to 12 business days."), passage("b", 1, "Express: $15.")});
  EXPECT_EQ(messages[0].content, "first question");
  EXPECT_EQ(messages[2].content,
            "Sources:\n[1] Title of a\nGermany: 9 to 12 business days.\n[2] Title of b\nExpress: $15.\n\n"
            "Answer from the sources and cite them as [1]; if they do not answer it, say so.\n"
            "Question: 寄到德国要多久？");
  EXPECT_EQ(messages[3].content, "{}");
  std::vector<ChatMessage> untouched = {{"user", "hi", {}, {}}};
  put_sources_into_prompt(untouched, {});
  EXPECT_EQ(untouched[0].content, "hi");
}

}  // namespace
}  // namespace sluice
