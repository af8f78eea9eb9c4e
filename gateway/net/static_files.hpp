// The files the gateway serves at / (web.root: the chat widget, its page and
// the JavaScript SDK), read into memory once at start-up: a request never
// touches the file system, so it cannot block an I/O thread or reach
// outside the directory.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace sluice {

class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string content_type;
    std::string etag;  // a hash of the body, quoted
  };
  // Every regular file under `root` (symbolic links followed; names starting
  // with "." and node_modules/ left out), at most `max_bytes` in all. nullptr
  // with `error` when root is not a readable directory or holds too much.
  static std::shared_ptr<const StaticFiles> load(const std::string& root, std::string& error,
                                                 size_t max_bytes = 32u << 20);
  // The file for a URL path ("/" is "/index.html"); nullptr when none.
  const File* find(std::string_view path) const;
  size_t size() const { return files_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  std::map<std::string, File, std::less<>> files_;  // by URL path
  size_t bytes_ = 0;
};

std::string_view content_type_for(std::string_view name);

}  // namespace sluice
