// LocalEngine: the Engine that answers from a GGUF model in process: the
// chat is rendered with the model's template, tokenized, and joins the
// continuous batch; sampled tokens are decoded into text (never half a UTF-8
// character), checked for stop strings and handed to the turn's sink.
//
// Threads: start and cancel from any thread; sinks are called on the
// scheduler's thread.
#pragma once

#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"
#include "gateway/engine/local/chat_template.hpp"
#include "gateway/engine/local/gguf.hpp"
#include "gateway/engine/local/model.hpp"
#include "gateway/engine/local/scheduler.hpp"
#include "gateway/engine/local/tokenizer.hpp"

namespace sluice {

class LocalEngine final : public Engine {
 public:
  // Loads local.model; null with `error` ("FILE: what is wrong") on failure.
  static std::unique_ptr<LocalEngine> create(const LocalConfig& config, std::string& error);
  ~LocalEngine() override;

  std::unique_ptr<TurnHandle> start(TurnRequest request, std::shared_ptr<TurnSink> sink) override;
  bool ready() const override { return true; }
  std::string_view name() const override { return "local"; }
  bool calls_back_on_io_threads() const override { return false; }  // the scheduler thread
  void shutdown() override;

  const ModelConfig& model_config() const { return model_->config(); }
  ChatFormat chat_format() const { return format_; }
  const std::string& model_name() const { return model_name_; }
  // Where the steps run: "cpu" or "cuda" (local.device after auto).
  const std::string& device() const { return device_; }

 private:
  LocalEngine() = default;
  SamplingParams params_for(const TurnRequest& r) const;

  LocalConfig config_;
  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatFormat format_ = ChatFormat::kChatML;
  std::string model_name_;
  std::string device_ = "cpu";
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace sluice
