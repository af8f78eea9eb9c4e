// Sampler: the next token from a row of logits. Greedy at temperature 0;
// otherwise repetition penalty, temperature, top-k, top-p, then a draw from
// a generator seeded per turn, so the same seed gives the same answer.
// StopMatcher: ends an answer at a stop string, never releasing text that
// may be the start of one.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct SamplingParams {
  float temperature = 0.7f;         // 0: greedy
  int top_k = 40;                   // 0: all
  float top_p = 0.95f;              // 1: all
  float repetition_penalty = 1.0f;  // > 1 discourages tokens already in the text
  uint64_t seed = 0;                // 0: a random seed
  int max_tokens = 512;
  std::vector<std::string> stop;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // `logits` may be changed (penalties, temperature); `recent` are the ids the
  // repetition penalty applies to.
  int32_t sample(std::span<float> logits, std::span<const int32_t> recent);
  // The same draw from the largest logits alone (after the penalty), as a
  // GPU hands them back: `top` (logit, id) in any order. The same token as
  // sample() when `top` holds the top_k largest (all of them when top_k is 0).
  int32_t sample_top(std::span<const std::pair<float, int32_t>> top);
  const SamplingParams& params() const { return p_; }

 private:
  // Temperature, top-k, top-p and the draw over candidates_ (unscaled logits).
  int32_t draw();
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what may be released now. After a stop string is
  // found, stopped() is true and nothing from the stop string on is released.
  std::string push(std::string_view text);
  // The end of the answer: what was held back.
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace sluice
