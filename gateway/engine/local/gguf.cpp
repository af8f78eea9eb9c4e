#include "gateway/engine/local/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <cstring>

namespace sluice::gguf {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxDims = 4;

// A bounds-checked little-endian cursor over the file; the first failure
// leaves a message and makes every later read fail.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}

  bool need(uint64_t bytes, std::string_view what) {
    if (!error.empty()) return false;
    if (bytes > n_ - at_) {
      error = "truncated: " + std::string(what) + " needs " + std::to_string(bytes) + " bytes at offset " +
              std::to_string(at_) + ", the file has " + std::to_string(n_);
      return false;
    }
    return true;
  }
  template <class T>
  bool get(T& out, std::string_view what) {
    if (!need(sizeof(T), what)) return false;
    std::memcpy(&out, p_ + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool string(std::string_view& out, std::string_view what) {
    uint64_t len = 0;
    if (!get(len, what) || !need(len, what)) return false;
    out = {reinterpret_cast<const char*>(p_ + at_), static_cast<size_t>(len)};
    at_ += len;
    return true;
  }
  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
  size_t offset() const { return at_; }
  void seek(size_t at) { at_ = at; }

  std::string error;

 private:
  const uint8_t* p_;
  size_t n_;
  size_t at_ = 0;
};

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64: return 8;
    default: return 0;
  }
}

// Reads one scalar of type `t` into `v` (and its number into `num`).
bool read_scalar(Reader& r, ValueType t, Value& v, double& num, std::string_view what) {
  switch (t) {
    case ValueType::kUint8: { uint8_t x; if (!r.get(x, what)) return false; v.u = x; num = x; return true; }
    case ValueType::kInt8: { int8_t x; if (!r.get(x, what)) return false; v.i = x; num = x; return true; }
    case ValueType::kUint16: { uint16_t x; if (!r.get(x, what)) return false; v.u = x; num = x; return true; }
    case ValueType::kInt16: { int16_t x; if (!r.get(x, what)) return false; v.i = x; num = x; return true; }
    case ValueType::kUint32: { uint32_t x; if (!r.get(x, what)) return false; v.u = x; num = x; return true; }
    case ValueType::kInt32: { int32_t x; if (!r.get(x, what)) return false; v.i = x; num = x; return true; }
    case ValueType::kUint64: { uint64_t x; if (!r.get(x, what)) return false; v.u = x; num = static_cast<double>(x); return true; }
    case ValueType::kInt64: { int64_t x; if (!r.get(x, what)) return false; v.i = x; num = static_cast<double>(x); return true; }
    case ValueType::kFloat32: { float x; if (!r.get(x, what)) return false; v.f = x; num = x; return true; }
    case ValueType::kFloat64: { double x; if (!r.get(x, what)) return false; v.f = x; num = x; return true; }
    case ValueType::kBool: {
      uint8_t x;
      if (!r.get(x, what)) return false;
      if (x > 1) return r.fail(std::string(what) + ": a bool must be 0 or 1 (got " + std::to_string(x) + ")");
      v.b = x != 0;
      num = x;
      return true;
    }
    default: return r.fail(std::string(what) + ": not a scalar type");
  }
}

bool read_value(Reader& r, ValueType t, Value& v, std::string_view what, int depth) {
  v.type = t;
  double num = 0;
  if (t == ValueType::kString) return r.string(v.str, what);
  if (t != ValueType::kArray) return read_scalar(r, t, v, num, what);
  if (depth >= kMaxArrayDepth) return r.fail(std::string(what) + ": arrays nested deeper than 4");
  uint32_t elem = 0;
  if (!r.get(elem, what) || !r.get(v.count, what)) return false;
  if (!valid_type(elem)) return r.fail(std::string(what) + ": unknown array element type " + std::to_string(elem));
  v.elem = static_cast<ValueType>(elem);
  if (v.count > (1ull << 40)) return r.fail(std::string(what) + ": array of " + std::to_string(v.count) + " elements");
  // Every element takes at least one byte: a count past the file is corrupt.
  const size_t min = v.elem == ValueType::kString ? 8 : std::max<size_t>(1, scalar_size(v.elem));
  if (v.elem != ValueType::kArray && !r.need(v.count * min, what)) return false;
  if (v.elem == ValueType::kString) {
    v.strings.reserve(v.count);
    for (uint64_t k = 0; k < v.count; ++k) {
      std::string_view s;
      if (!r.string(s, what)) return false;
      v.strings.push_back(s);
    }
    return true;
  }
  if (v.elem == ValueType::kArray) {
    for (uint64_t k = 0; k < v.count; ++k) {
      Value inner;
      if (!read_value(r, ValueType::kArray, inner, what, depth + 1)) return false;
    }
    return true;
  }
  v.numbers.reserve(v.count);
  for (uint64_t k = 0; k < v.count; ++k) {
    Value scratch;
    if (!read_scalar(r, v.elem, scratch, num, what)) return false;
    v.numbers.push_back(num);
  }
  return true;
}

bool known_tensor_type(uint32_t t) {
  return t == 0 || t == 1 || t == 8 || t == 30;
}

}  // namespace

std::string_view type_name(ValueType t) {
  static constexpr std::string_view names[] = {"uint8", "int8",  "uint16", "int16", "uint32", "int32", "float32",
                                               "bool",  "string", "array", "uint64", "int64",  "float64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "unknown";
}

std::string_view type_name(TensorType t) {
  switch (t) {
    case TensorType::kF32: return "F32";
    case TensorType::kF16: return "F16";
    case TensorType::kQ8_0: return "Q8_0";
    case TensorType::kBF16: return "BF16";
  }
  return "unknown";
}

std::optional<uint64_t> tensor_bytes(TensorType type, uint64_t elements) {
  switch (type) {
    case TensorType::kF32: return elements * 4;
    case TensorType::kF16:
    case TensorType::kBF16: return elements * 2;
    case TensorType::kQ8_0:
      if (elements % 32 != 0) return std::nullopt;
      return elements / 32 * 34;  // an f16 scale and 32 int8 per block
  }
  return std::nullopt;
}

std::optional<uint64_t> Value::as_uint() const {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kUint16:
    case ValueType::kUint32:
    case ValueType::kUint64: return u;
    case ValueType::kInt8:
    case ValueType::kInt16:
    case ValueType::kInt32:
    case ValueType::kInt64:
      if (i < 0) return std::nullopt;
      return static_cast<uint64_t>(i);
    default: return std::nullopt;
  }
}

std::optional<double> Value::as_float() const {
  switch (type) {
    case ValueType::kFloat32:
    case ValueType::kFloat64: return f;
    default:
      if (auto x = as_uint()) return static_cast<double>(*x);
      if (type == ValueType::kInt8 || type == ValueType::kInt16 || type == ValueType::kInt32 ||
          type == ValueType::kInt64) {
        return static_cast<double>(i);
      }
      return std::nullopt;
  }
}

std::unique_ptr<File> File::open(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path + ": not a regular file";
    return nullptr;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    error = path + ": empty file (not GGUF)";
    return nullptr;
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    error = path + ": cannot map: " + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<File> f(new File());
  f->name_ = path;
  f->map_ = map;
  f->base_ = static_cast<const uint8_t*>(map);
  f->size_ = size;
  if (!f->read(error)) return nullptr;
  return f;
}

std::unique_ptr<File> File::parse(const uint8_t* data, size_t size, std::string& error, const std::string& name) {
  std::unique_ptr<File> f(new File());
  f->name_ = name;
  f->base_ = data;
  f->size_ = size;
  if (!f->read(error)) return nullptr;
  return f;
}

File::~File() {
  if (map_) munmap(map_, size_);
}

void File::release(const uint8_t* data, size_t bytes) const {
  if (!map_ || data < base_ || data + bytes > base_ + size_) return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  // A private read-only file mapping: dropped pages come back from the file
  // if they are read again.
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

bool File::read(std::string& error) {
  Reader r(base_, size_);
  uint32_t magic = 0;
  uint64_t tensor_count = 0, kv_count = 0;
  auto fail = [&](const std::string& why) {
    error = name_ + ": " + why;
    return false;
  };
  if (!r.get(magic, "the header")) return fail(r.error);
  if (magic != kMagic) return fail("not a GGUF file (no GGUF magic)");
  if (!r.get(version_, "the header")) return fail(r.error);
  if (version_ != 2 && version_ != 3) {
    return fail("GGUF version " + std::to_string(version_) + " is not supported (2 and 3 are)");
  }
  if (!r.get(tensor_count, "the header") || !r.get(kv_count, "the header")) return fail(r.error);
  // Each key/value takes at least 12 bytes and each tensor 24: counts past
  // the file's size are corrupt, not a reason to allocate.
  if (kv_count > size_ / 12 || tensor_count > size_ / 24) {
    return fail("corrupt header: " + std::to_string(kv_count) + " keys and " + std::to_string(tensor_count) +
                " tensors cannot fit in " + std::to_string(size_) + " bytes");
  }
  kv_.reserve(kv_count);
  for (uint64_t k = 0; k < kv_count; ++k) {
    const std::string what = "metadata key #" + std::to_string(k);
    std::string_view key;
    uint32_t type = 0;
    if (!r.string(key, what) || !r.get(type, what)) return fail(r.error);
    const std::string where = "metadata \"" + std::string(key.substr(0, 128)) + "\"";
    if (!valid_type(type)) return fail(where + ": unknown value type " + std::to_string(type));
    Value v;
    if (!read_value(r, static_cast<ValueType>(type), v, where, 0)) return fail(r.error);
    if (kv_index_.count(std::string(key))) return fail(where + " appears twice");
    kv_index_.emplace(std::string(key), kv_.size());
    kv_.emplace_back(std::string(key), std::move(v));
  }
  if (const Value* a = find("general.alignment")) {
    const auto al = a->as_uint();
    if (!al || *al == 0 || (*al & (*al - 1)) != 0 || *al > (1u << 20)) {
      return fail("general.alignment must be a power of two (got " +
                  (al ? std::to_string(*al) : std::string(type_name(a->type))) + ")");
    }
    alignment_ = *al;
  }
  tensors_.reserve(tensor_count);
  for (uint64_t k = 0; k < tensor_count; ++k) {
    const std::string what = "tensor #" + std::to_string(k);
    TensorInfo t;
    std::string_view name;
    uint32_t n_dims = 0, type = 0;
    if (!r.string(name, what) || !r.get(n_dims, what)) return fail(r.error);
    t.name = std::string(name.substr(0, 256));
    const std::string where = "tensor \"" + t.name + "\"";
    if (n_dims == 0 || n_dims > kMaxDims) return fail(where + ": " + std::to_string(n_dims) + " dimensions (1 to 4)");
    t.elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      if (!r.get(dim, where)) return fail(r.error);
      if (dim == 0 || dim > (1ull << 40) || t.elements > (1ull << 48) / dim) {
        return fail(where + ": dimension " + std::to_string(dim) + " is out of range");
      }
      t.dims.push_back(dim);
      t.elements *= dim;
    }
    if (!r.get(type, where) || !r.get(t.offset, where)) return fail(r.error);
    if (!known_tensor_type(type)) {
      return fail(where + ": tensor type " + std::to_string(type) +
                  " is not supported (F32, F16, BF16 and Q8_0 are)");
    }
    t.type = static_cast<TensorType>(type);
    const auto bytes = tensor_bytes(t.type, t.elements);
    if (!bytes) return fail(where + ": " + std::to_string(t.elements) + " elements do not fill Q8_0 blocks of 32");
    if (t.type == TensorType::kQ8_0 && t.dims[0] % 32 != 0) {
      return fail(where + ": rows of " + std::to_string(t.dims[0]) + " do not fill Q8_0 blocks of 32");
    }
    t.bytes = *bytes;
    if (t.offset % alignment_ != 0) {
      return fail(where + ": data offset " + std::to_string(t.offset) + " is not aligned to " +
                  std::to_string(alignment_));
    }
    if (tensor_index_.count(t.name)) return fail(where + " appears twice");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  const uint64_t data_start = (r.offset() + alignment_ - 1) / alignment_ * alignment_;
  if (data_start > size_) return fail("truncated: the tensor data section starts past the end of the file");
  data_ = base_ + data_start;
  const uint64_t data_size = size_ - data_start;
  for (const auto& t : tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset) {
      return fail("truncated: tensor \"" + t.name + "\" (" + std::string(type_name(t.type)) + ", " +
                  std::to_string(t.bytes) + " bytes at " + std::to_string(t.offset) + ") runs past the end of the file");
    }
  }
  return true;
}

const Value* File::find(std::string_view key) const {
  const auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::optional<std::string_view> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v || v->type != ValueType::kString) return std::nullopt;
  return v->str;
}

std::optional<uint64_t> File::get_uint(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_uint() : std::nullopt;
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  return v ? v->as_float() : std::nullopt;
}

const TensorInfo* File::tensor(std::string_view name) const {
  const auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace sluice::gguf
