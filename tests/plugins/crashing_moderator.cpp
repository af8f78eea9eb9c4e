// A moderator that dereferences null on text containing "崩" (and passes
// everything else), for the test that a moderator in a process of its own
// (moderator_isolation = "process") takes only that process down.
#include <string_view>

#include "sluice/plugin.h"

namespace {

const sluice_host_v1* host = nullptr;

int32_t create(sluice_plugin_ctx*, sluice_str, void** instance) {
  static int dummy;
  *instance = &dummy;
  return SLUICE_OK;
}
void destroy(void*) {}
int32_t open_stream(void*, void** stream) {
  *stream = nullptr;
  return SLUICE_OK;
}
void close_stream(void*, void*) {}

int32_t on_text(void*, void*, sluice_str pending, size_t, uint32_t, sluice_verdict* v) {
  if (std::string_view(pending.ptr, pending.len).find("崩") != std::string_view::npos) {
    volatile int* nowhere = nullptr;
    return *nowhere;
  }
  host->verdict_pass(v, 0);
  return SLUICE_OK;
}

const sluice_moderator_v1 kCrashing = {sizeof(sluice_moderator_v1), "crashing", &open_stream, &on_text, &close_stream};
const sluice_moderator_v1* const kModerators[] = {&kCrashing};

sluice_plugin_v1 make() {
  sluice_plugin_v1 d{};
  d.struct_size = sizeof(sluice_plugin_v1);
  d.abi_version = SLUICE_PLUGIN_ABI_VERSION;
  d.name = "crashing_moderator";
  d.version = "0.0.1";
  d.description = "a moderator that crashes on one word, for tests";
  d.create = &create;
  d.destroy = &destroy;
  d.moderators = kModerators;
  d.moderator_count = 1;
  return d;
}

}  // namespace

extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_entry(const sluice_host_v1* h) {
  host = h;
  static const sluice_plugin_v1 d = make();
  return &d;
}
