#include "gateway/net/static_files.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sluice {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("sluice-web-" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& body) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel, std::ios::binary) << body;
  }
};

TEST(StaticFiles, ServesFilesByPathWithTypesAndEtagsAndLeavesOutHiddenAndNodeModules) {
  TempDir d;
  d.write("index.html", "<!doctype html><p>你好 🌏</p>");
  d.write("widget.js", "console.log(1)");
  d.write("lib/real.mjs", "export default 1;");
  d.write(".secret", "no");
  d.write("node_modules/x/index.js", "no");
  fs::create_directories(d.path / "vendor");
  fs::create_symlink(d.path / "lib" / "real.mjs", d.path / "vendor" / "linked.mjs");
  std::string error;
  auto files = StaticFiles::load(d.path.string(), error);
  ASSERT_TRUE(files) << error;
  EXPECT_EQ(files->size(), 4u);
  const auto* index = files->find("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->body, "<!doctype html><p>你好 🌏</p>");
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(files->find("/widget.js")->content_type, "text/javascript; charset=utf-8");
  // A symbolic link is served under its own name, with its target's bytes.
  ASSERT_TRUE(files->find("/vendor/linked.mjs"));
  EXPECT_EQ(files->find("/vendor/linked.mjs")->body, "export default 1;");
  EXPECT_EQ(files->find("/vendor/linked.mjs")->etag, files->find("/lib/real.mjs")->etag);
  EXPECT_NE(files->find("/widget.js")->etag, files->find("/lib/real.mjs")->etag);
  EXPECT_FALSE(files->find("/.secret"));
  EXPECT_FALSE(files->find("/node_modules/x/index.js"));
  EXPECT_FALSE(files->find("/../index.html"));
  EXPECT_FALSE(files->find("/lib/../index.html"));  // paths are names, never resolved
}

TEST(StaticFiles, RefusesAMissingRootAndTooManyBytes) {
  std::string error;
  EXPECT_FALSE(StaticFiles::load("/nonexistent/sluice-web", error));
  EXPECT_NE(error.find("is not a directory"), std::string::npos) << error;
  TempDir d;
  d.write("big.txt", std::string(2000, 'x'));
  EXPECT_FALSE(StaticFiles::load(d.path.string(), error, 1000));
  EXPECT_NE(error.find("holds more than"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice
