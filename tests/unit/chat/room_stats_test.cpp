#include "chat/chat.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace sg::chat {
namespace {

using namespace std::chrono_literals;
using WallClock = std::chrono::system_clock;

broker::EventPtr event_at(std::uint64_t offset, WallClock::time_point at) {
  auto e = std::make_shared<broker::Event>();
  e->offset = offset;
  e->published_at = at;
  return e;
}

TEST(RoomStats, EmptyRoomIsAllZeros) {
  const RoomStats s = room_stats(broker::History{}, {}, WallClock::now());
  EXPECT_EQ(s.online_users, 0u);
  EXPECT_EQ(s.connections, 0u);
  EXPECT_EQ(s.messages_total, 0u);
  EXPECT_EQ(s.messages_last_minute, 0u);
  EXPECT_FALSE(s.created_at);
  EXPECT_FALSE(s.last_message_at);
}

TEST(RoomStats, CountsFromHistoryAndPresence) {
  const auto now = WallClock::now();
  broker::History h;
  h.epoch = "e";
  h.last_offset = 12;
  h.events = {event_at(10, now - 5min), event_at(11, now - 30s), event_at(12, now - 1s)};
  const std::vector<broker::PresenceEntry> online{{"alice", now - 10min, 3},
                                                  {"bob", now - 2min, 1}};
  const RoomStats s = room_stats(h, online, now);
  EXPECT_EQ(s.online_users, 2u);
  EXPECT_EQ(s.connections, 4u);
  EXPECT_EQ(s.messages_total, 12u);
  EXPECT_EQ(s.messages_last_minute, 2u);
  EXPECT_EQ(s.created_at, now - 10min);
  EXPECT_EQ(s.last_message_at, now - 1s);
}

TEST(RoomStats, CreatedAtIsTheOldestKeptMessageWhenNobodyIsOnline) {
  const auto now = WallClock::now();
  broker::History h;
  h.last_offset = 1;
  h.events = {event_at(1, now - 1h)};
  const RoomStats s = room_stats(h, {}, now);
  EXPECT_EQ(s.created_at, now - 1h);
  EXPECT_EQ(s.messages_last_minute, 0u);
}

}  // namespace
}  // namespace sg::chat
