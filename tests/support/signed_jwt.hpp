// An HS256 JWT with exactly the given header and payload JSON, for tests
// that need what libjwt will not write (a fractional exp, an arbitrary alg).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "gateway/common/base64url.hpp"

namespace sluice::test {

inline std::string signed_hs256(const std::string& header, const std::string& payload,
                                const std::string& key) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url_encode(std::string(reinterpret_cast<const char*>(mac), len));
}

}  // namespace sluice::test
