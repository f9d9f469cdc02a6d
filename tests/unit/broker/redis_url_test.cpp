#include "broker/redis_url.hpp"

#include <gtest/gtest.h>

namespace sg::broker {
namespace {

RedisUrl parse_ok(std::string_view text) {
  auto url = parse_redis_url(text);
  EXPECT_TRUE(url) << text;
  return url ? *url : RedisUrl{};
}

TEST(RedisUrl, ParsesHostAndPort) {
  const RedisUrl url = parse_ok("redis://10.0.0.5:6380");
  EXPECT_EQ(url.host, "10.0.0.5");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 0u);
  EXPECT_EQ(url.password, "");
  EXPECT_EQ(url.username, "");
  EXPECT_FALSE(url.tls);
}

TEST(RedisUrl, DefaultsToPort6379AndDbZero) {
  const RedisUrl url = parse_ok("redis://cache.internal");
  EXPECT_EQ(url.host, "cache.internal");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0u);
  EXPECT_EQ(parse_ok("redis://cache.internal/").db, 0u);
}

TEST(RedisUrl, ParsesDbNumber) {
  const RedisUrl url = parse_ok("redis://127.0.0.1:7000/12");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.db, 12u);
}

TEST(RedisUrl, ParsesPasswordOnly) {
  const RedisUrl url = parse_ok("redis://:s3cret@localhost:6379/1");
  EXPECT_EQ(url.username, "");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.host, "localhost");
  EXPECT_EQ(url.db, 1u);
}

TEST(RedisUrl, ParsesUserAndPercentDecodesCredentials) {
  const RedisUrl url = parse_ok("redis://app%3Aone:p%40ss%2Fw0rd@host");
  EXPECT_EQ(url.username, "app:one");
  EXPECT_EQ(url.password, "p@ss/w0rd");
  EXPECT_EQ(url.host, "host");
}

TEST(RedisUrl, PasswordMayContainAt) {
  // The last '@' ends the credentials.
  const RedisUrl url = parse_ok("redis://:a@b@host:1");
  EXPECT_EQ(url.password, "a@b");
  EXPECT_EQ(url.host, "host");
  EXPECT_EQ(url.port, 1);
}

TEST(RedisUrl, ParsesBracketedIpv6) {
  const RedisUrl url = parse_ok("redis://[::1]:6390/2");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 6390);
  EXPECT_EQ(url.db, 2u);
  EXPECT_EQ(parse_ok("redis://[::1]").port, 6379);
}

TEST(RedisUrl, MarksTlsScheme) {
  EXPECT_TRUE(parse_ok("rediss://host:6380").tls);
}

TEST(RedisUrl, DisplayNeverShowsCredentials) {
  const RedisUrl url = parse_ok("redis://admin:topsecret@host:6380/3");
  EXPECT_EQ(url.display(), "host:6380/3");
  EXPECT_EQ(parse_ok("redis://[::1]:1").display(), "[::1]:1/0");
}

TEST(RedisUrl, RejectsMalformedUrls) {
  for (const std::string_view bad : {
           "",
           "memory",
           "http://host:6379",
           "redis://",
           "redis://:6379",
           "redis://host:",
           "redis://host:0",
           "redis://host:65536",
           "redis://host:12ab",
           "redis://host:-1",
           "redis://host/x",
           "redis://host/1/2",
           "redis://host/99999999999",
           "redis://host?db=1",
           "redis://host#frag",
           "redis://user@host",
           "redis://user:@host",
           "redis://:p%zz@host",
           "redis://:p%4@host",
           "redis://[::1",
           "redis://[::1]x",
           "redis://[]:1",
       }) {
    const auto url = parse_redis_url(bad);
    ASSERT_FALSE(url) << bad;
    EXPECT_EQ(url.error(), make_error_code(BrokerError::kBadUrl)) << bad;
  }
}

TEST(RedisClusterUrl, ParsesEverySeedWithTheSharedCredentials) {
  auto url =
      parse_redis_cluster_url("redis-cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->url.username, "app");
  EXPECT_EQ(url->url.password, "p@ss");
  EXPECT_FALSE(url->url.tls);
  ASSERT_EQ(url->seeds.size(), 3u);
  EXPECT_EQ(url->seeds[0], (std::pair<std::string, std::uint16_t>{"10.0.0.1", 7000}));
  EXPECT_EQ(url->seeds[1], (std::pair<std::string, std::uint16_t>{"10.0.0.2", 6379}));
  EXPECT_EQ(url->seeds[2], (std::pair<std::string, std::uint16_t>{"::1", 7002}));
}

TEST(RedisClusterUrl, TlsSchemeAndDbZero) {
  auto url = parse_redis_cluster_url("rediss-cluster://h1:7000/0");
  ASSERT_TRUE(url);
  EXPECT_TRUE(url->url.tls);
  EXPECT_TRUE(is_redis_cluster_url("rediss-cluster://h1:7000"));
  EXPECT_FALSE(is_redis_cluster_url("redis://h1:7000"));
}

TEST(RedisClusterUrl, RejectsEmptySeedsOtherDbsAndOtherSchemes) {
  for (const char* bad : {"redis-cluster://", "redis-cluster://h1:7000,", "redis-cluster://,h1",
                          "redis-cluster://h1:7000/3", "redis-cluster://h1:0", "redis://h1:7000",
                          "redis-cluster://h1:7000?x=1"}) {
    EXPECT_FALSE(parse_redis_cluster_url(bad)) << bad;
  }
}

TEST(RedisSentinelUrl, ParsesSentinelsMasterNameAndThePrimarysCredentials) {
  auto url = parse_redis_sentinel_url(
      "redis-sentinel://app:p%40ss@10.0.0.1:26380,10.0.0.2,[::1]:26381/my%20master/2");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->master_name, "my master");
  EXPECT_EQ(url->url.username, "app");
  EXPECT_EQ(url->url.password, "p@ss");
  EXPECT_EQ(url->url.db, 2u);
  EXPECT_FALSE(url->url.tls);
  EXPECT_EQ(url->url.host, "") << "the Sentinels name the primary";
  ASSERT_EQ(url->sentinels.size(), 3u);
  EXPECT_EQ(url->sentinels[0], (std::pair<std::string, std::uint16_t>{"10.0.0.1", 26380}));
  EXPECT_EQ(url->sentinels[1], (std::pair<std::string, std::uint16_t>{"10.0.0.2", 26379}));
  EXPECT_EQ(url->sentinels[2], (std::pair<std::string, std::uint16_t>{"::1", 26381}));
}

TEST(RedisSentinelUrl, TlsSchemeDefaultsAndDetection) {
  auto url = parse_redis_sentinel_url("rediss-sentinel://s1/mymaster");
  ASSERT_TRUE(url);
  EXPECT_TRUE(url->url.tls);
  EXPECT_EQ(url->url.db, 0u);
  EXPECT_EQ(url->url.password, "");
  ASSERT_EQ(url->sentinels.size(), 1u);
  EXPECT_EQ(url->sentinels[0].second, kDefaultSentinelPort);
  EXPECT_TRUE(is_redis_sentinel_url("redis-sentinel://s1/m"));
  EXPECT_TRUE(is_redis_sentinel_url("rediss-sentinel://s1/m"));
  EXPECT_FALSE(is_redis_sentinel_url("redis://s1/1"));
  EXPECT_FALSE(is_redis_cluster_url("redis-sentinel://s1/m"));
}

TEST(RedisSentinelUrl, RejectsMissingMasterEmptySentinelsAndBadParts) {
  for (const char* bad :
       {"redis-sentinel://", "redis-sentinel://s1", "redis-sentinel://s1/",
        "redis-sentinel://s1:26379,/m", "redis-sentinel://,s1/m", "redis-sentinel://s1:0/m",
        "redis-sentinel://s1/m/x", "redis-sentinel://s1/m?x=1", "redis-sentinel://user@s1/m",
        "redis-sentinel://s1/%zz", "redis://s1/m"}) {
    const auto url = parse_redis_sentinel_url(bad);
    ASSERT_FALSE(url) << bad;
    EXPECT_EQ(url.error(), make_error_code(BrokerError::kBadUrl)) << bad;
  }
}

}  // namespace
}  // namespace sg::broker
