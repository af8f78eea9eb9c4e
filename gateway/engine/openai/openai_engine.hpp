// OpenAiEngine: streams chat completions from OpenAI-compatible servers
// (vLLM, llama.cpp server, OpenAI) over libcurl multi on Asio.
//
// Requests are spread over `shards` curl multi handles, each on its own
// strand of the gateway's io_context; a turn lives on one shard. Retries go
// to another endpoint, and only before the first token reached the client.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "gateway/config/config.hpp"
#include "gateway/engine/engine.hpp"

namespace sluice {

class OpenAiEngine final : public Engine {
 public:
  OpenAiEngine(boost::asio::io_context& ioc, const OpenAiConfig& config, int shards);
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
