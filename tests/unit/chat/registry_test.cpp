#include "chat/chat.hpp"

#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

namespace sg::chat {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

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
  void quiesce() override {}
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
  void set_node_stats_source(std::function<std::string()>) override {}
  void node_stats(std::function<void(Result<std::vector<std::string>>)>) override {}

  std::vector<std::string> writes;
};

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
  metrics::Registry metrics;
  Registry registry(broker, ChatOptions{}, metrics);
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
  metrics::Registry metrics;
  Registry registry(broker, ChatOptions{}, metrics);
  EXPECT_EQ(registry.enter(room_channel("456", "general"), "alice"), 1u);
  EXPECT_EQ(registry.enter(room_channel("789", "general"), "alice"), 1u);
  EXPECT_EQ(registry.memberships(), 2u);
}

TEST(Registry, RateLimitsPerUserAcrossRoomsAndConnections) {
  PresenceRecorder broker;
  ChatOptions options;
  options.burst = 2;
  options.messages_per_minute = 1;
  metrics::Registry metrics;
  Registry registry(broker, options, metrics);
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

TEST(Registry, CountsMessagesAndRefusalsByReason) {
  PresenceRecorder broker;
  metrics::Registry metrics;
  Registry registry(broker, ChatOptions{}, metrics);
  registry.enter(room_channel("456", "general"), "alice");
  registry.count_message();
  registry.count_refusal(ChatError::kRateLimited);
  registry.count_refusal(ChatError::kRateLimited);
  const std::string text = metrics.prometheus_text();
  EXPECT_NE(text.find("streamgate_chat_messages_total 1"), std::string::npos) << text;
  EXPECT_NE(text.find("streamgate_chat_refusals_total{reason=\"rate_limited\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("streamgate_chat_refusals_total{reason=\"room_full\"} 0"), std::string::npos);
  EXPECT_NE(text.find("streamgate_chat_memberships 1"), std::string::npos);
}

}  // namespace
}  // namespace sg::chat
