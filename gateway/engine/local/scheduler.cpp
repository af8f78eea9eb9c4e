#include "gateway/engine/local/scheduler.hpp"

#include "gateway/metrics/gateway_metrics.hpp"

#include <algorithm>
#include <cmath>

namespace sluice {

namespace {
constexpr size_t kPenaltyWindow = 64;  // recent tokens the repetition penalty sees

int64_t default_blocks(const SchedulerConfig& c) {
  return c.kv_blocks > 0 ? c.kv_blocks : KvPool::blocks_for(c.context) * c.max_batch;
}
}  // namespace

Scheduler::Scheduler(std::shared_ptr<const Model> model, SchedulerConfig config)
    : model_(std::move(model)),
      config_(config),
      pool_(config.threads),
      kv_(model_->config(), default_blocks(config)),
      free_blocks_(kv_.free_blocks()),
      thread_([this] { run(); }) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t Scheduler::submit(std::vector<int32_t> prompt, const SamplingParams& params, Callbacks callbacks) {
  auto s = std::make_unique<Seq>();
  s->prompt = std::move(prompt);
  s->max_tokens = std::max(1, params.max_tokens);
  s->sampler = std::make_unique<Sampler>(params);
  s->cb = std::move(callbacks);
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = s->id = ++next_id_;
    waiting_.push_back(std::move(s));
  }
  wake_.notify_one();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    cancels_.insert(id);
  }
  wake_.notify_one();
}

void Scheduler::cancel_all() {
  {
    std::lock_guard lock(mutex_);
    cancel_all_ = true;
  }
  wake_.notify_one();
}

int64_t Scheduler::free_blocks() const {
  std::lock_guard lock(mutex_);
  return free_blocks_;
}

int64_t Scheduler::total_blocks() const { return kv_.total_blocks(); }

size_t Scheduler::running() const {
  std::lock_guard lock(mutex_);
  return running_count_;
}

void Scheduler::end(Seq& s, FinishReason reason, const std::string& error) {
  if (s.kv) s.kv->release();  // every block at once
  {
    std::lock_guard lock(mutex_);
    free_blocks_ = kv_.free_blocks();
  }
  if (auto* m = metrics::active()) {
    m->local_kv_blocks_used.get().set(static_cast<double>(kv_.total_blocks() - kv_.free_blocks()));
  }
  s.cb.on_end(reason, error, static_cast<int64_t>(s.prompt.size()), static_cast<int64_t>(s.generated.size()));
}

void Scheduler::run() {
  const int64_t vocab = model_->config().vocab;
  for (;;) {
    std::vector<std::unique_ptr<Seq>> ended_waiting;
    std::vector<std::unique_ptr<Seq>> admitted;
    std::unordered_set<uint64_t> cancels;
    bool all = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || cancel_all_ || !cancels_.empty() || !running_.empty() || !waiting_.empty();
      });
      all = cancel_all_ || stop_;
      cancel_all_ = false;
      cancels.swap(cancels_);
      // Cancelled before they started.
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (all || cancels.count((*it)->id)) {
          ended_waiting.push_back(std::move(*it));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : ended_waiting) end(*s, FinishReason::kCancelled);
    // Cancelled while running.
    for (auto& s : running_) {
      if (s && (all || cancels.count(s->id))) {
        end(*s, FinishReason::kCancelled);
        s.reset();
      }
    }
    std::erase_if(running_, [](const auto& s) { return !s; });
    {
      std::lock_guard lock(mutex_);
      if (stop_ && running_.empty() && waiting_.empty()) return;
      // Admission, first come first served: a sequence starts when a batch
      // slot and blocks for its prompt and its token limit are free.
      while (!waiting_.empty() && static_cast<int>(running_.size() + admitted.size()) < config_.max_batch) {
        Seq& s = *waiting_.front();
        const int64_t prompt = static_cast<int64_t>(s.prompt.size());
        if (prompt == 0 || prompt >= config_.context) {
          admitted.push_back(std::move(waiting_.front()));  // refused below
          waiting_.pop_front();
          continue;
        }
        s.max_tokens = std::min(s.max_tokens, config_.context - prompt);
        s.kv = std::make_unique<KvPool::Sequence>(kv_);
        if (!s.kv->reserve(prompt + s.max_tokens)) {
          s.kv->release();
          if (running_.empty() && admitted.empty()) {
            // It will never fit, even alone.
            admitted.push_back(std::move(waiting_.front()));
            waiting_.pop_front();
            continue;
          }
          break;  // wait for blocks to come back
        }
        admitted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    for (auto& s : admitted) {
      const int64_t prompt = static_cast<int64_t>(s->prompt.size());
      if (prompt == 0) {
        end(*s, FinishReason::kError, "the prompt is empty");
      } else if (prompt >= config_.context) {
        end(*s, FinishReason::kError, "the prompt has " + std::to_string(prompt) + " tokens; local.context_length is " +
                             std::to_string(config_.context));
      } else if (s->kv->blocks() == 0) {
        end(*s, FinishReason::kError, "the KV cache cannot hold this prompt and its max_tokens");
      } else {
        s->logits.resize(static_cast<size_t>(vocab));
        running_.push_back(std::move(s));
      }
    }
    if (running_.empty()) {
      std::lock_guard lock(mutex_);
      free_blocks_ = kv_.free_blocks();
      running_count_ = 0;
      continue;
    }

    // One step: decode tokens first, then prompt chunks within the budget.
    std::vector<BatchChunk> chunks;
    std::vector<Seq*> sampled;  // sequences whose chunk ends in logits
    int64_t budget = config_.max_batch_tokens;
    for (auto& s : running_) {
      const int64_t prompt = static_cast<int64_t>(s->prompt.size());
      if (s->cached < prompt) continue;
      chunks.push_back({&s->generated.back(), 1, s->cached, s->kv.get(), s->logits.data()});
      sampled.push_back(s.get());
      --budget;
    }
    for (auto& s : running_) {
      const int64_t prompt = static_cast<int64_t>(s->prompt.size());
      if (s->cached >= prompt || budget <= 0) continue;
      const int64_t n = std::min(prompt - s->cached, budget);
      const bool last = s->cached + n == prompt;
      chunks.push_back({s->prompt.data() + s->cached, n, s->cached, s->kv.get(), last ? s->logits.data() : nullptr});
      if (last) sampled.push_back(s.get());
      budget -= n;
    }
    model_->forward_batch(pool_, chunks);
    if (auto* m = metrics::active()) {
      m->local_batch_size.get().set(static_cast<double>(chunks.size()));
      m->local_kv_blocks_used.get().set(static_cast<double>(kv_.total_blocks() - kv_.free_blocks()));
      m->local_kv_blocks_total.get().set(static_cast<double>(kv_.total_blocks()));
      m->local_steps.get().inc();
    }
    for (const auto& ch : chunks) {
      for (auto& s : running_) {
        if (s->kv.get() == ch.cache) s->cached += ch.count;
      }
    }
    for (Seq* s : sampled) {
      std::vector<int32_t> recent(s->prompt.end() - std::min(s->prompt.size(), kPenaltyWindow), s->prompt.end());
      recent.insert(recent.end(), s->generated.end() - std::min(s->generated.size(), kPenaltyWindow),
                    s->generated.end());
      for (int32_t b : config_.banned) {
        if (b >= 0 && b < vocab) s->logits[static_cast<size_t>(b)] = -INFINITY;
      }
      const int32_t token = s->sampler->sample(s->logits, recent);
      s->generated.push_back(token);
      if (!s->cb.on_token(token)) {
        end(*s, FinishReason::kStop);
        s->kv.reset();
      } else if (static_cast<int64_t>(s->generated.size()) >= s->max_tokens) {
        end(*s, FinishReason::kLength);
        s->kv.reset();
      }
    }
    std::erase_if(running_, [](const auto& s) { return !s->kv; });
    std::lock_guard lock(mutex_);
    free_blocks_ = kv_.free_blocks();
    running_count_ = running_.size();
  }
}

}  // namespace sluice
