// sluice-kb: the knowledge_base plugin's index from the command line.
//
//   sluice-kb index FOLDER --db FILE [--tokenizer bigram|trigram] [--passage-bytes N]
//       builds (or brings up to date) the index of FOLDER ahead of time;
//       the plugin opens it with database = "FILE"
//   sluice-kb search (--db FILE | --folder FOLDER) [--top-k N] [--tokenizer T] [--synonyms FILE|none] QUERY...
//       prints the passages for each QUERY, one JSON object per line; with
//       no QUERY, reads JSON lines {"query": "...", "context": ["..."]} on stdin
//   sluice-kb passages FOLDER [--passage-bytes N]
//       prints every passage of FOLDER, one JSON object per line
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <simdjson.h>
#include <sstream>
#include <string>
#include <vector>

#include "kb.hpp"
#include "sluice/plugin.hpp"  // json_string

namespace {

using sluice::json_string;

int usage() {
  std::fprintf(stderr,
               "usage: sluice-kb index FOLDER --db FILE [--tokenizer bigram|trigram] [--passage-bytes N]\n"
               "       sluice-kb search (--db FILE | --folder FOLDER) [--top-k N] [--tokenizer T] [--synonyms FILE|none]\n"
               "                        [--min-score S] [QUERY...]\n"
               "       sluice-kb passages FOLDER [--passage-bytes N]\n");
  return 2;
}

std::string passage_json(const sluice::kb::Passage& p) {
  return R"({"id":)" + json_string(p.id) + R"(,"title":)" + json_string(p.title) + R"(,"url":)" + json_string(p.url) +
         R"(,"heading":)" + json_string(p.heading) + R"(,"lang":)" + json_string(p.lang) +
         R"(,"text":)" + json_string(p.text);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string command = argv[1];
  std::string db, folder, tokenizer = "bigram", synonyms;
  size_t passage_bytes = 512, top_k = 3;
  double min_score = 0;
  std::vector<std::string> rest;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice-kb: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--db") {
      db = value();
    } else if (a == "--folder") {
      folder = value();
    } else if (a == "--synonyms") {
      synonyms = value();
    } else if (a == "--tokenizer") {
      tokenizer = value();
    } else if (a == "--passage-bytes") {
      passage_bytes = std::strtoul(value().c_str(), nullptr, 10);
    } else if (a == "--min-score") {
      min_score = std::strtod(value().c_str(), nullptr);
    } else if (a == "--top-k") {
      top_k = std::strtoul(value().c_str(), nullptr, 10);
    } else {
      rest.push_back(a);
    }
  }
  try {
    if (command == "index") {
      if (rest.size() != 1 || db.empty()) return usage();
      sluice::kb::Index index(db, rest[0], tokenizer, passage_bytes);
      if (!index.rebuilt_because().empty()) std::fprintf(stderr, "sluice-kb: rebuilt %s: %s\n", db.c_str(), index.rebuilt_because().c_str());
      const auto st = index.sync();
      std::printf("%s: %zu documents, %zu passages (%zu indexed now, %zu removed), tokenizer %s\n", db.c_str(),
                  st.files, st.passages, st.added, st.removed, tokenizer.c_str());
      return 0;
    }
    if (command == "passages") {
      if (rest.size() != 1) return usage();
      const std::filesystem::path root(rest[0]);
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
        if (e.is_regular_file() && e.path().extension() == ".md") files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        const auto rel = std::filesystem::relative(f, root).generic_string();
        for (const auto& p : sluice::kb::split_document(rel, ss.str(), passage_bytes)) {
          std::printf("%s,\"bytes\":%zu}\n", passage_json(p).c_str(), p.text.size());
        }
      }
      return 0;
    }
    if (command == "search") {
      if (db.empty() && folder.empty()) return usage();
      sluice::kb::Index index(db.empty() ? ":memory:" : db, folder, tokenizer, passage_bytes);
      if (synonyms.empty() && !folder.empty() && std::filesystem::exists(folder + "/synonyms.txt")) {
        synonyms = folder + "/synonyms.txt";
      }
      if (!synonyms.empty() && synonyms != "none") index.load_synonyms(synonyms);
      index.sync();
      auto run = [&](const std::string& query, std::vector<std::string> context) {
        sluice::kb::SearchOptions o;
        o.top_k = top_k;
        o.min_score = min_score;
        o.context = std::move(context);
        std::string line = R"({"query":)" + json_string(query) + R"(,"passages":[)";
        bool first = true;
        for (const auto& h : index.search(query, o)) {
          line += (first ? "" : ",") + passage_json(h.passage) + R"(,"score":)" + std::to_string(h.score) + "}";
          first = false;
        }
        std::printf("%s]}\n", line.c_str());
        std::fflush(stdout);
      };
      if (!rest.empty()) {
        for (const auto& q : rest) run(q, {});
        return 0;
      }
      simdjson::dom::parser parser;
      for (std::string line; std::getline(std::cin, line);) {
        simdjson::dom::element doc;
        std::string_view q;
        if (parser.parse(line).get(doc) != simdjson::SUCCESS || doc["query"].get(q) != simdjson::SUCCESS) {
          std::fprintf(stderr, "sluice-kb: not a {\"query\": ...} line: %s\n", line.c_str());
          return 1;
        }
        std::vector<std::string> context;
        simdjson::dom::array ctx;
        if (doc["context"].get(ctx) == simdjson::SUCCESS) {
          for (auto c : ctx) {
            std::string_view s;
            if (c.get(s) == simdjson::SUCCESS) context.emplace_back(s);
          }
        }
        run(std::string(q), std::move(context));
      }
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-kb: %s\n", e.what());
    return 1;
  }
  return usage();
}
