// What plugin code this thread runs now, for the one line the gateway writes
// when a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) takes the
// process down while an in-process plugin runs: which plugin, and which
// tool or moderator, so that the operator knows what to isolate
// (isolation = "process") or remove. Tools run in a process of their own
// by default; moderators, and tools of plugins set to "in_process", run here.
#pragma once

namespace sluice {

// Installs the handler (not under the sanitizers, which report such a
// signal themselves). Call once, at start.
void install_fatal_signal_report();

// For the duration of a call into a plugin: `plugin` and `what` ("tool",
// "moderator") and `name` must outlive the scope (the plugin's own strings).
class PluginCallScope {
 public:
  PluginCallScope(const char* plugin, const char* what, const char* name);
  ~PluginCallScope();
  PluginCallScope(const PluginCallScope&) = delete;
  PluginCallScope& operator=(const PluginCallScope&) = delete;

 private:
  const char* saved_[3];
};

}  // namespace sluice
