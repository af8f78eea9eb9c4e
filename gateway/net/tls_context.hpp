// TlsContextStore: the listener's TLS certificate and key (tls.* in the
// config), loaded at start and re-read on request (SIGHUP). A reload that
// fails keeps the certificate being served; connections already open keep
// the one they started with.
//
// Threads: current() from any thread (it is cheap: a shared_ptr copy under a
// mutex); reload() reads files, so call it off the I/O threads.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "gateway/config/config.hpp"

namespace sluice {

class TlsContextStore {
 public:
  explicit TlsContextStore(TlsConfig config) : config_(std::move(config)) {}

  // Reads tls.cert_file and tls.key_file; on failure `error` says which file
  // and why, and the previous context (if any) stays in use.
  bool reload(std::string& error);
  // The context new connections use; null before the first good load.
  std::shared_ptr<boost::asio::ssl::context> current() const;
  // "subject, expires <date>" of the certificate in use, for logs.
  std::string describe() const;

 private:
  const TlsConfig config_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::string description_;
};

}  // namespace sluice
