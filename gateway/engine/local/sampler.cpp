#include "gateway/engine/local/sampler.hpp"

#include "gateway/engine/local/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace sluice {

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed ? p.seed : std::random_device{}()) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> recent) {
  if (p_.repetition_penalty != 1.0f) {
    for (int32_t id : recent) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    }
  }
  if (p_.temperature <= 0) {
    return static_cast<int32_t>(kernels::argmax(logits.data(), static_cast<int64_t>(logits.size())));
  }
  candidates_.clear();
  candidates_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  return draw();
}

int32_t Sampler::sample_top(std::span<const std::pair<float, int32_t>> top) {
  if (top.empty()) return 0;
  if (p_.temperature <= 0) {
    // The largest logit, the lowest id among equals (as max_element).
    auto best = top.front();
    for (const auto& c : top) {
      if (c.first > best.first || (c.first == best.first && c.second < best.second)) best = c;
    }
    return best.second;
  }
  candidates_.assign(top.begin(), top.end());
  return draw();
}

int32_t Sampler::draw() {
  for (auto& c : candidates_) c.first /= p_.temperature;
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = candidates_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
    keep = static_cast<size_t>(p_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep), candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  // Softmax over what is left, then the smallest head with top_p of the mass.
  const float max = candidates_.front().first;
  double sum = 0;
  for (auto& c : candidates_) {
    c.first = std::exp(c.first - max);
    sum += c.first;
  }
  if (p_.top_p < 1.0f) {
    double mass = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      mass += candidates_[n].first / sum;
      ++n;
      if (mass >= p_.top_p) break;
    }
    candidates_.resize(n);
    sum = 0;
    for (const auto& c : candidates_) sum += c.first;
  }
  double r = std::uniform_real_distribution<double>(0, sum)(rng_);
  for (const auto& c : candidates_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return candidates_.back().second;
}

std::string StopMatcher::push(std::string_view text) {
  if (stopped_) return {};
  held_ += text;
  // A whole stop string: release what comes before it and stop.
  size_t first = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    first = std::min(first, held_.find(s));
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold the longest tail that is the start of a stop string.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::finish() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace sluice
