// The first-party moderation plugin: phrase lists (English and Chinese,
// ASCII case folded) matched by one Aho-Corasick automaton whose state
// carries across deltas, and redaction of e-mail addresses, phone numbers and
// card numbers. Each list either redacts its phrases or stops the answer.
//
// Settings ([plugins.settings]):
//   pii = ["email", "phone", "card"]           # the default: all three
//   [[plugins.settings.lists]]
//   name = "violence"                           # the reason clients see
//   action = "stop"                             # or "redact"
//   replacement = "***"                         # redact only
//   phrases = ["...", "..."]                    # and/or file = "one-per-line.txt"
#include <simdjson.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "aho_corasick.hpp"
#include "pii.hpp"
#include "sluice/plugin.hpp"

namespace sluice::moderation {

class Moderation {
 public:
  static constexpr const char* kName = "moderation";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription =
      "Phrase lists (stop or redact) and redaction of e-mail, phone and card numbers";

  struct Match {
    size_t begin = 0, end = 0;  // in the current pending text
    int list = 0;
  };
  // One answer: the automaton's state after the last byte seen, the phrase
  // matches still in held text, and the last byte already released.
  struct Stream {
    int state = 0;
    std::vector<Match> matches;
    unsigned char before = ' ';
  };

  explicit Moderation(Context ctx) : ctx_(ctx) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    const std::string json(ctx.config_json());
    if (parser.parse(json).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
      throw ConfigError("settings are not a JSON object");
    }
    simdjson::dom::array pii;
    if (doc["pii"].get(pii) == simdjson::SUCCESS) {
      kinds_ = {false, false, false};
      for (auto k : pii) {
        const std::string_view v = k.get_string().value_unsafe();
        if (v == "email") {
          kinds_.email = true;
        } else if (v == "phone") {
          kinds_.phone = true;
        } else if (v == "card") {
          kinds_.card = true;
        } else {
          throw ConfigError("pii: unknown kind \"" + std::string(v) + "\" (email, phone, card)");
        }
      }
    }
    simdjson::dom::array lists;
    if (doc["lists"].get(lists) == simdjson::SUCCESS) {
      for (auto l : lists) read_list(l);
    }
    ac_.build();
    ctx_.info("ready: " + std::to_string(lists_.size()) + " phrase lists, " +
              std::to_string(phrases_) + " phrases, " + std::to_string(ac_.states()) + " states");
  }

  // What on_text decides, apart from the host's verdict object.
  struct Decision {
    sluice_action action = SLUICE_PASS;
    size_t hold = 0;
    std::string text;  // REPLACE
    std::string reason;
  };

  void on_text(Stream& s, std::string_view t, size_t new_from, uint32_t flags, Verdict& v) {
    const Decision d = decide(s, t, new_from, flags);
    switch (d.action) {
      case SLUICE_STOP: return v.stop(d.reason);
      case SLUICE_REPLACE: return v.replace(d.text, d.hold, d.reason);
      default: return v.pass(d.hold);
    }
  }

  Decision decide(Stream& s, std::string_view t, size_t new_from, uint32_t flags) {
    const bool decide = (flags & (SLUICE_TEXT_FINAL | SLUICE_TEXT_FLUSH)) != 0;
    for (size_t i = new_from; i < t.size(); ++i) {
      s.state = ac_.step(s.state, static_cast<unsigned char>(t[i]));
      for (const auto& hit : ac_.hits(s.state)) {
        s.matches.push_back({i + 1 - hit.length, i + 1, list_of_[hit.phrase]});
      }
    }
    // What may not be released yet: the automaton's partial match, phrase
    // matches whose word boundary is not known yet, and PII candidates.
    size_t keep = decide ? t.size() : t.size() - std::min(ac_.depth(s.state), t.size());
    std::vector<Span> spans;
    for (const Match& m : s.matches) {
      const auto verdict = boundary(s, t, m, decide);
      if (verdict == Boundary::kUnknown) {
        keep = std::min(keep, m.begin);
        continue;
      }
      if (verdict == Boundary::kNo) continue;
      const List& list = lists_[m.list];
      if (list.stop) {
        ctx_.counter_add("stops");
        return {SLUICE_STOP, 0, {}, list.name};
      }
      spans.push_back({m.begin, m.end, list.replacement, list.name});
    }
    keep = std::min(keep, scan_pii(t, decide, kinds_, spans));
    // A span that reaches into the kept text waits with it.
    for (bool moved = true; moved;) {
      moved = false;
      for (const Span& sp : spans) {
        if (sp.begin < keep && sp.end > keep) {
          keep = sp.begin;
          moved = true;
        }
      }
    }
    while (keep > 0 && keep < t.size() && (static_cast<unsigned char>(t[keep]) & 0xC0) == 0x80) --keep;

    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    std::string out;
    std::string reason;
    size_t at = 0;
    for (const Span& sp : spans) {
      if (sp.end > keep || sp.begin < at) continue;  // held, or overlapping one already applied
      out.append(t.substr(at, sp.begin - at)).append(sp.replacement);
      if (reason.empty()) reason = sp.reason;
      at = sp.end;
      ctx_.counter_add("redactions");
    }
    // The released part leaves the pending text: shift what stays.
    std::erase_if(s.matches, [&](const Match& m) { return m.begin < keep; });
    for (Match& m : s.matches) {
      m.begin -= keep;
      m.end -= keep;
    }
    if (keep > 0) s.before = static_cast<unsigned char>(t[keep - 1]);
    if (reason.empty()) return {SLUICE_PASS, t.size() - keep, {}, {}};
    out.append(t.substr(at, keep - at));
    return {SLUICE_REPLACE, t.size() - keep, std::move(out), std::move(reason)};
  }

  void self_test() {
    Stream s;
    std::string got;
    feed(s, "Mail me at zhang.wei@example.cn or call 138 0013 8000.", got);
    if (got.find("example.cn") != std::string::npos || got.find("8000") != std::string::npos) {
      throw std::runtime_error("e-mail or phone number not redacted: " + got);
    }
    for (const auto& list : lists_) {
      if (list.sample.empty()) continue;
      Stream ls;
      std::string text;
      const bool stopped = !feed(ls, "x " + list.sample + " y", text);
      if (list.stop && !stopped) {
        throw std::runtime_error("list " + list.name + ": its first phrase did not stop the answer");
      }
      if (!list.stop && (stopped || text.find(list.sample) != std::string::npos)) {
        throw std::runtime_error("list " + list.name + ": its first phrase was not redacted");
      }
    }
  }

 private:
  struct List {
    std::string name;
    bool stop = false;
    std::string replacement = "***";
    std::string sample;  // its first phrase, for self_test
  };
  enum class Boundary { kYes, kNo, kUnknown };

  // A phrase that starts (ends) with an ASCII letter or digit matches whole
  // words only; CJK phrases match anywhere.
  static Boundary boundary(const Stream& s, std::string_view t, const Match& m, bool decide) {
    const auto first = static_cast<unsigned char>(t[m.begin]);
    const auto last = static_cast<unsigned char>(t[m.end - 1]);
    if (ascii_alnum(first)) {
      const unsigned char prev = m.begin == 0 ? s.before : static_cast<unsigned char>(t[m.begin - 1]);
      if (ascii_alnum(prev)) return Boundary::kNo;
    }
    if (ascii_alnum(last)) {
      if (m.end == t.size()) return decide ? Boundary::kYes : Boundary::kUnknown;
      if (ascii_alnum(static_cast<unsigned char>(t[m.end]))) return Boundary::kNo;
    }
    return Boundary::kYes;
  }

  // Runs `text` through a stream byte by byte, then ends it, keeping the
  // held text as the host does; false if the answer was stopped.
  bool feed(Stream& s, std::string_view text, std::string& released) {
    std::string pending;
    for (size_t i = 0; i <= text.size(); ++i) {
      const bool end = i == text.size();
      const size_t from = pending.size();
      if (!end) pending.push_back(text[i]);
      Decision d = decide(s, pending, from, end ? SLUICE_TEXT_FINAL : 0);
      if (d.action == SLUICE_STOP) return false;
      const size_t cut = pending.size() - d.hold;
      released += d.action == SLUICE_REPLACE ? d.text : pending.substr(0, cut);
      pending.erase(0, cut);
    }
    return true;
  }

  void read_list(simdjson::dom::element l) {
    List list;
    std::string_view v;
    if (l["name"].get(v) != simdjson::SUCCESS || v.empty()) throw ConfigError("lists: every list needs a name");
    list.name = v;
    if (l["action"].get(v) == simdjson::SUCCESS) {
      if (v != "stop" && v != "redact") throw ConfigError("list " + list.name + ": action is \"stop\" or \"redact\"");
      list.stop = v == "stop";
    }
    if (l["replacement"].get(v) == simdjson::SUCCESS) list.replacement = v;
    std::vector<std::string> phrases;
    simdjson::dom::array arr;
    if (l["phrases"].get(arr) == simdjson::SUCCESS) {
      for (auto p : arr) {
        if (p.get(v) != simdjson::SUCCESS) throw ConfigError("list " + list.name + ": phrases are strings");
        phrases.emplace_back(v);
      }
    }
    if (l["file"].get(v) == simdjson::SUCCESS) {
      std::ifstream f{std::string(v)};
      if (!f) throw ConfigError("list " + list.name + ": cannot read " + std::string(v));
      for (std::string line; std::getline(f, line);) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty() && line[0] != '#') phrases.push_back(line);
      }
    }
    const int id = static_cast<int>(lists_.size());
    for (const auto& p : phrases) {
      if (p.empty()) continue;
      if (list.sample.empty()) list.sample = p;
      ac_.add(p, static_cast<int>(list_of_.size()));
      list_of_.push_back(id);
      ++phrases_;
    }
    lists_.push_back(std::move(list));
  }

  Context ctx_;
  PiiKinds kinds_;
  std::vector<List> lists_;
  std::vector<int> list_of_;  // phrase id -> list
  size_t phrases_ = 0;
  AhoCorasick ac_;
};

}  // namespace sluice::moderation

SLUICE_PLUGIN(sluice::moderation::Moderation)
