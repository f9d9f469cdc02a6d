#include "broker/redis_slots.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace sg::broker::redis {
namespace {

struct FreeReply {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, FreeReply>;

// A reply as hiredis parses it from RESP bytes, the way the connection reads it.
Reply parse(const std::string& resp) {
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, resp.data(), resp.size());
  void* out = nullptr;
  EXPECT_EQ(redisReaderGetReply(reader, &out), REDIS_OK);
  redisReaderFree(reader);
  EXPECT_NE(out, nullptr);
  return Reply(static_cast<redisReply*>(out));
}

std::string bulk(std::string_view s) {
  std::string out = "$";
  out.append(std::to_string(s.size())).append("\r\n").append(s).append("\r\n");
  return out;
}

// What CLUSTER KEYSLOT answered for these keys on redis-server 7.0.
TEST(KeySlot, MatchesClusterKeyslot) {
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("somekey"), 11058);
  EXPECT_EQ(key_slot("{user1000}.following"), 3443);
  EXPECT_EQ(key_slot("{user1000}.followers"), 3443);
  EXPECT_EQ(key_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(key_slot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(key_slot("foo{bar}{zap}"), 5061);
  EXPECT_EQ(key_slot(""), 0);
  EXPECT_EQ(key_slot("{}"), 15257);
  EXPECT_EQ(key_slot("a{b"), 13340);
  EXPECT_EQ(key_slot("sg:{3:org/finance}:seq"), 8639);
}

TEST(KeySlot, EveryKeyOfAChannelSharesItsSlot) {
  const std::string name = "sg:{3:org/finance}";
  for (const char* suffix : {"", ":seq", ":epoch", ":stream", ":key:{evt}1"}) {
    EXPECT_EQ(key_slot(name + suffix), key_slot(name)) << suffix;
  }
}

TEST(Crc16, IsXmodem) {
  // The check value of CRC-16/XMODEM.
  EXPECT_EQ(crc16("123456789"), 0x31c3);
}

TEST(ClusterShards, TakesEachShardsPrimaryAndItsRanges) {
  auto node = [](std::string_view role, int port, std::string_view ip) {
    return "*10\r\n" + bulk("id") + bulk("abc") + bulk("port") + ":" + std::to_string(port) +
           "\r\n" + bulk("ip") + bulk(ip) + bulk("endpoint") + bulk(ip) + bulk("role") + bulk(role);
  };
  const std::string resp =
      "*2\r\n"
      "*4\r\n" +
      bulk("slots") + "*4\r\n:0\r\n:100\r\n:200\r\n:300\r\n" + bulk("nodes") + "*2\r\n" +
      node("replica", 7003, "10.0.0.4") + node("master", 7000, "10.0.0.1") + "*4\r\n" +
      bulk("slots") + "*2\r\n:101\r\n:199\r\n" + bulk("nodes") + "*1\r\n" +
      node("master", 7001, "?");
  const Reply reply = parse(resp);
  auto ranges = parse_cluster_shards(*reply, false, NodeAddress{"seed", 7005});
  ASSERT_TRUE(ranges);
  ASSERT_EQ(ranges->size(), 3u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 100);
  EXPECT_EQ((*ranges)[0].primary, (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ((*ranges)[1].first, 200);
  EXPECT_EQ((*ranges)[1].last, 300);
  EXPECT_EQ((*ranges)[2].primary, (NodeAddress{"seed", 7001}));
}

TEST(ClusterShards, RefusesOtherShapes) {
  EXPECT_FALSE(parse_cluster_shards(*parse(":1\r\n"), false, {}));
  EXPECT_FALSE(parse_cluster_shards(*parse("*1\r\n*2\r\n" + bulk("slots") + ":1\r\n"), false, {}));
}

TEST(ClusterSlots, TakesTheFirstNodeOfEachRange) {
  const std::string resp = "*1\r\n*4\r\n:0\r\n:16383\r\n*3\r\n" + bulk("") + ":7000\r\n" +
                           bulk("id1") + "*3\r\n" + bulk("10.0.0.2") + ":7001\r\n" + bulk("id2");
  auto ranges = parse_cluster_slots(*parse(resp), NodeAddress{"seed", 1});
  ASSERT_TRUE(ranges);
  ASSERT_EQ(ranges->size(), 1u);
  EXPECT_EQ((*ranges)[0].last, 16383);
  EXPECT_EQ((*ranges)[0].primary, (NodeAddress{"seed", 7000}));
}

TEST(Redirect, ParsesMovedAndAsk) {
  auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381", {});
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->to, (NodeAddress{"127.0.0.1", 6381}));
  auto ask = parse_redirect("ASK 1 [::1]:7000", {});
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->to, (NodeAddress{"::1", 7000}));
  auto here = parse_redirect("MOVED 5 :7001", NodeAddress{"seed", 1});
  ASSERT_TRUE(here);
  EXPECT_EQ(here->to, (NodeAddress{"seed", 7001}));
  EXPECT_FALSE(parse_redirect("ERR unknown", {}));
  EXPECT_FALSE(parse_redirect("MOVED 16384 h:1", {}));
  EXPECT_FALSE(parse_redirect("MOVED 1 h", {}));
  EXPECT_FALSE(parse_redirect("TRYAGAIN Multiple keys request during rehashing of slot", {}));
}

TEST(RoutingKey, FirstKeyOfScriptsAndTheChannelOfPubSub) {
  const std::vector<std::string_view> eval{"EVALSHA", "abc", "2", "k1", "k2", "a"};
  EXPECT_EQ(routing_key(eval), "k1");
  const std::vector<std::string_view> keyless{"EVAL", "return 1", "0"};
  EXPECT_FALSE(routing_key(keyless));
  const std::vector<std::string_view> spublish{"SPUBLISH", "ch", "x"};
  EXPECT_EQ(routing_key(spublish), "ch");
  const std::vector<std::string_view> ping{"PING"};
  EXPECT_FALSE(routing_key(ping));
  const std::vector<std::string_view> wait{"WAIT", "1", "100"};
  EXPECT_FALSE(routing_key(wait));
}

}  // namespace
}  // namespace sg::broker::redis
