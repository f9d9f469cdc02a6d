#include "protocol/protocol.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <string>
#include <variant>

namespace sg::protocol {
namespace {

template <class T>
T parse_as(std::string_view text) {
  auto message = parse_client_message(text, /*expect_handshake=*/false);
  EXPECT_TRUE(message) << text << ": " << (message ? "" : message.error().message());
  if (!message || !std::holds_alternative<T>(*message)) {
    ADD_FAILURE() << "not the expected type: " << text;
    return {};
  }
  return std::get<T>(*message);
}

ErrorCode error_of(std::string_view text) {
  auto message = parse_client_message(text, /*expect_handshake=*/false);
  EXPECT_FALSE(message) << text;
  return message ? ErrorCode() : message.error();
}

TEST(ChatMessage, ParsesJoinWithAndWithoutHistory) {
  const Join plain = parse_as<Join>(R"({"type":"join","room":"general"})");
  EXPECT_EQ(plain.room, "general");
  EXPECT_FALSE(plain.history);
  const Join with = parse_as<Join>(R"({"type":"join","room":"ops:eu-1","history":20})");
  EXPECT_EQ(with.room, "ops:eu-1");
  EXPECT_EQ(with.history, 20u);
  EXPECT_EQ(parse_as<Join>(R"({"type":"join","room":"a","history":0})").history, 0u);
  EXPECT_EQ(parse_as<Join>(R"({"type":"join","room":"a","history":5.0})").history, 5u);
  EXPECT_FALSE(parse_as<Join>(R"({"type":"join","room":"a","history":null})").history);
}

TEST(ChatMessage, RejectsBadRooms) {
  EXPECT_EQ(error_of(R"({"type":"join"})"), ProtocolError::kMissingField);
  EXPECT_EQ(error_of(R"({"type":"join","room":""})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":"a b"})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":7})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"leave","room":"x/y"})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"typing","room":"é"})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":")" + std::string(65, 'a') + R"("})"),
            ProtocolError::kBadField);
}

TEST(ChatMessage, RejectsBadCounts) {
  EXPECT_EQ(error_of(R"({"type":"join","room":"a","history":-1})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":"a","history":1.5})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":"a","history":"3"})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"join","room":"a","history":1e300})"), ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"history","room":"a","limit":0})"), ProtocolError::kBadField);
}

TEST(ChatMessage, ParsesLeaveAndTyping) {
  EXPECT_EQ(parse_as<Leave>(R"({"type":"leave","room":"general"})").room, "general");
  EXPECT_EQ(parse_as<Typing>(R"({"type":"typing","room":"general","extra":1})").room, "general");
}

TEST(ChatMessage, ParsesMessage) {
  const ChatSend m = parse_as<ChatSend>(
      R"({"type":"message","room":"general","text":"h\u00e9llo \"you\"","clientMessageId":"m-1"})");
  EXPECT_EQ(m.room, "general");
  EXPECT_EQ(m.text, "h\xc3\xa9llo \"you\"");
  EXPECT_EQ(m.client_message_id, "m-1");
}

TEST(ChatMessage, MessageNeedsTextAndClientMessageId) {
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","clientMessageId":"m"})"),
            ProtocolError::kMissingField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":"hi"})"), ProtocolError::kMissingField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":"","clientMessageId":"m"})"),
            ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":5,"clientMessageId":"m"})"),
            ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":"x","clientMessageId":""})"),
            ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":"x","clientMessageId":"a\nb"})"),
            ProtocolError::kBadField);
  EXPECT_EQ(error_of(R"({"type":"message","room":"a","text":"x","clientMessageId":")" +
                     std::string(129, 'm') + R"("})"),
            ProtocolError::kBadField);
}

TEST(ChatMessage, ParsesHistoryRequest) {
  const HistoryRequest newest = parse_as<HistoryRequest>(R"({"type":"history","room":"a"})");
  EXPECT_FALSE(newest.before);
  EXPECT_FALSE(newest.limit);
  const HistoryRequest page =
      parse_as<HistoryRequest>(R"({"type":"history","room":"a","before":"k3x9-42","limit":10})");
  ASSERT_TRUE(page.before);
  EXPECT_EQ(page.before->epoch, "k3x9");
  EXPECT_EQ(page.before->offset, 42u);
  EXPECT_EQ(page.limit, 10u);
  EXPECT_EQ(error_of(R"({"type":"history","room":"a","before":"42"})"), ProtocolError::kBadEventId);
  EXPECT_EQ(error_of(R"({"type":"history","room":"a","before":42})"), ProtocolError::kBadField);
}

TEST(ChatMessage, IsNotAHandshake) {
  auto message = parse_client_message(R"({"type":"join","room":"a"})", /*expect_handshake=*/true);
  ASSERT_FALSE(message);
  EXPECT_EQ(message.error(), ProtocolError::kUnknownType);
}

boost::json::value parsed(const std::string& text) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return v;
}

TEST(ChatFrames, SerializeAsDocumented) {
  EXPECT_EQ(serialize_joined("general", "2026-11-27T10:00:00.000Z"),
            R"({"type":"joined","room":"general","timestamp":"2026-11-27T10:00:00.000Z"})");
  EXPECT_EQ(serialize_left("general"), R"({"type":"left","room":"general"})");
  EXPECT_EQ(
      serialize_sent("general", "m\"1", "k3-5", false),
      R"({"type":"sent","room":"general","clientMessageId":"m\"1","id":"k3-5","duplicate":false})");
  EXPECT_EQ(serialize_chat_error("rate_limited", "slow down", "general", ""),
            R"({"type":"error","code":"rate_limited","message":"slow down","room":"general"})");
  const auto error = parsed(serialize_chat_error("message_too_large", "x", "r", "m-1"));
  EXPECT_EQ(error.at("clientMessageId"), "m-1");
}

TEST(ChatFrames, HistoryPageEmbedsEventBodiesAsObjects) {
  const std::string a = serialize_event_body("room:general", "k3-1", "chat.message",
                                             R"({"user":"u","text":"hi"})", "t1");
  const std::string b = serialize_event_body("room:general", "k3-2", "chat.message", "", "t2");
  const auto page = parsed(serialize_history_page("general", {a, b}, true));
  EXPECT_EQ(page.at("type"), "history");
  EXPECT_EQ(page.at("room"), "general");
  EXPECT_EQ(page.at("more"), true);
  const auto& events = page.at("events").as_array();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].at("id"), "k3-1");
  EXPECT_EQ(events[0].at("data").at("text"), "hi");
  EXPECT_TRUE(events[1].at("data").is_null());
  EXPECT_EQ(serialize_history_page("r", {}, false),
            R"({"type":"history","room":"r","events":[],"more":false})");
}

}  // namespace
}  // namespace sg::protocol
