#include "kb.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace sluice::kb {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSchemaVersion = "sluice-kb 3";

// ---------------------------------------------------------------- UTF-8

// The code point at s[i], advancing i; U+FFFD for a broken sequence.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = static_cast<unsigned char>(s[i]);
  int n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (n < 0 || i + static_cast<size_t>(n) >= s.size() + (n == 0 ? 1 : 0)) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = n == 0 ? c : c & (0x3F >> n);
  for (int k = 1; k <= n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += static_cast<size_t>(n) + 1;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Written without spaces between words: Han, kana, Hangul.
bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
         (cp >= 0x20000 && cp <= 0x2FFFF) || (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0xAC00 && cp <= 0xD7AF);
}

// Full-width Latin letters and digits ("ＤＨＬ", "３０") as ASCII, letters lower-cased.
char32_t fold(char32_t cp) {
  if (cp >= 0xFF10 && cp <= 0xFF19) cp = cp - 0xFF10 + '0';
  if (cp >= 0xFF21 && cp <= 0xFF3A) cp = cp - 0xFF21 + 'a';
  if (cp >= 0xFF41 && cp <= 0xFF5A) cp = cp - 0xFF41 + 'a';
  if (cp >= 'A' && cp <= 'Z') cp = cp - 'A' + 'a';
  return cp;
}

bool is_word(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9');
  if (is_cjk(cp)) return false;
  // Latin letters with diacritics, Greek, Cyrillic...; not punctuation or symbols.
  return (cp >= 0xC0 && cp < 0x2000 && cp != 0xD7 && cp != 0xF7);
}

// Runs of word characters and of CJK characters, in order.
struct Run {
  std::string text;
  bool cjk = false;
  size_t chars = 0;
};

std::vector<Run> runs_of(std::string_view text) {
  std::vector<Run> runs;
  Run cur;
  auto flush = [&] {
    if (!cur.text.empty()) runs.push_back(std::move(cur));
    cur = Run();
  };
  for (size_t i = 0; i < text.size();) {
    const char32_t cp = fold(next_code_point(text, i));
    const bool cjk = is_cjk(cp);
    if (!cjk && !is_word(cp)) {
      flush();
      continue;
    }
    if (!cur.text.empty() && cur.cjk != cjk) flush();
    cur.cjk = cjk;
    append_utf8(cur.text, cp);
    ++cur.chars;
  }
  flush();
  return runs;
}

// The characters of a CJK run, each as its UTF-8 bytes.
std::vector<std::string> chars_of(std::string_view run) {
  std::vector<std::string> out;
  for (size_t i = 0; i < run.size();) {
    const size_t from = i;
    next_code_point(run, i);
    out.emplace_back(run.substr(from, i - from));
  }
  return out;
}

// Words a question holds that say nothing about what it asks for.
const std::unordered_set<std::string>& stop_terms() {
  static const std::unordered_set<std::string> words = {
      // English
      "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "from", "with",
      "about", "as", "into", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did", "done", "have",
      "has", "had", "i", "me", "my", "mine", "we", "our", "us", "you", "your", "it", "its", "this", "that",
      "these", "those", "there", "here", "what", "which", "who", "whom", "whose", "how", "when", "where", "why",
      "can", "could", "will", "would", "shall", "should", "may", "might", "must", "please", "tell", "know",
      "want", "like", "need", "get", "got", "any", "some", "much", "many", "so", "than", "then", "just", "also",
      "hi", "hello", "hey", "thanks", "thank", "ok", "okay", "yes", "no", "not", "s", "t", "m", "d", "ll", "re",
      "ve", "im", "dont", "anything", "something", "ask", "question", "let", "able", "way", "long", "soon",
      "possible", "u", "pls", "plz",
      // Chinese function bigrams (and lone characters)
      "请问", "你们", "我们", "我的", "你的", "您的", "什么", "怎么", "怎样", "如何", "可以", "能不", "不能", "是否",
      "吗", "呢", "吧", "啊", "的", "了", "是", "我", "你", "您", "在", "有", "和", "要", "想", "问", "下", "一下",
      "请", "么", "个", "这", "那", "就", "都", "也", "还", "会", "能", "哪", "里", "哪里", "知道", "告诉", "一个",
      "你好", "谢谢", "么样", "样的", "们的", "问一", "多久", "需要",
      // Chinese function characters, as single terms
      "们", "都", "什", "怎", "样", "如", "何", "一", "不", "可", "以", "这", "那", "就", "也", "还", "又", "很", "太",
      "已", "经", "得", "地", "着", "把", "被", "让", "给", "对", "从", "过", "吗", "嘛", "哦", "呀", "啦", "其",
      "他", "她", "它", "吧", "么", "呢"};
  return words;
}

// ------------------------------------------------------------ Markdown

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

// Inline Markdown as plain text: links keep their text, emphasis and code
// marks go.
std::string plain(std::string_view line) {
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '!' && i + 1 < line.size() && line[i + 1] == '[') continue;  // an image: its alt text stays
    if (c == '[') {
      const size_t close = line.find("](", i);
      const size_t end = close == std::string_view::npos ? close : line.find(')', close);
      if (end != std::string_view::npos) {
        out.append(line.substr(i + 1, close - i - 1));
        i = end;
        continue;
      }
    }
    if (c == '*' || c == '`' || (c == '_' && i + 1 < line.size() && line[i + 1] == '_')) {
      if (c == '_') ++i;
      continue;
    }
    out += c;
  }
  return out;
}

std::string slug(std::string_view heading) {
  std::string out;
  for (const auto& run : runs_of(heading)) {
    if (!out.empty()) out += '-';
    out += run.text;
  }
  return out.empty() ? "section" : out;
}

// Cuts `text` into pieces of at most `max` bytes at sentence ends, then
// anywhere on a character boundary.
std::vector<std::string> cut_sentences(const std::string& text, size_t max) {
  std::vector<std::string> sentences;
  std::string cur;
  for (size_t i = 0; i < text.size();) {
    const size_t from = i;
    const char32_t cp = next_code_point(text, i);
    cur.append(text, from, i - from);
    const bool end = cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF1B ||
                     ((cp == '.' || cp == '!' || cp == '?' || cp == ';') && (i >= text.size() || text[i] == ' '));
    if (end) sentences.push_back(std::exchange(cur, {}));
  }
  if (!trim(cur).empty()) sentences.push_back(cur);
  std::vector<std::string> out;
  std::string piece;
  for (auto& s : sentences) {
    while (s.size() > max) {  // one sentence over the limit: cut on a character boundary
      size_t n = max;
      while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
      if (!piece.empty()) out.push_back(trim(std::exchange(piece, {})));
      out.push_back(trim(s.substr(0, n)));
      s.erase(0, n);
    }
    if (!piece.empty() && piece.size() + s.size() > max) out.push_back(trim(std::exchange(piece, {})));
    piece += s;
  }
  if (!trim(piece).empty()) out.push_back(trim(piece));
  return out;
}

// A section's blocks (paragraphs, list items) packed into passages of at
// most `max` bytes.
std::vector<std::string> pack(const std::vector<std::string>& blocks, size_t max) {
  std::vector<std::string> out;
  std::string cur;
  for (const auto& b : blocks) {
    if (b.size() > max) {
      if (!cur.empty()) out.push_back(std::exchange(cur, {}));
      for (auto& piece : cut_sentences(b, max)) out.push_back(std::move(piece));
      continue;
    }
    if (!cur.empty() && cur.size() + 1 + b.size() > max) out.push_back(std::exchange(cur, {}));
    if (!cur.empty()) cur += '\n';
    cur += b;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string detect_language(std::string_view text) {
  size_t cjk = 0, latin = 0;
  for (size_t i = 0; i < text.size();) {
    const char32_t cp = next_code_point(text, i);
    if (is_cjk(cp)) {
      ++cjk;
    } else if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') {
      ++latin;
    }
  }
  // A question with a few Chinese characters in it wants Chinese ("tracking number在哪看").
  return cjk >= 2 || (cjk > 0 && cjk * 3 >= latin) ? "zh" : "en";
}

// ---------------------------------------------------------------- SQLite

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) throw Error(std::string("index: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(std::string("index: ") + sqlite3_errmsg(db_));
  }
  void run() {
    step();
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col))) : "";
  }
  int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }
  double real(int col) const { return sqlite3_column_double(s_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct FileState {
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileState&) const = default;
};

std::map<std::string, FileState> scan(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw Error("the knowledge base folder " + folder + " does not exist");
  std::map<std::string, FileState> out;
  for (auto it = fs::recursive_directory_iterator(folder, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec) || it->path().extension() != ".md") continue;
    const auto rel = fs::relative(it->path(), folder, ec).generic_string();
    const auto mtime = it->last_write_time(ec).time_since_epoch();
    out[rel] = {static_cast<int64_t>(it->file_size(ec)),
                static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(mtime).count())};
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------ documents

std::vector<std::string> terms_of(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& run : runs_of(text)) {
    if (!run.cjk) {
      out.push_back(run.text);
      continue;
    }
    // Bigrams carry most of the meaning; the characters themselves too
    // (茶 is tea, 退 is to return), at the low weight their frequency gives them.
    const auto chars = chars_of(run.text);
    for (size_t i = 0; i + 1 < chars.size(); ++i) out.push_back(chars[i] + chars[i + 1]);
    for (const auto& c : chars) out.push_back(c);
  }
  return out;
}

std::vector<Passage> split_document(std::string_view path, std::string_view text, size_t passage_bytes) {
  std::string doc_id(path);
  if (doc_id.size() > 3 && doc_id.ends_with(".md")) doc_id.resize(doc_id.size() - 3);
  std::string title, url, lang;
  std::vector<std::string> lines;
  {
    std::istringstream in{std::string(text)};
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  size_t i = 0;
  if (!lines.empty() && trim(lines[0]) == "---") {  // front matter
    for (i = 1; i < lines.size() && trim(lines[i]) != "---"; ++i) {
      const auto colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      const std::string key = trim(std::string_view(lines[i]).substr(0, colon));
      std::string value = trim(std::string_view(lines[i]).substr(colon + 1));
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
        value = value.substr(1, value.size() - 2);
      }
      if (key == "title") title = value;
      if (key == "url") url = value;
      if (key == "lang" || key == "language") lang = value;
    }
    ++i;
  }

  struct Section {
    std::string heading, anchor;
    std::vector<std::string> blocks;
  };
  std::vector<Section> sections(1);  // the first: text before any heading below the title
  std::string block;
  bool fenced = false;
  auto end_block = [&] {
    if (!trim(block).empty()) sections.back().blocks.push_back(trim(block));
    block.clear();
  };
  for (; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    if (line.starts_with("```")) {
      fenced = !fenced;
      continue;
    }
    if (fenced) continue;  // code is not prose a customer asks about
    size_t level = 0;
    while (level < line.size() && line[level] == '#') ++level;
    if (level >= 1 && level <= 6 && level < line.size() && line[level] == ' ') {
      end_block();
      std::string heading = trim(std::string_view(line).substr(level + 1));
      std::string anchor;
      if (const auto open = heading.rfind("{#"); open != std::string::npos && heading.back() == '}') {
        anchor = heading.substr(open + 2, heading.size() - open - 3);
        heading = trim(std::string_view(heading).substr(0, open));
      }
      heading = plain(heading);
      if (level == 1 && title.empty()) title = heading;
      if (level == 1) continue;  // the document's title, not a section
      sections.push_back({heading, anchor.empty() ? slug(heading) : anchor, {}});
      continue;
    }
    if (line.empty()) {
      end_block();
      continue;
    }
    const bool item = line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ ") ||
                      (line.size() > 2 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                       line.find(". ") != std::string::npos && line.find(". ") < 4);
    if (item) end_block();  // each list item is a block of its own
    if (!block.empty()) block += ' ';
    block += plain(item && !std::isdigit(static_cast<unsigned char>(line[0])) ? "- " + line.substr(2) : line);
    if (item) end_block();
  }
  end_block();

  if (title.empty()) title = doc_id;
  if (lang.empty()) lang = detect_language(text);
  std::vector<Passage> out;
  std::set<std::string> ids;
  for (const auto& s : sections) {
    const auto pieces = pack(s.blocks, passage_bytes);
    for (size_t k = 0; k < pieces.size(); ++k) {
      Passage p;
      std::string anchor = s.anchor;
      if (k > 0) anchor += "-" + std::to_string(k + 1);
      p.id = anchor.empty() ? doc_id : doc_id + "#" + anchor;
      for (int n = 2; !ids.insert(p.id).second; ++n) p.id = doc_id + "#" + anchor + "-" + std::to_string(n);
      p.path = std::string(path);
      p.heading = s.heading.empty() ? title : s.heading;
      p.title = s.heading.empty() ? title : title + " \u203a " + s.heading;
      p.url = url.empty() ? std::string() : anchor.empty() ? url : url + "#" + s.anchor;
      p.lang = lang;
      p.text = pieces[k];
      out.push_back(std::move(p));
    }
  }
  return out;
}

// ---------------------------------------------------------------- Index

Index::Index(std::string database, std::string folder, std::string tokenizer, size_t passage_bytes)
    : database_(std::move(database)), folder_(std::move(folder)), tokenizer_(std::move(tokenizer)),
      passage_bytes_(passage_bytes) {
  if (tokenizer_ != "bigram" && tokenizer_ != "trigram") {
    throw Error("tokenizer must be \"bigram\" or \"trigram\" (got \"" + tokenizer_ + "\")");
  }
  if (passage_bytes_ < 64) passage_bytes_ = 64;
  open();
}

Index::~Index() { sqlite3_close_v2(db_); }

void Index::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error("index: " + why);
  }
}

void Index::open() {
  const std::string expected =
      std::string(kSchemaVersion) + " " + tokenizer_ + " " + std::to_string(passage_bytes_);
  const int flags = folder_.empty() ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string why;
    if (sqlite3_open_v2(database_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      why = db_ ? sqlite3_errmsg(db_) : "cannot open it";
    } else {
      sqlite3_busy_timeout(db_, 2000);
      try {
        Stmt check(db_, "PRAGMA quick_check");
        if (!check.step() || check.text(0) != "ok") throw Error("it is corrupt (" + check.text(0) + ")");
        Stmt tables(db_, "SELECT count(*) FROM sqlite_master");
        tables.step();
        if (tables.integer(0) == 0 && !folder_.empty()) {
          create_schema();
          exec(("INSERT INTO meta VALUES ('schema', '" + expected + "')").c_str());
          return;
        }
        Stmt meta(db_, "SELECT value FROM meta WHERE key = 'schema'");
        const std::string found = meta.step() ? meta.text(0) : "";
        if (found != expected) throw Error("it is not an index of this kind (" + (found.empty() ? "no schema" : found) + ")");
        Stmt probe(db_, "SELECT count(*) FROM fts");
        probe.step();
        load_words();
        return;
      } catch (const Error& e) {
        why = e.what();
      }
    }
    sqlite3_close_v2(db_);
    db_ = nullptr;
    if (folder_.empty() || attempt == 1) throw Error("knowledge base index " + database_ + ": " + why);
    // Built from the folder again: an index is derived data.
    rebuilt_because_ = why;
    std::error_code ec;
    if (database_ != ":memory:") {
      fs::remove(database_, ec);
      fs::remove(database_ + "-journal", ec);
      fs::remove(database_ + "-wal", ec);
    }
  }
}

void Index::create_schema() {
  exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
       "CREATE TABLE files(path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);"
       "CREATE TABLE passages(rowid INTEGER PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL, title TEXT NOT NULL,"
       " heading TEXT NOT NULL, url TEXT NOT NULL, lang TEXT NOT NULL, text TEXT NOT NULL);"
       "CREATE INDEX passages_by_path ON passages(path);"
       "CREATE TABLE words(word TEXT PRIMARY KEY, df INTEGER NOT NULL);");
  exec(tokenizer_ == "bigram"
           ? "CREATE VIRTUAL TABLE fts USING fts5(title, body, tokenize = 'porter unicode61 remove_diacritics 2')"
           : "CREATE VIRTUAL TABLE fts USING fts5(title, body, tokenize = 'trigram')");
}

IndexStats Index::sync() {
  if (folder_.empty()) return stats();
  const auto files = scan(folder_);
  std::map<std::string, FileState> indexed;
  {
    Stmt q(db_, "SELECT path, size, mtime_ns FROM files");
    while (q.step()) indexed[q.text(0)] = {q.integer(1), q.integer(2)};
  }
  IndexStats st;
  std::vector<std::string> changed, removed;
  for (const auto& [path, state] : files) {
    const auto it = indexed.find(path);
    if (it == indexed.end() || !(it->second == state)) changed.push_back(path);
  }
  for (const auto& [path, state] : indexed) {
    if (!files.count(path)) removed.push_back(path);
  }
  if (!changed.empty() || !removed.empty()) {
    exec("BEGIN IMMEDIATE");
    try {
      Stmt del_fts(db_, "DELETE FROM fts WHERE rowid IN (SELECT rowid FROM passages WHERE path = ?1)");
      Stmt del_passages(db_, "DELETE FROM passages WHERE path = ?1");
      Stmt del_file(db_, "DELETE FROM files WHERE path = ?1");
      Stmt add_file(db_, "INSERT INTO files VALUES (?1, ?2, ?3)");
      Stmt add_passage(db_, "INSERT INTO passages(id, path, title, heading, url, lang, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
      Stmt add_fts(db_, "INSERT INTO fts(rowid, title, body) VALUES (?1, ?2, ?3)");
      auto forget = [&](const std::string& path) {
        del_fts.bind(1, path).run();
        del_passages.bind(1, path).run();
        del_file.bind(1, path).run();
      };
      for (const auto& path : removed) forget(path);
      const bool bigram = tokenizer_ == "bigram";
      auto index_text = [&](const std::string& s) {
        if (!bigram) return s;
        std::string out;
        for (const auto& t : terms_of(s)) out += (out.empty() ? "" : " ") + t;
        return out;
      };
      for (const auto& path : changed) {
        forget(path);
        const std::string text = read_file(fs::path(folder_) / path);
        for (const auto& p : split_document(path, text, passage_bytes_)) {
          add_passage.bind(1, p.id).bind(2, p.path).bind(3, p.title).bind(4, p.heading).bind(5, p.url);
          add_passage.bind(6, p.lang).bind(7, p.text).run();
          add_fts.bind(1, static_cast<int64_t>(sqlite3_last_insert_rowid(db_)))
              .bind(2, index_text(p.title))
              .bind(3, index_text(p.text))
              .run();
        }
        const auto& state = files.at(path);
        add_file.bind(1, path).bind(2, state.size).bind(3, state.mtime_ns).run();
      }
      // The words of every passage (English and other spaced text), for
      // correcting a misspelt question word.
      exec("DELETE FROM words");
      {
        std::map<std::string, int64_t> df;
        Stmt all(db_, "SELECT title || ' ' || text FROM passages");
        while (all.step()) {
          std::set<std::string> seen;
          for (const auto& run : runs_of(all.text(0))) {
            if (!run.cjk && run.chars >= 4 && seen.insert(run.text).second) ++df[run.text];
          }
        }
        Stmt add_word(db_, "INSERT INTO words VALUES (?1, ?2)");
        for (const auto& [w, n] : df) add_word.bind(1, w).bind(2, n).run();
      }
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  load_words();
  st = stats();
  st.added = changed.size();
  st.removed = removed.size();
  last_ = st;
  return st;
}

IndexStats Index::stats() const {
  IndexStats st;
  Stmt f(db_, "SELECT count(*) FROM files");
  f.step();
  st.files = static_cast<size_t>(f.integer(0));
  Stmt p(db_, "SELECT count(*) FROM passages");
  p.step();
  st.passages = static_cast<size_t>(p.integer(0));
  return st;
}

void Index::load_words() {
  words_.clear();
  Stmt q(db_, "SELECT word, df FROM words");
  while (q.step()) words_.emplace(q.text(0), q.integer(1));
}

namespace {
// Edit distance with transpositions (optimal string alignment), up to `max`
// (more: max + 1).
size_t distance(const std::string& a, const std::string& b, size_t max) {
  if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > max) return max + 1;
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}
}  // namespace

std::string Index::corrected(const std::string& word) const {
  // Only words the documents do not hold, of four letters or more ("canda", "retrun", "germny").
  if (word.size() < 4 || words_.empty() || words_.count(word)) return word;
  for (char c : word) {
    if (!(c >= 'a' && c <= 'z')) return word;
  }
  const size_t max = word.size() >= 8 ? 2 : 1;
  std::string best;
  size_t best_d = max + 1;
  int64_t best_df = -1;
  for (const auto& [w, df] : words_) {
    if (w.size() + max < word.size() || w.size() > word.size() + max || w[0] != word[0]) continue;
    const size_t d = distance(word, w, max);
    if (d < best_d || (d == best_d && d <= max && df > best_df)) {
      best = w;
      best_d = d;
      best_df = df;
    }
  }
  return best_d <= max ? best : word;
}

std::string Index::fts_query(const std::vector<std::string>& terms) const {
  std::string q;
  for (const auto& t : terms) {
    std::string quoted = "\"";
    for (char c : t) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    q += (q.empty() ? "" : " OR ") + quoted + "\"";
  }
  return q;
}

std::vector<std::pair<int64_t, double>> Index::match(const std::vector<std::string>& terms, const std::string& lang,
                                                     size_t limit) const {
  std::vector<std::pair<int64_t, double>> out;
  if (terms.empty()) return out;
  // The title (document and heading) weighs three times the text.
  Stmt q(db_,
         "SELECT fts.rowid, bm25(fts, 3.0, 1.0) FROM fts JOIN passages p ON p.rowid = fts.rowid "
         "WHERE fts MATCH ?1 AND (?2 = '' OR p.lang = ?2) ORDER BY 2 LIMIT ?3");
  q.bind(1, fts_query(terms)).bind(2, lang).bind(3, static_cast<int64_t>(limit));
  while (q.step()) out.emplace_back(q.integer(0), -q.real(1));
  return out;
}

Passage Index::passage(int64_t rowid) const {
  Stmt q(db_, "SELECT id, path, title, heading, url, lang, text FROM passages WHERE rowid = ?1");
  q.bind(1, rowid);
  Passage p;
  if (q.step()) p = {q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5), q.text(6)};
  return p;
}

void Index::load_synonyms(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the synonyms file " + path);
  synonyms_.clear();
  for (std::string line; std::getline(in, line);) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::vector<std::string> group;
    std::stringstream ss(line);
    for (std::string w; std::getline(ss, w, ',');) {
      w = trim(w);
      for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!w.empty()) group.push_back(w);
    }
    if (group.size() > 1) synonyms_.push_back(std::move(group));
  }
}

namespace {
// Whether `text` (lower-cased) holds `word`: CJK anywhere, else as whole words.
bool holds(const std::string& text, const std::string& word) {
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    if (static_cast<unsigned char>(word[0]) >= 0x80) return true;
    const bool starts = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    const size_t end = at + word.size();
    const bool ends = end >= text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (starts && ends) return true;
  }
  return false;
}
}  // namespace

std::vector<Hit> Index::search(std::string_view query_text, const SearchOptions& options) const {
  // The question with the synonyms of what it holds.
  std::string query(query_text);
  if (!synonyms_.empty()) {
    std::string folded = query;
    for (auto& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string extra;
    for (const auto& group : synonyms_) {
      if (std::none_of(group.begin(), group.end(), [&](const std::string& w) { return holds(folded, w); })) continue;
      for (const auto& w : group) {
        if (!holds(folded, w)) extra += " " + w;
      }
    }
    query += extra;
  }
  // The terms to look for: bigram mode as indexed; trigram mode the runs of
  // three or more characters (shorter ones cannot be matched by trigrams).
  auto terms = [&](std::string_view text) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    const auto& stop = stop_terms();
    if (tokenizer_ == "bigram") {
      for (auto& t : terms_of(text)) {
        if (stop.count(t)) continue;
        t = corrected(t);
        if (seen.insert(t).second) out.push_back(std::move(t));
      }
      return out;
    }
    for (const auto& run : runs_of(text)) {
      if (!run.cjk) {
        if (run.chars >= 3 && !stop.count(run.text) && seen.insert(run.text).second) out.push_back(run.text);
        continue;
      }
      const auto chars = chars_of(run.text);
      for (size_t i = 0; i + 2 < chars.size(); ++i) {
        std::string t = chars[i] + chars[i + 1] + chars[i + 2];
        if (seen.insert(t).second) out.push_back(std::move(t));
      }
    }
    return out;
  };
  const auto own = terms(query);
  std::vector<std::string> context;
  {
    std::set<std::string> have(own.begin(), own.end());
    for (const auto& c : options.context) {
      for (auto& t : terms(c)) {
        if (have.insert(t).second) context.push_back(std::move(t));
      }
    }
  }
  if (own.empty()) return {};  // "hi", "thanks": nothing to look up
  std::string lang = options.language;
  const bool fallback = lang.empty() || lang == "auto";
  if (fallback) lang = detect_language(query_text);  // the question as asked, not its synonyms
  if (lang == "any") lang.clear();
  constexpr size_t kCandidates = 64;
  std::vector<Hit> hits;
  for (int pass = 0; pass < 2 && hits.empty(); ++pass) {
    std::unordered_map<int64_t, double> score;
    for (const auto& [row, s] : match(own, lang, kCandidates)) score[row] += s;
    // The earlier question's terms count at a fraction of the question's
    // own, more for a short question (usually a follow-up: "and for
    // Germany?"), so a new topic still wins on its own terms.
    const double weight = own.size() <= 3 ? 2 * options.context_weight : options.context_weight;
    if (!context.empty() && !score.empty()) {
      for (const auto& [row, s] : match(context, lang, kCandidates)) score[row] += weight * s;
    }
    std::vector<std::pair<int64_t, double>> ranked(score.begin(), score.end());
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    for (size_t k = 0; k < ranked.size() && hits.size() < options.top_k; ++k) {
      if (ranked[k].second >= options.min_score) hits.push_back({passage(ranked[k].first), ranked[k].second});
    }
    // Another language only when nothing in the question's own matched at
    // all: passages of its language under `min_score` mean the question is
    // not one for the knowledge base ("is my order A1001 delivered yet"), not
    // that a passage of another language holding "A1001" answers it.
    if (!fallback || lang.empty() || !score.empty()) break;
    lang.clear();
  }
  return hits;
}

}  // namespace sluice::kb
