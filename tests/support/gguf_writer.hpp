// GgufWriter: builds GGUF files byte by byte for tests: every metadata type,
// tensors of any type, and deliberate corruption.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3, uint64_t alignment = 32) : version_(version), alignment_(alignment) {}

  // Metadata (type codes as in the GGUF spec).
  template <class T>
  void kv(std::string_view key, uint32_t type, T value) {
    key_(key, type);
    put(meta_, value);
    ++kv_count_;
  }
  void kv_string(std::string_view key, std::string_view value) {
    key_(key, 8);
    str(meta_, value);
    ++kv_count_;
  }
  template <class T>
  void kv_array(std::string_view key, uint32_t elem_type, const std::vector<T>& values) {
    key_(key, 9);
    put(meta_, elem_type);
    put(meta_, static_cast<uint64_t>(values.size()));
    for (const auto& v : values) put(meta_, v);
    ++kv_count_;
  }
  void kv_strings(std::string_view key, const std::vector<std::string>& values) {
    key_(key, 9);
    put(meta_, uint32_t{8});
    put(meta_, static_cast<uint64_t>(values.size()));
    for (const auto& v : values) str(meta_, v);
    ++kv_count_;
  }
  // Raw bytes appended to the metadata (for corrupt entries).
  void raw_meta(const std::vector<uint8_t>& bytes, uint64_t count_as_kvs) {
    meta_.insert(meta_.end(), bytes.begin(), bytes.end());
    kv_count_ += count_as_kvs;
  }

  // A tensor: its data is appended, aligned, to the data section.
  void tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, const std::vector<uint8_t>& data) {
    str(infos_, name);
    put(infos_, static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) put(infos_, d);
    put(infos_, type);
    while (data_.size() % alignment_ != 0) data_.push_back(0);
    put(infos_, static_cast<uint64_t>(data_.size()));
    data_.insert(data_.end(), data.begin(), data.end());
    ++tensor_count_;
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    put(out, uint32_t{0x46554747});
    put(out, version_);
    put(out, tensor_count_);
    put(out, kv_count_);
    out.insert(out.end(), meta_.begin(), meta_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    while (out.size() % alignment_ != 0) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }

  template <class T>
  static void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void put(std::vector<uint8_t>& out, bool v) { out.push_back(v ? 1 : 0); }
  static void str(std::vector<uint8_t>& out, std::string_view s) {
    put(out, static_cast<uint64_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }

 private:
  void key_(std::string_view key, uint32_t type) {
    str(meta_, key);
    put(meta_, type);
  }
  uint32_t version_;
  uint64_t alignment_;
  uint64_t tensor_count_ = 0, kv_count_ = 0;
  std::vector<uint8_t> meta_, infos_, data_;
};

}  // namespace sluice::test
