// The plugin loader against real shared objects: the first-party moderation
// plugin, and broken plugins built in the test tree.
#include "gateway/plugin/loaded_plugin.hpp"

#include <gtest/gtest.h>

#include "gateway/plugin/plugin_host.hpp"

namespace sluice {
namespace {

std::string test_plugin(const std::string& kind) {
  return std::string(SLUICE_TEST_PLUGIN_DIR) + "/broken_" + kind + ".so";
}

TEST(LoadedPlugin, LoadsTheModerationPluginAndRunsItsSelfTest) {
  std::string error;
  auto p = LoadedPlugin::load(std::string(SLUICE_PLUGIN_DIR) + "/moderation.so",
                              R"({"lists":[{"name":"rude","action":"redact","phrases":["笨蛋","idiot"]}]})",
                              error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->name(), "moderation");
  EXPECT_EQ(p->moderators().size(), 1u);
  EXPECT_TRUE(p->tools().empty());
  EXPECT_TRUE(p->self_test(error)) << error;
  EXPECT_GT(p->counters()["redactions"], 0);
}

TEST(LoadedPlugin, EachBrokenPluginGetsOneClearError) {
  struct Case {
    std::string file;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"/nonexistent/plugin.so", "cannot load it: /nonexistent/plugin.so: cannot open shared object file"},
      {test_plugin("no_entry"), "no sluice_plugin_entry symbol"},
      {test_plugin("abi_v2"), "built for plugin ABI 2.0; this gateway speaks 1.2"},
      {test_plugin("tiny_struct"), "descriptor is 24 bytes; ABI 1.0 needs at least"},
      {test_plugin("create_fails"), "create failed (status 1): settings need \"database\""},
      {test_plugin("bad_name"), "its name must be [a-z0-9_]{1,64}"},
      {std::string(SLUICE_PLUGIN_DIR) + "/moderation.so", "settings are not a JSON object"},
  };
  for (const auto& c : cases) {
    std::string error;
    const std::string settings = c.file.find("moderation") != std::string::npos ? "[1,2]" : "{}";
    EXPECT_FALSE(LoadedPlugin::load(c.file, settings, error)) << c.file;
    EXPECT_NE(error.find(c.expect), std::string::npos) << "expected \"" << c.expect << "\" in: " << error;
    EXPECT_EQ(error.rfind("plugin " + c.file + ": ", 0), 0u) << error;
  }
}

// ABI growth: a plugin built against the 1.0 header, whose structs are
// smaller than this host's, loads; the fields it lacks are absent.
TEST(LoadedPlugin, APluginBuiltAgainstAbi10LoadsInThisHost) {
  static_assert(SLUICE_TOOL_V1_0_SIZE < sizeof(sluice_tool_v1), "the host's tool struct grew since 1.0");
  static_assert(SLUICE_HOST_V1_0_SIZE < sizeof(sluice_host_v1), "the host table grew since 1.0");
  std::string error;
  auto p = LoadedPlugin::load(std::string(SLUICE_TEST_PLUGIN_DIR) + "/abi_1_0_plugin.so", "{}", error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->name(), "legacy_v1_0");
  ASSERT_EQ(p->tools().size(), 1u);
  const sluice_tool_v1* t = p->tools()[0];
  EXPECT_EQ(t->struct_size, SLUICE_TOOL_V1_0_SIZE);
  EXPECT_FALSE(SLUICE_HAS_FIELD(t, sluice_tool_v1, timeout_ms));
  ASSERT_EQ(p->moderators().size(), 1u);
  EXPECT_EQ(p->moderators()[0]->struct_size, SLUICE_MODERATOR_V1_0_SIZE);
  sluice_tool_result r;
  const std::string args = R"({"城市":"北京"})";
  EXPECT_EQ(t->invoke(p->instance(), {args.data(), args.size()}, &r), SLUICE_OK);
  EXPECT_EQ(r.json, R"({"legacy":true,"args":{"城市":"北京"}})");
}

TEST(PluginHost, OnErrorSkipLeavesABrokenPluginOut) {
  Config config;
  config.plugins = {{test_plugin("abi_v2"), "skip", false, "{}"},
                    {std::string(SLUICE_PLUGIN_DIR) + "/moderation.so", "fail_start", false, "{}"}};
  std::string error;
  auto host = PluginHost::load(config, error);
  ASSERT_TRUE(host) << error;
  ASSERT_EQ(host->plugins().size(), 1u);
  EXPECT_EQ(host->plugins()[0]->name(), "moderation");
  EXPECT_TRUE(host->moderates());

  config.plugins[0].on_error = "fail_start";
  EXPECT_FALSE(PluginHost::load(config, error));
  EXPECT_NE(error.find("ABI 2.0"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice
