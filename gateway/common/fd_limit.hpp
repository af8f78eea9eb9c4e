// The process's open file limit. Every client connection is a descriptor
// (and each upstream request another): the gateway raises its soft limit to
// the hard one at start, as servers that hold many sockets do, and warns
// when its own connection limits could not fit.
//
// Threads: call from main before the io_context runs.
#pragma once

#include <cstdint>

namespace sluice {

struct FdLimit {
  uint64_t before = 0;  // the soft limit the process started with
  uint64_t now = 0;     // after raising it (RLIM_INFINITY reads as UINT64_MAX)
};

FdLimit raise_open_file_limit();

}  // namespace sluice
