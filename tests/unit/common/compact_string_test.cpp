#include "gateway/common/compact_string.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace sluice {
namespace {

TEST(CompactString, EmptyHoldsNothingAndTextRoundTrips) {
  CompactString empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.capacity(), 0u);
  EXPECT_EQ(empty.view(), "");
  EXPECT_EQ(sizeof(CompactString), sizeof(void*));

  CompactString s = std::string("订单 A7777 📦");
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s, "订单 A7777 📦");
  EXPECT_EQ(s.size(), std::string("订单 A7777 📦").size());
  EXPECT_EQ(s.str(), "订单 A7777 📦");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "订单 A7777 📦");
  // Assigning "" lets the bytes go.
  s = "";
  EXPECT_TRUE(s.empty());
}

TEST(CompactString, CopiesAreDeepAndMovesHandOver) {
  CompactString a = "plugin-甲";
  CompactString b = a;
  EXPECT_EQ(b, "plugin-甲");
  EXPECT_NE(a.view().data(), b.view().data());
  a = "other";
  EXPECT_EQ(b, "plugin-甲");
  CompactString c = std::move(b);
  EXPECT_EQ(c, "plugin-甲");
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  c = c;  // self-assignment keeps the text
  EXPECT_EQ(c, "plugin-甲");
  char* raw = c.release();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(CompactString::view_of(raw), "plugin-甲");
  CompactString::free_raw(raw);
  EXPECT_EQ(CompactString::view_of(nullptr), "");
}

}  // namespace
}  // namespace sluice
