// What only the embedded broker promises, beyond the contract in broker_contract_test.cpp:
// callbacks run inline, state is per process, and idle channels give their memory back.
#include "broker/broker.hpp"

#include "core/core.hpp"
#include "protocol/protocol.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace sg::broker {
namespace {

using namespace std::chrono_literals;

const Channel kChannel{"456", "finance"};

// Built from strings rather than assigned literals: GCC 12 at -O3 sees a -Wrestrict overlap
// in an inlined `in.event = "e"` that cannot happen.
PublishInput input(std::string event_key = {}) {
  return PublishInput{std::string("e"), std::string("{}"), {}, std::move(event_key)};
}

// The memory broker calls done inline, so a plain capture is enough.
PublishResult publish(Broker& broker, const Channel& channel, PublishInput in) {
  PublishResult out;
  bool called = false;
  broker.publish(channel, std::move(in), [&](Result<PublishResult> r) {
    called = true;
    if (r) out = *r;
  });
  EXPECT_TRUE(called);
  return out;
}

History history(Broker& broker, const Channel& channel, std::optional<Position> after) {
  History out;
  bool called = false;
  broker.history(channel, std::move(after), [&](Result<History> r) {
    called = true;
    if (r) out = *r;
  });
  EXPECT_TRUE(called);
  return out;
}

protocol::EventId parse(const std::string& id) {
  const auto parsed = protocol::parse_event_id(id);
  EXPECT_TRUE(parsed) << id;
  return parsed ? *parsed : protocol::EventId{};
}

TEST(MemoryBroker, NewInstanceHasNewEpoch) {
  auto first = make_memory_broker({});
  auto second = make_memory_broker({});
  const auto a = parse(publish(*first, kChannel, input()).id);
  const auto b = parse(publish(*second, kChannel, input()).id);
  EXPECT_EQ(a.offset, 1u);
  EXPECT_EQ(b.offset, 1u);
  EXPECT_NE(a.epoch, b.epoch);
  // The first broker's id is from another life as far as the second one knows.
  EXPECT_FALSE(history(*second, kChannel, Position{a.epoch, 1}).complete);
}

TEST(MemoryBroker, EpochIsShortLowercaseAlphanumeric) {
  auto broker = make_memory_broker({});
  const std::string epoch = parse(publish(*broker, kChannel, input()).id).epoch;
  EXPECT_GE(epoch.size(), 12u);
  EXPECT_LE(epoch.size(), 32u);
  for (const char c : epoch) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << c;
}

TEST(MemoryBroker, CallsOnReadyBeforeSubscribeReturns) {
  auto broker = make_memory_broker({});
  bool ready = false;
  auto subscription = broker->subscribe(
      kChannel, [](const EventPtr&) {}, [&] { ready = true; });
  EXPECT_NE(subscription, nullptr);
  EXPECT_TRUE(ready);
}

TEST(MemoryBroker, DeliversToSinkBeforePublishReturns) {
  auto broker = make_memory_broker({});
  std::vector<std::uint64_t> seen;
  auto subscription = broker->subscribe(
      kChannel, [&](const EventPtr& e) { seen.push_back(e->offset); }, nullptr);
  bool done = false;
  broker->publish(kChannel, input(), [&](Result<PublishResult>) {
    done = true;
    // Inline and after the sinks: the event is already delivered when done runs.
    EXPECT_EQ(seen, std::vector<std::uint64_t>{1});
  });
  EXPECT_TRUE(done);
}

// The timestamp text is reused within a second and only its milliseconds rewritten; every
// event must still carry exactly its own publish time.
TEST(MemoryBroker, EveryEventCarriesItsOwnPublishTime) {
  auto broker = make_memory_broker({});
  std::size_t seen = 0;
  std::size_t wrong = 0;
  auto subscription = broker->subscribe(
      kChannel,
      [&](const EventPtr& e) {
        ++seen;
        const std::string expected =
            ",\"timestamp\":\"" + core::format_rfc3339(e->published_at) + "\"}";
        if (!e->body.ends_with(expected)) ++wrong;
      },
      nullptr);
  // Bounded in count and time; long enough to cross millisecond and second boundaries.
  const auto start = std::chrono::steady_clock::now();
  while (seen < 2'000'000 && std::chrono::steady_clock::now() - start < 1100ms) {
    publish(*broker, kChannel, input());
  }
  EXPECT_GT(seen, 0u);
  EXPECT_EQ(wrong, 0u);
}

TEST(MemoryBroker, DropsChannelWithNoHistoryAndNoSubscribers) {
  auto broker = make_memory_broker({.history = 0});
  const auto first = parse(publish(*broker, kChannel, input()).id);
  // Dropped by the publish itself: the next event starts a new life of the channel.
  const auto second = parse(publish(*broker, kChannel, input()).id);
  EXPECT_EQ(second.offset, 1u);
  EXPECT_NE(second.epoch, first.epoch);
  EXPECT_EQ(broker->stats().channels, 0u);
}

TEST(MemoryBroker, SubscriberKeepsChannelAlive) {
  auto broker = make_memory_broker({.history = 0});
  auto subscription = broker->subscribe(
      kChannel, [](const EventPtr&) {}, nullptr);
  const auto first = parse(publish(*broker, kChannel, input()).id);
  const auto second = parse(publish(*broker, kChannel, input()).id);
  EXPECT_EQ(second.offset, 2u);
  EXPECT_EQ(second.epoch, first.epoch);
  EXPECT_EQ(broker->stats().channels, 1u);
  subscription.reset();
  EXPECT_EQ(broker->stats().channels, 0u);
}

TEST(MemoryBroker, ReclaimsChannelWhoseHistoryExpired) {
  auto broker = make_memory_broker({.history_ttl = 1s, .idempotency_ttl = 1s});
  const Channel other{"789", "finance"};
  const auto first = parse(publish(*broker, kChannel, input("key")).id);
  publish(*broker, other, input());
  EXPECT_EQ(broker->stats().channels, 2u);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(broker->stats().channels, 0u);

  const PublishResult again = publish(*broker, kChannel, input("key"));
  EXPECT_FALSE(again.duplicate);
  const auto second = parse(again.id);
  EXPECT_EQ(second.offset, 1u);
  EXPECT_NE(second.epoch, first.epoch);
  // A position from the channel's previous life can't be mistaken for one in this life.
  const History read = history(*broker, kChannel, Position{first.epoch, 1});
  EXPECT_FALSE(read.complete);
  EXPECT_TRUE(read.events.empty());
}

TEST(MemoryBroker, HistoryReadOfUnknownChannelCreatesNothing) {
  auto broker = make_memory_broker({});
  const History read = history(*broker, kChannel, std::nullopt);
  EXPECT_EQ(read.last_offset, 0u);
  EXPECT_TRUE(read.complete);
  EXPECT_FALSE(read.epoch.empty());
  EXPECT_FALSE(history(*broker, kChannel, Position{"abc", 0}).complete);
  EXPECT_EQ(broker->stats().channels, 0u);
}

TEST(MemoryBroker, EventKeysAreForgottenOldestFirstPastTheLimit) {
  auto broker = make_memory_broker({.idempotency_keys = 2});
  const std::string k1 = publish(*broker, kChannel, input("k1")).id;
  publish(*broker, kChannel, input("k2"));
  publish(*broker, kChannel, input("k3"));
  EXPECT_TRUE(publish(*broker, kChannel, input("k3")).duplicate);
  EXPECT_TRUE(publish(*broker, kChannel, input("k2")).duplicate);
  const PublishResult again = publish(*broker, kChannel, input("k1"));
  EXPECT_FALSE(again.duplicate);
  EXPECT_NE(again.id, k1);
  EXPECT_EQ(parse(again.id).offset, 4u);
}

TEST(MemoryBroker, EventKeysExpireAfterTheirTtl) {
  auto broker = make_memory_broker({.history_ttl = 0s, .idempotency_ttl = 1s});
  publish(*broker, kChannel, input("k1"));
  EXPECT_TRUE(publish(*broker, kChannel, input("k1")).duplicate);
  std::this_thread::sleep_for(1100ms);
  const PublishResult again = publish(*broker, kChannel, input("k1"));
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(parse(again.id).offset, 2u);
}

TEST(MemoryBroker, EventKeysKeepChannelWithoutHistory) {
  auto broker = make_memory_broker({.history = 0});
  const PublishResult first = publish(*broker, kChannel, input("k1"));
  const PublishResult repeat = publish(*broker, kChannel, input("k1"));
  EXPECT_TRUE(repeat.duplicate);
  EXPECT_EQ(repeat.id, first.id);
}

TEST(MemoryBroker, ZeroEventKeysDisablesDeduplication) {
  auto broker = make_memory_broker({.idempotency_keys = 0});
  publish(*broker, kChannel, input("k1"));
  const PublishResult again = publish(*broker, kChannel, input("k1"));
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(parse(again.id).offset, 2u);
}

TEST(MemoryBroker, ZeroTtlKeepsHistoryForever) {
  auto broker = make_memory_broker({.history = 10, .history_ttl = 0s});
  const std::string epoch = parse(publish(*broker, kChannel, input()).id).epoch;
  EXPECT_EQ(broker->stats().channels, 1u);
  const History read = history(*broker, kChannel, Position{epoch, 0});
  EXPECT_TRUE(read.complete);
  EXPECT_EQ(read.events.size(), 1u);
}

TEST(MemoryBroker, SubscriptionMayOutliveBroker) {
  auto broker = make_memory_broker({});
  auto subscription = broker->subscribe(
      kChannel, [](const EventPtr&) {}, nullptr);
  broker.reset();
  subscription.reset();  // must neither crash nor leak (ASan build)
}

TEST(MemoryBroker, SubscribeAndUnsubscribeRaceWithPublishers) {
  auto broker = make_memory_broker({.history = 0});
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    while (!stop) broker->publish(kChannel, input(), nullptr);
  });
  // Each subscription sees only events after it started, in order, with no gap.
  for (int i = 0; i < 200; ++i) {
    std::vector<std::uint64_t> seen;
    auto subscription = broker->subscribe(
        kChannel, [&](const EventPtr& e) { seen.push_back(e->offset); }, nullptr);
    std::this_thread::yield();
    subscription.reset();
    for (std::size_t j = 1; j < seen.size(); ++j) ASSERT_EQ(seen[j], seen[j - 1] + 1);
  }
  stop = true;
  publisher.join();
}

}  // namespace
}  // namespace sg::broker
