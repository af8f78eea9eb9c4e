// sluice-plugin-check: loads a plugin the way the gateway does, validates it
// against plugin ABI v1, lists its tools and moderators, and runs its
// self-test. Exit status 0 when all is well, 1 with the reason otherwise.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "gateway/plugin/loaded_plugin.hpp"

int main(int argc, char** argv) {
  CLI::App app{"sluice-plugin-check: validate a Sluice plugin (.so) and run its self-test"};
  std::string path;
  std::string settings = "{}";
  std::string settings_file;
  app.add_option("plugin", path, "the plugin shared object")->required();
  app.add_option("--settings", settings, "the plugin's settings as a JSON object");
  app.add_option("--settings-file", settings_file, "... or read them from this file")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  if (!settings_file.empty()) {
    std::ifstream f(settings_file);
    std::stringstream ss;
    ss << f.rdbuf();
    settings = ss.str();
  }
  spdlog::set_pattern("%l: %v");
  // A path without a slash would be searched in the library path by dlopen.
  if (path.find('/') == std::string::npos) path = "./" + path;

  std::string error;
  auto plugin = sluice::LoadedPlugin::load(path, settings, error);
  if (!plugin) {
    std::fprintf(stderr, "FAIL %s\n", error.c_str());
    return 1;
  }
  const uint32_t abi = plugin->abi_version();
  std::printf("plugin      %s %s (ABI %u.%u)\n", plugin->name().c_str(), plugin->version().c_str(),
              SLUICE_ABI_MAJOR_OF(abi), SLUICE_ABI_MINOR_OF(abi));
  std::printf("description %s\n", plugin->description().c_str());
  for (const auto* t : plugin->tools()) {
    std::printf("tool        %s: %s\n            parameters %s\n", t->name,
                t->description ? t->description : "", t->parameters_schema_json);
  }
  for (const auto* m : plugin->moderators()) std::printf("moderator   %s\n", m->name);
  if (plugin->tools().empty() && plugin->moderators().empty()) {
    std::fprintf(stderr, "FAIL plugin %s offers no tools and no moderators\n", plugin->name().c_str());
    return 1;
  }
  if (!plugin->self_test(error)) {
    std::fprintf(stderr, "FAIL plugin %s: %s\n", plugin->name().c_str(), error.c_str());
    return 1;
  }
  for (const auto& [name, value] : plugin->counters()) std::printf("counter     %s = %g\n", name.c_str(), value);
  std::printf("OK\n");
  return 0;
}
