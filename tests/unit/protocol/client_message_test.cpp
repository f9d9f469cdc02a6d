#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <variant>

namespace sg::protocol {
namespace {

using Services = std::vector<std::string>;

// The error of a message that must fail; compared with `== ProtocolError::k…`, which also
// checks the category.
ErrorCode handshake_error(std::string_view text, const ParseLimits& limits = {}) {
  auto message = parse_client_message(text, /*expect_handshake=*/true, limits);
  EXPECT_FALSE(message) << text;
  return message ? ErrorCode() : message.error();
}

ErrorCode later_error(std::string_view text, const ParseLimits& limits = {}) {
  auto message = parse_client_message(text, /*expect_handshake=*/false, limits);
  EXPECT_FALSE(message) << text;
  return message ? ErrorCode() : message.error();
}

Handshake handshake(std::string_view text, const ParseLimits& limits = {}) {
  auto message = parse_client_message(text, /*expect_handshake=*/true, limits);
  EXPECT_TRUE(message) << text << ": " << (message ? "" : message.error().message());
  if (!message) return {};
  EXPECT_TRUE(std::holds_alternative<Handshake>(*message));
  return std::get<Handshake>(*message);
}

TEST(Handshake, ParsesTheDocumentedForm) {
  const Handshake h = handshake(R"({"services":["finance","crm"],"version":1})");
  EXPECT_EQ(h.services, (Services{"finance", "crm"}));
  EXPECT_EQ(h.version, 1);
  EXPECT_TRUE(h.resume.empty());
}

TEST(Handshake, AcceptsAnExplicitHandshakeType) {
  const Handshake h = handshake(R"({"type":"handshake","services":["finance"],"version":1})");
  EXPECT_EQ(h.services, (Services{"finance"}));
}

TEST(Handshake, AcceptsAnEmptyServiceList) {
  const Handshake h = handshake(R"({"services":[],"version":1})");
  EXPECT_TRUE(h.services.empty());
}

TEST(Handshake, ParsesResumeInOrder) {
  const Handshake h = handshake(
      R"({"services":["finance","crm"],"version":1,"resume":{"finance":"k3-10","crm":"k3-4"}})");
  EXPECT_EQ(h.resume, (ResumeMap{{"finance", "k3-10"}, {"crm", "k3-4"}}));
}

TEST(Handshake, KeepsResumeIdsRawForTheCallerToCheck) {
  const Handshake h = handshake(R"({"services":["a"],"version":1,"resume":{"a":"not an id"}})");
  EXPECT_EQ(h.resume, (ResumeMap{{"a", "not an id"}}));
}

TEST(Handshake, AllowsResumeForServicesNotListed) {
  const Handshake h = handshake(R"({"services":["a"],"version":1,"resume":{"b":"e-1"}})");
  EXPECT_EQ(h.resume, (ResumeMap{{"b", "e-1"}}));
}

TEST(Handshake, TreatsNullResumeAsAbsent) {
  const Handshake h = handshake(R"({"services":["a"],"version":1,"resume":null})");
  EXPECT_TRUE(h.resume.empty());
}

TEST(Handshake, DropsDuplicateServicesKeepingFirstOrder) {
  const Handshake h = handshake(R"({"services":["b","a","b","c","a"],"version":1})");
  EXPECT_EQ(h.services, (Services{"b", "a", "c"}));
}

TEST(Handshake, IgnoresUnknownFields) {
  const Handshake h =
      handshake(R"({"services":["a"],"version":1,"client":"js/2.1","extra":{"x":[1,2]}})");
  EXPECT_EQ(h.services, (Services{"a"}));
}

TEST(Handshake, AcceptsVersionWrittenAsOnePointZero) {
  EXPECT_EQ(handshake(R"({"services":["a"],"version":1.0})").version, 1);
}

TEST(Handshake, RejectsTextThatIsNotJson) {
  EXPECT_EQ(handshake_error(""), ProtocolError::kMalformedJson);
  EXPECT_EQ(handshake_error("{"), ProtocolError::kMalformedJson);
  EXPECT_EQ(handshake_error("services=finance"), ProtocolError::kMalformedJson);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1} x)"), ProtocolError::kMalformedJson);
  EXPECT_EQ(handshake_error("{\"services\":[\"\xff\"],\"version\":1}"),
            ProtocolError::kMalformedJson);
}

TEST(Handshake, RejectsJsonThatIsNotAnObject) {
  EXPECT_EQ(handshake_error(R"(["finance"])"), ProtocolError::kNotAnObject);
  EXPECT_EQ(handshake_error("1"), ProtocolError::kNotAnObject);
  EXPECT_EQ(handshake_error("null"), ProtocolError::kNotAnObject);
  EXPECT_EQ(handshake_error(R"("hello")"), ProtocolError::kNotAnObject);
}

TEST(Handshake, RejectsAnyOtherTypeFirst) {
  EXPECT_EQ(handshake_error(R"({"type":"subscribe","services":["a"],"version":1})"),
            ProtocolError::kUnknownType);
  EXPECT_EQ(handshake_error(R"({"type":"ping"})"), ProtocolError::kUnknownType);
  EXPECT_EQ(handshake_error(R"({"type":"hello","services":["a"],"version":1})"),
            ProtocolError::kUnknownType);
}

TEST(Handshake, RejectsATypeThatIsNotAString) {
  EXPECT_EQ(handshake_error(R"({"type":1,"services":["a"],"version":1})"),
            ProtocolError::kBadField);
}

TEST(Handshake, RequiresServices) {
  EXPECT_EQ(handshake_error(R"({"version":1})"), ProtocolError::kMissingField);
  EXPECT_EQ(handshake_error(R"({"services":null,"version":1})"), ProtocolError::kMissingField);
}

TEST(Handshake, RejectsBadServices) {
  EXPECT_EQ(handshake_error(R"({"services":"finance","version":1})"), ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":[1],"version":1})"), ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":[""],"version":1})"), ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["fin ance"],"version":1})"), ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a",null],"version":1})"), ProtocolError::kBadField);
  const std::string long_name(65, 'x');
  EXPECT_EQ(handshake_error(R"({"services":[")" + long_name + R"("],"version":1})"),
            ProtocolError::kBadField);
}

TEST(Handshake, RequiresVersion) {
  EXPECT_EQ(handshake_error(R"({"services":["a"]})"), ProtocolError::kMissingField);
}

TEST(Handshake, RejectsOtherVersions) {
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":2})"), ProtocolError::kBadVersion);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":0})"), ProtocolError::kBadVersion);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":-1})"), ProtocolError::kBadVersion);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1.5})"), ProtocolError::kBadVersion);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":18446744073709551615})"),
            ProtocolError::kBadVersion);
}

TEST(Handshake, RejectsAVersionThatIsNotANumber) {
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":"1"})"), ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":true})"), ProtocolError::kBadField);
}

TEST(Handshake, RejectsBadResume) {
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":["a"]})"),
            ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":{"a":5}})"),
            ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":{"a":""}})"),
            ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":{"a b":"e-1"}})"),
            ProtocolError::kBadField);
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":{"":"e-1"}})"),
            ProtocolError::kBadField);
}

TEST(Handshake, LimitsResumeIdsTo128Bytes) {
  const std::string ok(128, '1');
  EXPECT_EQ(handshake(R"({"services":["a"],"version":1,"resume":{"a":")" + ok + R"("}})").resume,
            (ResumeMap{{"a", ok}}));
  EXPECT_EQ(handshake_error(R"({"services":["a"],"version":1,"resume":{"a":")" + ok + R"(1"}})"),
            ProtocolError::kBadField);
}

TEST(Handshake, LimitsTheNumberOfServices) {
  const ParseLimits limits{.max_services = 2};
  EXPECT_EQ(handshake(R"({"services":["a","b"],"version":1})", limits).services,
            (Services{"a", "b"}));
  EXPECT_EQ(handshake_error(R"({"services":["a","b","c"],"version":1})", limits),
            ProtocolError::kTooManyItems);
  // Counted before duplicates are dropped: the limit bounds the work per message.
  EXPECT_EQ(handshake_error(R"({"services":["a","a","a"],"version":1})", limits),
            ProtocolError::kTooManyItems);
}

TEST(Handshake, LimitsTheNumberOfResumeEntries) {
  const ParseLimits limits{.max_services = 2};
  EXPECT_EQ(
      handshake_error(R"({"services":["a"],"version":1,"resume":{"a":"e-1","b":"e-1","c":"e-1"}})",
                      limits),
      ProtocolError::kTooManyItems);
}

TEST(Handshake, UsesDefaultLimitOf64Services) {
  std::string text = R"({"version":1,"services":[)";
  for (int i = 0; i < 64; ++i) text += (i ? ",\"s" : "\"s") + std::to_string(i) + "\"";
  EXPECT_EQ(handshake(text + "]}").services.size(), 64u);
  EXPECT_EQ(handshake_error(text + ",\"s64\"]}"), ProtocolError::kTooManyItems);
}

TEST(ClientMessage, ParsesSubscribe) {
  auto message = parse_client_message(
      R"({"type":"subscribe","services":["crm","crm","hr"],"resume":{"crm":"e-3"}})", false);
  ASSERT_TRUE(message);
  const auto* subscribe = std::get_if<Subscribe>(&*message);
  ASSERT_NE(subscribe, nullptr);
  EXPECT_EQ(subscribe->services, (Services{"crm", "hr"}));
  EXPECT_EQ(subscribe->resume, (ResumeMap{{"crm", "e-3"}}));
}

TEST(ClientMessage, ParsesSubscribeWithoutResume) {
  auto message = parse_client_message(R"({"type":"subscribe","services":["crm"]})", false);
  ASSERT_TRUE(message);
  const auto* subscribe = std::get_if<Subscribe>(&*message);
  ASSERT_NE(subscribe, nullptr);
  EXPECT_EQ(subscribe->services, (Services{"crm"}));
  EXPECT_TRUE(subscribe->resume.empty());
}

TEST(ClientMessage, ParsesUnsubscribe) {
  auto message = parse_client_message(R"({"type":"unsubscribe","services":["crm","hr"]})", false);
  ASSERT_TRUE(message);
  const auto* unsubscribe = std::get_if<Unsubscribe>(&*message);
  ASSERT_NE(unsubscribe, nullptr);
  EXPECT_EQ(unsubscribe->services, (Services{"crm", "hr"}));
}

TEST(ClientMessage, ParsesPingIgnoringExtraFields) {
  auto message = parse_client_message(R"({"type":"ping","t":123})", false);
  ASSERT_TRUE(message);
  EXPECT_TRUE(std::holds_alternative<Ping>(*message));
}

TEST(ClientMessage, RejectsBadSubscribeAndUnsubscribe) {
  EXPECT_EQ(later_error(R"({"type":"subscribe"})"), ProtocolError::kMissingField);
  EXPECT_EQ(later_error(R"({"type":"subscribe","services":[7]})"), ProtocolError::kBadField);
  EXPECT_EQ(later_error(R"({"type":"subscribe","services":["a"],"resume":{"a":1}})"),
            ProtocolError::kBadField);
  EXPECT_EQ(later_error(R"({"type":"unsubscribe"})"), ProtocolError::kMissingField);
  EXPECT_EQ(later_error(R"({"type":"unsubscribe","services":{"a":1}})"), ProtocolError::kBadField);
  const ParseLimits limits{.max_services = 1};
  EXPECT_EQ(later_error(R"({"type":"subscribe","services":["a","b"]})", limits),
            ProtocolError::kTooManyItems);
  EXPECT_EQ(later_error(R"({"type":"unsubscribe","services":["a","b"]})", limits),
            ProtocolError::kTooManyItems);
}

TEST(ClientMessage, RejectsAHandshakeShapedMessageAfterTheHandshake) {
  EXPECT_EQ(later_error(R"({"services":["a"],"version":1})"), ProtocolError::kUnknownType);
  EXPECT_EQ(later_error(R"({"type":"handshake","services":["a"],"version":1})"),
            ProtocolError::kUnknownType);
}

TEST(ClientMessage, RejectsUnknownTypes) {
  EXPECT_EQ(later_error(R"({"type":"publish"})"), ProtocolError::kUnknownType);
  EXPECT_EQ(later_error(R"({"type":"PING"})"), ProtocolError::kUnknownType);
  EXPECT_EQ(later_error(R"({"type":""})"), ProtocolError::kUnknownType);
  EXPECT_EQ(later_error(R"({})"), ProtocolError::kUnknownType);
  EXPECT_EQ(later_error(R"({"type":["ping"]})"), ProtocolError::kBadField);
}

TEST(ClientMessage, RejectsNonJsonAndNonObjectsAfterTheHandshake) {
  EXPECT_EQ(later_error("ping"), ProtocolError::kMalformedJson);
  EXPECT_EQ(later_error("[]"), ProtocolError::kNotAnObject);
}

TEST(ClientMessage, ParsesMessagesLargerThanTheStackArena) {
  std::string text = R"({"type":"unsubscribe","services":["a"],"padding":")";
  text.append(10000, 'p');
  text.append("\"}");
  auto message = parse_client_message(text, false);
  ASSERT_TRUE(message);
  EXPECT_EQ(std::get<Unsubscribe>(*message).services, (Services{"a"}));
}

TEST(Refresh, ParsesTheToken) {
  auto message = parse_client_message(R"({"type":"refresh","token":"a.b.c"})", false);
  ASSERT_TRUE(message);
  EXPECT_EQ(std::get<Refresh>(*message).token, "a.b.c");
}

TEST(Refresh, NeedsANonEmptyStringToken) {
  EXPECT_EQ(later_error(R"({"type":"refresh"})"), ProtocolError::kMissingField);
  EXPECT_EQ(later_error(R"({"type":"refresh","token":null})"), ProtocolError::kMissingField);
  EXPECT_EQ(later_error(R"({"type":"refresh","token":""})"), ProtocolError::kBadField);
  EXPECT_EQ(later_error(R"({"type":"refresh","token":42})"), ProtocolError::kBadField);
}

TEST(Refresh, IsNotAHandshake) {
  EXPECT_EQ(handshake_error(R"({"type":"refresh","token":"a.b.c"})"), ProtocolError::kUnknownType);
}

}  // namespace
}  // namespace sg::protocol
