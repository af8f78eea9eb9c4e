#include "gateway/common/port_file.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>

namespace sluice {

bool write_port_file(const std::string& path, uint16_t port) {
  const std::string line = std::to_string(port) + "\n";
  constexpr std::string_view kFd = "/dev/fd/";
  if (path.rfind(kFd, 0) == 0) {
    int fd = -1;
    const auto [end, ec] = std::from_chars(path.data() + kFd.size(), path.data() + path.size(), fd);
    if (ec == std::errc() && end == path.data() + path.size() && fd >= 0) {
      const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
      ::close(fd);
      return ok;
    }
  }
  std::ofstream out(path);
  out << line;
  return static_cast<bool>(out);
}

}  // namespace sluice
