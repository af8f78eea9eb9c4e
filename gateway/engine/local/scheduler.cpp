#include "gateway/engine/local/scheduler.hpp"

#include "gateway/metrics/gateway_metrics.hpp"

#include <algorithm>
#include <cmath>

namespace sluice {

namespace {
constexpr size_t kPenaltyWindow = 64;  // recent tokens the repetition penalty sees

BackendOptions cpu_options(const SchedulerConfig& c) {
  BackendOptions o;
  o.threads = c.threads;
  o.kv_blocks = c.kv_blocks > 0 ? c.kv_blocks : KvBlocks::blocks_for(c.context) * c.max_batch;
  o.context = c.context;
  o.max_batch = c.max_batch;
  o.max_batch_tokens = c.max_batch_tokens;
  o.banned = c.banned;
  return o;
}
}  // namespace

Scheduler::Scheduler(std::shared_ptr<const Model> model, SchedulerConfig config)
    : Scheduler(make_cpu_backend(std::move(model), cpu_options(config)), config) {}

Scheduler::Scheduler(std::unique_ptr<Backend> backend, SchedulerConfig config)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      kv_(backend_->kv_blocks()),
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
        s.kv = std::make_unique<KvBlocks::Sequence>(kv_);
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
    std::vector<StepSeq> step;
    std::vector<Seq*> stepped;  // step[i]'s sequence
    std::vector<Seq*> sampled;  // sequences whose chunk ends in a sampled token
    int64_t budget = config_.max_batch_tokens;
    auto sample_into = [](Seq& s, StepSeq& st) {
      // The window of the prompt's and the answer's last tokens.
      s.recent.assign(s.prompt.end() - static_cast<std::ptrdiff_t>(std::min(s.prompt.size(), kPenaltyWindow)),
                      s.prompt.end());
      s.recent.insert(s.recent.end(),
                      s.generated.end() - static_cast<std::ptrdiff_t>(std::min(s.generated.size(), kPenaltyWindow)),
                      s.generated.end());
      st.sampler = s.sampler.get();
      st.recent = s.recent;
      st.token_out = &s.next;
    };
    for (auto& s : running_) {
      const int64_t prompt = static_cast<int64_t>(s->prompt.size());
      if (s->cached < prompt) continue;
      StepSeq st{&s->generated.back(), 1, s->cached, s->kv->table().data(), s->kv->blocks(), nullptr, {}, nullptr};
      sample_into(*s, st);
      step.push_back(st);
      stepped.push_back(s.get());
      sampled.push_back(s.get());
      --budget;
    }
    for (auto& s : running_) {
      const int64_t prompt = static_cast<int64_t>(s->prompt.size());
      if (s->cached >= prompt || budget <= 0) continue;
      const int64_t n = std::min(prompt - s->cached, budget);
      StepSeq st{s->prompt.data() + s->cached, n, s->cached, s->kv->table().data(), s->kv->blocks(), nullptr, {}, nullptr};
      if (s->cached + n == prompt) {
        sample_into(*s, st);
        sampled.push_back(s.get());
      }
      step.push_back(st);
      stepped.push_back(s.get());
      budget -= n;
    }
    try {
      backend_->step(step);
    } catch (const std::exception& e) {
      // A failed step (a GPU error) ends the sequences in it, and only them.
      const std::string why = std::string("the local engine's step failed: ") + e.what();
      for (Seq* s : stepped) {
        end(*s, FinishReason::kError, why);
        s->kv.reset();
      }
      std::erase_if(running_, [](const auto& s) { return !s->kv; });
      std::lock_guard lock(mutex_);
      free_blocks_ = kv_.free_blocks();
      running_count_ = running_.size();
      continue;
    }
    if (auto* m = metrics::active()) {
      m->local_batch_size.get().set(static_cast<double>(step.size()));
      m->local_kv_blocks_used.get().set(static_cast<double>(kv_.total_blocks() - kv_.free_blocks()));
      m->local_kv_blocks_total.get().set(static_cast<double>(kv_.total_blocks()));
      m->local_steps.get().inc();
    }
    for (size_t i = 0; i < step.size(); ++i) stepped[i]->cached += step[i].count;
    for (Seq* s : sampled) {
      const int32_t token = s->next;
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
