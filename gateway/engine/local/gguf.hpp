// GgufFile: a GGUF model file (versions 2 and 3) read through mmap:
// metadata of every type, tensor descriptions and their data, with bounds,
// size and alignment checks. A truncated or corrupt file, or a tensor of a
// type the engine cannot read, gives one clear error, never a crash.
//
// https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
//
// Threads: immutable once open; share it freely.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::gguf {

enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Tensor types this engine reads (ggml's numbering).
enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ8_0 = 8,
  kBF16 = 30,
};

std::string_view type_name(ValueType t);
std::string_view type_name(TensorType t);

// One metadata value. Strings and arrays point into the mapped file.
struct Value {
  ValueType type = ValueType::kUint8;
  // Scalars: integers in `u` (unsigned) or `i` (signed), floats in `f`.
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string_view str;  // kString
  // kArray: the element type, count, and the elements (nested arrays are
  // read too, but only their size is kept).
  ValueType elem = ValueType::kUint8;
  uint64_t count = 0;
  std::vector<std::string_view> strings;  // arrays of strings
  std::vector<double> numbers;            // arrays of numbers and bools

  std::optional<uint64_t> as_uint() const;  // any non-negative integer
  std::optional<double> as_float() const;   // any number
};

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the fastest-varying
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

class File {
 public:
  // Maps and checks `path`; null with `error` ("PATH: what is wrong") on failure.
  static std::unique_ptr<File> open(const std::string& path, std::string& error);
  // The same over a buffer the caller keeps alive (tests, fuzzing).
  static std::unique_ptr<File> parse(const uint8_t* data, size_t size, std::string& error,
                                     const std::string& name = "<buffer>");
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  // Typed lookups: nullopt when absent or of another type.
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(std::string_view name) const;
  const uint8_t* data(const TensorInfo& t) const { return data_ + t.offset; }
  size_t size() const { return size_; }
  // Drops the mapped pages wholly inside [data, data + bytes) from memory
  // (a mapped file only: they are read from the file again when touched),
  // once their content has been copied elsewhere.
  void release(const uint8_t* data, size_t bytes) const;

 private:
  File() = default;
  bool read(std::string& error);

  std::string name_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;  // non-null when mmapped by open()
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  const uint8_t* data_ = nullptr;
};

// Bytes of `elements` values of `type` (Q8_0 in blocks of 32); nullopt when
// `elements` does not fill whole blocks.
std::optional<uint64_t> tensor_bytes(TensorType type, uint64_t elements);

}  // namespace sluice::gguf
