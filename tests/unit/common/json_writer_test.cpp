#include "gateway/common/json_writer.hpp"

#include <gtest/gtest.h>

#include "gateway/common/random_id.hpp"

namespace sluice {
namespace {

TEST(JsonWriter, EscapesControlCharactersAndKeepsUtf8) {
  std::string out;
  append_json_string(out, std::string("a\"b\\c\n\t") + '\x01' + '\x1f' + " 你好 🚀");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f 你好 🚀\"");
}

TEST(JsonWriter, WritesInvalidUtf8AsReplacementCharacters) {
  std::string out;
  // A cut character, a stray continuation byte, an overlong "/" and a
  // surrogate, between valid text.
  append_json_string(out, std::string("é\xC3") + "|\x80|\xC0\xAF|\xED\xA0\x80|你" + std::string("\xE4\xBD", 2));
  EXPECT_EQ(out, "\"é\xEF\xBF\xBD|\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD|"
                 "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD|你\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(JsonWriter, BuildsNestedObjects) {
  JsonWriter w;
  w.begin_object().field("s", "x").field("n", int64_t{-3}).field("b", true);
  w.key("arr").begin_array().value(1).value("two").null().end_array();
  w.key("o").begin_object().field("d", 0.25).end_object();
  w.end_object();
  EXPECT_EQ(w.str(), R"({"s":"x","n":-3,"b":true,"arr":[1,"two",null],"o":{"d":0.25}})");
}

TEST(RandomId, ShapeAndUniqueness) {
  const auto a = make_random_id("s_");
  const auto b = make_random_id("s_");
  EXPECT_EQ(a.size(), 24u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("s_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"),
            std::string::npos);
  const auto t = make_trace_id();
  EXPECT_EQ(t.size(), 32u);
  EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace sluice

#include "gateway/common/base64url.hpp"

namespace sluice {
namespace {

TEST(Base64Url, RoundTripsAndRejectsOtherAlphabets) {
  const std::string bytes = std::string("\x00\xff\xfe", 3) + "你好🚀";
  const std::string text = base64url_encode(bytes);
  EXPECT_EQ(text.find_first_of("+/="), std::string::npos);
  EXPECT_EQ(base64url_decode(text), bytes);
  EXPECT_EQ(base64url_encode("{\"alg\":\"HS256\"}"), "eyJhbGciOiJIUzI1NiJ9");
  EXPECT_EQ(base64url_decode("eyJhbGciOiJIUzI1NiJ9"), "{\"alg\":\"HS256\"}");
  EXPECT_EQ(base64url_decode("ab+c"), "");  // standard base64, not base64url
}

}  // namespace
}  // namespace sluice
