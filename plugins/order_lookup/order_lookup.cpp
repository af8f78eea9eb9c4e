// The first-party order_lookup plugin: the tool lookup_order(order_id) over
// a real SQLite database (tools/make_demo_orders.py writes the demo one),
// opened read-only and queried with bound parameters. It returns the order's
// status, items and shipping events, and a source card linking to the order.
//
// Settings ([plugins.settings]):
//   database = "/var/lib/sluice/orders.sqlite"       # required
//   order_url = "https://shop.example/orders/{id}"  # the source card's link
#include <simdjson.h>
#include <sqlite3.h>

#include <memory>
#include <string>

#include "sluice/plugin.hpp"

namespace sluice::order_lookup {

constexpr const char* kSchema = R"({
  "type": "object",
  "properties": {
    "order_id": {"type": "string", "pattern": "^[A-Za-z][0-9]{3,9}$",
                 "description": "The order number, such as A1001"}
  },
  "required": ["order_id"],
  "additionalProperties": false
})";

// One prepared statement, reset when it goes.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw ToolError(SLUICE_ERR_UNAVAILABLE, std::string("database: ") + sqlite3_errmsg(db));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  void bind(int i, std::string_view v) { sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw ToolError(SLUICE_ERR_UNAVAILABLE, std::string("database: ") + sqlite3_errstr(rc));
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class OrderLookup {
 public:
  static constexpr const char* kName = "order_lookup";
  static constexpr const char* kVersion = "1.0.0";
  static constexpr const char* kDescription = "Looks up orders in a SQLite database (read-only)";

  explicit OrderLookup(Context ctx) : ctx_(ctx) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    const std::string json(ctx.config_json());
    std::string_view path;
    if (parser.parse(json).get(doc) != simdjson::SUCCESS || doc["database"].get(path) != simdjson::SUCCESS) {
      throw ConfigError("settings need database = \"PATH\" (the orders SQLite file)");
    }
    std::string_view url;
    if (doc["order_url"].get(url) == simdjson::SUCCESS) order_url_ = url;
    sqlite3* db = nullptr;
    // Read-only, and serialized: tool calls come from several worker threads.
    const int rc = sqlite3_open_v2(std::string(path).c_str(), &db,
                                   SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, nullptr);
    db_.reset(db);
    if (rc != SQLITE_OK) {
      throw ConfigError("cannot open database " + std::string(path) + ": " +
                        (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    }
    sqlite3_busy_timeout(db, 1000);
    Statement probe(db, "SELECT count(*) FROM orders");
    if (!probe.step()) throw ConfigError("database " + std::string(path) + " has no orders table");
    ctx_.info("database " + std::string(path) + ": " + std::to_string(probe.integer(0)) + " orders");
  }

  static constexpr auto tools() {
    return std::array{tool<&OrderLookup::lookup_order>(
        "lookup_order",
        "Look up a customer's order by its order number: status, items, shipping events. "
        "Use it whenever the user asks about a specific order.",
        kSchema)};
  }

  void lookup_order(std::string_view args_json, ToolResult& result) {
    simdjson::dom::parser parser;
    simdjson::dom::element args;
    std::string_view id;
    if (parser.parse(std::string(args_json)).get(args) != simdjson::SUCCESS ||
        args["order_id"].get(id) != simdjson::SUCCESS) {
      throw ToolError(SLUICE_ERR_INVALID_ARGUMENT, "order_id is required");
    }
    std::string order_id(id);
    for (auto& c : order_id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ctx_.counter_add("lookups");

    Statement order(db_.get(),
                    "SELECT status, placed_at, currency, total_cents, carrier, tracking, customer "
                    "FROM orders WHERE id = ?1");
    order.bind(1, order_id);
    if (!order.step()) {
      ctx_.counter_add("not_found");
      result.set_json(R"({"found":false,"order_id":)" + json_string(order_id) +
                      R"(,"message":"No order has this number. Ask the customer to check it."})");
      return;
    }
    const std::string status = order.text(0);
    const int64_t total = order.integer(3);
    std::string json = R"({"found":true,"order_id":)" + json_string(order_id) +
                       R"(,"status":)" + json_string(status) + R"(,"placed_at":)" + json_string(order.text(1)) +
                       R"(,"total":)" + json_string(std::to_string(total / 100) + "." + two_digits(total % 100) +
                                                    " " + order.text(2));
    if (!order.text(4).empty()) {
      json += R"(,"carrier":)" + json_string(order.text(4)) + R"(,"tracking":)" + json_string(order.text(5));
    }

    Statement items(db_.get(),
                    "SELECT p.name_en, p.name_zh, i.quantity FROM order_items i "
                    "JOIN products p ON p.sku = i.sku WHERE i.order_id = ?1 ORDER BY p.sku");
    items.bind(1, order_id);
    json += R"(,"items":[)";
    int count = 0;
    for (bool first = true; items.step(); first = false) {
      json += std::string(first ? "" : ",") + R"({"name":)" + json_string(items.text(0)) + R"(,"name_zh":)" +
              json_string(items.text(1)) + R"(,"quantity":)" + std::to_string(items.integer(2)) + "}";
      ++count;
    }
    Statement events(db_.get(),
                     "SELECT at, location, description FROM shipping_events WHERE order_id = ?1 "
                     "ORDER BY at");
    events.bind(1, order_id);
    json += R"(],"shipping":[)";
    std::string last_event;
    for (bool first = true; events.step(); first = false) {
      json += std::string(first ? "" : ",") + R"({"at":)" + json_string(events.text(0)) + R"(,"location":)" +
              json_string(events.text(1)) + R"(,"event":)" + json_string(events.text(2)) + "}";
      last_event = events.text(2) + ", " + events.text(1);
    }
    json += "]}";
    result.set_json(json);
    std::string url = order_url_;
    if (const auto at = url.find("{id}"); at != std::string::npos) url.replace(at, 4, order_id);
    result.add_source("Order " + order_id, url,
                      "Status: " + status + " · " + std::to_string(count) + " item(s) · " + last_event);
  }

  void self_test() {
    Statement first(db_.get(), "SELECT id FROM orders ORDER BY id LIMIT 1");
    if (!first.step()) throw std::runtime_error("the orders table is empty");
  }

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  static std::string two_digits(int64_t v) { return (v < 10 ? "0" : "") + std::to_string(v); }

  Context ctx_;
  std::unique_ptr<sqlite3, Close> db_;
  std::string order_url_ = "https://shop.example/orders/{id}";
};

}  // namespace sluice::order_lookup

SLUICE_PLUGIN(sluice::order_lookup::OrderLookup)
