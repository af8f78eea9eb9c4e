#include "gateway/engine/local/tokenizer.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <queue>

namespace sluice {

namespace {

constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6;

// One code point of `s` at byte `i`: its value and length (invalid bytes
// count as one U+FFFD of length 1).
struct Cp {
  UChar32 c;
  size_t len;
};
Cp cp_at(std::string_view s, size_t i) {
  int32_t at = static_cast<int32_t>(i);
  UChar32 c = 0;
  U8_NEXT(reinterpret_cast<const uint8_t*>(s.data()), at, static_cast<int32_t>(s.size()), c);
  if (c < 0) c = 0xFFFD;
  return {c, static_cast<size_t>(at) - i};
}

bool is_letter(UChar32 c) {
  const int t = u_charType(c);
  return t >= U_UPPERCASE_LETTER && t <= U_OTHER_LETTER;
}
bool is_number(UChar32 c) {
  const int t = u_charType(c);
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
bool is_space(UChar32 c) { return u_isUWhiteSpace(c); }
bool is_newline(UChar32 c) { return c == '\r' || c == '\n'; }

// The pre-tokenizers of Llama 3 (digits up to 3) and Qwen 2 (one digit):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// and GPT-2's:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out by hand, alternative by alternative, as the regex tries them.
std::vector<std::string_view> pre_split(std::string_view s, Tokenizer::Pre pre) {
  std::vector<std::string_view> out;
  const bool gpt2 = pre == Tokenizer::Pre::kGpt2;
  const size_t max_digits = pre == Tokenizer::Pre::kLlama3 ? 3 : pre == Tokenizer::Pre::kQwen2 ? 1 : SIZE_MAX;
  size_t i = 0;
  auto at = [&](size_t k) { return k < s.size() ? cp_at(s, k) : Cp{-1, 0}; };
  while (i < s.size()) {
    const Cp c0 = at(i);
    size_t end = 0;
    // Contractions.
    if (c0.c == '\'' && i + 1 < s.size()) {
      const Cp c1 = at(i + 1);
      const UChar32 l1 = gpt2 ? c1.c : u_tolower(c1.c);
      if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd') {
        end = i + 1 + c1.len;
      } else if (i + 2 < s.size()) {
        const Cp c2 = at(i + 1 + c1.len);
        const UChar32 l2 = gpt2 ? c2.c : u_tolower(c2.c);
        if ((l1 == 'r' && l2 == 'e') || (l1 == 'v' && l2 == 'e') || (l1 == 'l' && l2 == 'l')) {
          end = i + 1 + c1.len + c2.len;
        }
      }
    }
    // Letters, with one leading non-letter/number (not a newline) before them.
    if (!end) {
      size_t k = i;
      if (gpt2) {
        if (c0.c == ' ') k += 1;
      } else if (!is_letter(c0.c) && !is_number(c0.c) && !is_newline(c0.c)) {
        k += c0.len;
      }
      const size_t start = k;
      while (k < s.size() && is_letter(at(k).c)) k += at(k).len;
      if (k > start) {
        end = k;
      } else if (!gpt2 && is_letter(c0.c)) {
        k = i;
        while (k < s.size() && is_letter(at(k).c)) k += at(k).len;
        end = k;
      }
    }
    // Numbers.
    if (!end) {
      size_t k = i;
      if (gpt2 && c0.c == ' ') k += 1;
      size_t n = 0;
      while (k < s.size() && n < max_digits && is_number(at(k).c)) {
        k += at(k).len;
        ++n;
      }
      if (n > 0) end = k;
    }
    // Punctuation and symbols, with one leading space; newlines after them.
    if (!end) {
      size_t k = i;
      if (c0.c == ' ') k += 1;
      const size_t start = k;
      while (k < s.size()) {
        const Cp c = at(k);
        if (is_space(c.c) || is_letter(c.c) || is_number(c.c)) break;
        k += c.len;
      }
      if (k > start) {
        if (!gpt2) {
          while (k < s.size() && is_newline(at(k).c)) k += 1;
        }
        end = k;
      }
    }
    // Whitespace: up to the last newline of the run; else all but the space
    // before a word; else the whole run.
    if (!end && is_space(c0.c)) {
      size_t k = i, last_newline = 0;
      while (k < s.size() && is_space(at(k).c)) {
        if (is_newline(at(k).c)) last_newline = k + 1;
        k += at(k).len;
      }
      if (!gpt2 && last_newline) {
        end = last_newline;
      } else if (k < s.size() && k - i > at(i).len) {
        // \s+(?!\S): leave the run's last character to the word after it.
        size_t back = k - 1;
        while (back > i && (static_cast<unsigned char>(s[back]) & 0xC0) == 0x80) --back;
        end = back;
      } else {
        end = k;
      }
    }
    if (!end) end = i + c0.len;  // nothing matched: one character alone
    out.push_back(s.substr(i, end - i));
    i = end;
  }
  return out;
}

// GPT-2's byte <-> printable character mapping.
const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const UChar32 c = printable ? b : 256 + n++;
      char buf[4];
      int32_t len = 0;
      UBool error = false;
      U8_APPEND(reinterpret_cast<uint8_t*>(buf), len, 4, c, error);
      (void)error;  // code points below 512 always fit
      t[b] = std::string(buf, static_cast<size_t>(len));
    }
    return t;
  }();
  return table;
}

const std::unordered_map<std::string, uint8_t>& unicode_to_byte() {
  static const std::unordered_map<std::string, uint8_t> table = [] {
    std::unordered_map<std::string, uint8_t> t;
    for (int b = 0; b < 256; ++b) t[byte_to_unicode()[b]] = static_cast<uint8_t>(b);
    return t;
  }();
  return table;
}

std::string nfc(std::string_view s) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) return std::string(s);
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  if (n->isNormalized(in, status) && U_SUCCESS(status)) return std::string(s);
  status = U_ZERO_ERROR;
  const icu::UnicodeString out = n->normalize(in, status);
  std::string result;
  out.toUTF8String(result);
  return U_FAILURE(status) ? std::string(s) : result;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const gguf::File& f, std::string& error) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const auto model = f.get_string("tokenizer.ggml.model");
  const gguf::Value* tokens = f.find("tokenizer.ggml.tokens");
  if (!model || !tokens || tokens->elem != gguf::ValueType::kString || tokens->strings.empty()) {
    error = "the model has no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens)";
    return nullptr;
  }
  if (*model == "gpt2") {
    t->kind_ = Kind::kBytePairBpe;
  } else if (*model == "llama") {
    t->kind_ = Kind::kSentencePiece;
  } else {
    error = "tokenizer.ggml.model \"" + std::string(*model) + "\" is not supported (gpt2, llama)";
    return nullptr;
  }
  const size_t n = tokens->strings.size();
  t->tokens_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    t->tokens_.emplace_back(tokens->strings[i]);
    t->ids_.emplace(t->tokens_.back(), static_cast<int32_t>(i));
  }
  t->types_.assign(n, kNormal);
  if (const gguf::Value* types = f.find("tokenizer.ggml.token_type")) {
    if (types->numbers.size() != n) {
      error = "tokenizer.ggml.token_type has " + std::to_string(types->numbers.size()) + " entries for " +
              std::to_string(n) + " tokens";
      return nullptr;
    }
    for (size_t i = 0; i < n; ++i) t->types_[i] = static_cast<int32_t>(types->numbers[i]);
  }
  t->scores_.assign(n, 0);
  if (const gguf::Value* scores = f.find("tokenizer.ggml.scores"); scores && scores->numbers.size() == n) {
    for (size_t i = 0; i < n; ++i) t->scores_[i] = static_cast<float>(scores->numbers[i]);
  }
  if (t->kind_ == Kind::kBytePairBpe) {
    const gguf::Value* merges = f.find("tokenizer.ggml.merges");
    if (!merges || merges->elem != gguf::ValueType::kString) {
      error = "a gpt2 tokenizer needs tokenizer.ggml.merges";
      return nullptr;
    }
    t->merge_rank_.reserve(merges->strings.size());
    for (size_t r = 0; r < merges->strings.size(); ++r) {
      t->merge_rank_.emplace(std::string(merges->strings[r]), static_cast<int32_t>(r));
    }
    const auto pre = f.get_string("tokenizer.ggml.pre").value_or("gpt2");
    if (pre == "llama-bpe" || pre == "llama3") {
      t->pre_ = Pre::kLlama3;
    } else if (pre == "qwen2") {
      t->pre_ = Pre::kQwen2;
    } else if (pre == "gpt2" || pre == "default") {
      t->pre_ = Pre::kGpt2;
    } else {
      error = "tokenizer.ggml.pre \"" + std::string(pre) + "\" is not supported (llama-bpe, qwen2, gpt2)";
      return nullptr;
    }
    t->nfc_ = f.get_string("tokenizer.ggml.normalizer") == std::optional<std::string_view>("nfc");
    if (const gguf::Value* v = f.find("tokenizer.ggml.ignore_merges")) t->ignore_merges_ = v->b;
  }
  std::fill(std::begin(t->byte_tokens_), std::end(t->byte_tokens_), -1);
  for (size_t i = 0; i < n; ++i) {
    if (t->types_[i] == kControl || t->types_[i] == kUserDefined) t->specials_.push_back(static_cast<int32_t>(i));
    if (t->types_[i] == kByte && t->tokens_[i].size() == 6) {
      const int b = std::stoi(t->tokens_[i].substr(3, 2), nullptr, 16);
      t->byte_tokens_[b] = static_cast<int32_t>(i);
    }
    if (t->types_[i] == kUnknown) t->unk_ = static_cast<int32_t>(i);
  }
  std::sort(t->specials_.begin(), t->specials_.end(), [&](int32_t a, int32_t b) {
    return t->tokens_[a].size() > t->tokens_[b].size();
  });
  auto id = [&](const char* key) {
    const auto v = f.get_uint(key);
    return v && *v < n ? static_cast<int32_t>(*v) : -1;
  };
  t->bos_ = id("tokenizer.ggml.bos_token_id");
  t->eos_ = id("tokenizer.ggml.eos_token_id");
  if (id("tokenizer.ggml.unknown_token_id") >= 0) t->unk_ = id("tokenizer.ggml.unknown_token_id");
  if (const gguf::Value* v = f.find("tokenizer.ggml.add_bos_token")) t->add_bos_ = v->b;
  t->chat_template_ = std::string(f.get_string("tokenizer.chat_template").value_or(""));
  return t;
}

std::optional<int32_t> Tokenizer::find(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::vector<int32_t> Tokenizer::unused_tokens() const {
  std::vector<int32_t> out;
  for (size_t i = 0; i < types_.size(); ++i) {
    if (types_[i] == 5) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

bool Tokenizer::is_end(int32_t id) const {
  if (id == eos_) return true;
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || types_[id] != kControl) return false;
  const std::string& s = tokens_[id];
  return s == "<|im_end|>" || s == "<|eot_id|>" || s == "<|end_of_text|>" || s == "<|endoftext|>" ||
         s == "</s>" || s == "<|eom_id|>";
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && add_bos_ && bos_ >= 0) out.push_back(bos_);
  if (!parse_special || specials_.empty()) {
    encode_text(text, out);
    return out;
  }
  // Added tokens first: the longest that starts here wins.
  size_t from = 0, i = 0;
  while (i < text.size()) {
    int32_t hit = -1;
    for (int32_t sid : specials_) {
      const std::string& s = tokens_[sid];
      if (!s.empty() && text.compare(i, s.size(), s) == 0) {
        hit = sid;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    if (i > from) encode_text(text.substr(from, i - from), out);
    out.push_back(hit);
    i += tokens_[hit].size();
    from = i;
  }
  if (from < text.size()) encode_text(text.substr(from), out);
  return out;
}

void Tokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (kind_ == Kind::kSentencePiece) return encode_spm(text, out);
  const std::string normalized = nfc_ ? nfc(text) : std::string(text);
  for (std::string_view word : pre_split(normalized, pre_)) encode_bpe_word(word, out);
}

void Tokenizer::encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  // Bytes as GPT-2's printable characters, one symbol each.
  std::vector<std::string> symbols;
  std::string mapped;
  for (unsigned char b : word) {
    symbols.push_back(byte_to_unicode()[b]);
    mapped += symbols.back();
  }
  if (ignore_merges_) {
    if (const auto it = ids_.find(mapped); it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Merge the pair of lowest rank until none is left.
  while (symbols.size() > 1) {
    int32_t best = INT32_MAX;
    size_t at = 0;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      const auto it = merge_rank_.find(symbols[k] + " " + symbols[k + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        at = k;
      }
    }
    if (best == INT32_MAX) break;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  for (const auto& s : symbols) {
    const auto it = ids_.find(s);
    if (it != ids_.end()) {
      out.push_back(it->second);
    } else if (unk_ >= 0) {
      out.push_back(unk_);
    }
  }
}

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  // "▁" before the text and for every space.
  std::string s = "\xE2\x96\x81";
  for (char c : text) {
    if (c == ' ') {
      s += "\xE2\x96\x81";
    } else {
      s += c;
    }
  }
  // Symbols: one per character, linked; bigrams merged by the score of the
  // piece they make (highest first, leftmost on ties).
  struct Symbol {
    size_t start, len;
    int prev, next;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < s.size();) {
    const size_t len = cp_at(s, i).len;
    sym.push_back({i, len, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
    i += len;
  }
  sym.back().next = -1;
  struct Bigram {
    int left, right;
    float score;
    size_t size;
    bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
  };
  std::priority_queue<Bigram> queue;
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string piece = s.substr(sym[left].start, sym[left].len + sym[right].len);
    const auto it = ids_.find(piece);
    if (it == ids_.end()) return;
    queue.push({left, right, scores_[it->second], piece.size()});
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i) try_pair(static_cast<int>(i), static_cast<int>(i) + 1);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size || l.next != b.right) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }
  for (int i = 0; i != -1 && i < static_cast<int>(sym.size()); i = sym[i].next) {
    const std::string piece = s.substr(sym[i].start, sym[i].len);
    if (const auto it = ids_.find(piece); it != ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (unsigned char b : piece) {
      if (byte_tokens_[b] >= 0) {
        out.push_back(byte_tokens_[b]);
      } else if (unk_ >= 0) {
        out.push_back(unk_);
      }
    }
  }
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return {};
  const std::string& t = tokens_[id];
  if (types_[id] == kControl || types_[id] == kUserDefined) return t;
  if (kind_ == Kind::kSentencePiece) {
    if (types_[id] == kByte && t.size() == 6) return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    std::string out;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 3;
      } else {
        out += t[i++];
      }
    }
    return out;
  }
  std::string out;
  for (size_t i = 0; i < t.size();) {
    const size_t len = cp_at(t, i).len;
    const auto it = unicode_to_byte().find(t.substr(i, len));
    if (it != unicode_to_byte().end()) out += static_cast<char>(it->second);
    i += len;
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += piece(id);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += t_.piece(id);
  if (!started_ && !pending_.empty()) {
    started_ = true;
    if (t_.adds_space_prefix() && pending_[0] == ' ') pending_.erase(0, 1);
  }
  // Complete characters go out; a valid start of a character waits for the
  // next token; bytes that can never be UTF-8 become U+FFFD.
  std::string out;
  size_t i = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(pending_.data());
  const auto n = static_cast<int32_t>(pending_.size());
  while (static_cast<int32_t>(i) < n) {
    int32_t at = static_cast<int32_t>(i);
    UChar32 c = 0;
    U8_NEXT(p, at, n, c);
    if (c >= 0) {
      out.append(pending_, i, static_cast<size_t>(at) - i);
      i = static_cast<size_t>(at);
      continue;
    }
    // Invalid here: is it only cut short by the end of what we have?
    const uint8_t lead = p[i];
    const int32_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 0;
    if (need > 0 && static_cast<int32_t>(i) + need > n && at == n) break;
    out += "\xEF\xBF\xBD";
    i = static_cast<size_t>(std::max(at, static_cast<int32_t>(i) + 1));
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out += "\xEF\xBF\xBD";  // bytes that never became a character
  pending_.clear();
  return out;
}

}  // namespace sluice
