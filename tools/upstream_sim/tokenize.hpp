// The simulator's tokens: how sluice-upstream-sim splits the text it
// streams, shared with the benchmarks that stream the same way.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sim {

// Splits text into token-like pieces: a word with its leading space, a
// punctuation mark, or one non-ASCII character (CJK, emoji) each.
inline std::vector<std::string> tokenize(std::string_view text) {
  auto alnum = [&](size_t k) {
    return k < text.size() && std::isalnum(static_cast<unsigned char>(text[k]));
  };
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t j = i + 1;
    if (c >= 0xF0) {
      j = i + 4;
    } else if (c >= 0xE0) {
      j = i + 3;
    } else if (c >= 0xC0) {
      j = i + 2;
    } else if (alnum(i) || (c == ' ' && alnum(i + 1))) {
      j = i + 1;
      while (alnum(j)) ++j;
    }
    j = std::min(j, text.size());
    out.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace sluice::sim
