// CompactString: a string in one pointer: null when empty, else a single
// allocation holding its size and its bytes. For fields that are empty on
// nearly every object that has them (a journal event's request id, tool
// name, plugin, ...), where std::string's 32 bytes would be paid by each.
// Not for text that grows: every assignment allocates anew.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

class CompactString {
 public:
  CompactString() = default;
  CompactString(std::string_view s) : p_(make(s)) {}
  CompactString(const std::string& s) : p_(make(s)) {}
  CompactString(const char* s) : p_(make(s)) {}
  CompactString(const CompactString& o) : p_(make(o.view())) {}
  CompactString(CompactString&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ~CompactString() { std::free(p_); }

  CompactString& operator=(const CompactString& o) { return assign(o.view()); }
  CompactString& operator=(CompactString&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  CompactString& operator=(std::string_view s) { return assign(s); }
  CompactString& operator=(const std::string& s) { return assign(s); }
  CompactString& operator=(const char* s) { return assign(s); }

  std::string_view view() const { return view_of(p_); }
  operator std::string_view() const { return view(); }
  std::string str() const { return std::string(view()); }
  bool empty() const { return p_ == nullptr; }
  size_t size() const { return view().size(); }
  // Heap bytes held, for memory budgets.
  size_t capacity() const { return p_ ? sizeof(uint32_t) + size() : 0; }

  friend bool operator==(const CompactString& a, std::string_view b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const CompactString& s) { return os << s.view(); }

  // The raw form, for holders of immutable bytes that keep it themselves
  // (an atomic pointer): release() hands it over, view_of() reads it,
  // free_raw() lets it go.
  char* release() { return std::exchange(p_, nullptr); }
  static std::string_view view_of(const char* raw) {
    if (!raw) return {};
    uint32_t n;
    std::memcpy(&n, raw, sizeof n);
    return {raw + sizeof n, n};
  }
  static void free_raw(char* raw) { std::free(raw); }

 private:
  static char* make(std::string_view s) {
    if (s.empty()) return nullptr;
    const auto n = static_cast<uint32_t>(s.size());
    char* p = static_cast<char*>(std::malloc(sizeof n + s.size()));
    if (!p) throw std::bad_alloc();
    std::memcpy(p, &n, sizeof n);
    std::memcpy(p + sizeof n, s.data(), s.size());
    return p;
  }
  CompactString& assign(std::string_view s) {
    char* fresh = make(s);
    std::free(p_);
    p_ = fresh;
    return *this;
  }

  char* p_ = nullptr;
};

}  // namespace sluice
