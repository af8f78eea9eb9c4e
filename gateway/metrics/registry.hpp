// A small Prometheus metrics registry: counters, gauges and histograms with
// labels, and the text exposition format (version 0.0.4).
//
// Cheap on the hot path: a metric child is found (or made) once, under its
// family's mutex, and callers keep the reference; an update is then one
// relaxed atomic operation. No global lock is ever taken per update.
//
// Threads: everything is thread-safe. Children live as long as the registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::metrics {

class Counter {
 public:
  void inc(double by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double v);
  // Cumulative counts per bound (then +Inf), the sum and the count.
  std::vector<uint64_t> cumulative() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name with its children, one per set of label values.
template <class M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), bounds_(std::move(bounds)) {}

  // The child for these label values (in the family's label order); keep the
  // reference: finding it takes the family's mutex.
  M& with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    std::lock_guard lock(mutex_);
    auto& slot = children_[key];
    if (!slot) {
      if constexpr (std::is_same_v<M, Histogram>) {
        slot = std::make_unique<M>(bounds_);
      } else {
        slot = std::make_unique<M>();
      }
    }
    return *slot;
  }
  M& get() { return with({}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  // Visits every child: (label values, metric).
  void each(const std::function<void(const std::vector<std::string>&, const M&)>& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [k, v] : children_) f(k, *v);
  }

 private:
  const std::string name_, help_;
  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

// Values computed at scrape time (open connections, sessions, plugin
// counters): the callback emits (label values, value) pairs.
struct Collected {
  std::string name, help;
  Type type = Type::kGauge;
  std::vector<std::string> labels;
  std::function<void(const std::function<void(std::vector<std::string>, double)>&)> collect;
};

class Registry {
 public:
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels,
                               std::vector<double> bounds);
  void collected(Collected c);

  // The Prometheus text format, families in registration order.
  std::string expose() const;

 private:
  struct Entry {
    Type type;
    void* family;  // Family<Counter|Gauge|Histogram>, by type
    size_t collected = 0;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> order_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<Collected> collected_;
};

// Prometheus text format helpers (exposed for tests).
std::string escape_label_value(std::string_view v);
std::string format_value(double v);

}  // namespace sluice::metrics
