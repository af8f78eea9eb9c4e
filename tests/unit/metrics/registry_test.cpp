#include "gateway/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace sluice::metrics {
namespace {

TEST(MetricsRegistry, TextExpositionOfEveryType) {
  Registry r;
  auto& turns = r.counter("x_turns_total", "Turns\nended", {"engine", "finish_reason"});
  turns.with({"openai", "stop"}).inc();
  turns.with({"openai", "stop"}).inc(2);
  turns.with({"local", "content_filter"}).inc();
  auto& queue = r.gauge("x_queue_bytes", "Bytes queued");
  queue.get().add(1024);
  queue.get().add(-24);
  auto& h = r.histogram("x_latency_seconds", "Latency", {"engine"}, {0.1, 0.005, 1});
  auto& hh = h.with({"openai"});
  for (double v : {0.001, 0.004, 0.05, 0.5, 3.0}) hh.observe(v);
  r.collected({"x_open", "Open things", Type::kGauge, {"kind"}, [](const auto& emit) { emit({"a\"b\\c"}, 2); }});
  const std::string text = r.expose();
  EXPECT_NE(text.find("# HELP x_turns_total Turns\\nended\n# TYPE x_turns_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_turns_total{engine=\"openai\",finish_reason=\"stop\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_turns_total{engine=\"local\",finish_reason=\"content_filter\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("x_queue_bytes 1000\n"), std::string::npos);
  // Buckets sorted, cumulative, then +Inf, _sum and _count.
  EXPECT_NE(text.find("x_latency_seconds_bucket{engine=\"openai\",le=\"0.005\"} 2\n"
                      "x_latency_seconds_bucket{engine=\"openai\",le=\"0.1\"} 3\n"
                      "x_latency_seconds_bucket{engine=\"openai\",le=\"1\"} 4\n"
                      "x_latency_seconds_bucket{engine=\"openai\",le=\"+Inf\"} 5\n"
                      "x_latency_seconds_sum{engine=\"openai\"} 3.555\n"
                      "x_latency_seconds_count{engine=\"openai\"} 5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("x_open{kind=\"a\\\"b\\\\c\"} 2\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, UpdatesFromManyThreadsAllCount) {
  Registry r;
  auto& c = r.counter("x_total", "n").get();
  auto& h = r.histogram("x_seconds", "s", {}, {1}).get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 400000);
  EXPECT_EQ(h.cumulative().back(), 400000u);
}

TEST(MetricsRegistry, ValuesFormatShortest) {
  EXPECT_EQ(format_value(0.005), "0.005");
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(1e-9), "1e-09");
  EXPECT_EQ(format_value(0.1 + 0.2), "0.30000000000000004");
}

}  // namespace
}  // namespace sluice::metrics
