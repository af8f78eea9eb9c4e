// The tokenizer on a small synthetic byte-level BPE vocabulary (the real
// Llama 3, Qwen3 and Llama 2 tokenizers are checked against the reference
// implementation by ctest e2e.tokenizer_matches_reference).
#include "gateway/engine/local/tokenizer.hpp"

#include <gtest/gtest.h>

#include "tests/support/gguf_writer.hpp"

namespace sluice {
namespace {

// GPT-2's printable form of byte b.
std::string printable(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    const bool keep = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
    const int c = keep ? x : 256 + n++;
    if (x == b) {
      std::string out;
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
      }
      return out;
    }
  }
  return {};
}

std::vector<uint8_t> model() {
  test::GgufWriter w;
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(printable(b));
  tokens.push_back("he");                    // 256
  tokens.push_back("hel");                   // 257
  tokens.push_back("<|im_end|>");            // 258, control
  tokens.push_back(printable(' ') + "h");    // 259
  w.kv_string("tokenizer.ggml.model", "gpt2");
  w.kv_string("tokenizer.ggml.pre", "qwen2");
  w.kv_strings("tokenizer.ggml.tokens", tokens);
  std::vector<int32_t> types(tokens.size(), 1);
  types[258] = 3;
  w.kv_array("tokenizer.ggml.token_type", 5, types);
  w.kv_strings("tokenizer.ggml.merges", {"h e", "he l", printable(' ') + " h"});
  w.kv("tokenizer.ggml.eos_token_id", 4, uint32_t{258});
  return w.bytes();
}

TEST(Tokenizer, BytePairMergesAndSpecialTokensOnlyWhenAsked) {
  const auto bytes = model();
  std::string error;
  auto file = gguf::File::parse(bytes.data(), bytes.size(), error);
  ASSERT_TRUE(file) << error;
  auto t = Tokenizer::load(*file, error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->encode("hello", false, false), (std::vector<int32_t>{257, 'l', 'o'}));
  // Merges go by rank: "h e" and "he l" come before " h", which never happens.
  EXPECT_EQ(t->encode(" hel", false, false), (std::vector<int32_t>{' ', 257}));
  EXPECT_EQ(t->encode(" h", false, false), (std::vector<int32_t>{259}));
  // User text cannot forge a control token; a template can write one.
  const auto user = t->encode("<|im_end|>", false, false);
  EXPECT_EQ(std::count(user.begin(), user.end(), 258), 0);
  EXPECT_EQ(t->encode("hi<|im_end|>", false, true), (std::vector<int32_t>{'h', 'i', 258}));
  EXPECT_TRUE(t->is_end(258));
  EXPECT_EQ(t->decode(t->encode("hello 你好 🚀", false, false)), "hello 你好 🚀");
}

TEST(Tokenizer, StreamDecoderNeverSplitsACharacter) {
  const auto bytes = model();
  std::string error;
  auto file = gguf::File::parse(bytes.data(), bytes.size(), error);
  auto t = Tokenizer::load(*file, error);
  ASSERT_TRUE(t) << error;
  const std::string text = "a你🚀b";
  const auto ids = t->encode(text, false, false);
  ASSERT_EQ(ids.size(), text.size());  // one token per byte here
  StreamDecoder d(*t);
  std::string out;
  std::vector<std::string> pieces;
  for (int32_t id : ids) {
    std::string p = d.push(id);
    if (!p.empty()) pieces.push_back(p);
    out += p;
  }
  out += d.finish();
  EXPECT_EQ(out, text);
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "你", "🚀", "b"}));
  // Bytes that never complete a character end as U+FFFD.
  StreamDecoder cut(*t);
  EXPECT_EQ(cut.push(0xE4), "");
  EXPECT_EQ(cut.finish(), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace sluice
