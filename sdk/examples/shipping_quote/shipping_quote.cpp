// An example Sluice plugin: a tool that quotes shipping cost and days for a
// destination, a tiny moderator that keeps internal ticket references
// ("INT-1234") out of answers, and a retriever (ABI 1.2) that offers the
// shipping-rates page as a passage when a question is about shipping.
// Settings:
//   [plugins.settings]
//   base_fee_cents = 500
//
// Build: see ../CMakeLists.txt. Check: sluice-plugin-check shipping_quote.so
#include <cctype>
#include <string>

#include "sluice/json.hpp"  // typed arguments and results (nlohmann/json)
#include "sluice/plugin.hpp"

class ShippingQuote {
 public:
  static constexpr const char* kName = "shipping_quote";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription = "Shipping quotes, and internal ticket references kept out";

  // Settings arrive as one JSON object; a wrong type refuses the start
  // with a message naming the setting.
  explicit ShippingQuote(sluice::Context ctx)
      : ctx_(ctx), base_fee_cents_(sluice::setting<int>(sluice::settings(ctx), "base_fee_cents", 500)) {
    if (base_fee_cents_ < 0) throw sluice::ConfigError("base_fee_cents must not be negative");
  }

  static constexpr auto tools() {
    return std::array{sluice::tool<&ShippingQuote::quote>(
        "quote_shipping", "Quote the shipping cost and delivery days to a country.",
        R"({"type":"object","properties":{"country":{"type":"string","minLength":2,"maxLength":2,
            "description":"ISO 3166 country code, such as CN or US"}},"required":["country"]})")};
  }

  static constexpr auto retrievers() {
    return std::array{sluice::retriever<&ShippingQuote::search>("shipping_pages", "Shipping rate pages", 200)};
  }

  // Typed (sluice/json.hpp): the request parsed; passages best first. The
  // conversation makes a follow-up ("and to Japan?") count as well.
  void search(const sluice::RetrievalRequest& req, sluice::Passages& out) {
    auto about_shipping = [](std::string text) {
      for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const char* w : {"ship", "deliver", "postage", "运费", "配送", "寄"}) {
        if (text.find(w) != std::string::npos) return true;
      }
      return false;
    };
    bool relevant = about_shipping(req.query);
    for (const auto& m : req.conversation) relevant = relevant || (m.role == "user" && about_shipping(m.content));
    if (!relevant) return;  // no passage is an answer too
    out.add("rates", "Shipping rates", "https://shop.example/shipping",
            "Shipping costs " + std::to_string(base_fee_cents_ / 100) + " USD within China (3 days) and " +
                std::to_string(base_fee_cents_ / 100 + 15) + " USD abroad (9 days). 运费以美元计。",
            1.0, R"({"section":"shipping"})");
  }

  // Typed: the arguments parsed, the value returned is the result.
  sluice::Json quote(const sluice::Args& args, sluice::ToolResult& result) {
    std::string country = args.get<std::string>("country");
    for (auto& c : country) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (country == "AQ") throw sluice::ToolError(SLUICE_ERR_NOT_FOUND, "we do not ship to Antarctica");
    const bool domestic = country == "CN";
    const int cents = base_fee_cents_ + (domestic ? 0 : 1500);
    const int days = domestic ? 3 : 9;
    result.add_source("Shipping rates", "https://shop.example/shipping", "Rates and delivery times by country");
    ctx_.counter_add("quotes");
    return {{"country", country},
            {"cost", std::to_string(cents / 100) + "." + (cents % 100 < 10 ? "0" : "") + std::to_string(cents % 100) +
                         " USD"},
            {"days", days}};
  }

  // The moderator: one stream per answer. "INT-" followed by digits is
  // replaced; a trailing "I", "IN", "INT", "INT-" or digits are held until
  // the next text shows what they are.
  struct Stream {};
  void on_text(Stream&, std::string_view pending, size_t, uint32_t flags, sluice::Verdict& verdict) {
    const bool final = flags & (SLUICE_TEXT_FINAL | SLUICE_TEXT_FLUSH);
    std::string out;
    size_t i = 0;
    bool replaced = false;
    size_t hold = 0;
    while (i < pending.size()) {
      if (pending.compare(i, 4, "INT-") == 0 || (!final && std::string_view("INT-").substr(0, pending.size() - i) == pending.substr(i))) {
        size_t j = i + 4;
        while (j < pending.size() && std::isdigit(static_cast<unsigned char>(pending[j]))) ++j;
        if (j >= pending.size() && !final) {  // may go on: hold from here
          hold = pending.size() - i;
          break;
        }
        if (j > i + 4) {
          out += "[internal reference]";
          replaced = true;
          i = j;
          continue;
        }
      }
      out += pending[i++];
    }
    if (replaced) return verdict.replace(out, hold, "internal_reference");
    verdict.pass(hold);
  }

  void self_test() {
    if (base_fee_cents_ < 0) throw std::runtime_error("base_fee_cents is negative");
  }

 private:
  sluice::Context ctx_;
  int base_fee_cents_ = 500;
};

SLUICE_PLUGIN(ShippingQuote)
