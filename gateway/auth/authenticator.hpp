// Authenticator: turns a bearer token into a principal. Tokens are API keys
// (compared by their SHA-256; the config holds only hashes) or JWTs signed
// with HS256 or RS256 (exp, nbf, iss and aud checked, with a small leeway;
// "none" and every other algorithm refused; the algorithm decides the key,
// so an RSA public key is never used as an HMAC secret).
//
// Threads: construct once at start-up; verify() is const and thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/config/config.hpp"

namespace sluice {

struct AuthResult {
  bool ok = false;
  std::string principal;
  // When the credential stops being valid (JWT exp); nullopt: never (API key).
  std::optional<std::chrono::system_clock::time_point> expires;
  std::string error;  // why it was refused, for the client
};

class Authenticator {
 public:
  // Throws std::runtime_error with a sentence when a configured key cannot
  // be read (a start-up error).
  explicit Authenticator(const AuthConfig& config);

  // False with auth.mode = "none": every client is the principal "anonymous".
  bool required() const { return required_; }
  AuthResult verify(std::string_view token, std::chrono::system_clock::time_point now) const;

 private:
  AuthResult verify_jwt(std::string_view token, std::chrono::system_clock::time_point now) const;

  bool required_;
  AuthConfig config_;
  std::unordered_map<std::string, std::string> principal_by_hash_;
  std::string rs256_public_key_pem_;
};

// The token of an `Authorization: Bearer <token>` header value; the scheme
// is case-insensitive (RFC 7235 section 2.1). "" when it is not one.
std::string_view bearer_token(std::string_view authorization);

// Lowercase hex SHA-256 of `data` (how API keys are stored in the config).
std::string sha256_hex(std::string_view data);
// Lowercase hex SHA-1 (what Redis names a script by: EVALSHA).
std::string sha1_hex(std::string_view data);

}  // namespace sluice
