#include "gateway/stream/retrieval.hpp"

#include <simdjson.h>

#include <algorithm>
#include <unordered_set>

#include "gateway/common/json_writer.hpp"
#include "gateway/common/utf8.hpp"

namespace sluice {

namespace {
constexpr size_t kMaxContextBytes = 1024;  // of each earlier message a retriever sees

// At most `n` bytes of `s`, cut on a character boundary.
std::string_view head(std::string_view s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}
}  // namespace

std::string retrieval_request(const std::vector<ChatMessage>& history, const RetrievalConfig& config) {
  auto last_user = std::find_if(history.rbegin(), history.rend(), [](const ChatMessage& m) { return m.role == "user"; });
  if (last_user == history.rend()) return {};
  std::vector<const ChatMessage*> context;
  for (auto it = std::next(last_user); it != history.rend() && context.size() < size_t(config.context_messages); ++it) {
    if ((it->role == "user" || it->role == "assistant") && !it->content.empty()) context.push_back(&*it);
  }
  JsonWriter w;
  w.begin_object().field("query", last_user->content).key("conversation").begin_array();
  for (auto it = context.rbegin(); it != context.rend(); ++it) {
    w.begin_object().field("role", (*it)->role).field("content", head((*it)->content, kMaxContextBytes)).end_object();
  }
  w.end_array().field("top_k", config.top_k).end_object();
  return w.take();
}

std::vector<Passage> top_passages(const std::vector<ToolOutcome>& outcomes, size_t top_k) {
  std::vector<Passage> all;
  for (const auto& o : outcomes) {
    if (o.ok) all.insert(all.end(), o.passages.begin(), o.passages.end());
  }
  std::stable_sort(all.begin(), all.end(), [](const Passage& a, const Passage& b) { return a.score > b.score; });
  std::vector<Passage> out;
  std::unordered_set<std::string> seen;
  for (auto& p : all) {
    if (out.size() >= top_k) break;
    if (seen.insert(p.id).second) out.push_back(std::move(p));
  }
  return out;
}

std::string sources_items_json(const std::vector<Passage>& passages) {
  JsonWriter w;
  w.begin_array();
  for (const auto& p : passages) {
    w.begin_object().field("kind", "passage").field("id", p.id).field("title", p.title).field("url", p.url);
    w.field("snippet", p.text).field("score", p.score);
    if (!p.metadata_json.empty()) w.key("metadata").raw(p.metadata_json);
    w.end_object();
  }
  return w.end_array().take();
}

std::vector<Passage> passages_from_items(std::string_view items_json) {
  std::vector<Passage> out;
  simdjson::dom::parser parser;
  simdjson::dom::array items;
  const std::string text(items_json);
  if (parser.parse(text).get(items) != simdjson::SUCCESS) return out;
  for (auto item : items) {
    std::string_view kind, id, title, url, text;
    if (item["kind"].get(kind) != simdjson::SUCCESS || kind != "passage") continue;
    if (item["id"].get(id) || item["snippet"].get(text)) continue;
    Passage p;
    p.id = id;
    p.text = text;
    if (item["title"].get(title) == simdjson::SUCCESS) p.title = title;
    if (item["url"].get(url) == simdjson::SUCCESS) p.url = url;
    double score = 0;
    if (item["score"].get(score) == simdjson::SUCCESS) p.score = score;
    simdjson::dom::object metadata;
    if (item["metadata"].get(metadata) == simdjson::SUCCESS) p.metadata_json = simdjson::minify(metadata);
    out.push_back(std::move(p));
  }
  return out;
}

std::string prompt_with_sources(const std::vector<Passage>& passages, std::string_view question) {
  std::string out = "Sources:\n";
  for (size_t i = 0; i < passages.size(); ++i) {
    out += "[" + std::to_string(i + 1) + "] " + passages[i].title + "\n" + passages[i].text + "\n";
  }
  out += "\nAnswer from the sources and cite them as [1]; if they do not answer it, say so.\nQuestion: ";
  out += question;
  return out;
}

void put_sources_into_prompt(std::vector<ChatMessage>& messages, const std::vector<Passage>& passages) {
  if (passages.empty()) return;
  auto last_user = std::find_if(messages.rbegin(), messages.rend(), [](const ChatMessage& m) { return m.role == "user"; });
  if (last_user != messages.rend()) last_user->content = prompt_with_sources(passages, last_user->content);
}

}  // namespace sluice
