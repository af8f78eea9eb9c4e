// Token counts of a turn, as the upstream reported them.
#pragma once

#include <cstdint>

namespace sluice {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

}  // namespace sluice
