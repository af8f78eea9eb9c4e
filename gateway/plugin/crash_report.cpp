#include "gateway/plugin/crash_report.hpp"

#include <signal.h>
#include <string.h>

#include <initializer_list>
#include <unistd.h>

namespace sluice {

namespace {
thread_local const char* t_plugin = nullptr;
thread_local const char* t_what = nullptr;
thread_local const char* t_name = nullptr;

void put(const char* s) {
  if (s) (void)!write(2, s, strlen(s));
}

// Async-signal-safe: write(2) only, then the default action.
void on_fatal(int sig) {
  char num[12];
  int n = sig, i = sizeof num - 1;
  num[i] = '\0';
  do {
    num[--i] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0 && i > 0);
  const char* abbrev = sigabbrev_np(sig);
  put("sluice: fatal signal ");
  put(num + i);
  put(" (SIG");
  put(abbrev ? abbrev : "?");
  put(")");
  if (t_plugin) {
    put(" in plugin ");
    put(t_plugin);
    put(" (");
    put(t_what);
    put(" ");
    put(t_name);
    put(", in the gateway's process); the gateway stops. Run its tools in a process of their own "
        "(isolation = \"process\") or remove it.\n");
  } else {
    put("; the gateway stops.\n");
  }
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

void install_fatal_signal_report() {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  struct sigaction sa {};
  sa.sa_handler = on_fatal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
#endif
}

PluginCallScope::PluginCallScope(const char* plugin, const char* what, const char* name)
    : saved_{t_plugin, t_what, t_name} {
  t_plugin = plugin;
  t_what = what;
  t_name = name;
}

PluginCallScope::~PluginCallScope() {
  t_plugin = saved_[0];
  t_what = saved_[1];
  t_name = saved_[2];
}

}  // namespace sluice
