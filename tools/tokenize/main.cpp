// sluice-tokenize: the local engine's tokenizer on the command line, for
// checking it against reference tokenizers. Reads a JSON array of strings,
// writes a JSON array of token id arrays.
//   sluice-tokenize MODEL.gguf [--special] [--bos] < texts.json > ids.json
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <iostream>
#include <iterator>

#include "gateway/engine/local/gguf.hpp"
#include "gateway/engine/local/tokenizer.hpp"

int main(int argc, char** argv) {
  CLI::App app{"sluice-tokenize: encode texts with a GGUF model's tokenizer"};
  std::string model;
  bool special = false, bos = false;
  app.add_option("model", model, "GGUF file with tokenizer metadata")->required();
  app.add_flag("--special", special, "match special tokens written in the text");
  app.add_flag("--bos", bos, "add BOS when the tokenizer asks for it");
  CLI11_PARSE(app, argc, argv);
  std::string error;
  auto file = sluice::gguf::File::open(model, error);
  if (!file) {
    std::cerr << error << "\n";
    return 1;
  }
  auto tok = sluice::Tokenizer::load(*file, error);
  if (!tok) {
    std::cerr << model << ": " << error << "\n";
    return 1;
  }
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(input).get(doc) != simdjson::SUCCESS || !doc.is_array()) {
    std::cerr << "stdin must be a JSON array of strings\n";
    return 2;
  }
  std::cout << "[";
  bool first = true;
  for (auto e : doc.get_array()) {
    std::string_view text = e.get_string().value();
    const auto ids = tok->encode(text, bos, special);
    std::cout << (first ? "" : ",") << "[";
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
    std::cout << "]";
    first = false;
  }
  std::cout << "]\n";
  return 0;
}
