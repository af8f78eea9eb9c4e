// The knowledge base of the knowledge_base plugin: Markdown to passages,
// the FTS5 index with BM25, Chinese and English questions over the demo
// shop's documents, re-indexing, a missing folder, a corrupt database.
#include "kb.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

namespace sluice::kb {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("sluice-kb-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel, std::ios::binary) << text;
  }
  fs::path path;
  static inline int counter = 0;
};

std::vector<std::string> ids(const std::vector<Hit>& hits) {
  std::vector<std::string> out;
  for (const auto& h : hits) out.push_back(h.passage.id);
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(KbSplit, HeadingsMakePassagesWithIdsTitlesUrlsAndLanguage) {
  const std::string doc =
      "---\ntitle: Shipping\nurl: https://shop.example/help/shipping\nlang: en\n---\n"
      "# Shipping\n\nWe ship from Shanghai.\n\n## Delivery times {#delivery-times}\n\n"
      "Standard shipping takes **3 to 5** business days. See [the map](https://x.example/map).\n\n"
      "## Costs & fees\n\n- Orders over $49 ship free.\n- Otherwise $5.90.\n";
  const auto ps = split_document("en/shipping.md", doc);
  ASSERT_EQ(ps.size(), 3u);
  EXPECT_EQ(ps[0].id, "en/shipping");
  EXPECT_EQ(ps[0].text, "We ship from Shanghai.");
  EXPECT_EQ(ps[1].id, "en/shipping#delivery-times");
  EXPECT_EQ(ps[1].title, "Shipping \u203a Delivery times");
  EXPECT_EQ(ps[1].heading, "Delivery times");
  EXPECT_EQ(ps[1].url, "https://shop.example/help/shipping#delivery-times");
  EXPECT_EQ(ps[1].text, "Standard shipping takes 3 to 5 business days. See the map.");  // Markdown marks gone
  EXPECT_EQ(ps[1].lang, "en");
  EXPECT_EQ(ps[2].id, "en/shipping#costs-fees");  // an anchor made from the heading
  EXPECT_EQ(ps[2].text, "- Orders over $49 ship free.\n- Otherwise $5.90.");
}

TEST(KbSplit, ALongSectionIsCutIntoPassagesOfAboutTheSizeAtSentenceEnds) {
  std::string body;
  for (int i = 0; i < 40; ++i) body += "退货请在收货后三十天内提交申请，我们会尽快处理。";  // 40 sentences, 72 bytes each
  const auto ps = split_document("zh/returns.md", "# 退货\n\n## 退货政策 {#policy}\n\n" + body + "\n", 512);
  ASSERT_GE(ps.size(), 5u);
  size_t total = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_LE(ps[i].text.size(), 512u) << i;
    if (i + 1 == ps.size()) break;  // the last may be short
    EXPECT_GE(ps[i].text.size(), 440u) << i;  // packed, not one sentence each
    EXPECT_TRUE(ps[i].text.ends_with("。")) << ps[i].text;  // cut at a sentence end
    total += ps[i].text.size();
  }
  EXPECT_EQ(ps[0].id, "zh/returns#policy");
  EXPECT_EQ(ps[1].id, "zh/returns#policy-2");
  EXPECT_EQ(ps[1].url, "");  // no url in the front matter
  EXPECT_EQ(ps[0].lang, "zh");  // detected: mostly CJK
}

TEST(KbSplit, ChineseTermsAreBigramsAndCharactersAndFullWidthLettersFold) {
  EXPECT_EQ(terms_of("退货政策"), (std::vector<std::string>{"退货", "货政", "政策", "退", "货", "政", "策"}));
  const auto t = terms_of("用ＤＨＬ寄到Germany要几天？");
  EXPECT_TRUE(contains(t, "dhl"));
  EXPECT_TRUE(contains(t, "germany"));
  EXPECT_TRUE(contains(t, "几天"));
  EXPECT_TRUE(contains(t, "用"));  // a lone CJK character stays a term
}

class DemoShop : public ::testing::TestWithParam<std::string> {};

TEST_P(DemoShop, EnglishAndChineseQuestionsFindTheirPassages) {
  Index index(":memory:", SLUICE_KB_DIR, GetParam());
  const auto st = index.sync();
  EXPECT_GE(st.files, 15u);
  EXPECT_GE(st.passages, 60u);
  SearchOptions top3;
  struct Case {
    std::string question, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"How long does shipping to Germany take?", "en/shipping#international-delivery"},
           {"What is your return policy?", "en/returns#return-policy"},
           {"Which payment methods do you accept?", "en/payments#payment-methods"},
           {"What changed in the privacy policy in 2024?", "en/privacy#changes-2024-q2"},
           {"When is the Shanghai showroom open?", "en/store#opening-hours"},
           {"你们支持哪些支付方式？", "zh/payments#payment-methods"},
           {"寄到德国要多久？", "zh/shipping#international-delivery"},
           {"隐私政策2024年有什么变化", "zh/privacy#changes-2024-q2"},
       }) {
    const auto hits = index.search(c.question, top3);
    ASSERT_FALSE(hits.empty()) << c.question;
    EXPECT_TRUE(contains(ids(hits), c.expected)) << c.question << " -> " << ::testing::PrintToString(ids(hits));
    for (const auto& h : hits) EXPECT_EQ(h.passage.lang, c.expected.substr(0, 2)) << c.question;  // its own language
    for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);
  }
  // Nothing to look up in a greeting.
  EXPECT_TRUE(index.search("hi!", top3).empty());
  EXPECT_TRUE(index.search("谢谢", top3).empty());
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, DemoShop, ::testing::Values("bigram"));

TEST(KbIndex, AFollowUpQuestionIsRankedWithThePreviousQuestion) {
  Index index(":memory:", SLUICE_KB_DIR);
  index.sync();
  SearchOptions o;
  o.top_k = 1;
  const auto alone = index.search("what about the kettle?", o);
  ASSERT_FALSE(alone.empty());
  EXPECT_EQ(alone[0].passage.path, "en/product-care.md");  // alone: how to look after it
  o.context = {"How long is the warranty?"};
  const auto followed = index.search("what about the kettle?", o);
  ASSERT_FALSE(followed.empty());
  EXPECT_EQ(followed[0].passage.path, "en/warranty.md") << ::testing::PrintToString(ids(alone));
}

TEST(KbIndex, AnotherLanguageIsSearchedOnlyWhenTheQuestionsOwnHasNoMatchAtAll) {
  TempDir dir;
  dir.write("en/orders.md", "# Orders\n\n## Order status {#status}\n\nEach order is processing, on its way or with you.\n");
  dir.write("zh/orders.md",
            "# 订单\n\n## 订单号 {#number}\n\n订单号 A1001 在确认邮件里，例如 A1001、A1001、A1001 delivered。\n");
  dir.write("zh/tea.md", "# 茶\n\n## 茉莉花茶 {#jasmine}\n\n茉莉花茶 Jasmine 来自福建。\n");
  Index index(":memory:", dir.path.string());
  index.sync();
  SearchOptions o;
  o.top_k = 3;
  // English passages match, if weakly: the Chinese one holding the order
  // number is not an answer to an English question.
  const auto weak = index.search("is my order A1001 delivered yet", o);
  ASSERT_FALSE(weak.empty());
  for (const auto& h : weak) EXPECT_EQ(h.passage.lang, "en") << h.passage.id;
  // Over every language the Chinese passage ranks first ...
  SearchOptions any = o;
  any.language = "any";
  const auto all = index.search("is my order A1001 delivered yet", any);
  ASSERT_FALSE(all.empty());
  ASSERT_EQ(all[0].passage.id, "zh/orders#number");
  ASSERT_GT(all[0].score, weak[0].score);
  // ... but with the English passages under min_score, the answer is none.
  o.min_score = (weak[0].score + all[0].score) / 2;
  EXPECT_TRUE(ids(index.search("is my order A1001 delivered yet", o)).empty())
      << "under min_score in its own language, not another language";
  // Nothing in English matches at all: the other language's passages are searched.
  o.min_score = 0;
  const auto other = index.search("jasmine", o);
  ASSERT_EQ(ids(other), std::vector<std::string>{"zh/tea#jasmine"});
}

TEST(KbIndex, AChangedAddedOrRemovedFileIsReindexed) {
  TempDir dir;
  dir.write("a.md", "# Alpha\n\n## Kettles {#kettles}\n\nThe kettle boils water 🫖.\n");
  const auto db = (dir.path / "index.sqlite").string();
  const auto docs = (dir.path / "docs").string();
  fs::create_directories(docs);
  fs::rename(dir.path / "a.md", dir.path / "docs" / "a.md");
  SearchOptions o;
  {
    Index index(db, docs);
    EXPECT_EQ(index.sync().passages, 1u);
    EXPECT_EQ(index.search("kettle", o).size(), 1u);
    EXPECT_TRUE(index.search("teapot", o).empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a new modification time
    dir.write("docs/a.md", "# Alpha\n\n## Teapots {#teapots}\n\nThe clay teapot brews tea.\n");
    dir.write("docs/sub/b.md", "# 茶叶\n\n## 储存 {#storage}\n\n茶叶请密封避光保存。\n");
    const auto st = index.sync();
    EXPECT_EQ(st.added, 2u);
    EXPECT_EQ(st.passages, 2u);
    EXPECT_TRUE(index.search("kettle", o).empty());
    ASSERT_EQ(index.search("teapot", o).size(), 1u);
    EXPECT_EQ(index.search("teapot", o)[0].passage.id, "a#teapots");
    ASSERT_EQ(index.search("茶叶怎么保存", o).size(), 1u);
    EXPECT_EQ(index.search("茶叶怎么保存", o)[0].passage.id, "sub/b#storage");
    fs::remove(dir.path / "docs" / "a.md");
    EXPECT_EQ(index.sync().removed, 1u);
    EXPECT_TRUE(index.search("teapot", o).empty());
  }
  // The file index, opened again (and without a folder: as sluice-kb built it), still answers.
  Index again(db, "");
  EXPECT_EQ(again.stats().passages, 1u);
  EXPECT_EQ(again.search("茶叶", o).size(), 1u);
}

TEST(KbIndex, AMisspeltWordIsReadAsTheDocumentsSpellIt) {
  Index index(":memory:", SLUICE_KB_DIR);
  index.sync();
  SearchOptions o;
  o.top_k = 3;
  auto top = [&](const std::string& q) { return ids(index.search(q, o)); };
  // Typos of words the documents hold (one slip; two in a long word).
  EXPECT_EQ(top("retrun policy"), top("return policy"));
  EXPECT_EQ(top("shiping to germny"), top("shipping to germany"));
  EXPECT_EQ(top("warrenty for the headphnes"), top("warranty for the headphones"));
  // A word one edit from two document words is not guessed at random: the
  // more frequent wins; a word far from all of them stays as it is.
  EXPECT_TRUE(index.search("xyzzyq", o).empty());
}

TEST(KbIndex, SynonymsFindThePassagesThatUseAnotherWord) {
  TempDir dir;
  dir.write("docs/w.md", "# Warranty\n\n## Period {#period}\n\nElectronics have a one-year warranty.\n");
  dir.write("docs/zh.md", "# 展厅\n\n## 地址 {#address}\n\n我们的展厅在上海安福路。\n");
  dir.write("synonyms.txt", "# a comment\nwarranty, guarantee\n展厅, 实体店, showroom\n");
  Index index(":memory:", (dir.path / "docs").string());
  index.sync();
  SearchOptions o;
  EXPECT_TRUE(index.search("Is there a guarantee?", o).empty());
  EXPECT_TRUE(index.search("你们的实体店在哪？", o).empty());
  index.load_synonyms((dir.path / "synonyms.txt").string());
  ASSERT_EQ(index.search("Is there a guarantee?", o).size(), 1u);
  EXPECT_EQ(index.search("Is there a guarantee?", o)[0].passage.id, "w#period");
  ASSERT_EQ(index.search("你们的实体店在哪？", o).size(), 1u);
  EXPECT_EQ(index.search("你们的实体店在哪？", o)[0].passage.id, "zh#address");
  // A Chinese question with an English word searches the Chinese passages.
  ASSERT_EQ(index.search("showroom在哪里", o).size(), 1u);
  EXPECT_EQ(index.search("showroom在哪里", o)[0].passage.lang, "zh");
  EXPECT_THROW(index.load_synonyms("/nonexistent/synonyms.txt"), Error);
}

TEST(KbIndex, AMissingFolderIsAClearError) {
  try {
    Index index(":memory:", "/nonexistent/kb");
    index.sync();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the knowledge base folder /nonexistent/kb does not exist"), std::string::npos)
        << e.what();
  }
}

TEST(KbIndex, ACorruptDatabaseIsRebuiltFromTheFolderOrRefusedWithoutOne) {
  TempDir dir;
  dir.write("docs/a.md", "# A\n\n## Returns {#returns}\n\nReturns within 30 days.\n");
  const auto db = (dir.path / "index.sqlite").string();
  dir.write("index.sqlite", std::string(8192, '\x5a'));  // not a database
  {
    Index index(db, (dir.path / "docs").string());
    EXPECT_FALSE(index.rebuilt_because().empty());
    index.sync();
    EXPECT_EQ(index.search("returns", {}).size(), 1u);
  }
  // A valid index file with a page overwritten: quick_check finds it.
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);  // every page after the first (the schema) overwritten
    f << std::string(4096 * 8, '\x01');
  }
  try {
    Index index(db, "");
    const auto hits = index.search("returns", {});
    ADD_FAILURE() << "a corrupt index opened without a folder (" << hits.size() << " hits)";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("knowledge base index " + db), std::string::npos) << e.what();
  }
  Index rebuilt(db, (dir.path / "docs").string());
  EXPECT_FALSE(rebuilt.rebuilt_because().empty());
  rebuilt.sync();
  EXPECT_EQ(rebuilt.search("returns", {}).size(), 1u);
}

TEST(KbIndex, AnIndexOfAnotherTokenizerIsRebuilt) {
  TempDir dir;
  dir.write("docs/a.md", "# A\n\n## 退货 {#returns}\n\n收货后三十天内可以退货。\n");
  const auto db = (dir.path / "index.sqlite").string();
  Index(db, (dir.path / "docs").string(), "trigram").sync();
  Index bigram(db, (dir.path / "docs").string(), "bigram");
  EXPECT_NE(bigram.rebuilt_because().find("not an index of this kind"), std::string::npos) << bigram.rebuilt_because();
  bigram.sync();
  EXPECT_EQ(bigram.search("退货", {}).size(), 1u);
}

}  // namespace
}  // namespace sluice::kb
