#include "gateway/metrics/registry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace sluice::metrics {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  counters_.push_back(std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels)));
  order_.push_back({Type::kCounter, counters_.back().get()});
  return *counters_.back();
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  gauges_.push_back(std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(labels)));
  order_.push_back({Type::kGauge, gauges_.back().get()});
  return *gauges_.back();
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  std::lock_guard lock(mutex_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(std::move(name), std::move(help), std::move(labels),
                                                            std::move(bounds)));
  order_.push_back({Type::kHistogram, histograms_.back().get()});
  return *histograms_.back();
}

void Registry::collected(Collected c) {
  std::lock_guard lock(mutex_);
  collected_.push_back(std::move(c));
  order_.push_back({collected_.back().type, nullptr, collected_.size()});
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest form that reads back as the same double: 0.005, not 0.0050000000000000001.
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

namespace {

std::string help_escape(std::string_view h) {
  std::string out;
  for (char c : h) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// {a="x",b="y"} (with an extra pair when given), or "" with no labels.
std::string label_set(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += (out.empty() ? "{" : ",") + names[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += (out.empty() ? "{" : ",") + std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
  }
  return out.empty() ? out : out + "}";
}

void head(std::string& out, const std::string& name, const std::string& help, std::string_view type) {
  out += "# HELP " + name + " " + help_escape(help) + "\n# TYPE " + name + " " + std::string(type) + "\n";
}

}  // namespace

std::string Registry::expose() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(16 * 1024);
  for (const Entry& e : order_) {
    if (e.collected) {
      const Collected& c = collected_[e.collected - 1];
      head(out, c.name, c.help, c.type == Type::kCounter ? "counter" : "gauge");
      c.collect([&](std::vector<std::string> values, double v) {
        out += c.name + label_set(c.labels, values) + " " + format_value(v) + "\n";
      });
      continue;
    }
    switch (e.type) {
      case Type::kCounter: {
        const auto& f = *static_cast<const Family<Counter>*>(e.family);
        head(out, f.name(), f.help(), "counter");
        f.each([&](const std::vector<std::string>& values, const Counter& m) {
          out += f.name() + label_set(f.labels(), values) + " " + format_value(m.value()) + "\n";
        });
        break;
      }
      case Type::kGauge: {
        const auto& f = *static_cast<const Family<Gauge>*>(e.family);
        head(out, f.name(), f.help(), "gauge");
        f.each([&](const std::vector<std::string>& values, const Gauge& m) {
          out += f.name() + label_set(f.labels(), values) + " " + format_value(m.value()) + "\n";
        });
        break;
      }
      case Type::kHistogram: {
        const auto& f = *static_cast<const Family<Histogram>*>(e.family);
        head(out, f.name(), f.help(), "histogram");
        f.each([&](const std::vector<std::string>& values, const Histogram& h) {
          const auto counts = h.cumulative();
          for (size_t i = 0; i < h.bounds().size(); ++i) {
            out += f.name() + "_bucket" + label_set(f.labels(), values, "le", format_value(h.bounds()[i])) + " " +
                   std::to_string(counts[i]) + "\n";
          }
          out += f.name() + "_bucket" + label_set(f.labels(), values, "le", "+Inf") + " " +
                 std::to_string(counts.back()) + "\n";
          out += f.name() + "_sum" + label_set(f.labels(), values) + " " + format_value(h.sum()) + "\n";
          out += f.name() + "_count" + label_set(f.labels(), values) + " " + std::to_string(counts.back()) + "\n";
        });
        break;
      }
    }
  }
  return out;
}

}  // namespace sluice::metrics
