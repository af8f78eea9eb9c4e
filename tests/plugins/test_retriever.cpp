// A retriever (ABI 1.2) for the gateway's retrieval tests, built with the
// C++ SDK layer as a third party would. Settings: {"mode": ...}
//   "fixed"    two passages (Chinese and emoji in them), best first
//   "fails"    SLUICE_ERR_UNAVAILABLE, its index is down
//   "throws"   a C++ exception (the SDK turns it into an internal error)
//   "slow"     answers after `sleep_ms` (default 3000): past the deadline
//   "crashes"  a null dereference (in its host process)
//   "bad"      passages without an id or with text that is not UTF-8, and one good one
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "sluice/plugin.hpp"

class TestRetriever {
 public:
  static constexpr const char* kName = "test_retriever";
  static constexpr const char* kVersion = "0.1.0";
  static constexpr const char* kDescription = "a retriever that misbehaves on request";

  explicit TestRetriever(sluice::Context ctx) : ctx_(ctx) {
    const std::string json(ctx.config_json());
    for (const char* m : {"fixed", "fails", "throws", "slow", "crashes", "bad"}) {
      if (json.find(std::string("\"") + m + "\"") != std::string::npos) mode_ = m;
    }
    if (const auto at = json.find("\"sleep_ms\":"); at != std::string::npos) sleep_ms_ = std::atoi(json.c_str() + at + 11);
  }

  static constexpr auto retrievers() {
    return std::array{sluice::retriever<&TestRetriever::search>("test", "misbehaves on request")};
  }

  void search(std::string_view request, sluice::Passages& out) {
    ctx_.info("request: " + std::string(request));
    if (mode_ == "fails") throw sluice::ToolError(SLUICE_ERR_UNAVAILABLE, "the index is down");
    if (mode_ == "throws") throw std::runtime_error("index file truncated");
    if (mode_ == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (mode_ == "crashes") {
      volatile int* p = nullptr;
      *p = 1;
    }
    if (mode_ == "bad") {
      out.add("", "no id", "", "text without an id", 9);
      out.add("bad-utf8", "bad", "", std::string_view("\xff\xfe broken", 9), 8);
    }
    out.add("faq#returns", "退货 › Return window", "https://shop.example/faq#returns",
            "Items can be returned within 30 days 📦; 收货后30天内可以退货。", 2.5, R"({"lang":"mixed"})");
    if (mode_ != "bad") out.add("faq#shipping", "Shipping", "", "Standard shipping takes 3 to 5 business days.", 1.25);
  }

 private:
  sluice::Context ctx_;
  std::string mode_ = "fixed";
  int sleep_ms_ = 3000;
};

SLUICE_PLUGIN(TestRetriever)
