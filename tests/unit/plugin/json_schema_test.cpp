#include "gateway/plugin/json_schema.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

const char* kOrder = R"({"type":"object","properties":{
  "order_id":{"type":"string","pattern":"^[A-Za-z][0-9]{3,9}$"},
  "note":{"type":"string","maxLength":4},
  "count":{"type":"integer","minimum":1,"maximum":10},
  "tags":{"type":"array","items":{"enum":["gift","express"]},"maxItems":2}},
  "required":["order_id"],"additionalProperties":false})";

TEST(JsonSchema, AcceptsWhatTheSchemaAllows) {
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001"})"), "");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"a123","note":"礼物包装","count":3.0,"tags":["gift"]})"), "");
}

TEST(JsonSchema, NamesTheFirstOffendingPlace) {
  EXPECT_EQ(check_json_schema(kOrder, R"({})"), "order_id: is required");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":1001})"), "order_id: must be string (got integer)");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"1001"})"), "order_id: must match ^[A-Za-z][0-9]{3,9}$");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001","note":"礼物包装!"})"),
            "note: must be at most 4 characters");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001","count":11})"), "count: must be at most 10");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001","count":2.5})"),
            "count: must be integer (got number)");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001","tags":["rush"]})"),
            R"(tags[0]: must be one of ["gift","express"])");
  EXPECT_EQ(check_json_schema(kOrder, R"({"order_id":"A1001","extra":true})"), "extra: is not an accepted argument");
  EXPECT_EQ(check_json_schema(kOrder, R"([1,2])"), "the arguments: must be object (got array)");
  EXPECT_EQ(check_json_schema(kOrder, "{not json"), "the arguments are not valid JSON");
}

TEST(JsonSchema, JsonOrString) {
  EXPECT_EQ(json_or_string(R"({ "a" : 1 })"), R"({"a":1})");
  EXPECT_EQ(json_or_string(R"({"order_id": "A10)"), R"("{\"order_id\": \"A10")");
}

}  // namespace
}  // namespace sluice
