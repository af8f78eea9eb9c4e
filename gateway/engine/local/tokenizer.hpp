// Tokenizer: text to token ids and back, from a GGUF file's tokenizer
// metadata (tools/tokenizer_to_gguf.py writes it from a Hugging Face
// tokenizer.json):
// - "gpt2": byte-level BPE with merge ranks, after a pre-tokenizer
//   ("llama-bpe": Llama 3's split, digits in runs of up to three; "qwen2":
//   single digits; "gpt2"), NFC first when tokenizer.ggml.normalizer = "nfc";
// - "llama": SentencePiece-style: "▁" for spaces, pieces merged by score,
//   unknown pieces as <0xNN> byte tokens.
// Special (added) tokens are matched in the text first when asked to.
//
// Threads: immutable once loaded; encode and decode from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <unordered_map>
#include <vector>

#include "gateway/engine/local/gguf.hpp"

namespace sluice {

class Tokenizer {
 public:
  enum class Kind { kBytePairBpe, kSentencePiece };
  enum class Pre { kGpt2, kLlama3, kQwen2 };

  static std::unique_ptr<Tokenizer> load(const gguf::File& file, std::string& error);

  // `parse_special`: added tokens written in the text become their ids
  // (templates); off for user text, so that it cannot forge control tokens.
  // `add_bos`: prepend BOS when the model wants it (tokenizer.ggml.add_bos_token).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // The bytes of one token (special tokens as their text).
  std::string piece(int32_t id) const;
  std::string decode(const std::vector<int32_t>& ids) const;

  size_t vocab_size() const { return tokens_.size(); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  bool add_bos() const { return add_bos_; }
  // End of generation: EOS, or another control token such as <|im_end|>.
  bool is_end(int32_t id) const;
  std::optional<int32_t> find(std::string_view token) const;
  // Tokens a model must never produce: unused and padding entries.
  std::vector<int32_t> unused_tokens() const;
  const std::string& chat_template() const { return chat_template_; }
  // SentencePiece puts a space before the text it encodes; a generated
  // answer drops it from its first token, as llama.cpp does.
  bool adds_space_prefix() const { return kind_ == Kind::kSentencePiece; }

 private:
  Tokenizer() = default;
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;

  Kind kind_ = Kind::kBytePairBpe;
  Pre pre_ = Pre::kGpt2;
  bool nfc_ = false;
  bool ignore_merges_ = false;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<int32_t> types_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // "a b" -> rank
  std::vector<int32_t> specials_;                         // added tokens, longest first
  int32_t byte_tokens_[256];                              // SentencePiece <0xNN>
  int32_t bos_ = -1, eos_ = -1, unk_ = -1;
  bool add_bos_ = false;
  std::string chat_template_;
};

// Turns a stream of token ids into text that never ends inside a UTF-8
// character: bytes of an incomplete character wait for the next token.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& t) : t_(t) {}
  // The text that is complete after this token ("" while a character waits).
  std::string push(int32_t id);
  // The end: whatever is left (invalid bytes become U+FFFD).
  std::string finish();

 private:
  const Tokenizer& t_;
  std::string pending_;
  bool started_ = false;  // some text has gone out
};

}  // namespace sluice
