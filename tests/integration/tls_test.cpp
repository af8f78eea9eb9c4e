// TLS on the listener: wss:// and https:// with a certificate the test makes,
// reload on SIGHUP, and clear start-up errors for bad certificate files.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/gateway_fixture.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;

// A fresh directory under the test's temp dir, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-tls-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Writes a self-signed P-256 certificate for 127.0.0.1 and localhost with
// subject CN=`cn` (its own trust anchor) and its private key, as PEM.
void make_certificate(const std::string& cn, const std::string& cert_path,
                      const std::string& key_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::hash<std::string>{}(cn) & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                                   std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                                   std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    ASSERT_NE(ext, nullptr);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  ASSERT_GT(X509_sign(x, key, EVP_sha256()), 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
}

// A wss:// client that trusts only `ca_file` and checks the name 127.0.0.1.
class WssClient {
 public:
  WssClient(uint16_t port, const std::string& ca_file) {
    tls_.load_verify_file(ca_file);
    ws_.next_layer().set_verify_mode(ssl::verify_peer);
    ws_.next_layer().set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(ws_).expires_after(10s);
    beast::get_lowest_layer(ws_).connect(
        net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    ws_.next_layer().handshake(ssl::stream_base::client);
    ws_.handshake("127.0.0.1:" + std::to_string(port), "/v1/ws");
    beast::get_lowest_layer(ws_).expires_never();
    ws_.text(true);
  }

  // The CN of the certificate the server presented.
  std::string peer_cn() {
    X509* cert = SSL_get1_peer_certificate(ws_.next_layer().native_handle());
    if (!cert) return {};
    char buf[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
    X509_free(cert);
    return buf;
  }

  void send(const std::string& text) { ws_.write(net::buffer(text)); }

  // Frames up to the `done` of the first session; the deltas' text.
  Turn read_turn() {
    Turn t;
    beast::get_lowest_layer(ws_).expires_after(20s);
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code ec;
      ws_.read(buffer, ec);
      if (ec) break;
      const Frame f = parse_frame(beast::buffers_to_string(buffer.data()));
      if (f.offset) t.offsets.push_back(f.offset);
      if (f.type == "delta") t.text += f.text;
      if (f.type == "error") t.error = f;
      if (f.type == "done") {
        t.done = f;
        break;
      }
    }
    beast::get_lowest_layer(ws_).expires_never();
    return t;
  }

  void close() { ws_.close(websocket::close_code::normal); }

 private:
  net::io_context ioc_;
  ssl::context tls_{ssl::context::tls_client};
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_{ioc_, tls_};
};

size_t append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// An https:// request through libcurl (a POST when `body` is set), trusting
// only `ca_file`; the status and body.
std::pair<long, std::string> curl_request(uint16_t port, const std::string& ca_file,
                                          const std::string& path, const std::string& body = "") {
  CURL* curl = curl_easy_init();
  std::string out;
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + path;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  long status = 0;
  if (const CURLcode rc = curl_easy_perform(curl); rc != CURLE_OK) {
    out = curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return {status, out};
}

// The concatenated delta.content of an OpenAI SSE body.
std::string sse_text(const std::string& body) {
  std::string text;
  simdjson::dom::parser parser;
  for (size_t pos = 0; (pos = body.find("data: {", pos)) != std::string::npos;) {
    const size_t end = body.find('\n', pos);
    simdjson::dom::element doc;
    if (parser.parse(body.substr(pos + 6, end - pos - 6)).get(doc) != simdjson::SUCCESS) break;
    std::string_view piece;
    if (doc["choices"].at(0)["delta"]["content"].get(piece) == simdjson::SUCCESS) text += piece;
    pos = end;
  }
  return text;
}

std::vector<std::string> tls_env(const TempDir& dir) {
  return {"SLUICE_TLS_CERT_FILE=" + dir.file("cert.pem"), "SLUICE_TLS_KEY_FILE=" + dir.file("key.pem")};
}

TEST(Tls, WssAndHttpsStreamAnswersWithTheConfiguredCertificate) {
  TempDir dir;
  make_certificate("sluice-test-one", dir.file("cert.pem"), dir.file("key.pem"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), tls_env(dir));
  EXPECT_TRUE(gw->wait_for_stderr("tls: serving CN=sluice-test-one, expires ")) << gw->stderr_text();

  WssClient c(gw->port(), dir.file("cert.pem"));
  EXPECT_EQ(c.peer_cn(), "sluice-test-one");
  c.send(chat("加密的问候 🔒"));
  const Turn t = c.read_turn();
  ASSERT_TRUE(t.done) << t.text;
  EXPECT_EQ(t.text, expected_text("加密的问候 🔒"));
  c.close();

  const auto [health, health_body] = curl_request(gw->port(), dir.file("cert.pem"), "/healthz");
  EXPECT_EQ(health, 200) << health_body;
  EXPECT_EQ(health_body, R"({"status":"ok"})");
  const auto [status, body] = curl_request(
      gw->port(), dir.file("cert.pem"), "/v1/chat/completions",
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"https 你好"}]})");
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos) << body;
  EXPECT_EQ(sse_text(body), expected_text("https 你好"));

  // Plain HTTP on the TLS port gets no answer; the gateway is unharmed.
  EXPECT_ANY_THROW(http_get(gw->port(), "/healthz"));
  WssClient again(gw->port(), dir.file("cert.pem"));
  again.send(chat("still here"));
  EXPECT_TRUE(again.read_turn().done);
}

TEST(Tls, ClientsThatDoNotTrustTheCertificateAreRefused) {
  TempDir dir;
  make_certificate("sluice-test-served", dir.file("cert.pem"), dir.file("key.pem"));
  make_certificate("sluice-test-other", dir.file("other.pem"), dir.file("other-key.pem"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), tls_env(dir));
  EXPECT_ANY_THROW(WssClient(gw->port(), dir.file("other.pem")));
  WssClient c(gw->port(), dir.file("cert.pem"));
  EXPECT_EQ(c.peer_cn(), "sluice-test-served");
}

TEST(Tls, SighupReloadsTheCertificateForNewConnections) {
  TempDir dir;
  make_certificate("sluice-test-before", dir.file("cert.pem"), dir.file("key.pem"));
  auto sim = start_sim();
  auto gw = start_gateway(sim_url(*sim), tls_env(dir));
  WssClient before(gw->port(), dir.file("cert.pem"));
  ASSERT_EQ(before.peer_cn(), "sluice-test-before");

  // Rotate: new files in place, then SIGHUP.
  make_certificate("sluice-test-after", dir.file("cert.new"), dir.file("key.new"));
  fs::rename(dir.file("cert.new"), dir.file("cert.pem"));
  fs::rename(dir.file("key.new"), dir.file("key.pem"));
  gw->signal(SIGHUP);
  ASSERT_TRUE(gw->wait_for_stderr("tls: reloaded")) << gw->stderr_text();
  WssClient after(gw->port(), dir.file("cert.pem"));
  EXPECT_EQ(after.peer_cn(), "sluice-test-after");

  // The connection made before the reload goes on with its session.
  before.send(chat("before the rotation"));
  const Turn t = before.read_turn();
  ASSERT_TRUE(t.done);
  EXPECT_EQ(t.text, expected_text("before the rotation"));

  // A broken file on the next reload: logged, and the last good certificate stays.
  fs::copy_file(dir.file("cert.pem"), dir.file("after.pem"));
  { std::ofstream(dir.file("cert.pem")) << "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"; }
  gw->signal(SIGHUP);
  ASSERT_TRUE(gw->wait_for_stderr("tls: reload failed")) << gw->stderr_text();
  EXPECT_NE(gw->stderr_text().find("tls.cert_file"), std::string::npos);
  WssClient still(gw->port(), dir.file("after.pem"));
  EXPECT_EQ(still.peer_cn(), "sluice-test-after");
  still.send(chat("after a failed reload"));
  EXPECT_TRUE(still.read_turn().done);
}

// Start-up: each bad TLS setting is one line naming the key, and exit code 2.
TEST(Tls, BadCertificateFilesAreAClearStartupError) {
  TempDir dir;
  make_certificate("sluice-test-a", dir.file("a.pem"), dir.file("a-key.pem"));
  make_certificate("sluice-test-b", dir.file("b.pem"), dir.file("b-key.pem"));
  { std::ofstream(dir.file("junk.pem")) << "this is not PEM\n"; }
  struct Case {
    std::vector<std::string> env;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"SLUICE_TLS_CERT_FILE=" + dir.file("missing.pem"), "SLUICE_TLS_KEY_FILE=" + dir.file("a-key.pem")},
       "tls.cert_file " + dir.file("missing.pem") + ": No such file"},
      {{"SLUICE_TLS_CERT_FILE=" + dir.file("junk.pem"), "SLUICE_TLS_KEY_FILE=" + dir.file("a-key.pem")},
       "not a PEM certificate"},
      {{"SLUICE_TLS_CERT_FILE=" + dir.file("a.pem"), "SLUICE_TLS_KEY_FILE=" + dir.file("junk.pem")},
       "not a PEM private key"},
      {{"SLUICE_TLS_CERT_FILE=" + dir.file("a.pem"), "SLUICE_TLS_KEY_FILE=" + dir.file("b-key.pem")},
       "does not belong to the certificate"},
      {{"SLUICE_TLS_CERT_FILE=" + dir.file("a.pem")}, "set both tls.cert_file and tls.key_file"},
  };
  for (const auto& c : cases) {
    Process gw({SLUICE_GATEWAY_BIN, "--listen", "127.0.0.1:0"}, c.env, false);
    const auto status = gw.wait(10s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 2) << c.expect;
    EXPECT_NE(gw.stderr_text().find(c.expect), std::string::npos)
        << "expected \"" << c.expect << "\" in: " << gw.stderr_text();
  }
}

}  // namespace
}  // namespace sluice::test
