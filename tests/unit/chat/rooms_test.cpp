#include "chat/chat.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace sg::chat {
namespace {

TEST(Rooms, AreChannelsUnderThePrefix) {
  const broker::Channel c = room_channel("456", "general");
  EXPECT_EQ(c.org, "456");
  EXPECT_EQ(c.topic, "room:general");
  EXPECT_TRUE(is_room_topic(c.topic));
  EXPECT_FALSE(is_room_topic("finance"));
  EXPECT_FALSE(is_room_topic("rooms"));
  EXPECT_NE(room_channel("456", "general").key(), room_channel("789", "general").key());
}

TEST(Rooms, ClaimRestrictsJoinableRooms) {
  EXPECT_TRUE(room_allowed(std::nullopt, "general"));
  const std::optional<std::vector<std::string>> claim{{"general", "ops"}};
  EXPECT_TRUE(room_allowed(claim, "ops"));
  EXPECT_FALSE(room_allowed(claim, "finance"));
  EXPECT_FALSE(room_allowed(std::vector<std::string>{}, "general"));
}

TEST(Rooms, MessageDataIsJsonWithEscapes) {
  const auto v = boost::json::parse(message_data("al\"ice", "line\nbreak \xc3\xa9", "m-1"));
  EXPECT_EQ(v.at("user"), "al\"ice");
  EXPECT_EQ(v.at("text"), "line\nbreak \xc3\xa9");
  EXPECT_EQ(v.at("clientMessageId"), "m-1");
  EXPECT_EQ(boost::json::parse(member_data("bob")).at("user"), "bob");
}

TEST(Rooms, MessageKeysDoNotCollideAcrossUsers) {
  EXPECT_NE(message_key("a", "b:c"), message_key("a:b", "c"));
  EXPECT_NE(message_key("alice", "m1"), message_key("bob", "m1"));
  EXPECT_EQ(message_key("alice", "m1"), message_key("alice", "m1"));
}

}  // namespace
}  // namespace sg::chat
