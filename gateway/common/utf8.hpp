// UTF-8 helpers for text the gateway sends: every string that reaches a
// client must be valid UTF-8 (a browser's WebSocket drops the connection on
// a text frame that is not), so a text cut to a length is cut on a
// character boundary.
//
// Threads: pure functions, callable from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

// Length (1 to 4) of the well-formed character that starts at s[i], or 0
// when none does there (a stray continuation byte, an overlong form, a
// surrogate, a character cut short by the end of `s`).
size_t utf8_char_length(std::string_view s, size_t i);

// Largest n <= `n` such that s[0, n) ends on a UTF-8 character boundary.
size_t utf8_floor(std::string_view s, size_t n);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or
// values past U+10FFFF, no truncated character).
bool valid_utf8(std::string_view s);

// At most `max_bytes` of `s`, cut on a character boundary.
std::string_view utf8_prefix(std::string_view s, size_t max_bytes);

// `s` for a message a person reads: whole when it fits in `max_bytes`,
// else its first characters that fit followed by "..." (at most
// max(max_bytes, 3) bytes in all). Invalid UTF-8 in
// `s` (a header, a URL) is replaced by U+FFFD, so the result is always
// valid UTF-8.
std::string utf8_excerpt(std::string_view s, size_t max_bytes);

}  // namespace sluice
