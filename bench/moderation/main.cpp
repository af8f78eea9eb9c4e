// sluice-moderation-bench: what moderation costs. Streams a customer-service
// answer (English and Chinese, with e-mail addresses, phone numbers and
// listed phrases in it) token by token through the moderation chain, with the
// moderation plugin loaded and without, and prints a table:
// - the time the chain takes per delta (ns, measured);
// - the latency hold-back adds per character, counted in tokens and, at a
//   steady token rate, in milliseconds (virtual time: a held character waits
//   for the tokens that decide it, or for moderation.max_hold_ms).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "gateway/plugin/moderation_chain.hpp"
#include "gateway/plugin/plugin_process.hpp"
#include "tools/upstream_sim/tokenize.hpp"

namespace {

using Clock = std::chrono::steady_clock;

const char* kParagraphs[] = {
    "Thanks for reaching out! Your order A1001 shipped on Monday with SF Express and should arrive "
    "within 3 business days. ",
    "您的订单已经发货，预计三天内送达。如有问题，请联系客服。",
    "If you prefer, write to support.team@shop.example or call +1 415-555-0100 and we will help you "
    "with the return. ",
    "退货流程很简单：在七天内登录账户，选择订单，点击“申请退货”，然后打印退货标签。",
    "Refunds go back to the card ending in 4242 within 5-7 days after we receive the item. ",
    "我们的客服电话是 138 0013 8000，工作时间是早上九点到晚上六点。",
};


double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

struct Row {
  std::string scenario;
  size_t deltas = 0;
  double ns_mean = 0, ns_p50 = 0, ns_p99 = 0;
  double hold_tokens_p50 = 0, hold_tokens_p99 = 0, hold_ms_p50 = 0, hold_ms_p99 = 0;
  size_t out_bytes = 0;
};

Row run(const std::string& name, std::vector<sluice::ModerationChain::Stage> stages,
        const std::vector<std::string>& tokens, sluice::ModerationLimits limits, double token_ms, int turns) {
  Row row;
  row.scenario = name;
  std::vector<double> ns;
  std::vector<double> hold_tokens, hold_ms;
  for (int turn = 0; turn < turns; ++turn) {
    sluice::ModerationChain chain(stages, limits);
    std::vector<sluice::ModerationOutput> out;
    // Per input byte: the token that brought it; released when the chain no
    // longer holds it.
    std::vector<size_t> arrived;
    size_t released = 0;
    double held_since_ms = -1;
    auto settle = [&](size_t token, double now_ms) {
      const size_t through = arrived.size() - chain.held_bytes();
      for (; released < through; ++released) {
        hold_tokens.push_back(static_cast<double>(token - arrived[released]));
        hold_ms.push_back(now_ms - static_cast<double>(arrived[released]) * token_ms);
      }
      held_since_ms = chain.held_bytes() > 0 ? (held_since_ms < 0 ? now_ms : held_since_ms) : -1;
      for (auto& o : out) row.out_bytes += o.text.size();
      out.clear();
    };
    for (size_t i = 0; i < tokens.size(); ++i) {
      const double now = static_cast<double>(i) * token_ms;
      // The hold timer fires between tokens.
      if (held_since_ms >= 0 && held_since_ms + limits.max_hold.count() < now) {
        chain.flush(out);
        settle(i, held_since_ms + limits.max_hold.count());
      }
      arrived.insert(arrived.end(), tokens[i].size(), i);
      const auto t0 = Clock::now();
      chain.feed(tokens[i], out);
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
      settle(i, now);
    }
    chain.finish(out);
    settle(tokens.size(), static_cast<double>(tokens.size()) * token_ms);
  }
  row.deltas = ns.size();
  double sum = 0;
  for (double x : ns) sum += x;
  row.ns_mean = sum / static_cast<double>(ns.size());
  row.ns_p50 = percentile(ns, 0.5);
  row.ns_p99 = percentile(ns, 0.99);
  row.hold_tokens_p50 = percentile(hold_tokens, 0.5);
  row.hold_tokens_p99 = percentile(hold_tokens, 0.99);
  row.hold_ms_p50 = percentile(hold_ms, 0.5);
  row.hold_ms_p99 = percentile(hold_ms, 0.99);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-moderation-bench: the cost of moderation per delta and of hold-back"};
  std::string plugin_path = "build/release/plugins/moderation.so";
  int turns = 200;
  double rate = 50;
  int phrases = 500;
  app.add_option("--plugin", plugin_path, "the moderation plugin");
  app.add_option("--turns", turns, "answers streamed per scenario");
  app.add_option("--rate", rate, "tokens per second, for hold-back in milliseconds");
  app.add_option("--phrases", phrases, "phrases in the redact list (besides a stop list)");
  std::string host_binary = SLUICE_PLUGIN_HOST_BIN;
  app.add_option("--host-binary", host_binary, "sluice-plugin-host, for the moderator in a process of its own");
  CLI11_PARSE(app, argc, argv);

  // Lists the size a shop might run: many redact phrases, a short stop list.
  std::string settings = R"({"lists":[{"name":"violence","action":"stop","phrases":["kill them","杀了他们"]},)"
                         R"({"name":"rude","action":"redact","phrases":["idiot","笨蛋")";
  for (int i = 0; i < phrases; ++i) settings += ",\"banned phrase " + std::to_string(i) + "\",\"禁词" + std::to_string(i) + "\"";
  settings += "]}]}";
  std::string error;
  auto plugin = sluice::LoadedPlugin::load(plugin_path, settings, error);
  if (!plugin) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::string text;
  for (int k = 0; k < 4; ++k) {
    for (const char* p : kParagraphs) text += p;
  }
  const auto tokens = sluice::sim::tokenize(text);
  const sluice::ModerationLimits limits{1024, std::chrono::milliseconds(500), std::chrono::milliseconds(5000)};
  sluice::PluginProcess process({host_binary, plugin_path, settings, plugin->name(), 1, 0});
  if (!process.start(error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  const double token_ms = 1000.0 / rate;

  std::printf("answer: %zu bytes, %zu tokens; %d answers per scenario; %.0f tokens/s; %d+4 phrases\n\n",
              text.size(), tokens.size(), turns, rate, 2 * phrases);
  std::printf("| scenario | deltas | ns/delta mean | ns/delta p50 | ns/delta p99 | hold p50 (tokens) | hold p99 (tokens) | hold p50 (ms) | hold p99 (ms) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : {run("no moderation plugin", {}, tokens, limits, token_ms, turns),
                       run("moderation plugin", {{plugin.get(), plugin->moderators()[0], false}}, tokens,
                           limits, token_ms, turns),
                       run("moderation plugin in its own process", {{plugin.get(), plugin->moderators()[0], false,
                                                                     &process, 0}},
                           tokens, limits, token_ms, turns / 4)}) {
    std::printf("| %s | %zu | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f |\n", r.scenario.c_str(), r.deltas,
                r.ns_mean, r.ns_p50, r.ns_p99, r.hold_tokens_p50, r.hold_tokens_p99, r.hold_ms_p50,
                r.hold_ms_p99);
  }
  process.stop();
  return 0;
}
