// A moderator that is slow on purpose, for the test that one slow stream
// stalls nobody else: the first answer it sees waits 300 ms on every piece
// of text; every later answer passes at once.
// Built a second time with CRASHING_MODERATOR, as crashing_moderator: it
// dereferences null on text containing "崩" and passes everything else, for
// the test that a moderator in a process of its own (moderator_isolation =
// "process") takes only that process down.
#include <atomic>
#include <chrono>
#include <string_view>
#include <thread>

#include "sluice/plugin.h"

namespace {

const sluice_host_v1* host = nullptr;
std::atomic<int> streams{0};
int slow_stream = 0;  // its address marks the slow stream

int32_t create(sluice_plugin_ctx*, sluice_str, void** instance) {
  static int dummy;
  *instance = &dummy;
  return SLUICE_OK;
}
void destroy(void*) {}

int32_t open_stream(void*, void** stream) {
  *stream = streams.fetch_add(1) == 0 ? &slow_stream : nullptr;
  return SLUICE_OK;
}
void close_stream(void*, void*) {}

int32_t on_text(void*, void* stream, sluice_str text, size_t, uint32_t, sluice_verdict* v) {
#ifdef CRASHING_MODERATOR
  (void)stream;
  if (std::string_view(text.ptr, text.len).find("崩") != std::string_view::npos) {
    volatile int* nowhere = nullptr;
    return *nowhere;
  }
#else
  (void)text;
  if (stream == &slow_stream) std::this_thread::sleep_for(std::chrono::milliseconds(300));
#endif
  host->verdict_pass(v, 0);
  return SLUICE_OK;
}

#ifdef CRASHING_MODERATOR
#define MODERATOR_NAME "crashing"
#define PLUGIN_NAME "crashing_moderator"
#define PLUGIN_DESCRIPTION "a moderator that crashes on one word, for tests"
#else
#define MODERATOR_NAME "slow"
#define PLUGIN_NAME "slow_moderator"
#define PLUGIN_DESCRIPTION "a moderator slow on its first answer, for tests"
#endif

const sluice_moderator_v1 kSlow = {sizeof(sluice_moderator_v1), MODERATOR_NAME, &open_stream, &on_text,
                                   &close_stream};
const sluice_moderator_v1* const kModerators[] = {&kSlow};


sluice_plugin_v1 make() {
  sluice_plugin_v1 d{};
  d.struct_size = sizeof(sluice_plugin_v1);
  d.abi_version = SLUICE_PLUGIN_ABI_VERSION;
  d.name = PLUGIN_NAME;
  d.version = "0.0.1";
  d.description = PLUGIN_DESCRIPTION;
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
