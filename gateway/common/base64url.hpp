// Unpadded base64url (RFC 4648 §5), as used by ids and JWTs. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

std::string base64url_encode(std::string_view bytes);
// "" when `text` holds a character outside the alphabet (padding '=' ends it).
std::string base64url_decode(std::string_view text);

}  // namespace sluice
