#include "chat/chat.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <map>

namespace sg::chat {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

// Records presence writes; everything else is unused by the registry.
class PresenceRecorder final : public broker::Broker {
 public:
  void publish(const broker::Channel&, broker::PublishInput,
               std::function<void(Result<broker::PublishResult>)>) override {}
  std::unique_ptr<broker::Subscription> subscribe(const broker::Channel&, broker::Sink,
                                                  std::function<void()>) override {
    return nullptr;
  }
  void history(const broker::Channel&, std::optional<broker::Position>,
               std::function<void(Result<broker::History>)>) override {}
  broker::BrokerStats stats() const override { return {}; }
  void set_presence(const broker::Channel& scope, const std::string& user,
                    std::uint32_t connections) override {
    writes.push_back(scope.key() + "|" + user + "|" + std::to_string(connections));
  }
  void presence(const broker::Channel&,
                std::function<void(Result<std::vector<broker::PresenceEntry>>)>) override {}
  void signal(const broker::Channel&, broker::PublishInput,
              std::function<void(Result<void>)>) override {}
  void history_before(const broker::Channel&, std::uint64_t, std::size_t,
                      std::function<void(Result<broker::History>)>) override {}

  std::vector<std::string> writes;
};

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

TEST(TokenBucket, AllowsABurstThenRefillsAtTheRate) {
  const auto t0 = SteadyClock::now();
  TokenBucket bucket(3, 60, t0);  // one token per second
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 + 500ms));
  EXPECT_TRUE(bucket.take(t0 + 1000ms));
  EXPECT_FALSE(bucket.take(t0 + 1000ms));
  // Refill stops at the burst size.
  EXPECT_TRUE(bucket.take(t0 + 1h));
  EXPECT_TRUE(bucket.take(t0 + 1h));
  EXPECT_TRUE(bucket.take(t0 + 1h));
  EXPECT_FALSE(bucket.take(t0 + 1h));
}

TEST(TokenBucket, ToleratesTimeGoingBackwards) {
  const auto t0 = SteadyClock::now();
  TokenBucket bucket(1, 60, t0);
  EXPECT_TRUE(bucket.take(t0));
  EXPECT_FALSE(bucket.take(t0 - 10s));
  EXPECT_TRUE(bucket.take(t0 + 1s));
}

TEST(Registry, CountsConnectionsPerUserAndMirrorsThemToPresence) {
  PresenceRecorder broker;
  Registry registry(broker, ChatOptions{});
  const auto room = room_channel("456", "general");
  EXPECT_EQ(registry.enter(room, "alice"), 1u);
  EXPECT_EQ(registry.enter(room, "alice"), 2u);
  EXPECT_EQ(registry.enter(room, "bob"), 1u);
  EXPECT_EQ(registry.memberships(), 2u);
  EXPECT_EQ(registry.leave(room, "alice"), 1u);
  EXPECT_EQ(registry.leave(room, "alice"), 0u);
  EXPECT_EQ(registry.leave(room, "alice"), 0u);  // not in the room: nothing to write
  EXPECT_EQ(registry.memberships(), 1u);
  EXPECT_EQ(broker.writes,
            (std::vector<std::string>{"456/room:general|alice|1", "456/room:general|alice|2",
                                      "456/room:general|bob|1", "456/room:general|alice|1",
                                      "456/room:general|alice|0"}));
}

TEST(Registry, KeepsOrgsApart) {
  PresenceRecorder broker;
  Registry registry(broker, ChatOptions{});
  EXPECT_EQ(registry.enter(room_channel("456", "general"), "alice"), 1u);
  EXPECT_EQ(registry.enter(room_channel("789", "general"), "alice"), 1u);
  EXPECT_EQ(registry.memberships(), 2u);
}

TEST(Registry, RateLimitsPerUserAcrossRoomsAndConnections) {
  PresenceRecorder broker;
  ChatOptions options;
  options.burst = 2;
  options.messages_per_minute = 1;
  Registry registry(broker, options);
  const auto now = SteadyClock::now();
  EXPECT_FALSE(registry.take_message_token("456", "alice", now));  // in no room
  registry.enter(room_channel("456", "a"), "alice");
  registry.enter(room_channel("456", "b"), "alice");
  EXPECT_TRUE(registry.take_message_token("456", "alice", now));
  EXPECT_TRUE(registry.take_message_token("456", "alice", now));
  EXPECT_FALSE(registry.take_message_token("456", "alice", now));
  // Another org's user of the same name has a bucket of their own.
  registry.enter(room_channel("789", "a"), "alice");
  EXPECT_TRUE(registry.take_message_token("789", "alice", now));
  // Leaving one room keeps the (empty) bucket: the user is still in the other.
  registry.leave(room_channel("456", "a"), "alice");
  EXPECT_FALSE(registry.take_message_token("456", "alice", now));
  registry.leave(room_channel("456", "b"), "alice");
  EXPECT_FALSE(registry.take_message_token("456", "alice", now));
}

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
