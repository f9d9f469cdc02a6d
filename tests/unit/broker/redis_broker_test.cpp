// What the Redis broker adds to the Broker contract (broker_contract_test.cpp runs that part):
// nodes sharing channels through one Redis, and what happens to them when Redis, or a node's
// connection to it, goes away and comes back. Fault tests start their own redis-server.
#include "broker/broker.hpp"

#include "protocol/protocol.hpp"
#include "support/broker_calls.hpp"
#include "support/redis_broker.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace sg::broker {
namespace {

using namespace std::chrono_literals;
using sg::test::RedisServer;

// Polls `condition` until it holds or `timeout` passes.
template <class F>
bool eventually(F condition, std::chrono::milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// The Pub/Sub channel name the broker uses: key prefix, then the length-prefixed channel.
std::string pubsub_name(const Channel& channel, const std::string& prefix = "sg:") {
  return prefix + "{" + std::to_string(channel.org.size()) + ":" + channel.org + "/" +
         channel.topic + "}";
}

// PUBSUB NUMSUB's count for one channel: how many connections subscribe to it.
int subscribers_in_redis(const RedisServer& server, const Channel& channel) {
  const std::string reply = server.command({"PUBSUB", "NUMSUB", pubsub_name(channel)});
  const std::size_t colon = reply.rfind(':');
  return colon == std::string::npos ? -1 : std::atoi(reply.c_str() + colon + 1);
}

// Options for brokers on a private server, tuned so faults show within a second or two.
RedisBrokerOptions fast_options(const RedisServer& server) {
  RedisBrokerOptions options;
  options.url = server.url();
  options.command_timeout = 500ms;
  options.ping_interval = 100ms;
  options.reconnect_min = 50ms;
  options.reconnect_max = 300ms;
  return options;
}

TEST(RedisBroker, RefusesUrlsItCannotUse) {
  for (const char* url : {"http://127.0.0.1:6379", "redis://", "rediss://"}) {
    RedisBrokerOptions options;
    options.url = url;
    const auto broker = make_redis_broker(options);
    ASSERT_FALSE(broker) << url;
    EXPECT_EQ(broker.error(), make_error_code(BrokerError::kBadUrl)) << url;
  }
}

TEST(RedisBroker, RefusesTlsSettingsThatDoNotLoad) {
  RedisBrokerOptions options;
  options.url = "rediss://127.0.0.1:6379";
  options.tls_ca_file = "/nonexistent/ca.pem";
  const auto broker = make_redis_broker(options);
  ASSERT_FALSE(broker);
  EXPECT_EQ(broker.error(), make_error_code(BrokerError::kBadTls));
}

TEST(RedisBroker, EventPublishedOnOneNodeReachesSubscribersOnOthersWithTheSameBody) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  auto c = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  Collector at_b;
  Collector at_c;
  auto sub_b = subscribe(*b, channel, at_b);
  auto sub_c = subscribe(*c, channel, at_c);
  PublishInput in = input("invoice.paid", R"({"amount":5})");
  in.user = "user-9";
  const std::string id = publish_id(*a, channel, std::move(in));
  ASSERT_TRUE(at_b.wait_for(1));
  ASSERT_TRUE(at_c.wait_for(1));
  const EventPtr seen_b = at_b.events().at(0);
  const EventPtr seen_c = at_c.events().at(0);
  EXPECT_EQ(seen_b->id, id);
  EXPECT_EQ(seen_b->user, "user-9");
  EXPECT_EQ(seen_b->body, seen_c->body);
  EXPECT_EQ(seen_b->published_at, seen_c->published_at);
  EXPECT_EQ(seen_b->body,
            protocol::serialize_event_body("finance", id, "invoice.paid", R"({"amount":5})",
                                           core::format_rfc3339(seen_b->published_at)));
  // History read through a third node gives the same event, byte for byte.
  const auto read = history(*c, channel, Position{epoch_of(id), 0});
  ASSERT_TRUE(read);
  ASSERT_EQ(read->events.size(), 1u);
  EXPECT_EQ(read->events[0]->body, seen_b->body);
  EXPECT_EQ(read->events[0]->user, "user-9");
}

TEST(RedisBroker, NodesShareOneOffsetSequencePerChannel) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 3; ++i) {
    offsets.push_back(offset_of(publish_id(*a, channel, input("e"))));
    offsets.push_back(offset_of(publish_id(*b, channel, input("e"))));
  }
  EXPECT_EQ(offsets, range(1, 6));
}

TEST(RedisBroker, IdempotentPublishHoldsAcrossNodes) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  PublishInput first = input("e");
  first.event_key = "order-42";
  const auto at_a = publish(*a, channel, std::move(first));
  ASSERT_TRUE(at_a);
  EXPECT_FALSE(at_a->duplicate);
  PublishInput repeat = input("e");
  repeat.event_key = "order-42";
  const auto at_b = publish(*b, channel, std::move(repeat));
  ASSERT_TRUE(at_b);
  EXPECT_TRUE(at_b->duplicate);
  EXPECT_EQ(at_b->id, at_a->id);
  const auto read = history(*b, channel, std::nullopt);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->last_offset, 1u);
}

TEST(RedisBroker, EpochAndOffsetsSurviveANodeRestart) {
  const Channel channel = fresh_channel();
  std::string first;
  {
    auto node = make_test_redis_broker({});
    first = publish_id(*node, channel, input("e"));
  }
  auto restarted = make_test_redis_broker({});
  const std::string second = publish_id(*restarted, channel, input("e"));
  EXPECT_EQ(epoch_of(second), epoch_of(first));
  EXPECT_EQ(offset_of(second), 2u);
  const auto read = history(*restarted, channel, Position{epoch_of(first), 1});
  ASSERT_TRUE(read);
  EXPECT_TRUE(read->complete);
  ASSERT_EQ(read->events.size(), 1u);
  EXPECT_EQ(read->events[0]->id, second);
}

TEST(RedisBroker, ChannelNothingWasPublishedToHasNoUsableEpoch) {
  auto broker = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  const auto read = history(*broker, channel, Position{"abcdef012345", 3});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->epoch, "0");
  EXPECT_EQ(read->last_offset, 0u);
  EXPECT_FALSE(read->complete);
}

TEST(RedisBroker, HoldsOneRedisSubscriptionPerChannelPerNode) {
  auto server = RedisServer::start();
  auto a = make_redis_broker_or_throw(fast_options(*server));
  auto b = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  Collector c1, c2, c3;
  auto s1 = subscribe(*a, channel, c1);
  auto s2 = subscribe(*a, channel, c2);
  EXPECT_EQ(subscribers_in_redis(*server, channel), 1);
  auto s3 = subscribe(*b, channel, c3);
  EXPECT_EQ(subscribers_in_redis(*server, channel), 2);
  s1.reset();
  publish_id(*a, channel, input("e"));
  ASSERT_TRUE(c2.wait_for(1));
  EXPECT_EQ(subscribers_in_redis(*server, channel), 2);
  s2.reset();
  EXPECT_TRUE(eventually([&] { return subscribers_in_redis(*server, channel) == 1; }));
  s3.reset();
  EXPECT_TRUE(eventually([&] { return subscribers_in_redis(*server, channel) == 0; }));
}

TEST(RedisBroker, UsesTheKeyPrefix) {
  auto server = RedisServer::start();
  RedisBrokerOptions options = fast_options(*server);
  options.key_prefix = "tenant7:";
  auto broker = make_redis_broker_or_throw(options);
  const Channel channel = fresh_channel();
  publish_id(*broker, channel, input("e"));
  EXPECT_EQ(server->command({"GET", pubsub_name(channel, "tenant7:") + ":seq"}), "$1\r\n1\r\n");
  EXPECT_EQ(server->command({"EXISTS", pubsub_name(channel) + ":seq"}), ":0\r\n");
}

TEST(RedisBroker, AuthenticatesAndSelectsTheDatabaseFromTheUrl) {
  auto server = RedisServer::start();
  ASSERT_EQ(server->command({"ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all"}),
            "+OK\r\n");
  ASSERT_EQ(server->command({"CONFIG", "SET", "requirepass", "default-pw"}), "+OK\r\n");
  const std::string address = "127.0.0.1:" + std::to_string(server->port());
  const Channel channel = fresh_channel();

  RedisBrokerOptions refused = fast_options(*server);
  refused.url = "redis://:wrong@" + address;
  refused.connect_timeout = 300ms;
  auto wrong = make_redis_broker_or_throw(refused);
  EXPECT_FALSE(wrong->stats().healthy);
  const auto failed = publish(*wrong, channel, input("e"));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), make_error_code(BrokerError::kUnavailable));

  RedisBrokerOptions db1 = fast_options(*server);
  db1.url = "redis://:default-pw@" + address + "/1";
  RedisBrokerOptions db2 = fast_options(*server);
  db2.url = "redis://app:app-pw@" + address + "/2";
  auto in_db1 = make_redis_broker_or_throw(db1);
  auto in_db2 = make_redis_broker_or_throw(db2);
  EXPECT_TRUE(in_db1->stats().healthy);
  EXPECT_TRUE(in_db2->stats().healthy);
  // Separate databases, separate channels: each starts at offset 1.
  EXPECT_EQ(offset_of(publish_id(*in_db1, channel, input("e"))), 1u);
  EXPECT_EQ(offset_of(publish_id(*in_db1, channel, input("e"))), 2u);
  EXPECT_EQ(offset_of(publish_id(*in_db2, channel, input("e"))), 1u);
}

TEST(RedisBroker, SubscriberCatchesUpWhenItsPubSubConnectionIsCut) {
  auto server = RedisServer::start();
  auto publisher = make_redis_broker_or_throw(fast_options(*server));
  RedisBrokerOptions slow_redial = fast_options(*server);
  slow_redial.reconnect_min = 400ms;  // long enough for the publishes below to fall in the gap
  slow_redial.reconnect_max = 400ms;
  auto subscriber = make_redis_broker_or_throw(slow_redial);
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*subscriber, channel, collector);
  for (int i = 0; i < 3; ++i) publish_id(*publisher, channel, input("before"));
  ASSERT_TRUE(collector.wait_for(3));

  EXPECT_NE(server->command({"CLIENT", "KILL", "TYPE", "pubsub"}), ":0\r\n");
  for (int i = 0; i < 5; ++i) publish_id(*publisher, channel, input("during"));
  ASSERT_TRUE(collector.wait_for(8));
  for (int i = 0; i < 2; ++i) publish_id(*publisher, channel, input("after"));
  ASSERT_TRUE(collector.wait_for(10));
  std::this_thread::sleep_for(100ms);  // room for a duplicate to show up
  EXPECT_EQ(collector.offsets(), range(1, 10));
}

TEST(RedisBroker, OffsetSkippedOnALiveConnectionIsReadFromTheStream) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  const std::string first = publish_id(*broker, channel, input("one"));
  ASSERT_TRUE(collector.wait_for(1));
  // Store offset 2 the way the publish script does, but without its PUBLISH: a message lost
  // on the way. Offset 3's message shows the gap.
  const std::string name = pubsub_name(channel);
  ASSERT_EQ(server->command({"INCR", name + ":seq"}), ":2\r\n");
  const std::string now = std::to_string(core::unix_millis(std::chrono::system_clock::now()));
  ASSERT_EQ(
      server->command({"XADD", name + ":stream", "2-0", "t", now, "e", "lost", "d", "{}", "u", ""}),
      "$3\r\n2-0\r\n");
  publish_id(*broker, channel, input("three"));
  ASSERT_TRUE(collector.wait_for(3));
  EXPECT_EQ(collector.offsets(), range(1, 3));
  EXPECT_NE(collector.events()[1]->body.find(R"("event":"lost")"), std::string::npos);
  EXPECT_EQ(collector.events()[1]->id, protocol::format_event_id(epoch_of(first), 2));
}

// Issue 16: a failover to a replica that lacks the channel's last writes leaves its epoch, and
// its counter and stream behind offsets already handed out. This does the same without a
// failover: the counter set back from `from` to `to`, the stream's entries above it deleted
// and its last id set back too.
void rewind_channel(const Channel& channel, int from, int to) {
  const std::string name = pubsub_name(channel);
  ASSERT_EQ(RedisServer::shared().command({"SET", name + ":seq", std::to_string(to)}), "+OK\r\n");
  for (int offset = to + 1; offset <= from; ++offset) {
    const std::string id = std::to_string(offset) + "-0";
    ASSERT_EQ(RedisServer::shared().command({"XDEL", name + ":stream", id}), ":1\r\n");
  }
  const std::string top = std::to_string(to) + "-0";
  ASSERT_EQ(RedisServer::shared().command({"XSETID", name + ":stream", top}), "+OK\r\n");
}

std::string epoch_in_redis(const Channel& channel) {
  const std::string reply = RedisServer::shared().command({"GET", pubsub_name(channel) + ":epoch"});
  const std::size_t start = reply.find("\r\n");
  return start == std::string::npos ? std::string() : reply.substr(start + 2, 12);
}

TEST(RedisBroker, PublishAfterTheCounterWentBackMovesTheChannelToANewEpoch) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  std::string last;
  for (int i = 0; i < 3; ++i) last = publish_id(*a, channel, input("before"));
  const std::string old_epoch = epoch_of(last);
  rewind_channel(channel, 3, 1);

  // A remembers acknowledging offset 3: its publish moves the channel instead of reusing 2.
  const std::string moved = publish_id(*a, channel, input("after"));
  EXPECT_NE(epoch_of(moved), old_epoch);
  EXPECT_EQ(offset_of(moved), 1u);
  EXPECT_EQ(a->stats().epoch_moves[static_cast<std::size_t>(EpochMove::kPublish)], 1u);
  // Every node goes on in the new epoch; B knew nothing and needed to know nothing.
  const std::string next = publish_id(*b, channel, input("after"));
  EXPECT_EQ(epoch_of(next), epoch_of(moved));
  EXPECT_EQ(offset_of(next), 2u);
  // A reader of the old epoch is told, and the new history holds only the new epoch's events.
  const auto old_reader = history(*b, channel, Position{old_epoch, 3});
  ASSERT_TRUE(old_reader);
  EXPECT_FALSE(old_reader->complete);
  EXPECT_EQ(old_reader->epoch, epoch_of(moved));
  const auto new_reader = history(*b, channel, Position{epoch_of(moved), 0});
  ASSERT_TRUE(new_reader);
  EXPECT_TRUE(new_reader->complete);
  EXPECT_EQ(offsets(new_reader->events), range(1, 2));
}

TEST(RedisBroker, CounterAtOrAboveWhatANodeHandedOutIsNoRegression) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  publish_id(*a, channel, input("e"));
  // B's publishes move the counter past A's mark: A's next publish is simply the next offset.
  for (int i = 0; i < 3; ++i) publish_id(*b, channel, input("e"));
  const std::string id = publish_id(*a, channel, input("e"));
  EXPECT_EQ(offset_of(id), 5u);
  EXPECT_EQ(epoch_of(id), epoch_in_redis(channel));
}

TEST(RedisBroker, SubscriberSeeingAnOffsetItDeliveredAgainMovesTheChannel) {
  auto subscriber = make_test_redis_broker({});
  auto producer = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*subscriber, channel, collector);
  for (int i = 0; i < 3; ++i) publish_id(*producer, channel, input("before"));
  ASSERT_TRUE(collector.wait_for(3));
  const std::string old_epoch = epoch_in_redis(channel);
  rewind_channel(channel, 3, 1);

  // A node that never handed out offset 2 can't tell: its publish gets the old id 2. The
  // subscriber delivered 2 already: it keeps the clash from its subscribers and moves the
  // channel, so the next publish comes under a new epoch.
  auto stranger = make_test_redis_broker({});
  const std::string clash = publish_id(*stranger, channel, input("clash"));
  EXPECT_EQ(clash, protocol::format_event_id(old_epoch, 2));
  ASSERT_TRUE(eventually([&] { return epoch_in_redis(channel) != old_epoch; }));
  const std::string after = publish_id(*stranger, channel, input("after"));
  EXPECT_NE(epoch_of(after), old_epoch);
  ASSERT_TRUE(collector.wait_for(4));
  std::this_thread::sleep_for(100ms);  // room for the clash to show up, were it delivered
  const auto events = collector.events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(offsets({events.begin(), events.begin() + 3}), range(1, 3));
  EXPECT_EQ(events[3]->id, after);
  for (const auto& event : events) {
    EXPECT_EQ(event->body.find(R"("event":"clash")"), std::string::npos);
  }
}

// The window a resume can land in: nothing touched the channel since its counter went back.
TEST(RedisBroker, ReadFromAPositionMovesTheChannelFirstWhenTheNodeHandedOutMore) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  std::string last;
  for (int i = 0; i < 3; ++i) last = publish_id(*a, channel, input("before"));
  const std::string old_epoch = epoch_of(last);
  rewind_channel(channel, 3, 1);

  // B never saw offsets 2 and 3: the reader's claim alone is no evidence, nothing moves.
  const auto from_b = history(*b, channel, Position{old_epoch, 3});
  ASSERT_TRUE(from_b);
  EXPECT_EQ(from_b->epoch, old_epoch);
  EXPECT_EQ(from_b->last_offset, 1u);
  EXPECT_FALSE(from_b->complete);
  EXPECT_EQ(epoch_in_redis(channel), old_epoch);
  // A acknowledged 3: the channel moves before A answers, so the reader sees the new epoch.
  const auto from_a = history(*a, channel, Position{old_epoch, 3});
  ASSERT_TRUE(from_a);
  EXPECT_NE(from_a->epoch, old_epoch);
  EXPECT_EQ(from_a->epoch, epoch_in_redis(channel));
  EXPECT_EQ(from_a->last_offset, 0u);
  EXPECT_FALSE(from_a->complete);
  const auto resume = static_cast<std::size_t>(EpochMove::kResume);
  EXPECT_EQ(a->stats().epoch_moves[resume], 1u);
  EXPECT_EQ(b->stats().epoch_moves[resume], 0u);
  const std::string next = publish_id(*b, channel, input("after"));
  EXPECT_EQ(next, protocol::format_event_id(from_a->epoch, 1));
}

TEST(RedisBroker, ReadFromAForgedPositionAheadOfTheCounterMovesNothing) {
  auto a = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  std::string last;
  for (int i = 0; i < 3; ++i) last = publish_id(*a, channel, input("e"));
  const auto read = history(*a, channel, Position{epoch_of(last), 1000});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->epoch, epoch_of(last));
  EXPECT_EQ(read->last_offset, 3u);
  EXPECT_FALSE(read->complete);
  EXPECT_EQ(epoch_in_redis(channel), epoch_of(last));
  for (const std::uint64_t moves : a->stats().epoch_moves) EXPECT_EQ(moves, 0u);
  EXPECT_EQ(publish_id(*a, channel, input("e")), protocol::format_event_id(epoch_of(last), 4));
}

TEST(RedisBroker, TwoNodesNoticingTheSameRegressionMoveTheChannelOnce) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  publish_id(*a, channel, input("e"));
  publish_id(*b, channel, input("e"));
  publish_id(*a, channel, input("e"));
  const std::string old_epoch = epoch_of(publish_id(*b, channel, input("e")));
  rewind_channel(channel, 4, 0);
  auto from_a = std::async(std::launch::async, [&] { return publish_id(*a, channel, input("x")); });
  auto from_b = std::async(std::launch::async, [&] { return publish_id(*b, channel, input("x")); });
  const std::string id_a = from_a.get();
  const std::string id_b = from_b.get();
  EXPECT_NE(epoch_of(id_a), old_epoch);
  EXPECT_EQ(epoch_of(id_a), epoch_of(id_b));
  EXPECT_EQ(offset_of(id_a) + offset_of(id_b), 3u);  // 1 and 2, in either order
}

// Once a channel's delivery moved to a new epoch, a message of the epoch it left (held during a
// catch-up, or sent just before a move) is older than what was delivered: it must not follow.
TEST(RedisBroker, MessageOfTheEpochDeliveryLeftIsNotDelivered) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  const std::string old_epoch = epoch_of(publish_id(*broker, channel, input("old")));
  ASSERT_TRUE(collector.wait_for(1));
  const std::string new_epoch = "0000newepoch";
  const std::string now = std::to_string(core::unix_millis(std::chrono::system_clock::now()));
  // The publish script's message: "<epoch> <offset> <ms> <user bytes> <event bytes>
  // <user><event><data>".
  const auto send = [&](const std::string& epoch, int offset, const std::string& event) {
    const std::string payload = epoch + " " + std::to_string(offset) + " " + now + " 0 " +
                                std::to_string(event.size()) + " " + event + "{}";
    server->command({"PUBLISH", pubsub_name(channel), payload});
  };
  send(new_epoch, 1, "new");
  ASSERT_TRUE(collector.wait_for(2));
  send(old_epoch, 2, "stale");
  send(new_epoch, 2, "new");
  ASSERT_TRUE(collector.wait_for(3));
  std::this_thread::sleep_for(100ms);  // room for the stale one to show up
  const auto events = collector.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1]->id, protocol::format_event_id(new_epoch, 1));
  EXPECT_EQ(events[2]->id, protocol::format_event_id(new_epoch, 2));
}

TEST(RedisBroker, RedisLosingEverythingStartsTheChannelOverUnderANewEpoch) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  const std::string first = publish_id(*broker, channel, input("e"));
  publish_id(*broker, channel, input("e"));
  ASSERT_TRUE(collector.wait_for(2));
  ASSERT_EQ(server->command({"FLUSHALL"}), "+OK\r\n");
  const std::string after = publish_id(*broker, channel, input("e"));
  EXPECT_NE(epoch_of(after), epoch_of(first));
  EXPECT_EQ(offset_of(after), 1u);
  ASSERT_TRUE(collector.wait_for(3));
  EXPECT_EQ(collector.events().at(2)->id, after);
}

TEST(RedisBroker, RedisDownMeansUnhealthyAndUnavailableThenRecoversWithItsData) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  const std::string first = publish_id(*broker, channel, input("e"));
  ASSERT_TRUE(collector.wait_for(1));
  EXPECT_TRUE(broker->stats().healthy);

  server->stop();
  EXPECT_TRUE(eventually([&] { return !broker->stats().healthy; }, 3s));
  const auto refused = publish(*broker, channel, input("e"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(BrokerError::kUnavailable));
  const auto unread = history(*broker, channel, std::nullopt);
  ASSERT_FALSE(unread);
  EXPECT_EQ(unread.error(), make_error_code(BrokerError::kUnavailable));

  server->restart();
  EXPECT_TRUE(eventually([&] { return broker->stats().healthy; }));
  // The append-only file kept the channel: same epoch, the next offset.
  const std::string second = publish_id(*broker, channel, input("e"));
  EXPECT_EQ(second, protocol::format_event_id(epoch_of(first), 2));
  ASSERT_TRUE(collector.wait_for(2));
  EXPECT_EQ(collector.offsets(), range(1, 2));
}

TEST(RedisBroker, EventsPublishedBeforeTheSubscriberReconnectsAreCaughtUp) {
  auto server = RedisServer::start();
  auto publisher = make_redis_broker_or_throw(fast_options(*server));
  RedisBrokerOptions slow_redial = fast_options(*server);
  slow_redial.reconnect_min = 1000ms;
  slow_redial.reconnect_max = 1000ms;
  auto subscriber = make_redis_broker_or_throw(slow_redial);
  std::vector<Channel> channels = {fresh_channel("a"), fresh_channel("b"), fresh_channel("c")};
  std::vector<Collector> collectors(channels.size());
  std::vector<std::unique_ptr<Subscription>> subscriptions;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    subscriptions.push_back(subscribe(*subscriber, channels[i], collectors[i]));
    publish_id(*publisher, channels[i], input("before"));
  }
  for (auto& collector : collectors) ASSERT_TRUE(collector.wait_for(1));

  server->restart();
  // The publisher redials within 300 ms, the subscriber only after a second: these land
  // while it is away.
  ASSERT_TRUE(eventually([&] { return publisher->stats().healthy; }));
  for (const auto& channel : channels) {
    for (int i = 0; i < 3; ++i) publish_id(*publisher, channel, input("while away"));
  }
  EXPECT_TRUE(eventually([&] { return subscriber->stats().healthy; }));
  for (const auto& channel : channels) publish_id(*publisher, channel, input("after"));
  for (auto& collector : collectors) {
    ASSERT_TRUE(collector.wait_for(5));
  }
  std::this_thread::sleep_for(100ms);
  for (auto& collector : collectors) EXPECT_EQ(collector.offsets(), range(1, 5));
}

TEST(RedisBroker, SubscribingWhileRedisIsDownBecomesReadyWhenItReturns) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  server->stop();
  ASSERT_TRUE(eventually([&] { return !broker->stats().healthy; }, 3s));
  const Channel channel = fresh_channel();
  Collector collector;
  std::atomic<bool> ready{false};
  auto subscription = broker->subscribe(channel, collector.sink(), [&] { ready = true; });
  ASSERT_NE(subscription, nullptr);
  EXPECT_EQ(broker->stats().subscriptions, 1u);
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(ready);
  server->restart();
  ASSERT_TRUE(eventually([&] { return ready.load(); }));
  // The command connection redials on its own schedule; publish needs it.
  ASSERT_TRUE(eventually([&] { return broker->stats().healthy; }));
  publish_id(*broker, channel, input("e"));
  ASSERT_TRUE(collector.wait_for(1));
  EXPECT_EQ(collector.offsets(), range(1, 1));
}

TEST(RedisBroker, HungRedisFailsPublishesWithinTheTimeoutAndShowsUnhealthy) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  publish_id(*broker, channel, input("e"));
  server->pause();
  const auto started = std::chrono::steady_clock::now();
  const auto refused = publish(*broker, channel, input("e"));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), make_error_code(BrokerError::kUnavailable));
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(eventually([&] { return !broker->stats().healthy; }, 3s));
  server->resume();
  EXPECT_TRUE(eventually([&] { return broker->stats().healthy; }));
  const auto again = publish(*broker, channel, input("e"));
  ASSERT_TRUE(again);
  // The paused publish may or may not have run before the pause took hold; either way the
  // channel goes on without reusing an offset.
  EXPECT_GE(offset_of(again->id), 2u);
}

TEST(RedisBroker, ShutdownFailsCommandsStillWaiting) {
  auto server = RedisServer::start();
  auto broker = make_redis_broker_or_throw(fast_options(*server));
  const Channel channel = fresh_channel();
  server->pause();
  auto promise = std::make_shared<std::promise<Result<PublishResult>>>();
  broker->publish(channel, input("e"),
                  [promise](Result<PublishResult> r) { promise->set_value(std::move(r)); });
  broker.reset();
  auto future = promise->get_future();
  ASSERT_EQ(future.wait_for(1s), std::future_status::ready);
  const auto result = future.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error(), make_error_code(BrokerError::kShuttingDown));
  server->resume();
}

// The users present and their connection counts, as "user:n", or "error".
std::vector<std::string> presence_summary(Broker& broker, const Channel& scope) {
  const auto read = presence(broker, scope);
  if (!read) return {"error"};
  std::vector<std::string> out;
  for (const auto& e : *read) out.push_back(e.user + ":" + std::to_string(e.connections));
  return out;
}

TEST(RedisBroker, PresenceOfAUserOnTwoNodesCountsOnceWithConnectionsSummed) {
  auto a = make_test_redis_broker({});
  auto b = make_test_redis_broker({});
  const Channel scope = fresh_channel("online");
  a->set_presence(scope, "alice", 2);
  b->set_presence(scope, "alice", 1);
  b->set_presence(scope, "bob", 1);
  const std::vector<std::string> both{"alice:3", "bob:1"};
  EXPECT_TRUE(eventually([&] { return presence_summary(*a, scope) == both; }));
  a->set_presence(scope, "alice", 0);
  const std::vector<std::string> after{"alice:1", "bob:1"};
  EXPECT_TRUE(eventually([&] { return presence_summary(*b, scope) == after; }));
}

TEST(RedisBroker, PresenceOfANodeThatStopsHeartbeatingExpiresWithinItsTtl) {
  RedisBrokerOptions options;
  options.presence_ttl = 900ms;
  auto survivor = make_test_redis_broker(options);
  auto doomed = make_test_redis_broker(options);
  const Channel scope = fresh_channel("online");
  survivor->set_presence(scope, "stays", 1);
  doomed->set_presence(scope, "goes", 1);
  const std::vector<std::string> both{"goes:1", "stays:1"};
  ASSERT_TRUE(eventually([&] { return presence_summary(*survivor, scope) == both; }));
  // Heartbeats keep a live node's entries well past the TTL.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(presence_summary(*survivor, scope), both);
  // Gone without a word, as a killed node would be.
  doomed.reset();
  const auto left = std::chrono::steady_clock::now();
  const std::vector<std::string> one{"stays:1"};
  ASSERT_TRUE(eventually([&] { return presence_summary(*survivor, scope) == one; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - left, 3s);
}

TEST(RedisBroker, PresenceIsRewrittenAfterRedisLosesItsData) {
  auto server = RedisServer::start();
  RedisBrokerOptions options = fast_options(*server);
  options.presence_ttl = 900ms;
  auto broker = make_redis_broker_or_throw(options);
  const Channel scope = fresh_channel("online");
  broker->set_presence(scope, "alice", 1);
  const std::vector<std::string> alice{"alice:1"};
  ASSERT_TRUE(eventually([&] { return presence_summary(*broker, scope) == alice; }));
  server->command({"FLUSHALL"});
  EXPECT_TRUE(eventually([&] { return presence_summary(*broker, scope) == alice; }, 5s));
}

TEST(RedisBroker, SubscriptionMayOutliveItsBroker) {
  auto broker = make_test_redis_broker({});
  const Channel channel = fresh_channel();
  Collector collector;
  auto subscription = subscribe(*broker, channel, collector);
  broker.reset();
  subscription.reset();
  SUCCEED();
}

}  // namespace
}  // namespace sg::broker
