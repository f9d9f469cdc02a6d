#include "broker/redis_connection.hpp"

#include "support/redis_broker.hpp"
#include "support/redis_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <array>
#include <string>
#include <vector>

namespace sg::broker::redis {
namespace {

using namespace std::chrono_literals;
using sg::test::RedisServer;

ConnectionOptions options_for(const RedisServer& server, bool pubsub = false) {
  ConnectionOptions options;
  auto url = parse_redis_url(server.url());
  EXPECT_TRUE(url);
  if (url) options.url = *url;
  options.name = "connection-test";
  options.pubsub = pubsub;
  return options;
}

// Runs the io_context on this thread until `done` holds or 10 s pass.
template <class F>
bool run_until(boost::asio::io_context& io, F done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_for(5ms);
    io.restart();
  }
  return true;
}

TEST(RedisCommand, EncodesEveryArgumentAsABulkString) {
  std::string out = "x";
  const std::array<std::string_view, 3> args{"SET", "k", "v\r\n"};
  append_command(out, args);
  EXPECT_EQ(out, "x*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n");
  out.clear();
  append_command(out, std::array<std::string_view, 1>{""});
  EXPECT_EQ(out, "*1\r\n$0\r\n\r\n");
}

TEST(RedisConnection, SendWhileDownFailsLaterNeverInline) {
  quiet_broker_logs();
  boost::asio::io_context io;
  ConnectionOptions options;
  options.url = *parse_redis_url("redis://127.0.0.1:1");
  Connection connection(io, options, {});
  bool called = false;
  ErrorCode seen;
  connection.send({"PING"}, [&](const ErrorCode& ec, const redisReply* reply) {
    called = true;
    seen = ec;
    EXPECT_EQ(reply, nullptr);
  });
  EXPECT_FALSE(called);
  io.poll();
  EXPECT_TRUE(called);
  EXPECT_EQ(seen, make_error_code(BrokerError::kUnavailable));
}

TEST(RedisConnection, PipelinedRepliesReachTheirOwnCommandsInOrder) {
  quiet_broker_logs();
  auto& server = RedisServer::shared();
  boost::asio::io_context io;
  bool up = false;
  Connection connection(io, options_for(server), {[&] { up = true; }, nullptr, nullptr});
  connection.start();
  ASSERT_TRUE(run_until(io, [&] { return up; }));
  constexpr int kCommands = 2000;
  std::vector<std::string> replies;
  for (int i = 0; i < kCommands; ++i) {
    const std::string text = "echo-" + std::to_string(i);
    connection.send({"ECHO", text}, [&replies](const ErrorCode& ec, const redisReply* reply) {
      ASSERT_FALSE(ec);
      ASSERT_NE(reply, nullptr);
      replies.emplace_back(reply_text(*reply));
    });
  }
  ASSERT_TRUE(run_until(io, [&] { return replies.size() == kCommands; }));
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(replies[i], "echo-" + std::to_string(i));
  connection.stop();
}

TEST(RedisConnection, RefusesCommandsBeyondMaxPending) {
  quiet_broker_logs();
  auto& server = RedisServer::shared();
  boost::asio::io_context io;
  bool up = false;
  ConnectionOptions options = options_for(server);
  options.max_pending = 2;
  Connection connection(io, options, {[&] { up = true; }, nullptr, nullptr});
  connection.start();
  ASSERT_TRUE(run_until(io, [&] { return up; }));
  int answered = 0;
  int refused = 0;
  for (int i = 0; i < 5; ++i) {
    connection.send({"PING"},
                    [&](const ErrorCode& ec, const redisReply*) { ++(ec ? refused : answered); });
  }
  ASSERT_TRUE(run_until(io, [&] { return answered + refused == 5; }));
  EXPECT_EQ(answered, 2);
  EXPECT_EQ(refused, 3);
  connection.stop();
}

TEST(RedisConnection, PubSubMessagesGoToOnMessageAndRepliesToTheirCommands) {
  quiet_broker_logs();
  auto& server = RedisServer::shared();
  boost::asio::io_context io;
  bool up = false;
  std::vector<std::pair<std::string, std::string>> messages;
  Connection connection(io, options_for(server, true),
                        {[&] { up = true; }, nullptr,
                         [&](std::string_view channel, std::string_view payload) {
                           messages.emplace_back(channel, payload);
                         }});
  connection.start();
  ASSERT_TRUE(run_until(io, [&] { return up; }));
  const std::string channel = "conn-test-" + core::random_hex(4);
  bool subscribed = false;
  connection.send({"SUBSCRIBE", channel}, [&](const ErrorCode& ec, const redisReply* reply) {
    ASSERT_FALSE(ec);
    ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply_text(*reply->element[0]), "subscribe");
    subscribed = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return subscribed; }));
  EXPECT_EQ(server.command({"PUBLISH", channel, "one"}), ":1\r\n");
  EXPECT_EQ(server.command({"PUBLISH", channel, std::string("two\0bytes", 9)}), ":1\r\n");
  ASSERT_TRUE(run_until(io, [&] { return messages.size() == 2; }));
  EXPECT_EQ(messages[0], std::make_pair(channel, std::string("one")));
  EXPECT_EQ(messages[1], std::make_pair(channel, std::string("two\0bytes", 9)));
  // A PING in subscribed mode answers ["pong", ""]: a reply, not a message.
  bool ponged = false;
  connection.send({"PING"}, [&](const ErrorCode& ec, const redisReply* reply) {
    ASSERT_FALSE(ec);
    ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply_text(*reply->element[0]), "pong");
    ponged = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return ponged; }));
  EXPECT_EQ(messages.size(), 2u);
  connection.stop();
}

TEST(RedisConnection, LostConnectionFailsWaitingCommandsAndRedials) {
  quiet_broker_logs();
  auto server = RedisServer::start();
  boost::asio::io_context io;
  int ups = 0;
  int downs = 0;
  ConnectionOptions options = options_for(*server);
  options.reconnect_min = 20ms;
  options.reconnect_max = 50ms;
  Connection connection(io, options, {[&] { ++ups; }, [&](const ErrorCode&) { ++downs; }, nullptr});
  connection.start();
  ASSERT_TRUE(run_until(io, [&] { return ups == 1; }));
  server->pause();
  ErrorCode seen;
  bool failed = false;
  connection.send({"PING"}, [&](const ErrorCode& ec, const redisReply*) {
    seen = ec;
    failed = true;
  });
  // Nothing read for command_timeout (2 s) with a command outstanding: dropped.
  ASSERT_TRUE(run_until(io, [&] { return failed; }));
  EXPECT_EQ(seen, make_error_code(BrokerError::kUnavailable));
  EXPECT_EQ(downs, 1);
  EXPECT_FALSE(connection.up());
  server->resume();
  ASSERT_TRUE(run_until(io, [&] { return ups == 2; }));
  EXPECT_TRUE(connection.up());
  connection.stop();
}

// What the Sentinel mode relies on: ROLE gates "up", redirect() moves a connection at once,
// and a -READONLY reply (the node was demoted under it) drops it after its command saw the error.
TEST(RedisConnection, RequirePrimaryGoesUpOnlyOnAPrimaryFollowsRedirectAndLeavesOnReadonly) {
  quiet_broker_logs();
  auto primary = RedisServer::start();
  auto replica = RedisServer::start();
  replica->command({"REPLICAOF", "127.0.0.1", std::to_string(primary->port())});
  boost::asio::io_context io;
  int ups = 0;
  int downs = 0;
  ConnectionOptions options;
  options.url = *parse_redis_url("redis://127.0.0.1:1");
  options.url.host.clear();  // nothing to dial until redirect()
  options.name = "connection-test";
  options.require_primary = true;
  options.reconnect_min = 20ms;
  options.reconnect_max = 50ms;
  Connection connection(io, options, {[&] { ++ups; }, [&](const ErrorCode&) { ++downs; }, nullptr});
  connection.start();
  connection.redirect("127.0.0.1", replica->port());
  // Dialled and refused by ROLE, again and again: never up.
  auto role_calls = [&] {
    const std::string stats = replica->command({"INFO", "commandstats"});
    const std::size_t at = stats.find("cmdstat_role:calls=");
    return at == std::string::npos ? 0 : std::stoi(stats.substr(at + 19));
  };
  ASSERT_TRUE(run_until(io, [&] { return role_calls() >= 2; }));
  EXPECT_EQ(ups, 0);
  EXPECT_FALSE(connection.up());
  connection.redirect("127.0.0.1", primary->port());
  ASSERT_TRUE(run_until(io, [&] { return ups == 1; }));
  // The primary becomes a replica of the other (itself promoted) under the open connection.
  replica->command({"REPLICAOF", "NO", "ONE"});
  primary->command({"REPLICAOF", "127.0.0.1", std::to_string(replica->port())});
  std::string error;
  bool answered = false;
  connection.send({"SET", "k", "v"}, [&](const ErrorCode& ec, const redisReply* reply) {
    EXPECT_FALSE(ec);
    if (is_error(reply)) error = std::string(reply_text(*reply));
    answered = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return answered && downs == 1; }));
  // LOADING if the command came while it loads the other's data set.
  EXPECT_TRUE(error.starts_with("READONLY") || error.starts_with("LOADING")) << error;
  EXPECT_FALSE(connection.up());
  connection.redirect("127.0.0.1", replica->port());
  ASSERT_TRUE(run_until(io, [&] { return ups == 2; }));
  connection.stop();
}

TEST(RedisConnection, ShardedPubSubPushesReachTheirHandlersAndRepliesStayInStep) {
  quiet_broker_logs();
  auto& server = RedisServer::shared();
  boost::asio::io_context io;
  bool sub_up = false;
  bool cmd_up = false;
  std::vector<std::pair<std::string, std::string>> messages;
  std::vector<std::string> unsubscribed;
  Connection sub(io, options_for(server, true),
                 {[&] { sub_up = true; }, nullptr,
                  [&](std::string_view channel, std::string_view payload) {
                    messages.emplace_back(channel, payload);
                  }});
  sub.set_on_sunsubscribe([&](std::string_view channel) { unsubscribed.emplace_back(channel); });
  Connection cmd(io, options_for(server), {[&] { cmd_up = true; }, nullptr, nullptr});
  sub.start();
  cmd.start();
  ASSERT_TRUE(run_until(io, [&] { return sub_up && cmd_up; }));
  const std::string channel = "shard-test-" + core::random_hex(4);
  bool subscribed = false;
  sub.send({"SSUBSCRIBE", channel}, [&](const ErrorCode& ec, const redisReply* reply) {
    ASSERT_FALSE(ec);
    ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply_text(*reply->element[0]), "ssubscribe");
    subscribed = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return subscribed; }));
  cmd.send({"SPUBLISH", channel, "hello"}, [](const ErrorCode&, const redisReply*) {});
  ASSERT_TRUE(run_until(io, [&] { return messages.size() == 1; }));
  EXPECT_EQ(messages[0], (std::pair<std::string, std::string>{channel, "hello"}));
  // The answer to SUNSUBSCRIBE is a push; the PING behind it still gets its own reply.
  const std::array<std::string_view, 2> unsubscribe{"SUNSUBSCRIBE", channel};
  sub.send_unanswered(unsubscribe);
  bool ponged = false;
  sub.send({"PING"}, [&](const ErrorCode& ec, const redisReply* reply) {
    EXPECT_FALSE(ec);
    EXPECT_NE(reply, nullptr);
    ponged = true;
  });
  ASSERT_TRUE(run_until(io, [&] { return ponged && unsubscribed.size() == 1; }));
  EXPECT_EQ(unsubscribed[0], channel);
  EXPECT_TRUE(sub.up());
  sub.stop();
  cmd.stop();
}

}  // namespace
}  // namespace sg::broker::redis
