// An example Sluice plugin, as a new author writes one from docs/plugins.md:
// a weather tool with typed arguments (sluice/json.hpp), an unknown city as
// a not-found answer, a deadline it respects (ABI 1.1), and a moderator that
// keeps the station's internal codes ("WX-" and digits) out of answers.
// Settings:
//   [plugins.settings]
//   unit = "C"          # or "F"
#include <array>
#include <chrono>
#include <string>
#include <thread>

#include "sluice/json.hpp"
#include "sluice/plugin.hpp"

class Weather {
 public:
  static constexpr const char* kName = "weather";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription = "Weather forecasts for a few cities";

  explicit Weather(sluice::Context ctx) : ctx_(ctx) {
    unit_ = sluice::setting<std::string>(sluice::settings(ctx), "unit", "C");
    if (unit_ != "C" && unit_ != "F") throw sluice::ConfigError("unit must be \"C\" or \"F\"");
  }

  static constexpr auto tools() {
    return std::array{sluice::tool<&Weather::forecast>(
        "get_weather", "The weather forecast for a city, for 1 to 7 days.",
        R"({"type":"object","properties":{"city":{"type":"string","minLength":1},
            "days":{"type":"integer","minimum":1,"maximum":7}},"required":["city"]})",
        2000)};
  }

  sluice::Json forecast(const sluice::Args& args, sluice::ToolResult& result) {
    const std::string city = args.get<std::string>("city");
    const int days = args.get_or<int>("days", 1);
    const City* c = find(city);
    if (!c) throw sluice::ToolError(SLUICE_ERR_NOT_FOUND, "no forecast for \"" + city + "\"");
    sluice::Json out = {{"city", c->name}, {"unit", unit_}, {"days", sluice::Json::array()}};
    for (int d = 0; d < days; ++d) {
      if (result.cancelled()) break;  // past the deadline: what is left is not read
      const double high = c->high + d % 3;
      out["days"].push_back({{"day", d + 1}, {"high", unit_ == "F" ? high * 9 / 5 + 32 : high}, {"sky", c->sky},
                             {"station", "WX-" + std::to_string(1000 + d)}});
    }
    result.add_source("Sluice weather service", std::string("https://weather.example/") + c->slug, c->name);
    ctx_.counter_add("forecasts");
    return out;
  }

  // The moderator: "WX-" followed by digits becomes "[station]"; a piece
  // that ends in a prefix of it is held until the next piece.
  struct Stream {};
  void on_text(Stream&, std::string_view pending, size_t, uint32_t flags, sluice::Verdict& verdict) {
    const bool final = flags & (SLUICE_TEXT_FINAL | SLUICE_TEXT_FLUSH);
    std::string out;
    bool replaced = false;
    size_t i = 0;
    for (; i < pending.size(); ++i) {
      const std::string_view rest = pending.substr(i);
      if (rest.substr(0, 3) == "WX-") {
        size_t j = i + 3;
        while (j < pending.size() && pending[j] >= '0' && pending[j] <= '9') ++j;
        if (j == pending.size() && !final) break;  // more digits may follow
        if (j > i + 3) {
          out += "[station]";
          replaced = true;
          i = j - 1;
          continue;
        }
      } else if (!final && rest.size() < 3 && std::string_view("WX-").substr(0, rest.size()) == rest) {
        break;  // "W" or "WX" at the end: wait
      }
      out += pending[i];
    }
    const size_t hold = pending.size() - i;
    if (replaced) return verdict.replace(out, hold, "station_code");
    verdict.pass(hold);
  }

 private:
  struct City {
    const char* name;
    const char* slug;
    const char* aliases[3];
    double high;
    const char* sky;
  };
  static const City* find(const std::string& q) {
    static const City cities[] = {
        {"Beijing", "beijing", {"beijing", "北京", "peking"}, 8, "sunny"},
        {"Shanghai", "shanghai", {"shanghai", "上海", nullptr}, 14, "cloudy"},
        {"Paris", "paris", {"paris", "巴黎", nullptr}, 11, "rain"},
    };
    std::string lower;
    for (unsigned char ch : q) lower += static_cast<char>(ch < 128 ? std::tolower(ch) : ch);
    for (const auto& c : cities) {
      for (const char* a : c.aliases) {
        if (a && lower == a) return &c;
      }
    }
    return nullptr;
  }

  sluice::Context ctx_;
  std::string unit_;
};

SLUICE_PLUGIN(Weather)
