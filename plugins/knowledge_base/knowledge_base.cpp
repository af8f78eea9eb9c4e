// The first-party knowledge_base plugin: a retriever (ABI 1.2) over a
// folder of Markdown documents, indexed in SQLite FTS5 and ranked by BM25
// (kb.hpp has the details). The gateway asks it before the model answers;
// its passages go into the prompt and to the client as `sources`.
//
// Settings ([plugins.settings]):
//   folder = "kb/demo-shop"        # the documents (*.md, any depth); required unless `database` is prebuilt
//   database = "/var/lib/sluice/kb.sqlite"  # the index; default: in memory, built at start.
//                                  # `sluice-kb index` builds one ahead of time
//   tokenizer = "bigram"           # or "trigram": how text without spaces (Chinese) is indexed
//   passage_bytes = 512            # sections are cut into passages of about this size
//   reindex_interval_ms = 2000     # how often the folder is checked for changed files; 0: never
//   min_score = 0.0                # passages scoring lower (BM25) are left out: a greeting's
//                                  # stray words score a few points, a real question 10 and more
//   language = "auto"              # "auto": the question's (CJK: zh, else en), any language when
//                                  # none of its own matches at all; "any"; or a fixed one
//   synonyms = "kb/synonyms.txt"   # groups of words that mean the same (kb.hpp); default:
//                                  # synonyms.txt in the folder, when there is one
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "kb.hpp"
#include "sluice/plugin.hpp"

namespace sluice::knowledge_base {

class KnowledgeBase {
 public:
  static constexpr const char* kName = "knowledge_base";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription =
      "Retrieves passages of a Markdown knowledge base (SQLite FTS5, BM25) for the model to answer from";

  explicit KnowledgeBase(Context ctx) : ctx_(ctx) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    const std::string json(ctx.config_json());
    if (parser.parse(json).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      throw ConfigError("settings must be an object");
    }
    std::string_view s;
    std::string folder, database = ":memory:", tokenizer = "bigram";
    if (doc["folder"].get(s) == simdjson::SUCCESS) folder = s;
    if (doc["database"].get(s) == simdjson::SUCCESS) database = s;
    if (doc["tokenizer"].get(s) == simdjson::SUCCESS) tokenizer = s;
    if (doc["language"].get(s) == simdjson::SUCCESS) language_ = s;
    std::string synonyms;
    if (doc["synonyms"].get(s) == simdjson::SUCCESS) synonyms = s;
    if (synonyms.empty() && !folder.empty() && std::filesystem::exists(folder + "/synonyms.txt")) {
      synonyms = folder + "/synonyms.txt";
    }
    int64_t n = 0;
    size_t passage_bytes = 512;
    if (doc["passage_bytes"].get(n) == simdjson::SUCCESS) passage_bytes = static_cast<size_t>(std::clamp<int64_t>(n, 64, 4096));
    if (doc["reindex_interval_ms"].get(n) == simdjson::SUCCESS) interval_ = std::chrono::milliseconds(std::max<int64_t>(n, 0));
    double d = 0;
    if (doc["min_score"].get(d) == simdjson::SUCCESS) min_score_ = d;
    if (folder.empty() && database == ":memory:") {
      throw ConfigError("settings need folder = \"PATH\" (the Markdown documents) or a prebuilt database");
    }
    try {
      index_ = std::make_unique<kb::Index>(database, folder, tokenizer, passage_bytes);
      if (!index_->rebuilt_because().empty()) {
        ctx_.warn("index " + database + " was rebuilt from " + folder + ": " + index_->rebuilt_because());
      }
      if (!synonyms.empty()) index_->load_synonyms(synonyms);
      const auto st = index_->sync();
      ctx_.info("knowledge base " + (folder.empty() ? database : folder) + ": " + std::to_string(st.files) +
                " documents, " + std::to_string(st.passages) + " passages (" + tokenizer + ")");
      if (st.passages == 0) ctx_.warn("the knowledge base has no passages: every answer goes on without sources");
    } catch (const kb::Error& e) {
      throw ConfigError(e.what());
    }
    folder_ = folder;
    checked_ = std::chrono::steady_clock::now();
  }

  static constexpr auto retrievers() {
    return std::array{retriever<&KnowledgeBase::search>(
        "knowledge_base", "Passages of the knowledge base that answer the question")};
  }

  void search(std::string_view request_json, Passages& out) {
    simdjson::dom::parser parser;
    simdjson::dom::element req;
    std::string_view query;
    if (parser.parse(request_json.data(), request_json.size()).get(req) != simdjson::SUCCESS ||
        req["query"].get(query) != simdjson::SUCCESS) {
      throw ToolError(SLUICE_ERR_INVALID_ARGUMENT, "the retrieval request has no query");
    }
    kb::SearchOptions options;
    options.language = language_;
    options.min_score = min_score_;
    int64_t top_k = 3;
    if (req["top_k"].get(top_k) == simdjson::SUCCESS) options.top_k = static_cast<size_t>(std::clamp<int64_t>(top_k, 1, 32));
    // The user's earlier questions give a follow-up its topic.
    simdjson::dom::array conversation;
    if (req["conversation"].get(conversation) == simdjson::SUCCESS) {
      for (auto m : conversation) {
        std::string_view role, content;
        if (m["role"].get(role) == simdjson::SUCCESS && role == "user" &&
            m["content"].get(content) == simdjson::SUCCESS) {
          options.context.emplace_back(content);
        }
      }
      // The latest first: only the last question counts as context.
      if (options.context.size() > 1) options.context.erase(options.context.begin(), options.context.end() - 1);
    }
    std::vector<kb::Hit> hits;
    {
      std::lock_guard lock(mutex_);
      refresh();
      hits = index_->search(query, options);
    }
    ctx_.counter_add("searches");
    if (hits.empty()) ctx_.counter_add("no_passage");
    for (const auto& h : hits) {
      const std::string metadata = R"({"path":)" + json_string(h.passage.path) + R"(,"heading":)" +
                                   json_string(h.passage.heading) + R"(,"lang":)" + json_string(h.passage.lang) + "}";
      out.add(h.passage.id, h.passage.title, h.passage.url, h.passage.text, h.score, metadata);
    }
  }

  void self_test() {
    std::lock_guard lock(mutex_);
    if (index_->stats().passages == 0) throw std::runtime_error("the index has no passages");
  }

 private:
  // With mutex_ held: the folder's changes, at most once per interval.
  void refresh() {
    if (folder_.empty() || interval_.count() == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - checked_ < interval_) return;
    checked_ = now;
    try {
      const auto st = index_->sync();
      if (st.added || st.removed) {
        ctx_.info("re-indexed " + std::to_string(st.added) + " changed and " + std::to_string(st.removed) +
                  " removed documents: " + std::to_string(st.passages) + " passages");
        ctx_.counter_add("reindexes");
      }
    } catch (const kb::Error& e) {
      // The folder went away or a file cannot be read: the index as it was.
      ctx_.warn(std::string("re-indexing failed, the last index stays: ") + e.what());
    }
  }

  Context ctx_;
  std::mutex mutex_;
  std::unique_ptr<kb::Index> index_;
  std::string folder_;
  std::string language_ = "auto";
  double min_score_ = 0;
  std::chrono::milliseconds interval_{2000};
  std::chrono::steady_clock::time_point checked_;
};

}  // namespace sluice::knowledge_base

SLUICE_PLUGIN(sluice::knowledge_base::KnowledgeBase)
