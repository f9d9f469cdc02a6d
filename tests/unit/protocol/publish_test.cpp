#include "protocol/protocol.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

namespace sg::protocol {
namespace {

ErrorCode publish_error(std::string_view body, std::size_t max_batch = 1000) {
  auto parsed = parse_publish(body, max_batch);
  EXPECT_FALSE(parsed) << body;
  return parsed ? ErrorCode() : parsed.error();
}

PublishRequest single(std::string_view body) {
  auto parsed = parse_publish(body);
  EXPECT_TRUE(parsed) << body << ": " << (parsed ? "" : parsed.error().message());
  if (!parsed) return {};
  EXPECT_FALSE(parsed->batch);
  EXPECT_EQ(parsed->items.size(), 1u);
  return parsed->items.empty() ? PublishRequest{} : parsed->items.front();
}

// One item with `field` replaced by the raw JSON `value` (or removed when value is empty).
std::string item_with(std::string_view field, std::string_view value) {
  std::string out = "{";
  const std::pair<std::string_view, std::string_view> fields[] = {{"orgId", "456"},
                                                                  {"service", R"("finance")"},
                                                                  {"event", R"("invoice.paid")"},
                                                                  {"data", R"({"amount":10})"}};
  bool first = true;
  for (const auto& [name, default_value] : fields) {
    const std::string_view v = name == field ? value : default_value;
    if (v.empty()) continue;
    if (!first) out.push_back(',');
    first = false;
    out.append("\"").append(name).append("\":").append(v);
  }
  if (!value.empty() && field != "orgId" && field != "service" && field != "event" &&
      field != "data") {
    out.append(",\"").append(field).append("\":").append(value);
  }
  out.push_back('}');
  return out;
}

// A batch: the raw JSON `items` as an array. Appended piece by piece, since `"[" + item_with(...)`
// trips GCC 12's false -Wrestrict at -O3 (a Release build of the tests).
std::string batch(std::initializer_list<std::string_view> items) {
  std::string out = "[";
  for (const std::string_view item : items) {
    if (out.size() > 1) out.push_back(',');
    out += item;
  }
  out.push_back(']');
  return out;
}

TEST(Publish, ParsesTheDocumentedSingleForm) {
  const PublishRequest r =
      single(R"({"orgId":456,"service":"finance","event":"invoice.paid","data":{"id":"inv_1"}})");
  EXPECT_EQ(r.org, "456");
  EXPECT_EQ(r.service, "finance");
  EXPECT_EQ(r.event, "invoice.paid");
  EXPECT_EQ(r.data, R"({"id":"inv_1"})");
  EXPECT_EQ(r.user, "");
  EXPECT_EQ(r.event_key, "");
}

TEST(Publish, ParsesOptionalUserAndEventId) {
  const PublishRequest r = single(
      R"({"orgId":"acme","service":"crm","event":"lead.new","data":1,"userId":"u-17","eventId":"evt_9"})");
  EXPECT_EQ(r.org, "acme");
  EXPECT_EQ(r.user, "u-17");
  EXPECT_EQ(r.event_key, "evt_9");
  EXPECT_EQ(r.data, "1");
}

TEST(Publish, NormalizesNumericAndStringOrgToTheSameText) {
  EXPECT_EQ(single(item_with("orgId", "456")).org, "456");
  EXPECT_EQ(single(item_with("orgId", R"("456")")).org, "456");
  EXPECT_EQ(single(item_with("orgId", "0")).org, "0");
  EXPECT_EQ(single(item_with("orgId", "18446744073709551615")).org, "18446744073709551615");
  EXPECT_EQ(single(item_with("orgId", "9223372036854775807")).org, "9223372036854775807");
}

TEST(Publish, NormalizesNumericUserId) {
  EXPECT_EQ(single(item_with("userId", "17")).user, "17");
  EXPECT_EQ(single(item_with("userId", "-17")).user, "-17");
  EXPECT_EQ(single(item_with("userId", "-9223372036854775808")).user, "-9223372036854775808");
}

TEST(Publish, TreatsNullOptionalFieldsAsAbsent) {
  const PublishRequest r = single(item_with("userId", "null"));
  EXPECT_EQ(r.user, "");
  EXPECT_EQ(single(item_with("eventId", "null")).event_key, "");
}

TEST(Publish, DefaultsAbsentDataToNull) {
  EXPECT_EQ(single(item_with("data", "")).data, "null");
  EXPECT_EQ(single(item_with("data", "null")).data, "null");
}

TEST(Publish, PassesDataThroughAsEquivalentJson) {
  const std::string data =
      R"({"nested":{"list":[1,-2,true,false,null,"x",{"deep":[[]]}],"empty":{}},)"
      R"("text":"caf\u00e9 \u2603 \ud83d\ude00 \"q\" \\ \n","unicode":"日本語"})";
  const PublishRequest r = single(item_with("data", data));
  EXPECT_EQ(boost::json::parse(r.data), boost::json::parse(data));
  // Already compact, so byte for byte what was sent: escapes stay escapes, UTF-8 stays UTF-8.
  EXPECT_EQ(r.data, data);
}

TEST(Publish, PassesScalarAndArrayData) {
  EXPECT_EQ(single(item_with("data", R"("hello")")).data, R"("hello")");
  EXPECT_EQ(single(item_with("data", "[1,2,3]")).data, "[1,2,3]");
  EXPECT_EQ(single(item_with("data", "true")).data, "true");
  EXPECT_EQ(single(item_with("data", "false")).data, "false");
  EXPECT_EQ(single(item_with("data", "2.5")).data, "2.5");
  EXPECT_EQ(single(item_with("data", "-0")).data, "-0");
  EXPECT_EQ(single(item_with("data", "[]")).data, "[]");
  EXPECT_EQ(single(item_with("data", "{}")).data, "{}");
}

// Regression: Boost.JSON's serializer wrote 1.5 back as 1.5E0 and rounded big integers.
TEST(Publish, KeepsDataNumbersAsTheProducerWroteThem) {
  EXPECT_EQ(single(item_with("data", "1.5")).data, "1.5");
  EXPECT_EQ(single(item_with("data", "12345678901234567890123")).data, "12345678901234567890123");
  EXPECT_EQ(single(item_with("data", R"({"a":[0.1,1E2,-3e-7,1.50]})")).data,
            R"({"a":[0.1,1E2,-3e-7,1.50]})");
}

TEST(Publish, PassesNumbersOutOfDoubleRangeThroughAsSent) {
  EXPECT_EQ(single(item_with("data", "1e400")).data, "1e400");
  EXPECT_EQ(single(item_with("data", R"({"a":[-1e999]})")).data, R"({"a":[-1e999]})");
  const std::string huge = "1" + std::string(400, '0');
  EXPECT_EQ(single(item_with("data", huge)).data, huge);
  // Zero, though Boost.JSON 1.81 reads it as NaN (which the old parser then refused).
  EXPECT_EQ(single(item_with("data", "0e400")).data, "0e400");
}

TEST(Publish, KeepsUnicodeEscapesInDataStrings) {
  EXPECT_EQ(single(item_with("data", R"("caf\u00e9")")).data, R"("caf\u00e9")");
  EXPECT_EQ(single(item_with("data", R"(["\/","\ud83d\ude00"])")).data, R"(["\/","\ud83d\ude00"])");
}

TEST(Publish, RemovesWhitespaceOutsideDataStringsOnly) {
  const PublishRequest r = single(
      "{\n  \"orgId\": 456,\n  \"service\": \"finance\",\n  \"event\": \"e\",\n"
      "  \"data\" :\t{\r\n    \"a b\" : [ 1 , \" x  y \" , { } ],\n    \"c\": null\n  }\n}\n");
  EXPECT_EQ(r.data, R"({"a b":[1," x  y ",{}],"c":null})");
}

TEST(Publish, TakesDataFromTheItemsTopLevelOnly) {
  EXPECT_EQ(
      single(R"({"data":{"data":1,"x":[{"data":3}]},"orgId":1,"service":"a","event":"e"})").data,
      R"({"data":1,"x":[{"data":3}]})");
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"\"data\":1"})").data, "null");
  EXPECT_EQ(
      single(R"({"orgId":1,"service":"a","event":"e","eventId":"\"data\":1","data":"x"})").data,
      R"("x")");
  // Other top-level members, where a nested "data" used to hide, are now refused outright.
  EXPECT_EQ(publish_error(R"({"meta":{"data":1},"orgId":1,"service":"a","event":"e","data":2})"),
            ProtocolError::kUnknownField);
}

TEST(Publish, FindsDataUnderAnEscapedKey) {
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"e","d\u0061ta":1.5})").data, "1.5");
  // "data\u0000" is another key, not "data": an unknown field.
  EXPECT_EQ(publish_error(R"({"orgId":1,"service":"a","event":"e","data\u0000":1,"data":2})"),
            ProtocolError::kUnknownField);
}

TEST(Publish, UsesTheLastOfDuplicateDataKeysLikeTheRestOfTheParse) {
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"e","data":1,"data":2.50})").data, "2.50");
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"e","data":1,"d\u0061ta":[3]})").data,
            "[3]");
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"e","data":1,"data":null})").data, "null");
  EXPECT_EQ(single(R"({"orgId":1,"service":"a","event":"e","data":null,"data":true})").data,
            "true");
}

TEST(Publish, GivesEachBatchItemItsOwnData) {
  auto parsed = parse_publish(
      " [ {\"orgId\":1,\"service\":\"a\",\"event\":\"e\",\"data\": 1.5 } ,\n"
      "{\"orgId\":1,\"service\":\"a\",\"event\":\"e\"},"
      "{\"data\":{\"k\":[ \"v\" ]},\"orgId\":1,\"service\":\"a\",\"event\":\"e\"} ] ");
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->items.size(), 3u);
  EXPECT_EQ(parsed->items[0].data, "1.5");
  EXPECT_EQ(parsed->items[1].data, "null");
  EXPECT_EQ(parsed->items[2].data, R"({"k":["v"]})");
}

TEST(Publish, AcceptsDataNestedSixtyLevelsDeep) {
  const std::string deep = std::string(60, '[') + std::string(60, ']');
  EXPECT_EQ(single(item_with("data", deep)).data, deep);
}

// Where parse_publish says the body failed.
PublishErrorDetail detail_of(std::string_view body, std::size_t max_batch = 1000) {
  PublishErrorDetail detail;
  EXPECT_FALSE(parse_publish(body, max_batch, &detail)) << body;
  return detail;
}

// Regression: unknown fields were ignored, so a producer that wrote "user_id" for "userId"
// delivered a private event to the whole org.
TEST(Publish, RefusesUnknownFieldsNamingThem) {
  const std::string body = item_with("user_id", R"("u-17")");
  EXPECT_EQ(publish_error(body), ProtocolError::kUnknownField);
  const PublishErrorDetail d = detail_of(body);
  EXPECT_EQ(d.field, "user_id");
  EXPECT_EQ(d.index, std::nullopt);
  EXPECT_EQ(d.suggestion, "userId");
  EXPECT_EQ(publish_error(item_with("priority", R"("high")")), ProtocolError::kUnknownField);
  EXPECT_EQ(detail_of(item_with("priority", R"("high")")).suggestion, "");
}

TEST(Publish, RefusesUnknownFieldsEvenWhenNull) {
  EXPECT_EQ(publish_error(item_with("user_id", "null")), ProtocolError::kUnknownField);
}

TEST(Publish, NamesUnknownFieldsAfterUnescapingAndByCase) {
  EXPECT_EQ(detail_of(item_with("user\\u005fid", R"("u")")).field, "user_id");
  EXPECT_EQ(detail_of(item_with("userid", R"("u")")).suggestion, "userId");
  EXPECT_EQ(detail_of(item_with("OrgID", "1")).suggestion, "orgId");
  EXPECT_EQ(detail_of(item_with("event_id", R"("k")")).suggestion, "eventId");
  // Keys are exact: a different case is another field.
  EXPECT_EQ(publish_error(item_with("Data", "1")), ProtocolError::kUnknownField);
}

TEST(Publish, ReportsAnUnknownFieldBeforeTheMissingOneItMisspells) {
  const std::string body = R"({"org_id":456,"service":"finance","event":"e"})";
  EXPECT_EQ(publish_error(body), ProtocolError::kUnknownField);
  EXPECT_EQ(detail_of(body).field, "org_id");
  EXPECT_EQ(detail_of(body).suggestion, "orgId");
}

TEST(Publish, AcceptsEveryDefinedField) {
  const PublishRequest r =
      single(R"({"orgId":1,"service":"a","event":"e","data":null,"userId":"u","eventId":"k"})");
  EXPECT_EQ(r.user, "u");
}

TEST(Publish, NamesTheFieldOfAMissingOrBadValue) {
  EXPECT_EQ(detail_of(item_with("orgId", "")).field, "orgId");
  EXPECT_EQ(detail_of(item_with("orgId", "-1")).field, "orgId");
  EXPECT_EQ(detail_of(item_with("service", "")).field, "service");
  EXPECT_EQ(detail_of(item_with("service", "7")).field, "service");
  EXPECT_EQ(detail_of(item_with("event", "")).field, "event");
  EXPECT_EQ(detail_of(item_with("event", R"("")")).field, "event");
  EXPECT_EQ(detail_of(item_with("userId", R"("")")).field, "userId");
  EXPECT_EQ(detail_of(item_with("eventId", "12")).field, "eventId");
  const PublishErrorDetail single_item = detail_of(item_with("event", ""));
  EXPECT_EQ(single_item.index, std::nullopt);
}

TEST(Publish, GivesTheIndexOfTheFailingBatchItem) {
  const std::string ok = item_with("", "");
  const std::string body = batch({ok, ok, item_with("event", ""), ok});
  EXPECT_EQ(publish_error(body), ProtocolError::kMissingField);
  const PublishErrorDetail d = detail_of(body);
  EXPECT_EQ(d.field, "event");
  EXPECT_EQ(d.index, 2u);
  const PublishErrorDetail first = detail_of(batch({item_with("orgId", "true"), ok}));
  EXPECT_EQ(first.field, "orgId");
  EXPECT_EQ(first.index, 0u);
  const PublishErrorDetail unknown = detail_of(batch({ok, item_with("user_id", "1")}));
  EXPECT_EQ(unknown.field, "user_id");
  EXPECT_EQ(unknown.index, 1u);
  const PublishErrorDetail scalar = detail_of(batch({ok, "7"}));
  EXPECT_EQ(scalar.field, "");
  EXPECT_EQ(scalar.index, 1u);
}

TEST(Publish, GivesNoFieldOrIndexForTheBodyAsAWhole) {
  for (const std::string& body : {std::string("{"), std::string("7"), std::string("[]"),
                                  batch({item_with("", ""), item_with("", "")})}) {
    const PublishErrorDetail d = detail_of(body, 1);
    EXPECT_EQ(d.field, "") << body;
    EXPECT_EQ(d.index, std::nullopt) << body;
  }
}

TEST(Publish, ResetsTheDetailOnEachCall) {
  PublishErrorDetail d;
  EXPECT_FALSE(parse_publish(batch({item_with("user_id", "1")}), 10, &d));
  EXPECT_FALSE(parse_publish("7", 10, &d));
  EXPECT_EQ(d.field, "");
  EXPECT_EQ(d.index, std::nullopt);
  EXPECT_EQ(d.suggestion, "");
}

TEST(Publish, ParsesABatchInOrder) {
  auto parsed = parse_publish(
      R"([{"orgId":1,"service":"a","event":"e1"},{"orgId":"2","service":"b","event":"e2","data":[0]}])");
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->batch);
  ASSERT_EQ(parsed->items.size(), 2u);
  EXPECT_EQ(parsed->items[0].org, "1");
  EXPECT_EQ(parsed->items[0].service, "a");
  EXPECT_EQ(parsed->items[0].event, "e1");
  EXPECT_EQ(parsed->items[0].data, "null");
  EXPECT_EQ(parsed->items[1].org, "2");
  EXPECT_EQ(parsed->items[1].data, "[0]");
}

TEST(Publish, MarksASingleItemArrayAsABatch) {
  auto parsed = parse_publish(batch({item_with("", "")}));
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->batch);
  EXPECT_EQ(parsed->items.size(), 1u);
}

// Regression: an empty batch was answered too_many_items.
TEST(Publish, RefusesAnEmptyBatchWithItsOwnCode) {
  EXPECT_EQ(publish_error("[]"), ProtocolError::kEmptyBatch);
  EXPECT_EQ(publish_error(" [ ] ", 0), ProtocolError::kEmptyBatch);
}

TEST(Publish, LimitsTheBatchSize) {
  const std::string item = item_with("", "");
  EXPECT_EQ(publish_error(batch({item, item, item}), 2), ProtocolError::kTooManyItems);
  auto parsed = parse_publish(batch({item, item}), 2);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->items.size(), 2u);
}

TEST(Publish, RejectsABatchWithOneBadItem) {
  EXPECT_EQ(publish_error(batch({item_with("", ""), item_with("service", R"("a b")")})),
            ProtocolError::kBadField);
  EXPECT_EQ(publish_error(batch({item_with("", ""), "7"})), ProtocolError::kNotAnObject);
}

TEST(Publish, RejectsMalformedJson) {
  EXPECT_EQ(publish_error(""), ProtocolError::kMalformedJson);
  EXPECT_EQ(publish_error("{\"orgId\":1,"), ProtocolError::kMalformedJson);
  EXPECT_EQ(publish_error("orgId=1"), ProtocolError::kMalformedJson);
  EXPECT_EQ(publish_error("{\"orgId\":\"\xc3\x28\"}"), ProtocolError::kMalformedJson);
  EXPECT_EQ(publish_error(item_with("data", std::string(70, '[') + std::string(70, ']'))),
            ProtocolError::kMalformedJson);
}

TEST(Publish, RejectsBodiesThatAreNotObjects) {
  EXPECT_EQ(publish_error("1"), ProtocolError::kNotAnObject);
  EXPECT_EQ(publish_error(R"("x")"), ProtocolError::kNotAnObject);
  EXPECT_EQ(publish_error("null"), ProtocolError::kNotAnObject);
  EXPECT_EQ(publish_error("[[]]"), ProtocolError::kNotAnObject);
}

TEST(Publish, RequiresOrgServiceAndEvent) {
  EXPECT_EQ(publish_error(item_with("orgId", "")), ProtocolError::kMissingField);
  EXPECT_EQ(publish_error(item_with("orgId", "null")), ProtocolError::kMissingField);
  EXPECT_EQ(publish_error(item_with("service", "")), ProtocolError::kMissingField);
  EXPECT_EQ(publish_error(item_with("event", "")), ProtocolError::kMissingField);
}

TEST(Publish, FollowsCoresOrgIdRule) {
  for (const std::string_view org : {"456", "acme-eu", "-7", "caf\xc3\xa9"}) {
    std::string quoted = "\"";  // appended: see batch() on GCC 12's -Wrestrict
    quoted += org;
    quoted += '"';
    EXPECT_EQ(single(item_with("orgId", quoted)).org, core::org_id_from_text(org));
  }
  EXPECT_EQ(single(item_with("orgId", "456")).org, core::org_id_from_integer(std::int64_t{456}));
  EXPECT_EQ(core::org_id_from_integer(std::int64_t{-1}), std::nullopt);
  EXPECT_EQ(publish_error(item_with("orgId", "-1")), ProtocolError::kBadField);
  EXPECT_EQ(core::org_id_from_text("a\x1b"), std::nullopt);
  EXPECT_EQ(publish_error(item_with("orgId", R"("a\u001b")")), ProtocolError::kBadField);
}

TEST(Publish, RejectsBadOrg) {
  EXPECT_EQ(publish_error(item_with("orgId", "-1")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", "-9223372036854775808")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", "4.5")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", "1e3")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", R"("")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", "true")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", "[1]")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("orgId", R"("a\nb")")), ProtocolError::kBadField);
  const std::string ok(128, 'o');
  EXPECT_EQ(single(item_with("orgId", "\"" + ok + "\"")).org, ok);
  EXPECT_EQ(publish_error(item_with("orgId", "\"" + ok + "o\"")), ProtocolError::kBadField);
}

TEST(Publish, RejectsBadService) {
  EXPECT_EQ(publish_error(item_with("service", R"("")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("service", R"("fin/ance")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("service", "5")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("service", "\"" + std::string(65, 's') + "\"")),
            ProtocolError::kBadField);
}

TEST(Publish, RejectsBadEventType) {
  EXPECT_EQ(publish_error(item_with("event", R"("")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("event", "1")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("event", R"("a\tb")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("event", R"("a\u007fb")")), ProtocolError::kBadField);
  const std::string ok(128, 'e');
  EXPECT_EQ(single(item_with("event", "\"" + ok + "\"")).event, ok);
  EXPECT_EQ(publish_error(item_with("event", "\"" + ok + "e\"")), ProtocolError::kBadField);
}

TEST(Publish, AcceptsEventTypesWithSpacesAndUnicode) {
  EXPECT_EQ(single(item_with("event", R"("Invoice Paid – EU")")).event, "Invoice Paid – EU");
}

TEST(Publish, RejectsBadUserId) {
  EXPECT_EQ(publish_error(item_with("userId", R"("")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("userId", "1.5")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("userId", "{}")), ProtocolError::kBadField);
  const std::string ok(256, 'u');
  EXPECT_EQ(single(item_with("userId", "\"" + ok + "\"")).user, ok);
  EXPECT_EQ(publish_error(item_with("userId", "\"" + ok + "u\"")), ProtocolError::kBadField);
}

TEST(Publish, RejectsBadEventId) {
  EXPECT_EQ(publish_error(item_with("eventId", R"("")")), ProtocolError::kBadField);
  EXPECT_EQ(publish_error(item_with("eventId", "12")), ProtocolError::kBadField);
  const std::string ok(128, 'k');
  EXPECT_EQ(single(item_with("eventId", "\"" + ok + "\"")).event_key, ok);
  EXPECT_EQ(publish_error(item_with("eventId", "\"" + ok + "k\"")), ProtocolError::kBadField);
}

}  // namespace
}  // namespace sg::protocol
