// The parts of a redis:// URL the Redis broker connects with. Internal to the broker module.
#pragma once

#include "broker/broker.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg::broker {

struct RedisUrl {
  std::string host;  // name or address; IPv6 without the brackets
  std::uint16_t port = 6379;
  std::string username;  // empty: AUTH with the password alone
  std::string password;  // empty: no AUTH
  std::uint32_t db = 0;
  bool tls = false;  // rediss://

  // "host:port/db" for logs: never the credentials.
  std::string display() const;
};

// redis://[[user]:password@]host[:port][/db] or rediss://…; user and password are
// percent-decoded. Anything else — another scheme, an empty host, a port outside 1..65535, a
// db that isn't a decimal number, a query or fragment — is kBadUrl.
Result<RedisUrl> parse_redis_url(std::string_view url);

// redis-cluster://[[user]:password@]host[:port][,host[:port]...] or rediss-cluster://…: the
// seeds of a Redis Cluster, each parsed as a redis:// URL with the same credentials. A db
// other than 0 is kBadUrl (a cluster has only db 0), as is an empty seed.
struct RedisClusterUrl {
  RedisUrl url;  // the first seed, carrying the credentials and TLS of every seed
  std::vector<std::pair<std::string, std::uint16_t>> seeds;  // every seed, the first included
};
bool is_redis_cluster_url(std::string_view url);
Result<RedisClusterUrl> parse_redis_cluster_url(std::string_view url);

// redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/<master-name>[/db] or
// rediss-sentinel://…: the Sentinels watching one primary (port 26379 by default), asked in
// order. The credentials and TLS serve both the Sentinels and the primary they name; the
// master name is percent-decoded. No master name, an empty Sentinel, or anything
// parse_redis_url refuses is kBadUrl.
struct RedisSentinelUrl {
  RedisUrl url;  // credentials, TLS and db of the primary; no host (the Sentinels tell it)
  std::string master_name;
  std::vector<std::pair<std::string, std::uint16_t>> sentinels;  // in the URL's order
};
inline constexpr std::uint16_t kDefaultSentinelPort = 26379;
bool is_redis_sentinel_url(std::string_view url);
Result<RedisSentinelUrl> parse_redis_sentinel_url(std::string_view url);

}  // namespace sg::broker
