// sluice-tokenize: the local engine's tokenizer on the command line, for
// checking it against reference tokenizers and for preparing training data
// exactly as the engine will see it. Reads a JSON array, writes a JSON array
// of token id arrays, one per element:
//   - a string: the text, encoded;
//   - {"chat": [messages], "tools": [...]}: the prompt the engine renders
//     with the model's chat template (messages as in the OpenAI API: role,
//     content, tool_calls, tool_call_id), ending where the answer starts;
//   - {"segments": [{"text": "...", "special": true|false}]}: each piece
//     encoded, special tokens matched only where "special" is true.
// With --render, chats come out as the rendered prompt text instead of ids.
//   sluice-tokenize MODEL.gguf [--special] [--bos] [--render] < input.json > ids.json
#include <CLI/CLI.hpp>
#include <simdjson.h>

#include <iostream>
#include <iterator>

#include "gateway/common/json_writer.hpp"
#include "gateway/engine/local/chat_template.hpp"
#include "gateway/engine/local/gguf.hpp"
#include "gateway/engine/local/tokenizer.hpp"

namespace {

std::string field(simdjson::dom::element e, const char* key) {
  std::string_view v;
  return e[key].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
}

// The ids for one element of the input; false (with `why`) when it is not one
// of the three shapes.
bool encode_item(const sluice::Tokenizer& tok, simdjson::dom::element e, bool bos, bool special,
                 std::vector<int32_t>& ids, std::string* rendered, std::string& why) {
  if (e.is_string()) {
    ids = tok.encode(std::string_view(e.get_string().value()), bos, special);
    return true;
  }
  simdjson::dom::array items;
  if (e["segments"].get(items) == simdjson::SUCCESS) {
    std::vector<sluice::PromptSegment> segments;
    for (auto seg : items) {
      bool sp = false;
      if (seg["special"].get(sp) != simdjson::SUCCESS) sp = false;
      segments.push_back({field(seg, "text"), sp});
    }
    ids = sluice::encode_prompt(tok, segments);
    return true;
  }
  if (e["chat"].get(items) == simdjson::SUCCESS) {
    const auto format = sluice::chat_format_of(tok);
    if (!format) {
      why = "the model has no chat template Sluice knows";
      return false;
    }
    std::vector<sluice::ChatMessage> messages;
    for (auto m : items) {
      sluice::ChatMessage msg;
      msg.role = field(m, "role");
      msg.content = field(m, "content");
      msg.tool_call_id = field(m, "tool_call_id");
      simdjson::dom::element calls;
      if (m["tool_calls"].get(calls) == simdjson::SUCCESS) msg.tool_calls_json = simdjson::minify(calls);
      messages.push_back(std::move(msg));
    }
    simdjson::dom::element tools;
    const std::string tools_json = e["tools"].get(tools) == simdjson::SUCCESS ? simdjson::minify(tools) : "";
    const auto segments = sluice::render_chat(*format, messages, tools_json);
    if (rendered) {
      for (const auto& seg : segments) *rendered += seg.text;
      return true;
    }
    ids = sluice::encode_prompt(tok, segments);
    return true;
  }
  why = "each element must be a string, {\"chat\": [...]} or {\"segments\": [...]}";
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-tokenize: encode texts with a GGUF model's tokenizer"};
  std::string model;
  bool special = false, bos = false, render = false;
  app.add_option("model", model, "GGUF file with tokenizer metadata")->required();
  app.add_flag("--special", special, "match special tokens written in the text");
  app.add_flag("--bos", bos, "add BOS when the tokenizer asks for it");
  app.add_flag("--render", render, "write chats as rendered prompt text (a JSON array of strings)");
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
    std::cerr << "stdin must be a JSON array\n";
    return 2;
  }
  std::cout << "[";
  bool first = true;
  for (auto e : doc.get_array()) {
    std::vector<int32_t> ids;
    std::string rendered;
    if (std::string why; !encode_item(*tok, e, bos, special, ids, render ? &rendered : nullptr, why)) {
      std::cerr << why << "\n";
      return 2;
    }
    if (render) {
      std::string quoted;
      sluice::append_json_string(quoted, rendered);
      std::cout << (first ? "" : ",") << quoted;
      first = false;
      continue;
    }
    std::cout << (first ? "" : ",") << "[";
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
    std::cout << "]";
    first = false;
  }
  std::cout << "]\n";
  return 0;
}
