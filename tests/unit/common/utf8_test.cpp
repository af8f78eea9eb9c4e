#include "gateway/common/utf8.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(Utf8, ValidatesWellFormedText) {
  EXPECT_TRUE(valid_utf8("你好 🚀 ok é"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));                  // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));              // surrogate
  EXPECT_FALSE(valid_utf8(std::string("\xE4\xBD", 2)));  // cut short
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));          // past U+10FFFF
}

TEST(Utf8, PrefixAndExcerptNeverSplitACharacterAtAnyCut) {
  for (const std::string ch : {"é", "你", "🚀"}) {
    for (size_t ascii = 0; ascii < 8; ++ascii) {
      std::string s(ascii, 'x');
      for (int i = 0; i < 6; ++i) s += ch;
      for (size_t max = 0; max <= s.size() + 1; ++max) {
        const auto p = utf8_prefix(s, max);
        EXPECT_LE(p.size(), max);
        EXPECT_TRUE(valid_utf8(p)) << s << " at " << max;
        EXPECT_GT(p.size() + ch.size(), std::min(max, s.size()));  // no more cut than needed
        const auto e = utf8_excerpt(s, max);
        EXPECT_TRUE(valid_utf8(e)) << s << " at " << max;
        if (s.size() <= max) EXPECT_EQ(e, s);
        else EXPECT_LE(e.size(), std::max<size_t>(max, 3));
      }
    }
  }
}

TEST(Utf8, ExcerptReplacesInvalidBytes) {
  EXPECT_EQ(utf8_excerpt("a\xFF" "b", 64), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_excerpt(std::string("\xE4\xBD", 2), 64), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_excerpt("abcdefgh", 6), "abc...");
}

}  // namespace
}  // namespace sluice
