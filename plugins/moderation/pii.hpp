// Personal data in streamed text: e-mail addresses, phone numbers (Chinese
// mobile numbers, +international, 3-3-4 North American) and payment card
// numbers (13 to 19 digits, Luhn-checked). scan_pii finds the complete ones
// and says where a trailing candidate that may still grow begins.
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::moderation {

struct Span {
  size_t begin = 0, end = 0;
  std::string replacement;
  std::string reason;
};

struct PiiKinds {
  bool email = true, phone = true, card = true;
};

inline bool ascii_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool email_char(unsigned char c) {
  return ascii_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '@';
}

inline bool luhn(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

// local@domain.tld inside run [b, e) of email characters; the span without
// trailing punctuation, or false.
inline bool email_in(std::string_view t, size_t b, size_t e, size_t& end) {
  const size_t at = t.find('@', b);
  if (at == std::string_view::npos || at >= e || at == b) return false;
  if (t.find('@', at + 1) < e) return false;
  while (e > at + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;  // "a@b.com." ends a sentence
  const std::string_view domain = t.substr(at + 1, e - at - 1);
  const size_t dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || domain.size() - dot - 1 < 2) return false;
  for (size_t i = dot + 1; i < domain.size(); ++i) {
    if (!std::isalpha(static_cast<unsigned char>(domain[i]))) return false;
  }
  for (char c : domain) {
    if (!ascii_alnum(c) && c != '.' && c != '-') return false;
  }
  if (domain.find("..") != std::string_view::npos) return false;
  end = e;
  return true;
}

// Classifies a run of digits (with its separators): "phone", "card" or "".
inline std::string_view digit_kind(std::string_view digits, bool plus, const std::vector<size_t>& groups,
                                   const PiiKinds& k) {
  const size_t n = digits.size();
  if (k.phone) {
    const bool cn = n == 11 && digits[0] == '1' && digits[1] >= '3' && digits[1] <= '9';
    const bool cn86 = n == 13 && digits.substr(0, 2) == "86" && digits[2] == '1' && digits[3] >= '3' &&
                      digits[3] <= '9';
    const bool intl = plus && n >= 8 && n <= 15;
    const bool nanp = n == 10 && groups == std::vector<size_t>{3, 3, 4};
    if (cn || cn86 || intl || nanp) return "phone";
  }
  if (k.card && n >= 13 && n <= 19 && luhn(digits)) return "card";
  return {};
}

// Appends the complete PII spans of `t` to `out`. Returns where a trailing
// candidate begins (t.size() when there is none, or when `final`: nothing
// more will come).
inline size_t scan_pii(std::string_view t, bool final, const PiiKinds& kinds, std::vector<Span>& out) {
  size_t hold_from = t.size();
  const size_t n = t.size();
  // E-mail addresses: runs of e-mail characters holding an '@'. A trailing
  // run is held whatever it holds: "write to john" may go on "@example.com".
  for (size_t i = 0; i < n;) {
    if (!email_char(t[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && email_char(t[j])) ++j;
    if (j == n && !final) {
      hold_from = std::min(hold_from, i);
      break;
    }
    size_t end = 0;
    if (kinds.email && email_in(t, i, j, end)) out.push_back({i, end, "[email]", "email"});
    i = j;
  }
  // Phone and card numbers: digits with single spaces or dashes between,
  // not glued to letters ("A1001" is an order number).
  for (size_t i = 0; i < n;) {
    const bool plus = t[i] == '+' && i + 1 < n && ascii_digit(t[i + 1]);
    const bool starts = (ascii_digit(t[i]) || plus || (t[i] == '+' && i + 1 == n)) &&
                        (i == 0 || !ascii_alnum(t[i - 1]));
    if (!starts) {
      ++i;
      continue;
    }
    size_t j = plus || t[i] == '+' ? i + 1 : i;
    std::string digits;
    std::vector<size_t> groups{0};
    while (j < n) {
      if (ascii_digit(t[j])) {
        digits.push_back(t[j]);
        ++groups.back();
        ++j;
      } else if ((t[j] == ' ' || t[j] == '-') && j + 1 < n && ascii_digit(t[j + 1]) && groups.back() > 0) {
        groups.push_back(0);
        ++j;
      } else {
        break;
      }
    }
    // A separator or digit at the very end may be followed by more digits.
    const bool open_end = j == n || ((t[j] == ' ' || t[j] == '-') && j + 1 == n);
    if (open_end && !final) {
      hold_from = std::min(hold_from, i);
      break;
    }
    if (j < n && std::isalpha(static_cast<unsigned char>(t[j]))) {
      i = j;
      continue;
    }
    const auto kind = digit_kind(digits, plus, groups, kinds);
    if (!kind.empty()) out.push_back({i, j, kind == "phone" ? "[phone]" : "[card]", std::string(kind)});
    i = std::max(j, i + 1);
  }
  return hold_from;
}

}  // namespace sluice::moderation
