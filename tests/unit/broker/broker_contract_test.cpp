// The contract every Broker implementation keeps, run against each one in factories().
// Callbacks may be inline or on another thread, so every wait here is bounded and
// condition-based.
#include "broker/broker.hpp"

#include "protocol/protocol.hpp"
#include "support/broker_calls.hpp"
#include "support/redis_broker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <ostream>
#include <thread>

namespace sg::broker {
namespace {

using namespace std::chrono_literals;

// What a contract test may ask of the broker it gets; each implementation maps it onto its own
// options.
struct ContractOptions {
  std::size_t history = 1000;
  std::chrono::seconds history_ttl{0};
};

struct BrokerFactory {
  std::string name;
  std::function<std::unique_ptr<Broker>(const ContractOptions&)> make;
};

// Names the parameter in gtest's failure output.
void PrintTo(const BrokerFactory& factory, std::ostream* out) {
  *out << factory.name;
}

// The one list of implementations the contract runs against.
std::vector<BrokerFactory> factories() {
  return {
      {"Memory",
       [](const ContractOptions& contract) {
         MemoryBrokerOptions options;
         options.history = contract.history;
         options.history_ttl = contract.history_ttl;
         return make_memory_broker(options);
       }},
      {"Redis",
       [](const ContractOptions& c) { return make_test_redis_broker(c.history, c.history_ttl); }},
  };
}

PublishInput keyed_input(std::string event, std::string key) {
  PublishInput in = input(std::move(event));
  in.event_key = std::move(key);
  return in;
}

Result<History> history_page(Broker& broker, const Channel& channel, Position after,
                             std::size_t limit) {
  auto promise = std::make_shared<std::promise<Result<History>>>();
  broker.history_page(channel, std::move(after), limit,
                      [promise](Result<History> r) { promise->set_value(std::move(r)); });
  return wait_result(promise);
}

Result<History> history_before(Broker& broker, const Channel& channel, std::uint64_t before,
                               std::size_t limit) {
  auto promise = std::make_shared<std::promise<Result<History>>>();
  broker.history_before(channel, before, limit,
                        [promise](Result<History> r) { promise->set_value(std::move(r)); });
  return wait_result(promise);
}

// Presence writes are fire-and-forget; a reader on another broker sees them a moment later.
std::vector<PresenceEntry> presence_when(
    Broker& broker, const Channel& scope,
    const std::function<bool(const std::vector<PresenceEntry>&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  std::vector<PresenceEntry> last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto read = presence(broker, scope);
    if (read) {
      last = std::move(*read);
      if (done(last)) return last;
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "presence never reached the expected state";
  return last;
}

std::vector<std::string> users_of(const std::vector<PresenceEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.user);
  return out;
}

// Counts done callbacks of publishes that were not waited for one by one.
class Countdown : public std::enable_shared_from_this<Countdown> {
 public:
  explicit Countdown(std::uint64_t count) : left_(count) {}

  std::function<void(Result<PublishResult>)> callback() {
    // Owns the countdown, so a callback arriving after a timed-out wait touches live memory.
    return [self = shared_from_this()](Result<PublishResult> result) {
      std::lock_guard lock(self->mutex_);
      if (!result) ++self->failures_;
      if (--self->left_ == 0) self->cv_.notify_all();
    };
  }

  // True when every callback ran and none reported a failure.
  bool wait_all_succeeded() {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, kWait, [&] { return left_ == 0; }) && failures_ == 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t left_;
  std::uint64_t failures_ = 0;
};

class BrokerContract : public ::testing::TestWithParam<BrokerFactory> {
 protected:
  std::unique_ptr<Broker> make(const ContractOptions& options = {}) {
    return GetParam().make(options);
  }
};

TEST_P(BrokerContract, AssignsOffsetsFromOneIncreasingByOne) {
  auto broker = make();
  const Channel channel = fresh_channel();
  std::vector<std::uint64_t> seen;
  for (int i = 0; i < 5; ++i) seen.push_back(offset_of(publish_id(*broker, channel, input("e"))));
  EXPECT_EQ(seen, range(1, 5));
}

TEST_P(BrokerContract, IdsAreEventIdsOfTheChannelEpoch) {
  auto broker = make();
  const Channel channel = fresh_channel();
  const std::string first = publish_id(*broker, channel, input("e"));
  const std::string second = publish_id(*broker, channel, input("e"));
  const auto read = history(*broker, channel, std::nullopt);
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->epoch.empty());
  EXPECT_EQ(first, protocol::format_event_id(read->epoch, 1));
  EXPECT_EQ(second, protocol::format_event_id(read->epoch, 2));
  const auto parsed = protocol::parse_event_id(second);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->epoch, read->epoch);
  EXPECT_EQ(parsed->offset, 2u);
}

TEST_P(BrokerContract, BuildsBodyWithServiceIdEventDataAndTimestamp) {
  auto broker = make();
  const Channel channel = fresh_channel("finance");
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  PublishInput in = input("invoice.paid", R"({"amount":5,"currency":"EUR"})");
  in.user = "user-7";
  const auto before = std::chrono::system_clock::now();
  const std::string id = publish_id(*broker, channel, std::move(in));
  const auto after = std::chrono::system_clock::now();
  ASSERT_TRUE(collector.wait_for(1));
  const EventPtr event = collector.events().at(0);
  EXPECT_EQ(event->id, id);
  EXPECT_EQ(event->offset, 1u);
  EXPECT_EQ(event->user, "user-7");
  EXPECT_GE(event->published_at, before - 1s);
  EXPECT_LE(event->published_at, after + 1s);
  EXPECT_EQ(event->body, protocol::serialize_event_body("finance", id, "invoice.paid",
                                                        R"({"amount":5,"currency":"EUR"})",
                                                        core::format_rfc3339(event->published_at)));
  EXPECT_NE(event->body.find("\"id\":\"" + id + "\""), std::string::npos) << event->body;
  EXPECT_NE(event->body.find(R"("service":"finance")"), std::string::npos) << event->body;
  EXPECT_NE(event->body.find(R"("event":"invoice.paid")"), std::string::npos) << event->body;
  EXPECT_NE(event->body.find(R"("data":{"amount":5,"currency":"EUR"})"), std::string::npos)
      << event->body;
}

TEST_P(BrokerContract, SinkGetsOnlyEventsPublishedAfterSubscribeInOrder) {
  auto broker = make();
  const Channel channel = fresh_channel();
  for (int i = 0; i < 3; ++i) publish_id(*broker, channel, input("before"));
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  for (int i = 0; i < 4; ++i) publish_id(*broker, channel, input("after"));
  ASSERT_TRUE(collector.wait_for(4));
  EXPECT_EQ(collector.offsets(), range(4, 7));
}

TEST_P(BrokerContract, DestroyingSubscriptionStopsDelivery) {
  auto broker = make();
  const Channel channel = fresh_channel();
  Collector leaving;
  Collector staying;
  auto leaving_subscription = subscribe(*broker, channel, leaving);
  auto staying_subscription = subscribe(*broker, channel, staying);
  publish_id(*broker, channel, input("one"));
  ASSERT_TRUE(leaving.wait_for(1));
  leaving_subscription.reset();
  publish_id(*broker, channel, input("two"));
  publish_id(*broker, channel, input("three"));
  ASSERT_TRUE(staying.wait_for(3));
  EXPECT_EQ(staying.offsets(), range(1, 3));
  EXPECT_EQ(leaving.offsets(), range(1, 1));
}

TEST_P(BrokerContract, EverySubscriberOfAChannelGetsEveryEvent) {
  auto broker = make();
  const Channel channel = fresh_channel();
  Collector first;
  Collector second;
  auto first_subscription = subscribe(*broker, channel, first);
  auto second_subscription = subscribe(*broker, channel, second);
  for (int i = 0; i < 5; ++i) publish_id(*broker, channel, input("e"));
  ASSERT_TRUE(first.wait_for(5));
  ASSERT_TRUE(second.wait_for(5));
  EXPECT_EQ(first.offsets(), range(1, 5));
  EXPECT_EQ(second.offsets(), range(1, 5));
  // One event, shared by every recipient.
  EXPECT_EQ(first.events()[2].get(), second.events()[2].get());
}

TEST_P(BrokerContract, KeepsOrgsApartOnTheSameTopic) {
  auto broker = make();
  const Channel a = fresh_channel("finance");
  const Channel b = fresh_channel("finance");
  Collector at_a;
  Collector at_b;
  auto sub_a = subscribe(*broker, a, at_a);
  auto sub_b = subscribe(*broker, b, at_b);
  publish_id(*broker, b, input("for.b"));
  publish_id(*broker, b, input("for.b"));
  const std::string id_a = publish_id(*broker, a, input("for.a"));
  ASSERT_TRUE(at_b.wait_for(2));
  ASSERT_TRUE(at_a.wait_for(1));
  EXPECT_EQ(offset_of(id_a), 1u);
  EXPECT_EQ(at_b.offsets(), range(1, 2));
  ASSERT_EQ(at_a.offsets(), range(1, 1));
  EXPECT_EQ(at_a.events()[0]->id, id_a);
  EXPECT_NE(at_a.events()[0]->body.find("for.a"), std::string::npos);
  const auto read_a = history(*broker, a, std::nullopt);
  ASSERT_TRUE(read_a);
  EXPECT_EQ(read_a->last_offset, 1u);
}

TEST_P(BrokerContract, KeepsChannelsApartWhenOrgContainsSlash) {
  auto broker = make();
  const std::string org = "org" + core::random_hex(6);
  const Channel left{org + "/x", "y"};
  const Channel right{org, "x/y"};
  publish_id(*broker, left, input("e"));
  EXPECT_EQ(offset_of(publish_id(*broker, right, input("e"))), 1u);
}

TEST_P(BrokerContract, RejectsChannelWithoutOrgOrTopic) {
  auto broker = make();
  const auto published = publish(*broker, Channel{"", "finance"}, input("e"));
  ASSERT_FALSE(published);
  EXPECT_EQ(published.error(), make_error_code(BrokerError::kBadChannel));
  const auto read = history(*broker, Channel{"org", ""}, std::nullopt);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error(), make_error_code(BrokerError::kBadChannel));
  Collector collector;
  bool ready = false;
  EXPECT_EQ(broker->subscribe(Channel{"", ""}, collector.sink(), [&] { ready = true; }), nullptr);
  EXPECT_FALSE(ready);
}

TEST_P(BrokerContract, HistoryWithoutPositionGivesEpochAndLastOffsetOnly) {
  auto broker = make();
  const Channel channel = fresh_channel();
  const auto empty = history(*broker, channel, std::nullopt);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->last_offset, 0u);
  EXPECT_TRUE(empty->events.empty());
  EXPECT_TRUE(empty->complete);
  const std::string id = publish_id(*broker, channel, input("e"));
  publish_id(*broker, channel, input("e"));
  const auto read = history(*broker, channel, std::nullopt);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->epoch, epoch_of(id));
  EXPECT_EQ(read->last_offset, 2u);
  EXPECT_TRUE(read->events.empty());
  EXPECT_TRUE(read->complete);
}

TEST_P(BrokerContract, HistoryReturnsEventsAfterPosition) {
  auto broker = make();
  const Channel channel = fresh_channel();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(publish_id(*broker, channel, input("e")));
  const std::string epoch = epoch_of(ids[0]);
  const auto read = history(*broker, channel, Position{epoch, 2});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->epoch, epoch);
  EXPECT_EQ(read->last_offset, 5u);
  EXPECT_TRUE(read->complete);
  EXPECT_EQ(offsets(read->events), range(3, 5));
  EXPECT_EQ(read->events[0]->id, ids[2]);

  const auto from_start = history(*broker, channel, Position{epoch, 0});
  ASSERT_TRUE(from_start);
  EXPECT_TRUE(from_start->complete);
  EXPECT_EQ(offsets(from_start->events), range(1, 5));

  const auto at_end = history(*broker, channel, Position{epoch, 5});
  ASSERT_TRUE(at_end);
  EXPECT_TRUE(at_end->complete);
  EXPECT_TRUE(at_end->events.empty());
}

TEST_P(BrokerContract, HistoryIsIncompleteWhenCountTrimDroppedEventsAfterPosition) {
  auto broker = make({.history = 3});
  const Channel channel = fresh_channel();
  std::string epoch;
  for (int i = 0; i < 5; ++i) epoch = epoch_of(publish_id(*broker, channel, input("e")));

  const auto from_start = history(*broker, channel, Position{epoch, 0});
  ASSERT_TRUE(from_start);
  EXPECT_FALSE(from_start->complete);
  EXPECT_EQ(offsets(from_start->events), range(3, 5));

  const auto missed_one = history(*broker, channel, Position{epoch, 1});
  ASSERT_TRUE(missed_one);
  EXPECT_FALSE(missed_one->complete);
  EXPECT_EQ(offsets(missed_one->events), range(3, 5));

  const auto missed_none = history(*broker, channel, Position{epoch, 2});
  ASSERT_TRUE(missed_none);
  EXPECT_TRUE(missed_none->complete);
  EXPECT_EQ(offsets(missed_none->events), range(3, 5));

  const auto at_end = history(*broker, channel, Position{epoch, 5});
  ASSERT_TRUE(at_end);
  EXPECT_TRUE(at_end->complete);
  EXPECT_TRUE(at_end->events.empty());
}

TEST_P(BrokerContract, HistoryPageReadsForwardALimitedPageAtATime) {
  auto broker = make();
  const Channel channel = fresh_channel();
  std::string epoch;
  for (int i = 0; i < 10; ++i) epoch = epoch_of(publish_id(*broker, channel, input("e")));
  std::vector<std::uint64_t> seen;
  Position at{epoch, 2};
  for (int page = 0; page < 10; ++page) {
    const auto read = history_page(*broker, channel, at, 3);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->epoch, epoch);
    EXPECT_EQ(read->last_offset, 10u);
    EXPECT_TRUE(read->complete);
    EXPECT_LE(read->events.size(), 3u);
    if (read->events.empty()) break;
    for (const auto& e : read->events) seen.push_back(e->offset);
    at.offset = read->events.back()->offset;
  }
  EXPECT_EQ(seen, range(3, 10));
  EXPECT_EQ(at.offset, 10u);

  // No limit: everything after the position, as history() gives it.
  const auto all = history_page(*broker, channel, Position{epoch, 4}, 0);
  ASSERT_TRUE(all);
  EXPECT_EQ(offsets(all->events), range(5, 10));
}

TEST_P(BrokerContract, HistoryPageIsIncompleteWhenEventsAfterPositionWereDropped) {
  auto broker = make({.history = 3});
  const Channel channel = fresh_channel();
  std::string epoch;
  for (int i = 0; i < 6; ++i) epoch = epoch_of(publish_id(*broker, channel, input("e")));
  const auto trimmed = history_page(*broker, channel, Position{epoch, 1}, 2);
  ASSERT_TRUE(trimmed);
  EXPECT_FALSE(trimmed->complete);
  EXPECT_EQ(offsets(trimmed->events), range(4, 5));
  const auto kept = history_page(*broker, channel, Position{epoch, 4}, 2);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->complete);
  EXPECT_EQ(offsets(kept->events), range(5, 6));
  const auto other_epoch = history_page(*broker, channel, Position{"zzzz", 4}, 2);
  ASSERT_TRUE(other_epoch);
  EXPECT_FALSE(other_epoch->complete);
  EXPECT_TRUE(other_epoch->events.empty());
}

TEST_P(BrokerContract, HistoryDropsEventsOlderThanTtl) {
  auto broker = make({.history = 1000, .history_ttl = 1s});
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);  // keeps the channel itself alive
  const std::string epoch = epoch_of(publish_id(*broker, channel, input("old")));
  std::this_thread::sleep_for(1100ms);
  publish_id(*broker, channel, input("new"));

  const auto from_start = history(*broker, channel, Position{epoch, 0});
  ASSERT_TRUE(from_start);
  EXPECT_EQ(from_start->last_offset, 2u);
  EXPECT_FALSE(from_start->complete);
  EXPECT_EQ(offsets(from_start->events), range(2, 2));

  const auto after_old = history(*broker, channel, Position{epoch, 1});
  ASSERT_TRUE(after_old);
  EXPECT_TRUE(after_old->complete);
  EXPECT_EQ(offsets(after_old->events), range(2, 2));
}

TEST_P(BrokerContract, HistoryIsIncompleteForAnotherEpoch) {
  auto broker = make();
  const Channel channel = fresh_channel();
  const std::string epoch = epoch_of(publish_id(*broker, channel, input("e")));
  publish_id(*broker, channel, input("e"));
  const std::string other = epoch == "zzzz" ? "yyyy" : "zzzz";
  const auto read = history(*broker, channel, Position{other, 1});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->epoch, epoch);
  EXPECT_EQ(read->last_offset, 2u);
  EXPECT_FALSE(read->complete);
  EXPECT_TRUE(read->events.empty());
}

TEST_P(BrokerContract, HistoryIsIncompleteForOffsetFromTheFuture) {
  auto broker = make();
  const Channel channel = fresh_channel();
  std::string epoch;
  for (int i = 0; i < 3; ++i) epoch = epoch_of(publish_id(*broker, channel, input("e")));
  const auto read = history(*broker, channel, Position{epoch, 4});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->last_offset, 3u);
  EXPECT_FALSE(read->complete);
  EXPECT_TRUE(read->events.empty());
}

TEST_P(BrokerContract, RepeatedEventKeyReturnsFirstIdAndDeliversOnce) {
  auto broker = make();
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  const auto first = publish(*broker, channel, keyed_input("e", "key-1"));
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->duplicate);
  const auto repeat = publish(*broker, channel, keyed_input("e", "key-1"));
  ASSERT_TRUE(repeat);
  EXPECT_TRUE(repeat->duplicate);
  EXPECT_EQ(repeat->id, first->id);
  const auto other = publish(*broker, channel, keyed_input("e", "key-2"));
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->duplicate);
  EXPECT_EQ(offset_of(other->id), 2u);

  ASSERT_TRUE(collector.wait_for(2));
  EXPECT_EQ(collector.offsets(), range(1, 2));
  const auto read = history(*broker, channel, Position{epoch_of(first->id), 0});
  ASSERT_TRUE(read);
  EXPECT_EQ(offsets(read->events), range(1, 2));
}

TEST_P(BrokerContract, EventKeysArePerChannel) {
  auto broker = make();
  const Channel a = fresh_channel();
  const Channel b = fresh_channel();
  const auto at_a = publish(*broker, a, keyed_input("e", "same"));
  const auto at_b = publish(*broker, b, keyed_input("e", "same"));
  ASSERT_TRUE(at_a);
  ASSERT_TRUE(at_b);
  EXPECT_FALSE(at_a->duplicate);
  EXPECT_FALSE(at_b->duplicate);
}

TEST_P(BrokerContract, ConcurrentPublishersYieldGaplessOrderForEverySubscriber) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  constexpr std::uint64_t kTotal = kThreads * kPerThread;
  auto broker = make({.history = kTotal});
  const Channel channel = fresh_channel();
  Collector first;
  Collector second;
  auto first_subscription = subscribe(*broker, channel, first);
  auto second_subscription = subscribe(*broker, channel, second);

  auto countdown = std::make_shared<Countdown>(kTotal);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i)
        broker->publish(channel, input("e"), countdown->callback());
    });
  }
  for (auto& thread : threads) thread.join();

  ASSERT_TRUE(countdown->wait_all_succeeded());
  ASSERT_TRUE(first.wait_for(kTotal));
  ASSERT_TRUE(second.wait_for(kTotal));
  EXPECT_EQ(first.offsets(), range(1, kTotal));
  EXPECT_EQ(second.offsets(), range(1, kTotal));
  EXPECT_FALSE(first.overlapped());
  EXPECT_FALSE(second.overlapped());

  const auto read = history(*broker, channel, Position{epoch_of(first.events()[0]->id), 0});
  ASSERT_TRUE(read);
  EXPECT_TRUE(read->complete);
  EXPECT_EQ(read->last_offset, kTotal);
  EXPECT_EQ(offsets(read->events), range(1, kTotal));
}

TEST_P(BrokerContract, StatsCountChannelsAndSubscriptions) {
  auto broker = make();
  const BrokerStats fresh = broker->stats();
  EXPECT_EQ(fresh.channels, 0u);
  EXPECT_EQ(fresh.subscriptions, 0u);
  EXPECT_TRUE(fresh.healthy);

  const Channel listened = fresh_channel();
  const Channel published = fresh_channel();
  Collector collector;
  auto first = subscribe(*broker, listened, collector);
  auto second = subscribe(*broker, listened, collector);
  publish_id(*broker, published, input("e"));
  const BrokerStats busy = broker->stats();
  EXPECT_EQ(busy.channels, 2u);
  EXPECT_EQ(busy.subscriptions, 2u);

  first.reset();
  EXPECT_EQ(broker->stats().subscriptions, 1u);
  second.reset();
  const BrokerStats after = broker->stats();
  EXPECT_EQ(after.subscriptions, 0u);
  EXPECT_EQ(after.channels, 1u);  // only the one with history is left
}

TEST_P(BrokerContract, HistoryStaysBoundedUnderManyEvents) {
  // Ten times the bound: Redis trims its stream (MAXLEN ~, whole nodes of 100 entries) many times
  // over. 100000 proved nothing more and took most of this suite's time (17 s on Redis, ASan).
  constexpr std::uint64_t kEvents = 10000;
  auto broker = make({.history = 1000});
  const Channel channel = fresh_channel();
  const std::string epoch = epoch_of(publish_id(*broker, channel, input("e", "1")));
  auto countdown = std::make_shared<Countdown>(kEvents - 1);
  for (std::uint64_t i = 1; i < kEvents; ++i) {
    broker->publish(channel, input("e", "1"), countdown->callback());
  }
  ASSERT_TRUE(countdown->wait_all_succeeded());
  const auto read = history(*broker, channel, Position{epoch, 0});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->last_offset, kEvents);
  EXPECT_FALSE(read->complete);
  EXPECT_EQ(offsets(read->events), range(kEvents - 999, kEvents));
}

TEST_P(BrokerContract, HistoryBeforePagesBackOldestFirst) {
  auto broker = make();
  const Channel channel = fresh_channel("room:general");
  for (int i = 0; i < 7; ++i) publish_id(*broker, channel, input("e"));
  const auto newest = history_before(*broker, channel, 0, 3);
  ASSERT_TRUE(newest);
  EXPECT_EQ(newest->last_offset, 7u);
  EXPECT_TRUE(newest->complete);
  EXPECT_EQ(offsets(newest->events), range(5, 7));
  const auto older = history_before(*broker, channel, 5, 3);
  ASSERT_TRUE(older);
  EXPECT_EQ(offsets(older->events), range(2, 4));
  const auto oldest = history_before(*broker, channel, 2, 3);
  ASSERT_TRUE(oldest);
  EXPECT_TRUE(oldest->complete);
  EXPECT_EQ(offsets(oldest->events), range(1, 1));
  const auto none = history_before(*broker, channel, 1, 3);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->complete);
  EXPECT_TRUE(none->events.empty());
}

TEST_P(BrokerContract, HistoryBeforeIsIncompleteWhenOlderEventsWereTrimmed) {
  auto broker = make({.history = 3});
  const Channel channel = fresh_channel();
  for (int i = 0; i < 6; ++i) publish_id(*broker, channel, input("e"));
  const auto read = history_before(*broker, channel, 0, 10);
  ASSERT_TRUE(read);
  // Redis trims approximately (MAXLEN ~), so it may keep more than 3; never all 6.
  ASSERT_FALSE(read->events.empty());
  EXPECT_EQ(read->events.back()->offset, 6u);
  EXPECT_GT(read->events.front()->offset, 1u);
  EXPECT_FALSE(read->complete);
}

TEST_P(BrokerContract, SignalReachesSubscribersWithoutOffsetAndIsNotStored) {
  auto broker = make();
  const Channel channel = fresh_channel("room:general");
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  publish_id(*broker, channel, input("chat.message"));
  auto done = std::make_shared<std::promise<Result<void>>>();
  PublishInput typing = input("chat.typing", R"({"user":"u1"})");
  broker->signal(channel, typing, [done](Result<void> r) { done->set_value(r); });
  ASSERT_TRUE(wait_result(done));
  publish_id(*broker, channel, input("chat.message"));
  ASSERT_TRUE(collector.wait_for(3));
  EXPECT_EQ(collector.offsets(), (std::vector<std::uint64_t>{1, 0, 2}));
  const EventPtr signal = collector.events()[1];
  EXPECT_TRUE(signal->id.empty());
  EXPECT_EQ(signal->body.find("\"id\""), std::string::npos);
  EXPECT_NE(signal->body.find(R"("event":"chat.typing","data":{"user":"u1"})"), std::string::npos);
  const auto read = history(*broker, channel, Position{epoch_of(collector.events()[0]->id), 0});
  ASSERT_TRUE(read);
  EXPECT_EQ(offsets(read->events), range(1, 2));
}

TEST_P(BrokerContract, PresenceCountsUsersOnceWithTheirConnections) {
  auto broker = make();
  const Channel scope = fresh_channel("online");
  const Channel other_org{"x" + scope.org, "online"};
  broker->set_presence(scope, "bob", 1);
  broker->set_presence(scope, "alice", 3);
  broker->set_presence(other_org, "carol", 1);
  auto seen = presence_when(*broker, scope, [](const auto& e) { return e.size() == 2; });
  EXPECT_EQ(users_of(seen), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(seen[0].connections, 3u);
  broker->set_presence(scope, "alice", 0);
  seen = presence_when(*broker, scope, [](const auto& e) { return e.size() == 1; });
  EXPECT_EQ(users_of(seen), (std::vector<std::string>{"bob"}));
  auto others = presence(*broker, other_org);
  ASSERT_TRUE(others);
  EXPECT_EQ(users_of(*others), (std::vector<std::string>{"carol"}));
}

TEST_P(BrokerContract, NodeStatsIncludeThisNode) {
  auto broker = make();
  const std::string marker = "{\"node\":\"" + core::random_hex(6) + "\"}";
  broker->set_node_stats_source([marker] { return marker; });
  auto promise = std::make_shared<std::promise<Result<std::vector<std::string>>>>();
  broker->node_stats(
      [promise](Result<std::vector<std::string>> r) { promise->set_value(std::move(r)); });
  const auto nodes = wait_result(promise);
  ASSERT_TRUE(nodes);
  EXPECT_NE(std::find(nodes->begin(), nodes->end(), marker), nodes->end());
}

// The shutdown order the server relies on: after quiesce() nothing of the broker reaches
// the subscribers' owner any more, so it can be destroyed before the broker.
TEST_P(BrokerContract, QuiesceStopsDeliveryToSinks) {
  auto broker = make();
  auto other = make();  // another client of the same backend (Redis) or a stranger (memory)
  const Channel channel = fresh_channel();
  Collector quiesced;
  Collector witness;
  auto subscription = subscribe(*broker, channel, quiesced);
  publish_id(*broker, channel, input("before"));
  ASSERT_TRUE(quiesced.wait_for(1));
  auto witness_subscription = subscribe(*other, channel, witness);
  broker->quiesce();
  // Published by another client: the witness getting it means the quiesced broker's sink
  // would have had it by now too (Redis), or proves nothing was shared (memory).
  publish_id(*other, channel, input("after"));
  ASSERT_TRUE(witness.wait_for(1));
  EXPECT_EQ(quiesced.offsets(), range(1, 1));
  // A subscription made before quiesce() may still be destroyed, after it.
  subscription.reset();
}

TEST_P(BrokerContract, CallsAfterQuiesceFailAtOnceWithShuttingDown) {
  auto broker = make();
  const Channel channel = fresh_channel();
  publish_id(*broker, channel, input("before"));
  broker->quiesce();
  const ErrorCode shutting_down = make_error_code(BrokerError::kShuttingDown);

  const auto published = publish(*broker, channel, input("after"));
  ASSERT_FALSE(published);
  EXPECT_EQ(published.error(), shutting_down);
  const auto read = history(*broker, channel, Position{"x", 0});
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error(), shutting_down);
  const auto page = history_before(*broker, channel, 0, 10);
  ASSERT_FALSE(page);
  EXPECT_EQ(page.error(), shutting_down);
  auto signalled = std::make_shared<std::promise<Result<void>>>();
  broker->signal(channel, input("typing"),
                 [signalled](Result<void> r) { signalled->set_value(r); });
  const auto signal = wait_result(signalled);
  ASSERT_FALSE(signal);
  EXPECT_EQ(signal.error(), shutting_down);
  broker->set_presence(channel, "bob", 1);
  const auto online = presence(*broker, channel);
  ASSERT_FALSE(online);
  EXPECT_EQ(online.error(), shutting_down);
  broker->set_node_stats_source([] { return std::string("{}"); });
  auto nodes = std::make_shared<std::promise<Result<std::vector<std::string>>>>();
  broker->node_stats([nodes](Result<std::vector<std::string>> r) { nodes->set_value(r); });
  const auto stats = wait_result(nodes);
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error(), shutting_down);
  broker->set_node_stats_source(nullptr);

  // A subscription still comes back (callers need no special case) but never delivers.
  std::atomic<bool> ready{false};
  std::atomic<bool> delivered{false};
  auto late = broker->subscribe(
      channel, [&delivered](const EventPtr&) { delivered = true; }, [&ready] { ready = true; });
  EXPECT_NE(late, nullptr);
  late.reset();
  EXPECT_FALSE(ready);
  EXPECT_FALSE(delivered);
}

TEST_P(BrokerContract, QuiesceIsIdempotentAndDestructionAfterItIsFine) {
  auto broker = make();
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  std::thread concurrent([&broker] { broker->quiesce(); });
  broker->quiesce();
  concurrent.join();
  broker->quiesce();
  broker.reset();
  // The subscription outlives its broker.
  subscription.reset();
}

TEST_P(BrokerContract, QuiesceRunsEveryPendingCompletionBeforeReturning) {
  auto broker = make();
  const Channel channel = fresh_channel();
  constexpr int kPublishes = 200;
  std::atomic<int> completed{0};
  std::atomic<int> unexpected{0};
  for (int i = 0; i < kPublishes; ++i) {
    broker->publish(channel, input("e"), [&completed, &unexpected](Result<PublishResult> r) {
      if (!r && r.error() != make_error_code(BrokerError::kShuttingDown)) ++unexpected;
      ++completed;
    });
  }
  broker->quiesce();
  EXPECT_EQ(completed.load(), kPublishes);
  EXPECT_EQ(unexpected.load(), 0);
}

TEST_P(BrokerContract, QuiesceWaitsForASinkThatIsRunning) {
  auto broker = make();
  const Channel channel = fresh_channel();
  std::promise<void> entered;
  std::atomic<bool> quiesce_returned{false};
  std::atomic<bool> returned_while_sink_ran{false};
  auto ready = std::make_shared<std::promise<void>>();
  auto subscription = broker->subscribe(
      channel,
      [&](const EventPtr&) {
        entered.set_value();
        // Long enough for a quiesce() that didn't wait to return; a slow machine only makes
        // this check weaker, never wrong.
        std::this_thread::sleep_for(200ms);
        if (quiesce_returned) returned_while_sink_ran = true;
      },
      [ready] { ready->set_value(); });
  ASSERT_EQ(ready->get_future().wait_for(kWait), std::future_status::ready);
  // From another thread: the memory broker runs sinks inside publish.
  std::thread publisher([&broker, &channel] { broker->publish(channel, input("e"), nullptr); });
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);
  broker->quiesce();
  quiesce_returned = true;
  publisher.join();
  EXPECT_FALSE(returned_while_sink_ran);
}

INSTANTIATE_TEST_SUITE_P(Brokers, BrokerContract, ::testing::ValuesIn(factories()),
                         [](const ::testing::TestParamInfo<BrokerFactory>& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
}  // namespace sg::broker
