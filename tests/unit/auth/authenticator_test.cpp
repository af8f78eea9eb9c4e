#include "gateway/auth/authenticator.hpp"

#include "gateway/common/base64url.hpp"
#include "gateway/common/utf8.hpp"
#include "tests/support/signed_jwt.hpp"

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <fstream>

namespace sluice {
namespace {

using Clock = std::chrono::system_clock;
const long kNow = 1'800'000'000;  // a fixed "now", injected
const Clock::time_point kNowTp{std::chrono::seconds(kNow)};
const std::string kSecret = "test-secret-密钥-🔑";

struct Claims {
  std::string sub = "shop-a";
  long exp = kNow + 3600;
  long nbf = 0;
  std::string aud;
  std::string iss;
};

std::string make_jwt(jwt_alg_t alg, const std::string& key, const Claims& c) {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  if (!c.sub.empty()) jwt_add_grant(jwt, "sub", c.sub.c_str());
  if (c.exp) jwt_add_grant_int(jwt, "exp", c.exp);
  if (c.nbf) jwt_add_grant_int(jwt, "nbf", c.nbf);
  if (!c.aud.empty()) jwt_add_grant(jwt, "aud", c.aud.c_str());
  if (!c.iss.empty()) jwt_add_grant(jwt, "iss", c.iss.c_str());
  jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  char* s = jwt_encode_str(jwt);
  std::string out = s ? s : "";
  free(s);
  jwt_free(jwt);
  return out;
}

AuthConfig hs256_config() {
  AuthConfig c;
  c.mode = "token";
  c.jwt_hs256_secret = kSecret;
  c.jwt_audience = "sluice";
  c.jwt_issuer = "https://id.example";
  return c;
}

Claims good_claims() {
  Claims c;
  c.aud = "sluice";
  c.iss = "https://id.example";
  return c;
}

TEST(Authenticator, ApiKeysAreComparedByHash) {
  AuthConfig c;
  c.mode = "token";
  c.api_keys = {{"shop-a", sha256_hex("sk-live-abc")}, {"shop-b", sha256_hex("sk-live-xyz")}};
  Authenticator auth(c);
  EXPECT_TRUE(auth.required());
  auto ok = auth.verify("sk-live-xyz", kNowTp);
  ASSERT_TRUE(ok.ok);
  EXPECT_EQ(ok.principal, "shop-b");
  EXPECT_FALSE(ok.expires);
  EXPECT_FALSE(auth.verify("sk-live-abd", kNowTp).ok);
  EXPECT_FALSE(auth.verify("", kNowTp).ok);
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Authenticator, Hs256TokenGivesItsSubject) {
  Authenticator auth(hs256_config());
  auto r = auth.verify(make_jwt(JWT_ALG_HS256, kSecret, good_claims()), kNowTp);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.principal, "shop-a");
  ASSERT_TRUE(r.expires);
}

TEST(Authenticator, RefusesBadTokens) {
  Authenticator auth(hs256_config());
  struct Case {
    const char* what;
    std::string token;
    const char* error;
  };
  Claims expired = good_claims();
  expired.exp = kNow - 31;  // beyond the 30 s leeway
  Claims not_yet = good_claims();
  not_yet.nbf = kNow + 31;
  Claims wrong_aud = good_claims();
  wrong_aud.aud = "another-service";
  Claims wrong_iss = good_claims();
  wrong_iss.iss = "https://evil.example";
  Claims no_exp = good_claims();
  no_exp.exp = 0;
  Claims no_sub = good_claims();
  no_sub.sub = "";
  const std::string none_token =
      base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
      base64url_encode(R"({"sub":"admin","aud":"sluice","iss":"https://id.example","exp":1900000000})") + ".";
  const std::vector<Case> cases = {
      {"expired", make_jwt(JWT_ALG_HS256, kSecret, expired), "expired"},
      {"not yet valid", make_jwt(JWT_ALG_HS256, kSecret, not_yet), "not valid yet"},
      {"wrongly signed", make_jwt(JWT_ALG_HS256, "another secret", good_claims()), "signature"},
      {"wrong audience", make_jwt(JWT_ALG_HS256, kSecret, wrong_aud), "audience"},
      {"wrong issuer", make_jwt(JWT_ALG_HS256, kSecret, wrong_iss), "issuer"},
      {"no exp", make_jwt(JWT_ALG_HS256, kSecret, no_exp), "no exp"},
      {"no subject", make_jwt(JWT_ALG_HS256, kSecret, no_sub), "claim"},
      {"alg none", none_token, "not accepted"},
      {"HS512", make_jwt(JWT_ALG_HS512, kSecret, good_claims()), "not accepted"},
      {"garbage", "a.b.c", "not accepted"},
  };
  for (const auto& c : cases) {
    const auto r = auth.verify(c.token, kNowTp);
    EXPECT_FALSE(r.ok) << c.what;
    EXPECT_NE(r.error.find(c.error), std::string::npos) << c.what << ": " << r.error;
  }
  // Within the leeway an expired token still passes.
  Claims just_expired = good_claims();
  just_expired.exp = kNow - 10;
  EXPECT_TRUE(auth.verify(make_jwt(JWT_ALG_HS256, kSecret, just_expired), kNowTp).ok);
}

class Rs256 : public ::testing::Test {
 protected:
  void SetUp() override {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    ASSERT_TRUE(key);
    BIO* priv = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
    BIO* pub = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(pub, key);
    char* p = nullptr;
    const long priv_len = BIO_get_mem_data(priv, &p);
    private_pem_.assign(p, static_cast<size_t>(priv_len));
    const long pub_len = BIO_get_mem_data(pub, &p);
    public_pem_.assign(p, static_cast<size_t>(pub_len));
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    char tmpl[] = "/tmp/sluice-rsa-XXXXXX";
    const int fd = mkstemp(tmpl);
    close(fd);
    path_ = tmpl;
    std::ofstream(path_) << public_pem_;
  }
  void TearDown() override { unlink(path_.c_str()); }
  std::string private_pem_, public_pem_, path_;
};

TEST_F(Rs256, SignedWithThePrivateKeyVerifiesWithThePublicOne) {
  AuthConfig c;
  c.mode = "token";
  c.jwt_rs256_public_key_file = path_;
  Authenticator auth(c);
  auto r = auth.verify(make_jwt(JWT_ALG_RS256, private_pem_, Claims{}), kNowTp);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.principal, "shop-a");
  // Algorithm confusion: an HS256 token whose secret is the public key.
  auto confused = auth.verify(make_jwt(JWT_ALG_HS256, public_pem_, Claims{}), kNowTp);
  EXPECT_FALSE(confused.ok);
}

TEST(Authenticator, MissingKeyFileIsAStartupError) {
  AuthConfig c;
  c.mode = "token";
  c.jwt_rs256_public_key_file = "/nonexistent/key.pem";
  EXPECT_THROW(Authenticator{c}, std::runtime_error);
}

std::string signed_token(const std::string& header, const std::string& payload) {
  return test::signed_hs256(header, payload, kSecret);
}

std::string payload_with_exp(const std::string& exp) {
  return R"({"sub":"shop-a","aud":"sluice","iss":"https://id.example","exp":)" + exp + "}";
}

TEST(Authenticator, FarFutureExpiryIsValidAndDoesNotOverflow) {
  // Before the fix, exp + leeway overflowed a nanosecond time_point: the
  // token was accepted and the connection closed at once as "expired".
  Authenticator auth(hs256_config());
  for (const std::string exp : {"9999999999", "32503680000", "1e300"}) {
    const auto r = auth.verify(signed_token(R"({"alg":"HS256","typ":"JWT"})", payload_with_exp(exp)), kNowTp);
    ASSERT_TRUE(r.ok) << exp << ": " << r.error;
    ASSERT_TRUE(r.expires);
    EXPECT_GT(*r.expires, kNowTp + std::chrono::hours(24 * 365 * 50)) << exp;
  }
  // The same through libjwt's own integer grants.
  Claims far = good_claims();
  far.exp = 9'999'999'999;
  const auto r = auth.verify(make_jwt(JWT_ALG_HS256, kSecret, far), kNowTp);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_GT(*r.expires, kNowTp);
}

TEST(Authenticator, FractionalNumericDatesAreAccepted) {
  // RFC 7519 section 2: a NumericDate may be non-integer.
  AuthConfig config = hs256_config();
  config.jwt_leeway = std::chrono::milliseconds(0);
  Authenticator auth(config);
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const auto later = auth.verify(signed_token(header, payload_with_exp(std::to_string(kNow) + ".5e0")), kNowTp);
  EXPECT_TRUE(later.ok) << later.error;
  const auto ok = auth.verify(signed_token(header, payload_with_exp(std::to_string(kNow + 60) + ".25")), kNowTp);
  ASSERT_TRUE(ok.ok) << ok.error;
  EXPECT_NEAR(std::chrono::duration<double>(*ok.expires - kNowTp).count(), 60.25, 0.001);
  const auto expired = auth.verify(signed_token(header, payload_with_exp(std::to_string(kNow - 1) + ".5")), kNowTp);
  EXPECT_FALSE(expired.ok);
  EXPECT_EQ(expired.error, "JWT expired");
  const auto text = auth.verify(signed_token(header, payload_with_exp(R"("soon")")), kNowTp);
  EXPECT_FALSE(text.ok);
  EXPECT_EQ(text.error, "JWT exp must be a number of seconds");
}

TEST(Authenticator, EchoedAlgorithmIsCutOnACharacterBoundary) {
  // "a" + eight "é": cut at 16 bytes, the old code split the eighth "é".
  Authenticator auth(hs256_config());
  for (const std::string ch : {"é", "你", "🚀"}) {
    for (size_t prefix = 0; prefix < 20; ++prefix) {
      std::string alg(prefix, 'a');
      for (int i = 0; i < 8; ++i) alg += ch;
      const auto r = auth.verify(signed_token(R"({"alg":")" + alg + R"("})", payload_with_exp("1900000000")), kNowTp);
      ASSERT_FALSE(r.ok);
      EXPECT_TRUE(valid_utf8(r.error)) << prefix << " " << ch << ": " << r.error;
      EXPECT_NE(r.error.find("is not accepted"), std::string::npos);
    }
  }
}

TEST(Authenticator, BearerSchemeIsCaseInsensitive) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer abc"), "abc");
  EXPECT_EQ(bearer_token("BEARER  abc "), "abc");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearerabc"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
}

}  // namespace
}  // namespace sluice
