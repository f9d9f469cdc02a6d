// The SAX fast path against the DOM path it stands in for: on every body parse_publish must
// answer exactly what the DOM alone answers (value, error code, field, index, suggestion), and
// whatever the fast path accepts must be what the DOM makes of it.
#include "protocol/publish_paths.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace sg::protocol {
namespace {

void expect_same(const PublishRequest& a, const PublishRequest& b, std::string_view body) {
  EXPECT_EQ(a.org, b.org) << body;
  EXPECT_EQ(a.service, b.service) << body;
  EXPECT_EQ(a.event, b.event) << body;
  EXPECT_EQ(a.data, b.data) << body;
  EXPECT_EQ(a.user, b.user) << body;
  EXPECT_EQ(a.event_key, b.event_key) << body;
}

void expect_same(const Result<PublishBody>& a, const PublishErrorDetail& da,
                 const Result<PublishBody>& b, const PublishErrorDetail& db,
                 std::string_view body) {
  ASSERT_EQ(a.has_value(), b.has_value()) << body;
  if (!a) {
    EXPECT_EQ(a.error(), b.error()) << body;
    EXPECT_EQ(da.field, db.field) << body;
    EXPECT_EQ(da.index, db.index) << body;
    EXPECT_EQ(da.suggestion, db.suggestion) << body;
    return;
  }
  EXPECT_EQ(a->batch, b->batch) << body;
  ASSERT_EQ(a->items.size(), b->items.size()) << body;
  for (std::size_t i = 0; i < a->items.size(); ++i) expect_same(a->items[i], b->items[i], body);
}

std::vector<std::string> corpus() {
  const std::string deep_ok = std::string(62, '[') + "1" + std::string(62, ']');
  const std::string too_deep = std::string(70, '[') + "1" + std::string(70, ']');
  return {
      // the common shape and its variations
      R"({"orgId":456,"service":"finance","event":"invoice.paid","data":{"amount":1.5}})",
      R"(  {"orgId":"456", "service":"finance", "event":"e", "data": [1, 2, {"a": "b"}] } )",
      R"({"orgId":456,"service":"finance","event":"e"})",
      R"({"orgId":456,"service":"finance","event":"e","data":null})",
      R"({"orgId":456,"service":"finance","event":"e","data":"text \" \\ \u00e9"})",
      R"({"orgId":456,"service":"finance","event":"e","data":1e400})",
      R"({"orgId":456,"service":"finance","event":"e","data":true})",
      R"({"orgId":456,"service":"finance","event":"e","data":-0.5})",
      R"({"data":{"orgId":1},"event":"e","service":"finance","orgId":7})",
      R"({"orgId":7, "data" : [ 1 , "x,}" ] , "event":"e","service":"finance"})",
      R"({"orgId":7,"data":"}","service":"finance","event":"e","data2":1})",
      R"({"orgId":7,"service":"finance","event":"e","data":{}   }   )",
      R"({"orgId":456,"service":"finance","event":"e","userId":"u-1","eventId":"k1"})",
      R"({"orgId":456,"service":"finance","event":"e","userId":17})",
      R"({"orgId":456,"service":"finance","event":"e","userId":-17})",
      R"({"orgId":456,"service":"finance","event":"e","userId":-9223372036854775808})",
      R"({"orgId":456,"service":"finance","event":"e","userId":18446744073709551615})",
      R"({"orgId":456,"service":"finance","event":"e","userId":null,"eventId":null})",
      R"({"orgId":18446744073709551615,"service":"finance","event":"e"})",
      R"({"orgId":-1,"service":"finance","event":"e"})",
      R"({"orgId":0,"service":"finance","event":"e"})",
      R"({"orgId":4.0,"service":"finance","event":"e"})",
      R"({"orgId":"","service":"finance","event":"e"})",
      R"({"orgId":"a b","service":"finance","event":"e"})",
      R"({"orgId":true,"service":"finance","event":"e"})",
      R"({"orgId":null,"service":"finance","event":"e"})",
      R"({"orgId":[1],"service":"finance","event":"e"})",
      R"({"orgId":{"a":1},"service":"finance","event":"e"})",
      // escapes in values and names
      R"({"orgId":"4\u0035","service":"fin\u0061nce","event":"e\n","data":1})",
      R"({"orgId":456,"service":"finance","event":"inv\u00e9.paid"})",
      R"({"orgId":456,"service":"finance","event":"e","userId":"a\u0000b"})",
      R"({"or\u0067Id":456,"service":"finance","event":"e"})",
      R"({"orgId":456,"service":"finance","event":"e","d\u0061ta":{"x":1}})",
      R"({"orgId":456,"service":"finance","event":"e","us\u0065r_id":"u"})",
      // duplicates: the DOM keeps the last
      R"({"orgId":1,"orgId":2,"service":"finance","event":"e"})",
      R"({"orgId":1,"service":"finance","event":"e","data":1,"data":{"b":2}})",
      R"({"orgId":1,"service":"finance","event":"e","userId":"a","userId":null})",
      R"({"orgId":1,"service":"finance","event":"e","event":""})",
      // missing, bad and unknown fields
      R"({"service":"finance","event":"e"})",
      R"({"orgId":1,"event":"e"})",
      R"({"orgId":1,"service":"finance"})",
      R"({"orgId":1,"service":"fin ance","event":"e"})",
      R"({"orgId":1,"service":"","event":"e"})",
      R"({"orgId":1,"service":5,"event":"e"})",
      R"({"orgId":1,"service":"finance","event":""})",
      R"({"orgId":1,"service":"finance","event":")" + std::string(129, 'x') + R"("})",
      R"({"orgId":1,"service":"finance","event":")" + std::string(128, 'x') + R"("})",
      R"({"orgId":1,"service":"finance","event":"e","userId":""})",
      R"({"orgId":1,"service":"finance","event":"e","userId":1.5})",
      R"({"orgId":1,"service":"finance","event":"e","userId":")" + std::string(257, 'u') + R"("})",
      R"({"orgId":1,"service":"finance","event":"e","eventId":""})",
      R"({"orgId":1,"service":"finance","event":"e","eventId":7})",
      R"({"orgId":1,"service":"finance","event":"e","user_id":"u"})",
      R"({"orgId":1,"service":"finance","event":"e","Data":1})",
      R"({"orgId":1,"service":"finance","event":"e","extra":null})",
      R"({"org_id":1,"service":"finance","event":"e"})",
      // deep data, malformed text, other roots
      R"({"orgId":1,"service":"finance","event":"e","data":)" + deep_ok + "}",
      R"({"orgId":1,"service":"finance","event":"e","data":)" + too_deep + "}",
      R"({"orgId":1,"service":"finance","event":"e","data":{"a":[1,2,}})",
      R"({"orgId":1,"service":"finance","event":"e"} x)",
      R"({"orgId":1,"service":"finance","event":"e"}{})",
      "{\"orgId\":1,\"service\":\"finance\",\"event\":\"e\"} \r\n\t",
      "\t{ \"orgId\" :\n1 ,\"service\":\"finance\",\"event\":\"e\",\"data\":\n{ } }",
      R"({"orgId":1,"service":"finance","event":"e",})",
      R"({"orgId":1,"service":"finance","event":"e")",
      "{\"orgId\":1,\"service\":\"finance\",\"event\":\"\xff\"}",
      "",
      "   ",
      "null",
      "\"text\"",
      "42",
      "{}",
      // batches
      "[]",
      R"([{"orgId":1,"service":"finance","event":"e","data":{"i":1}},{"orgId":"2","service":"ops","event":"f"}])",
      R"([{"orgId":1,"service":"finance","event":"e"},{"orgId":1,"service":"finance"}])",
      R"([{"orgId":1,"service":"finance","event":"e"},5])",
      R"([{"orgId":1,"service":"finance","event":"e","usr":1}])",
      R"([[{"orgId":1,"service":"finance","event":"e"}]])",
  };
}

TEST(PublishPaths, ParsePublishAnswersAsTheDomDoesOnEveryBody) {
  for (const std::string& body : corpus()) {
    PublishErrorDetail dom_detail, detail;
    const auto dom = detail::parse_publish_dom(body, 1000, dom_detail);
    const auto both = parse_publish(body, 1000, &detail);
    expect_same(both, detail, dom, dom_detail, body);
  }
}

TEST(PublishPaths, WhatTheFastPathAcceptsIsWhatTheDomMakesOfIt) {
  std::size_t taken = 0;
  for (const std::string& body : corpus()) {
    const auto fast = detail::parse_publish_fast(body);
    if (!fast) continue;
    ++taken;
    PublishErrorDetail dom_detail;
    const auto dom = detail::parse_publish_dom(body, 1000, dom_detail);
    ASSERT_TRUE(dom) << body;
    const Result<PublishBody> fast_result = std::move(*fast);
    expect_same(fast_result, PublishErrorDetail{}, dom, dom_detail, body);
  }
  // The corpus's valid single objects without escaped or repeated names.
  EXPECT_GE(taken, 20u);
}

TEST(PublishPaths, FastPathTakesTheCommonShapeAndLeavesTheRest) {
  EXPECT_TRUE(detail::parse_publish_fast(
      R"({"orgId":456,"service":"finance","event":"invoice.paid","data":{"amount":1}})"));
  for (const std::string_view body : {
           R"([{"orgId":1,"service":"finance","event":"e"}])",
           R"({"or\u0067Id":456,"service":"finance","event":"e"})",
           R"({"orgId":1,"orgId":2,"service":"finance","event":"e"})",
           R"({"orgId":1,"service":"finance","event":"e","user_id":"u"})",
           R"({"orgId":null,"service":"finance","event":"e"})",
       }) {
    EXPECT_FALSE(detail::parse_publish_fast(body)) << body;
  }
}

}  // namespace
}  // namespace sg::protocol
