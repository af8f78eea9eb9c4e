// Tells a parent process (a test, a script) which port a server bound: the
// port number and a newline, written to a file, or to an inherited
// descriptor named as /dev/fd/N (which works for pipes and sockets alike).
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

bool write_port_file(const std::string& path, uint16_t port);

}  // namespace sluice
