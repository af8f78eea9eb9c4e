// Identifiers from the kernel's CSPRNG (getrandom): session ids and trace ids
// must not be guessable. Thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

void fill_random(void* data, size_t size);

// `prefix` followed by 128 random bits in unpadded base64url (22 characters).
std::string make_random_id(std::string_view prefix);

// `bytes` random bytes as lowercase hex, never all zero.
std::string make_random_hex(size_t bytes);

// A W3C trace-context trace id: 32 lowercase hex digits, never all zero.
std::string make_trace_id();

}  // namespace sluice
