#include "gateway/engine/local/local_engine.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <thread>

#include "gateway/common/random_id.hpp"
#include "gateway/engine/local/cuda/cuda_backend.hpp"

namespace sluice {

namespace {

class Handle final : public TurnHandle {
 public:
  Handle(Scheduler& s, uint64_t id) : s_(s), id_(id) {}
  void cancel() override { s_.cancel(id_); }

 private:
  Scheduler& s_;
  uint64_t id_;
};

// One turn's text pipeline: token ids -> UTF-8 -> stop strings -> the sink.
// Tool calls (<tool_call> ... </tool_call>, when the model has those tokens
// and tools were offered) are gathered instead of streamed.
struct TurnText {
  TurnText(const Tokenizer& t, std::vector<std::string> stops, std::shared_ptr<TurnSink> s)
      : decoder(t), stop(std::move(stops)), sink(std::move(s)) {}
  StreamDecoder decoder;
  StopMatcher stop;
  std::shared_ptr<TurnSink> sink;
  std::optional<std::string> call;  // the text of a tool call being written
  std::vector<ToolCall> calls;
  void emit(const std::string& text) {
    if (!text.empty()) sink->on_delta(text);
  }
  // The text between <tool_call> and </tool_call>: {"name": N, "arguments": {...}}.
  void end_call() {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view name;
    simdjson::dom::element args;
    if (parser.parse(*call).get(doc) == simdjson::SUCCESS && doc["name"].get(name) == simdjson::SUCCESS &&
        doc["arguments"].get(args) == simdjson::SUCCESS) {
      calls.push_back({"call_" + make_random_hex(12), std::string(name), simdjson::minify(args)});
    } else {
      // Not a call after all: the reader sees what the model wrote.
      emit(stop.push("<tool_call>" + *call + "</tool_call>"));
    }
    call.reset();
  }
};

}  // namespace

std::unique_ptr<LocalEngine> LocalEngine::create(const LocalConfig& config, std::string& error) {
  std::unique_ptr<LocalEngine> e(new LocalEngine());
  e->config_ = config;
  std::string why;
  std::shared_ptr<const gguf::File> file = gguf::File::open(config.model, why);
  if (!file) {
    error = "local.model: " + why;
    return nullptr;
  }
  e->file_ = file;
  // A GPU backend uploads the weights from the file; the CPU's may want
  // them packed (loaded again below if the engine ends up on the CPU).
  const WeightLayout layout = config.device == "cpu" ? WeightLayout::kCpuKernels : WeightLayout::kFile;
  auto model = Model::load(file, why, layout);
  if (!model) {
    error = "local.model " + config.model + ": " + why;
    return nullptr;
  }
  e->model_ = std::move(model);
  e->tokenizer_ = Tokenizer::load(*file, why);
  if (!e->tokenizer_) {
    error = "local.model " + config.model + ": " + why;
    return nullptr;
  }
  if (static_cast<int64_t>(e->tokenizer_->vocab_size()) > e->model_->config().vocab) {
    error = "local.model " + config.model + ": the tokenizer has more tokens than the model's embeddings";
    return nullptr;
  }
  if (config.chat_format != "auto") {
    e->format_ = *chat_format_from_name(config.chat_format);
  } else if (auto f = chat_format_of(*e->tokenizer_)) {
    e->format_ = *f;
  } else {
    error = "local.model " + config.model +
            ": its chat template is not one Sluice knows; set local.chat_format (chatml, llama3, llama2)";
    return nullptr;
  }
  e->model_name_ = std::string(file->get_string("general.name").value_or("local"));
  const int threads = config.threads > 0 ? config.threads
                                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  SchedulerConfig sc;
  sc.threads = threads;
  sc.context = std::min<int64_t>(config.context_length, e->model_->config().context);
  sc.max_batch = config.max_batch;
  sc.max_batch_tokens = config.max_batch_tokens;
  // Unused vocabulary entries, and model rows beyond the tokenizer's.
  sc.banned = e->tokenizer_->unused_tokens();
  for (int64_t id = static_cast<int64_t>(e->tokenizer_->vocab_size()); id < e->model_->config().vocab; ++id) {
    sc.banned.push_back(static_cast<int32_t>(id));
  }
  if (config.kv_cache_mb > 0) {
    const auto& c = e->model_->config();
    const int64_t block_bytes = 2 * c.layers * kKvBlockTokens * c.kv_heads * c.head_dim * 4;
    sc.kv_blocks = std::max<int64_t>(1, config.kv_cache_mb * (1 << 20) / block_bytes);
  }
  BackendOptions bo;
  bo.threads = sc.threads;
  bo.kv_blocks = sc.kv_blocks > 0 ? sc.kv_blocks : KvBlocks::blocks_for(sc.context) * sc.max_batch;
  bo.context = sc.context;
  bo.max_batch = sc.max_batch;
  bo.max_batch_tokens = sc.max_batch_tokens;
  bo.banned = sc.banned;
  bo.cuda_graphs = config.cuda_graphs;
  bo.cuda_prompt_bf16 = config.cuda_prompt_gemm == "bf16";
  // local.device: the CPU, the GPU, or the GPU when one can be used.
  const cuda::DeviceChoice choice =
      cuda::choose_device(config.device, config.device == "cpu" ? cuda::Probe{} : cuda::probe());
  if (!choice.error.empty()) {
    error = choice.error;
    return nullptr;
  }
  std::unique_ptr<Backend> backend;
  if (choice.device == "cuda") {
    backend = cuda::make_cuda_backend(e->model_, bo, why);
    if (!backend && config.device == "cuda") {
      error = "local.device = \"cuda\": the CUDA backend cannot start: " + why;
      return nullptr;
    }
    if (!backend) {
      spdlog::warn("local.device = \"auto\": running on the CPU, the CUDA backend cannot start: {}", why);
    } else {
      spdlog::info("{}", choice.log);
      e->device_ = "cuda";
    }
  } else if (!choice.log.empty()) {
    spdlog::info("{}", choice.log);
  }
  if (!backend && layout != WeightLayout::kCpuKernels) {
    if (auto packed = Model::load(file, why, WeightLayout::kCpuKernels)) e->model_ = std::move(packed);
  }
  if (!backend) backend = make_cpu_backend(e->model_, bo);
  e->scheduler_ = std::make_unique<Scheduler>(std::move(backend), sc);
  return e;
}

LocalEngine::~LocalEngine() = default;

void LocalEngine::shutdown() { scheduler_->cancel_all(); }

SamplingParams LocalEngine::params_for(const TurnRequest& r) const {
  SamplingParams p;
  p.temperature = static_cast<float>(config_.temperature);
  p.top_p = static_cast<float>(config_.top_p);
  p.top_k = config_.top_k;
  p.repetition_penalty = static_cast<float>(config_.repetition_penalty);
  p.max_tokens = config_.max_tokens;
  simdjson::dom::parser parser;
  for (const auto& [key, json] : r.params.fields) {
    simdjson::dom::element v;
    if (parser.parse(json).get(v) != simdjson::SUCCESS) continue;
    if (key == "temperature" && v.is_number()) p.temperature = static_cast<float>(double(v));
    if (key == "top_p" && v.is_number()) p.top_p = static_cast<float>(double(v));
    if (key == "max_tokens" && v.is_int64()) p.max_tokens = static_cast<int>(std::min<int64_t>(int64_t(v), config_.max_tokens));
    if (key == "seed" && v.is_int64()) p.seed = static_cast<uint64_t>(int64_t(v));
    if (key == "stop") {
      if (v.is_string()) p.stop.emplace_back(std::string_view(v));
      if (v.is_array()) {
        for (auto s : v.get_array()) {
          if (s.is_string()) p.stop.emplace_back(std::string_view(s));
        }
      }
    }
  }
  return p;
}

std::unique_ptr<TurnHandle> LocalEngine::start(TurnRequest request, std::shared_ptr<TurnSink> sink) {
  const SamplingParams params = params_for(request);
  // The conversation must leave room for an answer in the context: the
  // oldest messages after the system prompt go first, the last one stays.
  const int64_t context = std::min<int64_t>(config_.context_length, model_->config().context);
  const int64_t room = std::min<int64_t>(params.max_tokens, context / 4);
  std::vector<int32_t> prompt;
  for (;;) {
    // Template text may hold special tokens; message content never does.
    auto segments = render_chat(format_, request.messages, request.tools_json);
    // A partial answer to continue is prefilled after the assistant header.
    if (!request.continue_final.empty()) segments.push_back({request.continue_final, false});
    prompt = encode_prompt(*tokenizer_, segments);
    if (static_cast<int64_t>(prompt.size()) + room <= context) break;
    auto first = std::find_if(request.messages.begin(), request.messages.end(),
                              [](const ChatMessage& m) { return m.role != "system"; });
    if (first == request.messages.end() || first + 1 == request.messages.end()) break;  // the scheduler refuses it
    request.messages.erase(first);
  }
  auto text = std::make_shared<TurnText>(*tokenizer_, params.stop, sink);
  const Tokenizer* tok = tokenizer_.get();
  const std::string model = model_name_;
  Scheduler::Callbacks cb;
  std::optional<int32_t> call_open, call_close;
  if (!request.tools_json.empty() && format_ == ChatFormat::kChatML) {
    call_open = tokenizer_->find("<tool_call>");
    call_close = tokenizer_->find("</tool_call>");
    if (!call_open || !call_close) call_open.reset();
  }
  cb.on_token = [text, tok, call_open, call_close](int32_t id) {
    if (tok->is_end(id)) return false;
    if (call_open && id == *call_open && !text->call) {
      text->call.emplace();
      return true;
    }
    if (text->call) {
      if (id == *call_close) {
        text->end_call();
      } else {
        *text->call += tok->piece(id);
      }
      return true;
    }
    text->emit(text->stop.push(text->decoder.push(id)));
    return !text->stop.stopped();
  };
  cb.on_end = [text, model](FinishReason reason, const std::string& error, int64_t prompt_tokens,
                            int64_t generated) {
    if (!text->stop.stopped()) {
      text->emit(text->stop.push(text->decoder.finish()));
      text->emit(text->stop.finish());
    }
    TurnResult r;
    r.finish_reason = reason;
    if (reason == FinishReason::kStop && !text->calls.empty()) {
      r.finish_reason = FinishReason::kToolCalls;
      r.tool_calls = std::move(text->calls);
    }
    r.engine = "local";
    r.model = model;
    r.upstream = "local";
    r.attempts = 1;
    r.has_usage = true;
    r.usage.prompt_tokens = prompt_tokens;
    r.usage.completion_tokens = generated;
    if (reason == FinishReason::kError) r.error = TurnError{ErrorCode::kUpstreamRejected, error};
    text->sink->on_end(std::move(r));
  };
  const uint64_t id = scheduler_->submit(std::move(prompt), params, std::move(cb));
  return std::make_unique<Handle>(*scheduler_, id);
}

}  // namespace sluice
