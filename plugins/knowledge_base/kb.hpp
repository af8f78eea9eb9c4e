// The knowledge base behind the knowledge_base plugin and the sluice-kb
// command: Markdown documents from a folder, cut by their headings into
// passages of about 512 bytes, indexed in SQLite FTS5 and ranked by BM25.
//
// Documents: `*.md` under the folder (any depth). Front matter (optional)
// between `---` lines: `title`, `url`, `lang` (`en`, `zh`, ...; without
// it, `zh` when the text is mostly CJK, else `en`). Each heading starts a
// section; `## Heading {#anchor}` names its anchor (else one is made from
// the heading). A passage's id is the document's path without `.md`, `#`
// and the anchor (`en/shipping#delivery-times`), with `-2`, `-3`... for the
// further passages of a long section; its url is the document's url and
// `#anchor`.
//
// Chinese and other text without spaces: FTS5's own tokenizers cut on
// spaces, so the index holds the text either as overlapping character
// bigrams (tokenizer "bigram", the default: "退货政策" -> "退货 货政 政策",
// English words stemmed by porter) or as FTS5's trigram tokenizer sees it
// (tokenizer "trigram"). bench/README.md has the measurement that chose
// bigrams.
//
// Threads: one Index is used by one thread at a time (the plugin holds a
// mutex around it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace sluice::kb {

struct Passage {
  std::string id;       // "en/shipping#delivery-times"
  std::string path;     // the document, relative to the folder: "en/shipping.md"
  std::string title;    // "Shipping › Delivery times"
  std::string heading;  // "Delivery times"
  std::string url;      // "https://shop.example/help/shipping#delivery-times"
  std::string lang;     // "en"
  std::string text;     // the passage (the section's text, without its heading)
};

// One Markdown document as passages (`path`: relative to the folder, for
// ids; `text`: its content). `passage_bytes`: the size a section is cut to,
// at paragraph, then sentence boundaries.
std::vector<Passage> split_document(std::string_view path, std::string_view text, size_t passage_bytes = 512);

// The index's terms for `text` (bigram mode): lower-cased words, CJK runs as
// overlapping bigrams (a lone CJK character as itself).
std::vector<std::string> terms_of(std::string_view text);

struct Hit {
  Passage passage;
  double score = 0;  // higher is better (BM25, negated)
};

struct SearchOptions {
  size_t top_k = 3;
  // Earlier user messages: their terms help a follow-up question ("and for
  // Germany?") at `context_weight` of the question's own.
  std::vector<std::string> context;
  double context_weight = 0.35;  // twice that for a question of three terms or fewer
  // "" or "auto": the question's own language (CJK -> zh, else en), falling
  // back to every language when no passage of that language matches at all
  // (not when those that match score under `min_score`); "any": no filter.
  std::string language = "auto";
  // Passages scoring lower are left out (BM25 of this index; a greeting's
  // stray words score a few points, a real question ten and more).
  double min_score = 0;
};

struct IndexStats {
  size_t files = 0, passages = 0;
  size_t added = 0, removed = 0;  // files, by the last sync
};

class Error : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Index {
 public:
  // Opens (or creates) the index at `database` (":memory:" for one in
  // memory) for the documents under `folder` ("" : the index as it is,
  // never synced). A database that is not an index of this kind, or is
  // corrupt, is rebuilt from the folder when there is one; else Error.
  Index(std::string database, std::string folder, std::string tokenizer = "bigram", size_t passage_bytes = 512);
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  // Brings the index in line with the folder: documents added, changed
  // (size or modification time) or removed. Error when the folder is gone.
  IndexStats sync();
  std::vector<Hit> search(std::string_view query, const SearchOptions& options) const;
  IndexStats stats() const;
  // Groups of words that mean the same to the readers of these documents,
  // one group per line, comma-separated ("warranty, guarantee"; "展厅, 门店,
  // 实体店"); `#` starts a comment. A question holding one member is
  // searched for the others too. Error when the file cannot be read.
  void load_synonyms(const std::string& path);
  const std::string& tokenizer() const { return tokenizer_; }
  // Why the database was rebuilt at open ("" when it was not).
  const std::string& rebuilt_because() const { return rebuilt_because_; }

 private:
  void open();
  void create_schema();
  void exec(const char* sql) const;
  std::string fts_query(const std::vector<std::string>& terms) const;
  // BM25 scores (higher is better) of the passages matching `terms`, by rowid.
  std::vector<std::pair<int64_t, double>> match(const std::vector<std::string>& terms, const std::string& lang,
                                                size_t limit) const;
  Passage passage(int64_t rowid) const;
  void load_words();
  // `word` as the documents spell it, when it is one edit away from one of
  // their words (two for long words) and not one itself; else `word`.
  std::string corrected(const std::string& word) const;

  std::string database_, folder_, tokenizer_;
  size_t passage_bytes_;
  sqlite3* db_ = nullptr;
  std::string rebuilt_because_;
  IndexStats last_;
  std::map<std::string, int64_t> words_;
  std::vector<std::vector<std::string>> synonyms_;  // lower-cased groups  // the documents' words and their document frequency
};

}  // namespace sluice::kb
