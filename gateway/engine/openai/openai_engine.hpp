// OpenAiEngine: streams chat completions from OpenAI-compatible servers
// (vLLM, llama.cpp server, OpenAI) over libcurl multi on Asio.
//
// Requests are spread over `shards` curl multi handles (at least one per
// I/O context of the pool), each on its own strand; a turn lives on one
// shard, one of the context that started it when it can (io_pool.hpp). Retries go
// to another endpoint, and only before the first token reached the client.
#pragma once

#include <memory>

#include "gateway/common/io_pool.hpp"
#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"

namespace sluice {

class OpenAiEngine final : public Engine {
 public:
  OpenAiEngine(IoPool& pool, const OpenAiConfig& config, int shards);
  ~OpenAiEngine() override;

  std::unique_ptr<TurnHandle> start(TurnRequest request, std::shared_ptr<TurnSink> sink) override;
  bool ready() const override;
  std::string_view name() const override { return "openai"; }
  void shutdown() override;

  struct Shared;  // configuration and state shared by every shard and turn

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace sluice
