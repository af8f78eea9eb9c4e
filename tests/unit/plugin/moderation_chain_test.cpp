// The moderation chain with the real moderation plugin: whatever the token
// boundaries, the released text is the same, and a banned phrase never gets
// out, whole or in part.
#include "gateway/plugin/moderation_chain.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

const char* kLists = R"({"lists":[
  {"name":"violence","action":"stop","phrases":["kill them","杀了他们"]},
  {"name":"rude","action":"redact","replacement":"***","phrases":["idiot","笨蛋"]}]})";

std::unique_ptr<LoadedPlugin> load(const std::string& file, const std::string& settings) {
  std::string error;
  auto p = LoadedPlugin::load(file, settings, error);
  EXPECT_TRUE(p) << error;
  return p;
}

std::unique_ptr<LoadedPlugin> moderation() {
  return load(std::string(SLUICE_PLUGIN_DIR) + "/moderation.so", kLists);
}

struct Result {
  std::string text;
  std::vector<ModerationOutput> notices;
  bool stopped = false;
  std::string stop_reason;
};

void collect(std::vector<ModerationOutput>& out, Result& r) {
  for (auto& o : out) {
    if (o.kind == ModerationOutput::Kind::kText) r.text += o.text;
    if (o.kind == ModerationOutput::Kind::kNotice) r.notices.push_back(o);
    if (o.kind == ModerationOutput::Kind::kStop) {
      r.stopped = true;
      r.stop_reason = o.reason;
    }
  }
  out.clear();
}

Result run(ModerationChain& chain, const std::vector<std::string>& pieces) {
  Result r;
  std::vector<ModerationOutput> out;
  for (const auto& p : pieces) {
    chain.feed(p, out);
    collect(out, r);
  }
  chain.finish(out);
  collect(out, r);
  return r;
}

// Offsets of UTF-8 character boundaries inside `s` (not 0, not the end).
std::vector<size_t> boundaries(const std::string& s) {
  std::vector<size_t> b;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) b.push_back(i);
  }
  return b;
}

// Every split of `s` into three pieces at character boundaries, and one
// piece per character.
std::vector<std::vector<std::string>> splits(const std::string& s) {
  std::vector<std::vector<std::string>> all{{s}};
  const auto b = boundaries(s);
  for (size_t i = 0; i < b.size(); ++i) {
    for (size_t j = i; j < b.size(); ++j) {
      all.push_back({s.substr(0, b[i]), s.substr(b[i], b[j] - b[i]), s.substr(b[j])});
    }
  }
  std::vector<std::string> chars;
  size_t at = 0;
  for (size_t x : b) {
    chars.push_back(s.substr(at, x - at));
    at = x;
  }
  chars.push_back(s.substr(at));
  all.push_back(chars);
  return all;
}

TEST(ModerationChain, RedactionIsTheSameWhateverTheTokenBoundaries) {
  auto plugin = moderation();
  ASSERT_TRUE(plugin);
  const std::string text =
      "Hi Idiot, mail zhang.wei@example.cn or call 138 0013 8000, 笨蛋! Card 4111 1111 1111 1111 ok 🚀";
  const std::string expected = "Hi ***, mail [email] or call [phone], ***! Card [card] ok 🚀";
  size_t n = 0;
  for (const auto& pieces : splits(text)) {
    ModerationChain chain({{plugin.get(), plugin->moderators()[0], false}}, {});
    const Result r = run(chain, pieces);
    ASSERT_FALSE(r.stopped);
    ASSERT_EQ(r.text, expected) << "split " << n;
    ASSERT_FALSE(r.notices.empty());
    EXPECT_EQ(r.notices[0].action, "redact");
    EXPECT_EQ(r.notices[0].plugin, "moderation");
    ++n;
  }
  EXPECT_GT(n, 1000u);
}

TEST(ModerationChain, WordsThatMerelyContainAPhraseAreLeftAlone) {
  auto plugin = moderation();
  ASSERT_TRUE(plugin);
  const std::string text = "idiotic idiots call 12345, order A1001 costs 99.5";
  for (const auto& pieces : splits(text)) {
    ModerationChain chain({{plugin.get(), plugin->moderators()[0], false}}, {});
    const Result r = run(chain, pieces);
    ASSERT_EQ(r.text, text);
    ASSERT_TRUE(r.notices.empty());
  }
}

TEST(ModerationChain, ABannedPhraseNeverGetsOutWholeOrInPart) {
  auto plugin = moderation();
  ASSERT_TRUE(plugin);
  for (const std::string& text : {std::string("Fine so far. Then kill them all, said he."),
                                 std::string("好的，我们现在杀了他们吧。")}) {
    const size_t banned_at = text.find("kill") != std::string::npos ? text.find("kill") : text.find("杀");
    for (const auto& pieces : splits(text)) {
      ModerationChain chain({{plugin.get(), plugin->moderators()[0], false}}, {});
      const Result r = run(chain, pieces);
      ASSERT_TRUE(r.stopped);
      EXPECT_EQ(r.stop_reason, "violence");
      // Only text before the phrase got out: not even its first character.
      ASSERT_LE(r.text.size(), banned_at) << r.text;
      ASSERT_EQ(text.substr(0, r.text.size()), r.text);
      EXPECT_TRUE(chain.stopped());
    }
  }
}

TEST(ModerationChain, HeldTextIsDecidedAtTheByteLimitAndOnFlush) {
  auto plugin = moderation();
  ASSERT_TRUE(plugin);
  ModerationChain chain({{plugin.get(), plugin->moderators()[0], false}}, {16, std::chrono::milliseconds(500)});
  std::vector<ModerationOutput> out;
  Result r;
  const std::string word(40, 'a');  // one long word: a possible e-mail local part
  for (char c : word) {
    chain.feed(std::string(1, c), out);
    collect(out, r);
    ASSERT_LE(chain.held_bytes(), 17u);
  }
  EXPECT_FALSE(r.text.empty());
  chain.feed(" call 138", out);  // digits at the end: maybe a phone number
  collect(out, r);
  EXPECT_GT(chain.held_bytes(), 0u);
  chain.flush(out);  // moderation.max_hold_ms passed
  collect(out, r);
  EXPECT_EQ(chain.held_bytes(), 0u);
  EXPECT_EQ(r.text, word + " call 138");
}

TEST(ModerationChain, AFailingModeratorFailsClosedUnlessSetToFailOpen) {
  auto failing = load(std::string(SLUICE_TEST_PLUGIN_DIR) + "/broken_failing_moderator.so", "{}");
  auto plugin = moderation();
  ASSERT_TRUE(failing && plugin);
  {
    ModerationChain chain({{plugin.get(), plugin->moderators()[0], false},
                           {failing.get(), failing->moderators()[0], false}},
                          {});
    const Result r = run(chain, {"all fine, idiot. ", "then boom", " and more"});
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.stop_reason, "moderation_error");
    // The first stage held "boom" (a word may go on) and released "then ".
    EXPECT_EQ(r.text, "all fine, ***. then ");
  }
  {
    ModerationChain chain({{failing.get(), failing->moderators()[0], true},
                           {plugin.get(), plugin->moderators()[0], false}},
                          {});
    const Result r = run(chain, {"all fine, idiot. ", "then boom", " and more"});
    EXPECT_FALSE(r.stopped);
    EXPECT_EQ(r.text, "all fine, ***. then boom and more");
  }
}

TEST(ModerationChain, Utf8Helpers) {
  EXPECT_TRUE(valid_utf8("你好 🚀 ok"));
  EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8(std::string("\xE4\xBD", 2)));  // cut short
  const std::string s = "a你";
  EXPECT_EQ(utf8_floor(s, 2), 1u);
  EXPECT_EQ(utf8_floor(s, 4), 4u);
}

}  // namespace
}  // namespace sluice
