// sluice: the gateway executable. Reads the configuration, then wires the
// engine and the server onto one io_context and runs it until drained.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <csignal>
#include <fstream>
#include <thread>

#include "gateway/auth/authenticator.hpp"
#include "gateway/auth/principal_limits.hpp"
#include "gateway/common/fd_limit.hpp"
#include "gateway/common/io_pool.hpp"
#include "gateway/common/logging.hpp"
#include "gateway/common/port_file.hpp"
#include "gateway/config/config.hpp"
#include "gateway/engine/local/local_engine.hpp"
#include "gateway/engine/openai/openai_engine.hpp"
#include "gateway/metrics/gateway_metrics.hpp"
#include "gateway/net/server.hpp"
#include "gateway/net/static_files.hpp"
#include "gateway/net/tls_context.hpp"
#include "gateway/plugin/crash_report.hpp"
#include "gateway/plugin/plugin_host.hpp"
#include "gateway/stream/memory_journal_store.hpp"
#include "gateway/common/random_id.hpp"
#include "gateway/store/redis_journal_store.hpp"
#include "gateway/stream/session_registry.hpp"

extern char** environ;

namespace net = boost::asio;

int main(int argc, char** argv) {
  CLI::App app{"Sluice: a real-time gateway that streams LLM answers to chat clients"};
  sluice::ConfigSources sources;
  std::string port_file;
  bool check_only = false;
  bool list_keys = false;
  app.add_option("--config", sources.file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--listen", sources.listen, "HOST:PORT to listen on (overrides server.listen)");
  app.add_option("--upstream", sources.upstream,
                 "OpenAI-compatible base URL(s), comma-separated (overrides openai.urls)");
  app.add_option("--port-file", port_file, "write the bound port to this file once listening");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  app.add_flag("--config-keys", list_keys, "print every configuration key and its environment variable, and exit");
  app.set_version_flag("--version", "sluice 0.1.0");
  CLI11_PARSE(app, argc, argv);
  if (list_keys) {
    for (const auto& key : sluice::config_keys()) {
      std::printf("%s %s\n", key.c_str(), sluice::env_name_for_key(key).c_str());
    }
    return 0;
  }

  for (char** e = environ; e && *e; ++e) sources.env.emplace_back(*e);
  const auto loaded = sluice::load_config(sources);
  if (!loaded.ok) {
    std::fprintf(stderr, "sluice: configuration error: %s\n", loaded.error.c_str());
    return 2;
  }
  const sluice::Config& config = loaded.config;
  std::shared_ptr<sluice::TlsContextStore> tls;
  if (config.tls.enabled()) {
    tls = std::make_shared<sluice::TlsContextStore>(config.tls);
    std::string error;
    if (!tls->reload(error)) {
      std::fprintf(stderr, "sluice: configuration error: %s\n", error.c_str());
      return 2;
    }
  }
  if (config.store.backend == "redis") {
    std::string why;
    if (!sluice::parse_redis_url(config.store.redis_url, why)) {
      std::fprintf(stderr, "sluice: configuration error: store.redis_url: %s\n", why.c_str());
      return 2;
    }
  }
  if (check_only) {
    for (const auto& w : sluice::config_warnings(config)) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::printf("configuration is valid\n");
    return 0;
  }
  sluice::init_logging(config.log.level, config.log.access_log, config.log.format == "json");
  std::signal(SIGPIPE, SIG_IGN);
  // One line naming the in-process plugin that was running, should one take the process down.
  sluice::install_fatal_signal_report();
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::shared_ptr<const sluice::Authenticator> auth;
  try {
    auth = std::make_shared<const sluice::Authenticator>(config.auth);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: configuration error: %s\n", e.what());
    return 2;
  }
  for (const auto& w : sluice::config_warnings(config)) spdlog::warn("{}", w);
  {
    const sluice::FdLimit fds = sluice::raise_open_file_limit();
    if (fds.now != fds.before) spdlog::info("open file limit raised from {} to {}", fds.before, fds.now);
    const uint64_t wanted = config.limits.max_connections + config.limits.max_pending_connections + 64;
    if (fds.now < wanted) {
      spdlog::warn("the open file limit ({}) is below limits.max_connections + "
                   "limits.max_pending_connections + 64 ({}): when descriptors run out, accept "
                   "pauses (sluice_connections_refused_total{{reason=\"fd_exhausted\"}}); raise "
                   "LimitNOFILE / ulimit -n or lower the limits",
                   fds.now, wanted);
    }
  }

  if (config.metrics.enabled) {
    auto& m = sluice::metrics::install();
    m.build_info.with({SLUICE_VERSION}).set(1);
  }

  std::string plugin_error;
  std::shared_ptr<const sluice::PluginHost> plugins = sluice::PluginHost::load(config, plugin_error);
  if (!plugins) {
    spdlog::critical("{}", plugin_error);
    sluice::shutdown_logging();
    return 2;
  }

  const int threads = config.server.threads > 0
                          ? config.server.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // One io_context per I/O thread (io_pool.hpp); context 0 also runs the
  // process's signals, timers and listeners.
  sluice::IoPool io(threads);
  net::io_context& ioc = io.context(0);

  {
    std::unique_ptr<sluice::Engine> engine_owner;
    std::string engine_text;
    if (config.engine == "local") {
      std::string error;
      auto local = sluice::LocalEngine::create(config.local, error);
      if (!local) {
        spdlog::critical("{}", error);
        sluice::shutdown_logging();
        return 2;
      }
      const auto& mc = local->model_config();
      engine_text = "local -> " + config.local.model + " (" + local->model_name() + ", " + mc.arch + ", " +
                    std::to_string(mc.layers) + " layers, " + std::string(sluice::chat_format_name(local->chat_format())) +
                    ")";
      engine_owner = std::move(local);
    } else {
      engine_owner = std::make_unique<sluice::OpenAiEngine>(
          io, config.openai, config.openai.shards > 0 ? config.openai.shards : threads);
      for (const auto& u : config.openai.urls) engine_text += (engine_text.empty() ? "openai -> " : ", ") + u;
    }
    sluice::Engine& engine = *engine_owner;
    std::shared_ptr<sluice::JournalStore> store;
    std::shared_ptr<sluice::RedisJournalStore> redis_store;
    if (config.store.backend == "redis") {
      std::string why;
      auto endpoint = sluice::parse_redis_url(config.store.redis_url, why);
      if (!endpoint) {
        spdlog::critical("configuration error: store.redis_url: {}", why);
        sluice::shutdown_logging();
        return 2;
      }
      if (!config.store.redis_password.empty()) endpoint->password = config.store.redis_password;
      sluice::RedisStoreSettings rs;
      rs.endpoint = *endpoint;
      rs.key_prefix = config.store.key_prefix;
      rs.retention = config.resume.retention;
      rs.stream_max_events = config.store.stream_max_events;
      rs.memory_budget_bytes = config.resume.memory_budget_bytes;
      rs.lease = config.store.lease;
      rs.write_timeout = config.store.write_timeout;
      rs.command_timeout = config.store.command_timeout;
      rs.flush_interval = config.store.flush_interval;
      rs.sessions_per_call = config.store.sessions_per_call;
      rs.instance_id = config.store.instance_id;
      if (rs.instance_id.empty()) {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        rs.instance_id = std::string(host) + ":" + std::to_string(getpid()) + ":" + sluice::make_random_id("").substr(0, 6);
      }
      redis_store = std::make_shared<sluice::RedisJournalStore>(rs);
      redis_store->start();
      // Before the listener opens (nothing is served yet): a few seconds for
      // the first connection, so that a fleet restarting with its Redis does
      // not refuse its first clients. Past that it starts anyway, not ready.
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
      while (!redis_store->reachable() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!redis_store->reachable()) {
        spdlog::warn("store: redis is not reachable yet; serving without it (/readyz says not ready) until it is");
      }
      spdlog::info("store: redis at {} (keys {}:{{<session>}}:*), this instance {}, lease {} ms",
                   sluice::redacted_redis_url(config.store.redis_url), config.store.key_prefix, rs.instance_id,
                   rs.lease.count());
      store = redis_store;
    } else {
      store = std::make_shared<sluice::MemoryJournalStore>(config.resume.memory_budget_bytes,
                                                          config.resume.retention);
    }
    const auto& l = config.limits;
    auto principal_limits = std::make_shared<sluice::PrincipalLimits>(sluice::PrincipalLimitsConfig{
        l.principal_connections, l.principal_concurrent_turns, l.principal_turns_per_minute,
        l.principal_tokens_per_minute});
    // The local engine's events, and every moderated answer's, are moderated
    // and journaled here, never on its scheduler thread nor on an I/O thread
    // (a moderator may be slow: it holds up its own answer, not the others).
    net::thread_pool engine_events(std::max(2u, std::thread::hardware_concurrency()));
    sluice::SessionSettings session_settings;
    session_settings.grace = config.resume.grace;
    session_settings.history_max_bytes = config.session.history_max_bytes;
    session_settings.limits = principal_limits;
    session_settings.plugins = plugins;
    session_settings.engine_events = engine_events.get_executor();
    session_settings.continue_taken_over_turns = config.store.continue_taken_over_turns;
    session_settings.retrieval = config.retrieval;
    auto sessions = std::make_shared<sluice::SessionRegistry>(ioc, store, engine, session_settings,
                                                              config.resume.retention);
    sessions->start();
    if (auto* m = sluice::metrics::active()) {
      std::weak_ptr<const sluice::PluginHost> weak = plugins;
      m->registry.collected({"sluice_plugin_counter_total", "Counters plugins keep (host counter_add)",
                             sluice::metrics::Type::kCounter, {"plugin", "counter"},
                             [weak](const auto& emit) {
                               auto host = weak.lock();
                               if (!host) return;
                               for (const auto& p : host->plugins()) {
                                 for (const auto& [name, value] : host->counters(*p)) emit({p->name(), name}, value);
                               }
                             }});
      m->registry.collected({"sluice_plugin_breaker_open",
                             "1 while a plugin's tools are refused after repeated failures",
                             sluice::metrics::Type::kGauge, {"plugin"}, [weak](const auto& emit) {
                               auto host = weak.lock();
                               if (!host || !host->tools()) return;
                               for (const auto& [plugin, open] : host->tools()->breakers()) {
                                 emit({plugin}, open ? 1 : 0);
                               }
                             }});
    }
    sluice::Server server(io, config, engine, sessions, auth, principal_limits);
    if (tls) server.use_tls(tls);
    if (!config.web.root.empty()) {
      std::string why;
      auto web = sluice::StaticFiles::load(config.web.root, why);
      if (!web) {
        spdlog::critical("configuration error: {}", why);
        sluice::shutdown_logging();
        return 2;
      }
      spdlog::info("web: serving {} files ({} KiB) from {} at /", web->size(), web->bytes() / 1024, config.web.root);
      server.use_web(std::move(web));
    }
    std::string error;
    if (!server.start(error)) {
      spdlog::critical("{}", error);
      sluice::shutdown_logging();
      return 1;
    }
    const auto ep = server.local_endpoint();
    spdlog::info("sluice listening on {}:{}{} ({} I/O threads), engine {}", ep.address().to_string(), ep.port(),
                 tls ? " with TLS" : "", threads, engine_text);
    if (tls) spdlog::info("tls: serving {}", tls->describe());
    if (const auto mep = server.metrics_endpoint()) {
      spdlog::info("metrics on http://{}:{}/metrics", mep->address().to_string(), mep->port());
    }
    if (!port_file.empty() && !sluice::write_port_file(port_file, ep.port())) {
      spdlog::warn("cannot write the port to {}", port_file);
    }

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    net::steady_timer deadline(ioc);
    bool draining = false;
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int sig) {
          if (ec) return;
          if (draining) {
            spdlog::warn("second signal: stopping now");
            io.stop();
            return;
          }
          draining = true;
          spdlog::info("signal {}: draining {} connections (deadline {} ms)", sig,
                       server.open_connections(), config.server.drain_timeout.count());
          deadline.expires_after(config.server.drain_timeout);
          deadline.async_wait([&](const boost::system::error_code& e) {
            if (e) return;
            spdlog::warn("drain deadline passed with {} connections open; stopping",
                         server.open_connections());
            io.stop();
          });
          sessions->stop();
          server.drain([&] {
            net::post(ioc, [&] {
              spdlog::info("drained");
              io.stop();
            });
          });
          signals.async_wait(on_signal);
        };
    signals.async_wait(on_signal);

    // SIGHUP re-reads the TLS certificate and key, on a thread of its own:
    // file reads never run on an I/O thread.
    net::thread_pool blocking(1);
    net::signal_set hangup(ioc, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hangup =
        [&](const boost::system::error_code& ec, int) {
          if (ec) return;
          if (!tls) {
            spdlog::info("SIGHUP: nothing to reload (TLS is off)");
          } else {
            net::post(blocking, [&] {
              std::string error;
              if (tls->reload(error)) {
                spdlog::info("tls: reloaded; serving {} to new connections", tls->describe());
              } else {
                spdlog::error("tls: reload failed, still serving {}: {}", tls->describe(), error);
              }
            });
          }
          hangup.async_wait(on_hangup);
        };
    hangup.async_wait(on_hangup);

    io.run();
    blocking.join();
    engine_events.stop();
    engine_events.join();
    if (redis_store) redis_store->stop();  // what the drain journaled reaches Redis first
  }
  curl_global_cleanup();
  spdlog::info("sluice stopped");
  sluice::shutdown_logging();
  return 0;
}
