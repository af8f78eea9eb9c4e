// sluice-logits: runs the local engine's model on token ids and prints the
// logits at every position, and greedy continuations, as JSON; the PyTorch
// check (tests/engine/check_logits.py) compares them with its own forward pass;
// "kernels" names the kernel path that ran.
//   sluice-logits MODEL.gguf [--threads N] < {"prompts": [[ids...]], "generate": N}
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <cstdio>
#include <iostream>
#include <iterator>

#include "gateway/engine/local/model.hpp"

int main(int argc, char** argv) {
  CLI::App app{"sluice-logits: logits of a GGUF model for given token ids"};
  std::string path;
  int threads = 2;
  app.add_option("model", path)->required();
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  std::string error;
  std::shared_ptr<const sluice::gguf::File> file = sluice::gguf::File::open(path, error);
  if (!file) {
    std::cerr << error << "\n";
    return 1;
  }
  auto model = sluice::Model::load(file, error);
  if (!model) {
    std::cerr << path << ": " << error << "\n";
    return 1;
  }
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(input).value();
  const int64_t generate = doc["generate"].get_int64().value();
  const auto& c = model->config();
  sluice::kernels::ThreadPool pool(threads);
  std::printf("{\"logits\":[");
  bool first_prompt = true;
  std::string greedy = "[";
  for (auto p : doc["prompts"].get_array()) {
    std::vector<int32_t> ids;
    for (auto id : p.get_array()) ids.push_back(static_cast<int32_t>(id.get_int64().value()));
    sluice::FlatKvCache cache(c, static_cast<int64_t>(ids.size()) + generate + 1);
    std::vector<float> logits(ids.size() * static_cast<size_t>(c.vocab));
    model->forward(pool, ids.data(), static_cast<int64_t>(ids.size()), 0, cache, logits.data(), true);
    std::printf("%s[", first_prompt ? "" : ",");
    for (size_t t = 0; t < ids.size(); ++t) {
      std::printf("%s[", t ? "," : "");
      for (int64_t v = 0; v < c.vocab; ++v) std::printf("%s%.7g", v ? "," : "", logits[t * c.vocab + v]);
      std::printf("]");
    }
    std::printf("]");
    // Greedy decoding, one token at a time through the cache.
    greedy += first_prompt ? "[" : ",[";
    std::vector<float> last(logits.end() - c.vocab, logits.end());
    int64_t pos = static_cast<int64_t>(ids.size());
    for (int64_t g = 0; g < generate; ++g) {
      const int32_t next = static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
      greedy += (g ? "," : "") + std::to_string(next);
      model->forward(pool, &next, 1, pos++, cache, last.data(), false);
    }
    greedy += "]";
    first_prompt = false;
  }
  std::printf("],\"greedy\":%s],\"kernels\":\"%s\"}\n", greedy.c_str(),
              sluice::kernels::kernel_path_name(sluice::kernels::active_kernels()));
  return 0;
}
