// A plugin built against the ABI 1.0 header as it was released (a frozen
// copy in tests/plugins/abi_1_0/, ahead of the SDK on the include path), in
// plain C style as a C author would write it: its structs are the 1.0
// sizes, smaller than a newer host's. The host must load it, read none of
// the fields its structs lack, and run its tool and moderator.
#include <string.h>

#include "sluice/plugin.h"

#if SLUICE_PLUGIN_ABI_MINOR != 0
#error "this plugin must be built against the frozen ABI 1.0 header"
#endif

namespace {

const sluice_host_v1* g_host = nullptr;

int32_t create(sluice_plugin_ctx*, sluice_str, void** instance) {
  static int the_instance;
  *instance = &the_instance;
  return SLUICE_OK;
}
void destroy(void*) {}

// Answers {"legacy":true,"args":<its arguments>}.
int32_t echo(void*, sluice_str args, sluice_tool_result* result) {
  static const char head[] = "{\"legacy\":true,\"args\":";
  char buf[4096];
  if (args.len + sizeof head + 1 > sizeof buf) return SLUICE_ERR_INVALID_ARGUMENT;
  memcpy(buf, head, sizeof head - 1);
  memcpy(buf + sizeof head - 1, args.ptr, args.len);
  buf[sizeof head - 1 + args.len] = '}';
  g_host->result_set_json(result, sluice_str{buf, sizeof head + args.len});
  return SLUICE_OK;
}

int32_t stream_open(void*, void** stream) {
  *stream = nullptr;
  return SLUICE_OK;
}
// Passes everything.
int32_t on_text(void*, void*, sluice_str, size_t, uint32_t, sluice_verdict* verdict) {
  g_host->verdict_pass(verdict, 0);
  return SLUICE_OK;
}
void stream_close(void*, void*) {}

const sluice_tool_v1 kEcho = {sizeof(sluice_tool_v1), "legacy_echo", "echoes its arguments (an ABI 1.0 plugin)",
                              "{\"type\":\"object\"}", &echo};
const sluice_tool_v1* const kTools[] = {&kEcho};
const sluice_moderator_v1 kModerator = {sizeof(sluice_moderator_v1), "legacy_pass", &stream_open, &on_text,
                                        &stream_close};
const sluice_moderator_v1* const kModerators[] = {&kModerator};
const sluice_plugin_v1 kPlugin = {sizeof(sluice_plugin_v1), SLUICE_PLUGIN_ABI_VERSION, "legacy_v1_0", "1.0.0",
                                  "built against ABI 1.0", &create, &destroy, kTools, 1, kModerators, 1, nullptr};

}  // namespace

extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_entry(const sluice_host_v1* host) {
  if (!host || SLUICE_ABI_MAJOR_OF(host->abi_version) != SLUICE_PLUGIN_ABI_MAJOR ||
      host->struct_size < sizeof(sluice_host_v1)) {
    return nullptr;
  }
  g_host = host;
  return &kPlugin;
}
