#include "gateway/net/tls_context.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace sluice {

namespace ssl = boost::asio::ssl;

namespace {

// Why an OpenSSL call failed: Asio's message for `ec`, or the more precise
// last error still queued.
std::string openssl_reason(const boost::system::error_code& ec) {
  std::string why = ec.message();
  if (const unsigned long e = ERR_peek_last_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    why = buf;
  }
  ERR_clear_error();
  return why;
}

bool readable(const std::string& path, std::string& why) {
  std::ifstream f(path);
  if (f) return true;
  why = std::strerror(errno);
  return false;
}

std::string name_of(X509_NAME* name) {
  if (!name) return "?";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string time_of(const ASN1_TIME* t) {
  if (!t) return "?";
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

bool TlsContextStore::reload(std::string& error) {
  std::string why;
  if (!readable(config_.cert_file, why)) {
    error = "tls.cert_file " + config_.cert_file + ": " + why;
    return false;
  }
  if (!readable(config_.key_file, why)) {
    error = "tls.key_file " + config_.key_file + ": " + why;
    return false;
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(),
                                config_.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  boost::system::error_code ec;
  ERR_clear_error();
  ctx->use_certificate_chain_file(config_.cert_file, ec);
  if (ec) {
    error = "tls.cert_file " + config_.cert_file + ": not a PEM certificate chain (" +
            openssl_reason(ec) + ")";
    return false;
  }
  ctx->use_private_key_file(config_.key_file, ssl::context::pem, ec);
  // Asio takes the first OpenSSL error into `ec`.
  if (ec && ec.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    error = "tls.key_file " + config_.key_file + " does not belong to the certificate in " +
            config_.cert_file;
    return false;
  }
  if (ec) {
    error = "tls.key_file " + config_.key_file + ": not a PEM private key (" + openssl_reason(ec) +
            ")";
    return false;
  }
  X509* leaf = SSL_CTX_get0_certificate(ctx->native_handle());
  std::string description = name_of(leaf ? X509_get_subject_name(leaf) : nullptr) + ", expires " +
                            time_of(leaf ? X509_get0_notAfter(leaf) : nullptr);
  std::lock_guard lock(mutex_);
  // Connections made with the old context keep it: each SSL object holds a
  // reference to its SSL_CTX.
  context_ = std::move(ctx);
  description_ = std::move(description);
  return true;
}

std::shared_ptr<ssl::context> TlsContextStore::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

std::string TlsContextStore::describe() const {
  std::lock_guard lock(mutex_);
  return description_;
}

}  // namespace sluice
