#include "protocol/protocol.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <string>

namespace sg::protocol {
namespace {

namespace json = boost::json;

// Every frame must be one JSON object; returns it (empty on failure, which fails the test).
json::object parse_frame(const std::string& frame) {
  boost::system::error_code ec;
  json::value v = json::parse(frame, ec);
  EXPECT_FALSE(ec) << frame;
  EXPECT_TRUE(v.is_object()) << frame;
  return v.is_object() ? v.get_object() : json::object();
}

constexpr std::string_view kTime = "2026-11-27T10:43:50.123Z";

TEST(SerializeAck, WritesTheFixedShapeWithoutResume) {
  Ack ack;
  ack.connection_id = "c-1";
  ack.services = {"finance", "crm"};
  ack.timestamp = kTime;
  const std::string frame = serialize_ack(ack);
  EXPECT_EQ(frame,
            R"({"type":"ack","seq":0,"timestamp":"2026-11-27T10:43:50.123Z","connectionId":"c-1",)"
            R"("services":["finance","crm"]})");
  const json::object o = parse_frame(frame);
  EXPECT_EQ(o.at("seq").as_int64(), 0);
  EXPECT_FALSE(o.contains("resume"));
}

TEST(SerializeAck, WritesResumeStatusPerService) {
  Ack ack;
  ack.connection_id = "c-1";
  ack.services = {"finance", "crm", "hr"};
  ack.resume = {{"finance", true, ""}, {"crm", false, "too_old"}, {"hr", false, ""}};
  ack.timestamp = kTime;
  const std::string frame = serialize_ack(ack);
  EXPECT_EQ(frame,
            R"({"type":"ack","seq":0,"timestamp":"2026-11-27T10:43:50.123Z","connectionId":"c-1",)"
            R"("services":["finance","crm","hr"],"resume":{"finance":{"recovered":true},)"
            R"("crm":{"recovered":false,"reason":"too_old"},"hr":{"recovered":false}}})");
  const json::object o = parse_frame(frame);
  EXPECT_EQ(o.at("resume").at("crm").at("reason").as_string(), "too_old");
}

TEST(SerializeAck, WritesAnEmptyServiceList) {
  Ack ack;
  ack.connection_id = "c";
  ack.timestamp = "t";
  const std::string frame = serialize_ack(ack);
  EXPECT_EQ(frame, R"({"type":"ack","seq":0,"timestamp":"t","connectionId":"c","services":[]})");
  parse_frame(frame);
}

TEST(SerializeSubscribed, WritesServicesResumeAndTimestamp) {
  const std::string frame = serialize_subscribed({"crm"}, {{"crm", false, "epoch_changed"}}, kTime);
  EXPECT_EQ(frame, R"({"type":"subscribed","services":["crm"],)"
                   R"("resume":{"crm":{"recovered":false,"reason":"epoch_changed"}},)"
                   R"("timestamp":"2026-11-27T10:43:50.123Z"})");
  parse_frame(frame);
}

TEST(SerializeSubscribed, OmitsEmptyResume) {
  const std::string frame = serialize_subscribed({"crm", "hr"}, {}, kTime);
  EXPECT_EQ(
      frame,
      R"({"type":"subscribed","services":["crm","hr"],"timestamp":"2026-11-27T10:43:50.123Z"})");
  parse_frame(frame);
}

TEST(SerializeUnsubscribed, WritesServices) {
  const std::string frame = serialize_unsubscribed({"crm", "hr"});
  EXPECT_EQ(frame, R"({"type":"unsubscribed","services":["crm","hr"]})");
  parse_frame(frame);
}

TEST(SerializePong, WritesTimestamp) {
  const std::string frame = serialize_pong(kTime);
  EXPECT_EQ(frame, R"({"type":"pong","timestamp":"2026-11-27T10:43:50.123Z"})");
  parse_frame(frame);
}

TEST(SerializeRefresh, NamesTheNewExpiry) {
  const std::string frame = serialize_refreshed(kTime);
  EXPECT_EQ(frame, R"({"type":"refreshed","expiresAt":"2026-11-27T10:43:50.123Z"})");
  parse_frame(frame);
}

TEST(SerializeExpiring, NamesTheExpiry) {
  const std::string frame = serialize_expiring(kTime);
  EXPECT_EQ(frame, R"({"type":"expiring","expiresAt":"2026-11-27T10:43:50.123Z"})");
  parse_frame(frame);
}

TEST(SerializeError, EscapesTheMessage) {
  const std::string frame = serialize_error("unknown_service", "no \"payroll\" here\n");
  EXPECT_EQ(frame,
            R"({"type":"error","code":"unknown_service","message":"no \"payroll\" here\n"})");
  EXPECT_EQ(parse_frame(frame).at("message").as_string(), "no \"payroll\" here\n");
}

TEST(SerializeError, NamesTheServiceWhenGivenOne) {
  const std::string frame = serialize_error("forbidden_service", "not yours", "pay\"roll");
  EXPECT_EQ(
      frame,
      R"({"type":"error","code":"forbidden_service","message":"not yours","service":"pay\"roll"})");
  EXPECT_EQ(parse_frame(frame).at("service").as_string(), "pay\"roll");
}

TEST(EventFrame, PrefixPlusBodyIsOneObjectWithKeysInContractOrder) {
  const std::string body = serialize_event_body("finance", "k3-42", "invoice.paid",
                                                R"({"id":"inv_1","amount":10})", kTime);
  EXPECT_EQ(body, R"("service":"finance","id":"k3-42","event":"invoice.paid",)"
                  R"("data":{"id":"inv_1","amount":10},"timestamp":"2026-11-27T10:43:50.123Z"})");
  std::string frame;
  append_event_frame_prefix(frame, 7);
  EXPECT_EQ(frame, R"({"type":"event","seq":7,)");
  frame += body;
  const json::object o = parse_frame(frame);
  ASSERT_EQ(o.size(), 7u);
  const char* order[] = {"type", "seq", "service", "id", "event", "data", "timestamp"};
  std::size_t i = 0;
  for (const auto& entry : o) EXPECT_EQ(entry.key(), order[i++]);
  EXPECT_EQ(o.at("seq").as_int64(), 7);
  EXPECT_EQ(o.at("data").at("amount").as_int64(), 10);
}

TEST(EventFrame, PrefixWritesLargeSequenceNumbers) {
  std::string frame = "x";
  append_event_frame_prefix(frame, 18446744073709551615ull);
  EXPECT_EQ(frame, R"(x{"type":"event","seq":18446744073709551615,)");
}

TEST(EventFrame, WrittenPrefixEqualsTheAppendedOneUpToTheLargestSeq) {
  for (std::uint64_t seq : {0ull, 1ull, 9ull, 10ull, 123456789ull, 18446744073709551615ull}) {
    std::string appended;
    append_event_frame_prefix(appended, seq);
    char buf[kMaxEventFramePrefix];
    const std::size_t n = write_event_frame_prefix(buf, seq);
    EXPECT_EQ(std::string(buf, n), appended) << seq;
    EXPECT_LE(n, kMaxEventFramePrefix);
  }
}

TEST(EventFrame, SameBodyServesManyRecipients) {
  const std::string body = serialize_event_body("a", "e-1", "t", "null", kTime);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    std::string frame;
    append_event_frame_prefix(frame, seq);
    frame += body;
    EXPECT_EQ(parse_frame(frame).at("seq").as_int64(), static_cast<std::int64_t>(seq));
  }
}

TEST(EventFrame, WritesEmptyDataAsNull) {
  std::string frame;
  append_event_frame_prefix(frame, 1);
  frame += serialize_event_body("a", "e-1", "t", "", kTime);
  EXPECT_TRUE(parse_frame(frame).at("data").is_null());
}

TEST(EventFrame, EscapesEventTypeAndPassesPublishedDataThrough) {
  auto published = parse_publish(
      R"({"orgId":1,"service":"a","event":"say \"hi\"","data":{"t":"日本 \u0001","n":[1,2.5]}})");
  ASSERT_TRUE(published);
  const PublishRequest& r = published->items[0];
  std::string frame;
  append_event_frame_prefix(frame, 2);
  frame += serialize_event_body(r.service, "e-9", r.event, r.data, kTime);
  const json::object o = parse_frame(frame);
  EXPECT_EQ(o.at("event").as_string(), "say \"hi\"");
  EXPECT_EQ(o.at("data").at("t").as_string(), "日本 \x01");
  EXPECT_EQ(o.at("data").at("n").at(1).as_double(), 2.5);
}

TEST(EventFrame, InPlaceBodyIsByteForByteTheCopiedOne) {
  const std::string long_event(300, '"');  // escaped: a head over the in-place form's stack copy
  struct Case {
    std::string_view service, id, event, data;
  } cases[] = {
      {"finance", "k3-42", "invoice.paid", R"({"id":"inv_1","amount":10})"},
      {"a", "", "typing", R"({"u":"x"})"},
      {"a", "e-1", "t", ""},
      {"a", "e-1", "say \"hi\"", "null"},
      {"pay\"roll", "e-1", long_event, "[1,2,3]"},
      {"a", "e-1", "t", "7"},
  };
  for (const Case& c : cases) {
    const std::string copied = serialize_event_body(c.service, c.id, c.event, c.data, kTime);
    EXPECT_EQ(serialize_event_body_in_place(c.service, c.id, c.event, std::string(c.data), kTime),
              copied);
    std::string roomy(c.data);
    roomy.reserve(roomy.size() + 1024);
    EXPECT_EQ(serialize_event_body_in_place(c.service, c.id, c.event, std::move(roomy), kTime),
              copied);
  }
}

TEST(EventFrame, PublishedDataHasRoomForItsWholeBody) {
  auto published = parse_publish(
      R"({"orgId":1,"service":"finance","event":"invoice.paid","data":{"amount": 10}})");
  ASSERT_TRUE(published);
  PublishRequest& r = published->items[0];
  const char* buffer = r.data.data();
  // The longest id: a 32-byte epoch and 20 digits.
  const std::string id = std::string(32, 'e') + "-18446744073709551615";
  const std::string body =
      serialize_event_body_in_place(r.service, id, r.event, std::move(r.data), kTime);
  EXPECT_EQ(body, serialize_event_body("finance", id, "invoice.paid", R"({"amount":10})", kTime));
  EXPECT_EQ(body.data(), buffer);  // built where "data" was: no allocation of its own
}

}  // namespace
}  // namespace sg::protocol
