#include "gateway/stream/conversation.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

std::vector<ChatMessage> msgs(std::initializer_list<std::pair<const char*, std::string>> list) {
  std::vector<ChatMessage> out;
  for (const auto& [role, content] : list) out.push_back({role, content, {}, {}});
  return out;
}

TEST(Conversation, KeepsEverythingWithinBudget) {
  auto m = msgs({{"system", "sys"}, {"user", "q1"}, {"assistant", "a1"}, {"user", "q2"}});
  fit_history(m, 1000);
  EXPECT_EQ(m.size(), 4u);
}

TEST(Conversation, DropsOldestButKeepsSystemAndLast) {
  auto m = msgs({{"system", "rules"},
                 {"user", std::string(100, 'a')},
                 {"assistant", std::string(100, 'b')},
                 {"user", std::string(100, 'c')},
                 {"assistant", std::string(100, 'd')},
                 {"user", "最新的问题"}});
  fit_history(m, 250);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[1].content, std::string(100, 'c'));
  EXPECT_EQ(m[3].content, "最新的问题");
}

TEST(Conversation, LastMessageStaysEvenOverBudget) {
  auto m = msgs({{"user", "old"}, {"user", std::string(500, 'x')}});
  fit_history(m, 100);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].content.size(), 500u);
}

TEST(Conversation, AToolResultNeverOutlivesTheCallThatAskedForIt) {
  std::vector<ChatMessage> m = {
      {"user", std::string(60, 'q'), {}, {}},
      {"assistant", "", R"([{"id":"call_1","type":"function","function":{"name":"lookup_order","arguments":"{}"}}])", {}},
      {"tool", R"({"status":"shipped","note":"已发货"})", {}, "call_1"},
      {"assistant", "Order A1001 is shipped.", {}, {}},
      {"user", "谢谢", {}, {}}};
  // Room for the last two messages and the tool result, not for the call.
  fit_history(m, 80);
  ASSERT_FALSE(m.empty());
  EXPECT_NE(m.front().role, "tool");
  EXPECT_EQ(m.back().content, "谢谢");
}

}  // namespace
}  // namespace sluice
