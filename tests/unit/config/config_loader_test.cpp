#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gateway/config/config.hpp"

namespace sluice {
namespace {

class TempToml {
 public:
  explicit TempToml(const std::string& text) {
    char tmpl[] = "/tmp/sluice-cfg-XXXXXX";
    const int fd = mkstemp(tmpl);
    close(fd);
    path_ = tmpl;
    std::ofstream(path_) << text;
  }
  ~TempToml() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

ConfigResult load_toml(const std::string& text, std::vector<std::string> env = {}) {
  TempToml f(text);
  return load_config({f.path(), std::move(env), "", "", ""});
}

// docs/configuration.md is the contract: every key the gateway reads is in
// it (a key added without its line, or one left in the schema after its
// feature went, fails here), and --config-keys names each one's variable.
TEST(ConfigLoader, EveryKeyIsDocumented) {
  std::ifstream in(SLUICE_CONFIGURATION_DOC);
  std::stringstream doc;
  doc << in.rdbuf();
  ASSERT_FALSE(doc.str().empty()) << SLUICE_CONFIGURATION_DOC;
  const auto keys = config_keys();
  EXPECT_GT(keys.size(), 50u);
  for (const auto& key : keys) {
    EXPECT_NE(doc.str().find("`" + key + "`"), std::string::npos) << key << " is not in docs/configuration.md";
  }
  EXPECT_EQ(env_name_for_key("retrieval.top_k"), "SLUICE_RETRIEVAL_TOP_K");
}

TEST(ConfigLoader, DefaultsAreValid) {
  const auto r = load_config({});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.config.server.listen_host, "127.0.0.1");
  EXPECT_EQ(r.config.server.listen_port, 8080);
  EXPECT_EQ(r.config.engine, "openai");
}

TEST(ConfigLoader, FloatWhereAnIntegerBelongsIsRefusedWithoutACast) {
  // Found by the config fuzzer: the float was cast to int64_t before its
  // type was checked, undefined behaviour past int64_t's range (the asan
  // preset aborts on it: -fno-sanitize-recover=undefined).
  for (const std::string v : {"297e068", "-1e300", "inf", "nan", "3.0", "9.3e18"}) {
    const auto r = load_toml("[local]\nmax_tokens = " + v + "\n");
    ASSERT_FALSE(r.ok) << v;
    EXPECT_NE(r.error.find("local.max_tokens"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("an integer"), std::string::npos) << r.error;
  }
  const auto pending = load_toml("[limits]\nmax_pending_connections = 7\n");
  ASSERT_TRUE(pending.ok) << pending.error;
  EXPECT_EQ(pending.config.limits.max_pending_connections, 7u);
}

TEST(ConfigLoader, UpstreamFlagSelectsTheOpenAiEngine) {
  TempToml f("engine = \"local\"\n[local]\nmodel = \"models/sluice-demo.gguf\"\n");
  const auto r = load_config({f.path(), {}, "", "http://127.0.0.1:9999/v1", ""});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.config.engine, "openai");
  ASSERT_EQ(r.config.openai.urls.size(), 1u);
  EXPECT_EQ(r.config.openai.urls[0], "http://127.0.0.1:9999/v1");
  const auto without = load_config({f.path(), {}, "", "", ""});
  ASSERT_TRUE(without.ok) << without.error;
  EXPECT_EQ(without.config.engine, "local");
}

TEST(ConfigLoader, ShippedConfigsLoad) {
  for (const char* name : {"sluice.toml", "vllm.toml"}) {
    const auto r = load_config({std::string(SLUICE_FIXTURES) + "/../../config/" + name, {}, "", "", ""});
    EXPECT_TRUE(r.ok) << name << ": " << r.error;
  }
  // The embedded default is the demo model with the order tool, the
  // knowledge base and the widget.
  const auto r = load_config({std::string(SLUICE_FIXTURES) + "/../../config/sluice.toml", {}, "", "", ""});
  EXPECT_EQ(r.config.engine, "local");
  EXPECT_EQ(r.config.local.model, "models/sluice-demo.gguf");
  EXPECT_EQ(r.config.web.root, "web-demo");
  ASSERT_EQ(r.config.plugins.size(), 2u);
  EXPECT_EQ(r.config.plugins[0].path, "build/release/plugins/order_lookup.so");
  EXPECT_EQ(r.config.plugins[1].path, "build/release/plugins/knowledge_base.so");
  EXPECT_NE(r.config.plugins[1].settings_json.find(R"("folder":"kb/demo-shop")"), std::string::npos);
  EXPECT_TRUE(r.config.retrieval.enabled);
  EXPECT_EQ(r.config.retrieval.top_k, 3);
}

TEST(ConfigLoader, TlsNeedsBothFilesAndAKnownVersion) {
  const auto on = load_toml("[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nmin_version = \"1.3\"\n");
  ASSERT_TRUE(on.ok) << on.error;
  EXPECT_TRUE(on.config.tls.enabled());
  EXPECT_EQ(on.config.tls.min_version, "1.3");
  EXPECT_FALSE(load_config({}).config.tls.enabled());

  const auto half = load_toml("[tls]\ncert_file = \"/c.pem\"\n");
  EXPECT_FALSE(half.ok);
  EXPECT_NE(half.error.find("set both tls.cert_file and tls.key_file"), std::string::npos) << half.error;

  const auto old = load_toml("", {"SLUICE_TLS_MIN_VERSION=1.0"});
  EXPECT_FALSE(old.ok);
  EXPECT_NE(old.error.find("tls.min_version"), std::string::npos) << old.error;
}

TEST(ConfigLoader, ReadsEveryKindOfValue) {
  const auto r = load_toml(R"(
engine = "openai"
[server]
listen = "[::1]:9000"
threads = 4
drain_timeout_ms = 1500
[limits]
max_frame_bytes = 2048
[openai]
urls = ["http://a:8000/v1/", "https://b/v1"]
model = "Qwen/Qwen2.5-7B-Instruct"
[openai.extra]
top_k = 20
chat_template_kwargs = { enable_thinking = false }
[log]
access_log = false
)");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.config.server.listen_host, "::1");
  EXPECT_EQ(r.config.server.listen_port, 9000);
  EXPECT_EQ(r.config.server.threads, 4);
  EXPECT_EQ(r.config.server.drain_timeout.count(), 1500);
  EXPECT_EQ(r.config.limits.max_frame_bytes, 2048u);
  ASSERT_EQ(r.config.openai.urls.size(), 2u);
  EXPECT_EQ(r.config.openai.urls[0], "http://a:8000/v1");  // trailing slash dropped
  EXPECT_EQ(r.config.openai.extra_fields_json,
            R"("chat_template_kwargs":{"enable_thinking":false},"top_k":20)");
  EXPECT_FALSE(r.config.log.access_log);
}

TEST(ConfigLoader, BadValuesNameTheKeyAndWhatIsAllowed) {
  struct Case {
    std::string toml;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"[server]\nthreads = -1", "server.threads: must be an integer from 0 to 256 (got -1)"},
      {"[server]\nthreads = \"four\"", "server.threads: must be an integer"},
      {"[server]\nlisten = \"localhost\"", "server.listen: must be HOST:PORT"},
      {"[server]\nlisten = \"1.2.3.4:70000\"", "server.listen: must be HOST:PORT"},
      {"[server]\nlisten_port = 1", "server.listen_port: unknown key"},
      {"[openai]\nurls = []", "openai.urls: must name at least one"},
      {"[openai]\nurls = [\"localhost:8000\"]", "openai.urls: must be an http:// or https://"},
      {"[openai.extra]\nstream = false", "openai.extra: may not set \"stream\""},
      {"engine = \"magic\"", "engine: must be one of \"openai\""},
      {"[log]\nlevel = \"loud\"", "log.level: must be one of"},
      {"[log]\naccess_log = 1", "log.access_log: must be true or false"},
      {"[limits]\nmax_frame_bytes = 10", "limits.max_frame_bytes: must be an integer from 256"},
      {"[server\nthreads = 1", "not valid TOML"},
      {"[server]\nallowed_origins = [\"shop.example\"]",
       "server.allowed_origins: entries must be origins"},
      {"[server]\nallowed_origins = [1]", "server.allowed_origins: must be a list of origin strings"},
  };
  for (const auto& c : cases) {
    const auto r = load_toml(c.toml);
    EXPECT_FALSE(r.ok) << c.toml;
    EXPECT_NE(r.error.find(c.expect), std::string::npos) << c.toml << "\n -> " << r.error;
  }
}

TEST(ConfigLoader, EnvironmentOverridesFileAndFlagsOverrideBoth) {
  TempToml f("[server]\nthreads = 2\nlisten = \"127.0.0.1:1000\"\n[openai]\nurls = [\"http://file/v1\"]\n");
  auto r = load_config({f.path(),
                        {"SLUICE_SERVER_THREADS=6", "SLUICE_OPENAI_API_KEY=sk-env",
                         "SLUICE_SERVER_LISTEN=127.0.0.1:2000", "SLUICE_UNRELATED=1", "PATH=/bin"},
                        "0.0.0.0:3000", "http://flag-a/v1,http://flag-b/v1", ""});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.config.server.threads, 6);
  EXPECT_EQ(r.config.openai.api_key, "sk-env");
  EXPECT_EQ(r.config.server.listen_host, "0.0.0.0");
  EXPECT_EQ(r.config.server.listen_port, 3000);
  ASSERT_EQ(r.config.openai.urls.size(), 2u);
  EXPECT_EQ(r.config.openai.urls[1], "http://flag-b/v1");
}

TEST(ConfigLoader, BadEnvironmentValueNamesTheVariable) {
  const auto r = load_config({"", {"SLUICE_LIMITS_MAX_CONNECTIONS=lots"}, "", "", ""});
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.error.find("SLUICE_LIMITS_MAX_CONNECTIONS"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("limits.max_connections"), std::string::npos);
}

TEST(ConfigLoader, EnvNames) {
  EXPECT_EQ(env_name_for_key("openai.first_token_timeout_ms"), "SLUICE_OPENAI_FIRST_TOKEN_TIMEOUT_MS");
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

TEST(ConfigLoader, TheSharedStoreIsConfiguredByFileAndEnvironment) {
  auto r = load_toml(R"(
[store]
backend = "redis"
redis_url = "redis://redis.internal:6380/2"
lease_ms = 1500
write_timeout_ms = 4000
continue_taken_over_turns = false
[server]
trust_x_forwarded_for = true
)",
                     {"SLUICE_STORE_REDIS_PASSWORD=s3cret", "SLUICE_STORE_KEY_PREFIX=shop"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.config.store.backend, "redis");
  EXPECT_EQ(r.config.store.redis_url, "redis://redis.internal:6380/2");
  EXPECT_EQ(r.config.store.redis_password, "s3cret");
  EXPECT_EQ(r.config.store.key_prefix, "shop");
  EXPECT_EQ(r.config.store.lease.count(), 1500);
  EXPECT_EQ(r.config.store.write_timeout.count(), 4000);
  EXPECT_FALSE(r.config.store.continue_taken_over_turns);
  EXPECT_TRUE(r.config.server.trust_x_forwarded_for);
  EXPECT_EQ(load_toml("").config.store.backend, "memory") << "the embedded default stays in memory";

  r = load_toml("[store]\nbackend = \"etcd\"\n");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("store.backend"), std::string::npos) << r.error;
  r = load_toml("[store]\nkey_prefix = \"a{b}\"\n");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("store.key_prefix"), std::string::npos) << r.error;
  r = load_toml("[store]\nlease_ms = 10\n");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("store.lease_ms"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace sluice
