#include "gateway/auth/authenticator.hpp"

#include "gateway/common/base64url.hpp"
#include "gateway/common/utf8.hpp"

#include <jwt.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace sluice {

namespace {

using Clock = std::chrono::system_clock;

// The "alg" of a JWT's header, read before any key is chosen.
std::string header_alg(std::string_view token) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos) return {};
  const std::string header = base64url_decode(token.substr(0, dot));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view alg;
  if (parser.parse(header).get(doc) != simdjson::SUCCESS ||
      doc["alg"].get(alg) != simdjson::SUCCESS) {
    return {};
  }
  return std::string(alg);
}

AuthResult refuse(std::string why) {
  AuthResult r;
  r.error = std::move(why);
  return r;
}

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};

// "aud" may be a string or an array of strings.
bool audience_matches(jwt_t* jwt, const std::string& want) {
  if (const char* aud = jwt_get_grant(jwt, "aud")) return want == aud;
  char* json = jwt_get_grants_json(jwt, "aud");
  if (!json) return false;
  const std::string text(json);
  free(json);
  simdjson::dom::parser parser;
  simdjson::dom::array arr;
  if (parser.parse(text).get(arr) != simdjson::SUCCESS) return false;
  for (auto e : arr) {
    std::string_view s;
    if (e.get(s) == simdjson::SUCCESS && s == want) return true;
  }
  return false;
}

// A NumericDate claim (RFC 7519 section 2: seconds since the epoch, an
// integer or not). nullopt when absent; `valid` false when it is not a
// finite number.
std::optional<double> numeric_date(jwt_t* jwt, const char* name, bool& valid) {
  valid = true;
  char* json = jwt_get_grants_json(jwt, name);
  if (!json) return std::nullopt;
  const std::string text(json);
  free(json);
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  double v = 0;
  if (parser.parse(text).get(e) != simdjson::SUCCESS || !e.is_number() ||
      e.get_double().get(v) != simdjson::SUCCESS || !std::isfinite(v)) {
    valid = false;
    return std::nullopt;
  }
  return v;
}

// The furthest expiry a connection is given: a JWT may carry any exp
// (9999999999, the year 2286, is common for "never"), while a time_point
// of nanoseconds ends in 2262.
constexpr double kMaxLifetimeSeconds = 100.0 * 365 * 24 * 3600;

}  // namespace

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || authorization[kScheme.size()] != ' ') return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return token;
}

namespace {
std::string digest_hex(std::string_view data, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}
}  // namespace

std::string sha256_hex(std::string_view data) { return digest_hex(data, EVP_sha256()); }
std::string sha1_hex(std::string_view data) { return digest_hex(data, EVP_sha1()); }

Authenticator::Authenticator(const AuthConfig& config)
    : required_(config.mode == "token"), config_(config) {
  for (const auto& k : config.api_keys) principal_by_hash_[k.sha256_hex] = k.principal;
  if (!config.jwt_rs256_public_key_file.empty()) {
    std::ifstream in(config.jwt_rs256_public_key_file);
    std::stringstream ss;
    ss << in.rdbuf();
    rs256_public_key_pem_ = ss.str();
    if (!in || rs256_public_key_pem_.find("-----BEGIN") == std::string::npos) {
      throw std::runtime_error("auth.jwt_rs256_public_key_file: cannot read a PEM public key from " +
                               config.jwt_rs256_public_key_file);
    }
  }
}

AuthResult Authenticator::verify(std::string_view token, Clock::time_point now) const {
  if (token.empty()) return refuse("no token");
  if (token.size() > 8192) return refuse("token too long");
  if (std::count(token.begin(), token.end(), '.') == 2) return verify_jwt(token, now);
  const auto it = principal_by_hash_.find(sha256_hex(token));
  if (it == principal_by_hash_.end()) return refuse("unknown API key");
  AuthResult r;
  r.ok = true;
  r.principal = it->second;
  return r;
}

AuthResult Authenticator::verify_jwt(std::string_view token, Clock::time_point now) const {
  const std::string alg = header_alg(token);
  const unsigned char* key = nullptr;
  int key_len = 0;
  jwt_alg_t want = JWT_ALG_INVAL;
  if (alg == "HS256" && !config_.jwt_hs256_secret.empty()) {
    key = reinterpret_cast<const unsigned char*>(config_.jwt_hs256_secret.data());
    key_len = static_cast<int>(config_.jwt_hs256_secret.size());
    want = JWT_ALG_HS256;
  } else if (alg == "RS256" && !rs256_public_key_pem_.empty()) {
    key = reinterpret_cast<const unsigned char*>(rs256_public_key_pem_.data());
    key_len = static_cast<int>(rs256_public_key_pem_.size());
    want = JWT_ALG_RS256;
  } else {
    return refuse("JWT algorithm \"" + utf8_excerpt(alg, 16) + "\" is not accepted");
  }
  jwt_t* raw = nullptr;
  const std::string text(token);
  if (jwt_decode(&raw, text.c_str(), key, key_len) != 0 || raw == nullptr) {
    if (raw) jwt_free(raw);
    return refuse("JWT signature or format is invalid");
  }
  std::unique_ptr<jwt_t, JwtFree> jwt(raw);
  if (jwt_get_alg(jwt.get()) != want) return refuse("JWT algorithm mismatch");

  const double leeway =
      static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(config_.jwt_leeway).count());
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  bool valid = true;
  const std::optional<double> exp = numeric_date(jwt.get(), "exp", valid);
  if (!valid) return refuse("JWT exp must be a number of seconds");
  if (!exp) return refuse("JWT has no exp");
  if (now_s > *exp + leeway) return refuse("JWT expired");
  const std::optional<double> nbf = numeric_date(jwt.get(), "nbf", valid);
  if (!valid) return refuse("JWT nbf must be a number of seconds");
  if (nbf && now_s + leeway < *nbf) return refuse("JWT not valid yet (nbf)");
  if (!config_.jwt_issuer.empty()) {
    const char* iss = jwt_get_grant(jwt.get(), "iss");
    if (!iss || config_.jwt_issuer != iss) return refuse("JWT issuer is not accepted");
  }
  if (!config_.jwt_audience.empty() && !audience_matches(jwt.get(), config_.jwt_audience)) {
    return refuse("JWT audience is not this gateway");
  }
  const char* principal = jwt_get_grant(jwt.get(), config_.jwt_principal_claim.c_str());
  if (!principal || !*principal) {
    return refuse("JWT has no \"" + config_.jwt_principal_claim + "\" claim");
  }
  AuthResult r;
  r.ok = true;
  r.principal = principal;
  const double lifetime = std::min(*exp + leeway - now_s, kMaxLifetimeSeconds);
  r.expires = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(lifetime));
  return r;
}

}  // namespace sluice
