// Deliberately broken plugins for the host's tests, one per BROKEN_KIND
// (compiled once per kind): each fails one check of plugin ABI v1.
#include <cstring>
#include <string>

#include "sluice/plugin.h"

namespace {

const sluice_host_v1* host = nullptr;

int32_t create_ok(sluice_plugin_ctx*, sluice_str, void** instance) {
  static int dummy;
  *instance = &dummy;
  return SLUICE_OK;
}

int32_t create_fails(sluice_plugin_ctx* ctx, sluice_str, void**) {
  const char* why = "settings need \"database\" (the path of the orders database)";
  host->set_error(ctx, {why, std::strlen(why)});
  return SLUICE_ERR_INVALID_ARGUMENT;
}

void destroy(void*) {}

int32_t open_stream(void*, void** stream) {
  *stream = nullptr;
  return SLUICE_OK;
}
void close_stream(void*, void*) {}

// Fails on any text holding "boom"; passes the rest.
int32_t on_text_fails(void*, void*, sluice_str pending, size_t, uint32_t, sluice_verdict* v) {
  if (std::string(pending.ptr, pending.len).find("boom") != std::string::npos) return SLUICE_ERR_INTERNAL;
  host->verdict_pass(v, 0);
  return SLUICE_OK;
}

const sluice_moderator_v1 kFailingModerator = {sizeof(sluice_moderator_v1), "failing", &open_stream,
                                               &on_text_fails, &close_stream};
const sluice_moderator_v1* const kModerators[] = {&kFailingModerator};

sluice_plugin_v1 make() {
  sluice_plugin_v1 d{};
  d.struct_size = sizeof(sluice_plugin_v1);
  d.abi_version = SLUICE_PLUGIN_ABI_VERSION;
  d.name = "broken_" BROKEN_KIND;
  d.version = "0.0.1";
  d.description = "a broken plugin for tests";
  d.create = &create_ok;
  d.destroy = &destroy;
  d.moderators = kModerators;
  d.moderator_count = 1;
  const std::string kind = BROKEN_KIND;
  if (kind == "abi_v2") d.abi_version = (2u << 16) | 0u;
  if (kind == "tiny_struct") d.struct_size = 24;
  if (kind == "create_fails") d.create = &create_fails;
  if (kind == "bad_name") d.name = "Bad Name!";
  return d;
}

}  // namespace

#ifndef BROKEN_NO_ENTRY
extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_entry(const sluice_host_v1* h) {
  host = h;
  static const sluice_plugin_v1 d = make();
  return &d;
}
#else
extern "C" SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_entry_typo(const sluice_host_v1* h) {
  host = h;
  static const sluice_plugin_v1 d = make();
  return &d;
}
#endif
