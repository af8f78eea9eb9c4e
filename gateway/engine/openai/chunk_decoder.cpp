#include "gateway/engine/openai/chunk_decoder.hpp"

#include <simdjson.h>

namespace sluice {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

std::string printable_prefix(std::string_view body, size_t max) {
  std::string out;
  for (char ch : body.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(c >= 0x20 && c < 0x7F ? ch : ' ');
  }
  return out;
}

// The message of an error object in any of the shapes OpenAI-compatible
// servers use; nullopt when `obj` is not an error.
std::optional<std::string> error_of(object obj) {
  std::string_view s;
  object inner;
  if (obj["error"].get(inner) == simdjson::SUCCESS) {
    if (inner["message"].get(s) == simdjson::SUCCESS) return std::string(s);
    return std::string("upstream reported an error");
  }
  if (obj["error"].get(s) == simdjson::SUCCESS) return std::string(s);
  std::string_view kind;
  if (obj["object"].get(kind) == simdjson::SUCCESS && kind == "error") {
    if (obj["message"].get(s) == simdjson::SUCCESS) return std::string(s);
    return std::string("upstream reported an error");
  }
  if (obj["detail"].get(s) == simdjson::SUCCESS) return std::string(s);
  return std::nullopt;
}

}  // namespace

struct ChunkDecoder::Impl {
  simdjson::dom::parser parser;
};

ChunkDecoder::ChunkDecoder() : impl_(std::make_unique<Impl>()) {}
ChunkDecoder::~ChunkDecoder() = default;

StreamChunk ChunkDecoder::decode(std::string_view data) {
  StreamChunk out;
  if (data == "[DONE]") {
    out.kind = StreamChunk::Kind::kDone;
    return out;
  }
  element root;
  object obj;
  if (impl_->parser.parse(data.data(), data.size()).get(root) != simdjson::SUCCESS ||
      root.get(obj) != simdjson::SUCCESS) {
    out.message = "stream event is not a JSON object: " + printable_prefix(data, 80);
    return out;
  }
  if (auto err = error_of(obj)) {
    out.kind = StreamChunk::Kind::kError;
    out.message = std::move(*err);
    return out;
  }
  simdjson::dom::array choices;
  if (obj["choices"].get(choices) != simdjson::SUCCESS) {
    out.message = "stream event has no \"choices\"";
    return out;
  }
  out.kind = StreamChunk::Kind::kData;
  object usage;
  if (obj["usage"].get(usage) == simdjson::SUCCESS) {
    Usage u;
    int64_t v = 0;
    if (usage["prompt_tokens"].get(v) == simdjson::SUCCESS) u.prompt_tokens = v;
    if (usage["completion_tokens"].get(v) == simdjson::SUCCESS) u.completion_tokens = v;
    out.usage = u;
  }
  if (choices.size() == 0) return out;  // the usage chunk
  object choice;
  if (choices.at(0).get(choice) != simdjson::SUCCESS) {
    out.kind = StreamChunk::Kind::kMalformed;
    out.message = "choices[0] is not an object";
    return out;
  }
  object delta;
  if (choice["delta"].get(delta) == simdjson::SUCCESS) {
    std::string_view content;
    if (delta["content"].get(content) == simdjson::SUCCESS) out.content = content;
    simdjson::dom::array calls;
    if (delta["tool_calls"].get(calls) == simdjson::SUCCESS) {
      for (element c : calls) {
        ToolCallFragment f;
        std::string_view v;
        if (c["index"].get(f.index) != simdjson::SUCCESS) f.index = 0;
        if (c["id"].get(v) == simdjson::SUCCESS) f.id = v;
        if (c["function"]["name"].get(v) == simdjson::SUCCESS) f.name = v;
        if (c["function"]["arguments"].get(v) == simdjson::SUCCESS) f.arguments = v;
        out.tool_calls.push_back(std::move(f));
      }
    }
  }
  std::string_view finish;
  if (choice["finish_reason"].get(finish) == simdjson::SUCCESS) out.finish_reason = finish;
  return out;
}

std::string ChunkDecoder::error_body_message(std::string_view body) {
  element root;
  object obj;
  if (impl_->parser.parse(body.data(), body.size()).get(root) == simdjson::SUCCESS &&
      root.get(obj) == simdjson::SUCCESS) {
    if (auto err = error_of(obj)) return std::move(*err);
  }
  std::string text = printable_prefix(body, 200);
  return text.empty() ? std::string("(empty body)") : text;
}

}  // namespace sluice
