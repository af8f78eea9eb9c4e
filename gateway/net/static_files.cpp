#include "gateway/net/static_files.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice {

namespace fs = std::filesystem;

std::string_view content_type_for(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "txt" || ext == "md") return "text/plain; charset=utf-8";
  if (ext == "ts") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::shared_ptr<const StaticFiles> StaticFiles::load(const std::string& root, std::string& error, size_t max_bytes) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    error = "web.root " + root + " is not a directory";
    return nullptr;
  }
  auto out = std::shared_ptr<StaticFiles>(new StaticFiles());
  const fs::path base = fs::path(root);
  auto it = fs::recursive_directory_iterator(base, fs::directory_options::follow_directory_symlink, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || name == "node_modules") {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) {
      if (!it->is_directory(ec)) spdlog::warn("web.root: {} is not a readable file; not served", it->path().string());
      continue;
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream body;
    body << in.rdbuf();
    if (!in) {
      spdlog::warn("web.root: cannot read {}; not served", it->path().string());
      continue;
    }
    File f;
    f.body = body.str();
    out->bytes_ += f.body.size();
    if (out->bytes_ > max_bytes) {
      error = "web.root " + root + " holds more than " + std::to_string(max_bytes >> 20) + " MiB";
      return nullptr;
    }
    f.content_type = std::string(content_type_for(name));
    // FNV-1a over the body: the ETag changes when the file does.
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : f.body) h = (h ^ c) * 1099511628211ull;
    char tag[24];
    std::snprintf(tag, sizeof tag, "\"%016llx\"", static_cast<unsigned long long>(h));
    f.etag = tag;
    // lexically: a symbolic link is served under its own name.
    out->files_["/" + it->path().lexically_relative(base).generic_string()] = std::move(f);
  }
  if (ec) {
    error = "web.root " + root + ": " + ec.message();
    return nullptr;
  }
  return out;
}

const StaticFiles::File* StaticFiles::find(std::string_view path) const {
  if (path == "/") path = "/index.html";
  const auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace sluice
