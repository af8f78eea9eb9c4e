#include "gateway/common/fd_limit.hpp"

#include <sys/resource.h>

namespace sluice {

FdLimit raise_open_file_limit() {
  FdLimit out;
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return out;
  auto value = [](rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); };
  out.before = out.now = value(r.rlim_cur);
  if (r.rlim_cur == r.rlim_max) return out;
  rlimit raised = r;
  raised.rlim_cur = r.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &raised) == 0) out.now = value(raised.rlim_cur);
  return out;
}

}  // namespace sluice
