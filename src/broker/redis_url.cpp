#include "broker/redis_url.hpp"

#include <charconv>

namespace sg::broker {
namespace {

template <class T>
bool parse_decimal(std::string_view text, T& out) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string RedisUrl::display() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ':';
  core::append_decimal(out, port);
  out += '/';
  core::append_decimal(out, db);
  return out;
}

Result<RedisUrl> parse_redis_url(std::string_view url) {
  const ErrorCode bad = make_error_code(BrokerError::kBadUrl);
  RedisUrl out;
  std::string_view rest;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("rediss://")) {
    rest = url.substr(9);
    out.tls = true;
  } else {
    return bad;
  }
  if (rest.find_first_of("?#") != std::string_view::npos) return bad;
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view path = rest.substr(slash + 1);
    if (!path.empty() && !parse_decimal(path, out.db)) return bad;
  }
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const std::size_t colon = userinfo.find(':');
    // A bare "name@" is ambiguous between a user and a password; ask for the explicit form.
    if (colon == std::string_view::npos) return bad;
    if (!core::percent_decode(userinfo.substr(0, colon), out.username, false)) return bad;
    if (!core::percent_decode(userinfo.substr(colon + 1), out.password, false)) return bad;
    if (out.password.empty()) return bad;
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad;
      port = after.substr(1);
      if (port.empty()) return bad;
    }
  } else if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) return bad;
  }
  if (host.empty()) return bad;
  if (!port.empty()) {
    std::uint32_t value = 0;
    if (!parse_decimal(port, value) || value == 0 || value > 65535) return bad;
    out.port = static_cast<std::uint16_t>(value);
  }
  out.host = std::string(host);
  return out;
}

bool is_redis_cluster_url(std::string_view url) {
  return url.starts_with("redis-cluster://") || url.starts_with("rediss-cluster://");
}

Result<RedisClusterUrl> parse_redis_cluster_url(std::string_view url) {
  const ErrorCode bad = make_error_code(BrokerError::kBadUrl);
  std::string_view scheme;
  if (url.starts_with("redis-cluster://")) {
    scheme = "redis://";
    url.remove_prefix(16);
  } else if (url.starts_with("rediss-cluster://")) {
    scheme = "rediss://";
    url.remove_prefix(17);
  } else {
    return bad;
  }
  const std::size_t slash = url.find('/');
  const std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
  std::string_view authority = url.substr(0, slash);
  std::string_view userinfo;
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    userinfo = authority.substr(0, at + 1);
    authority = authority.substr(at + 1);
  }
  RedisClusterUrl out;
  while (true) {
    const std::size_t comma = authority.find(',');
    std::string one(scheme);
    one += userinfo;
    one += authority.substr(0, comma);
    one += path;
    auto seed = parse_redis_url(one);
    if (!seed || seed->db != 0) return bad;
    if (out.seeds.empty()) out.url = *seed;
    out.seeds.emplace_back(seed->host, seed->port);
    if (comma == std::string_view::npos) break;
    authority.remove_prefix(comma + 1);
  }
  return out;
}

bool is_redis_sentinel_url(std::string_view url) {
  return url.starts_with("redis-sentinel://") || url.starts_with("rediss-sentinel://");
}

Result<RedisSentinelUrl> parse_redis_sentinel_url(std::string_view url) {
  const ErrorCode bad = make_error_code(BrokerError::kBadUrl);
  std::string_view scheme;
  if (url.starts_with("redis-sentinel://")) {
    scheme = "redis://";
    url.remove_prefix(17);
  } else if (url.starts_with("rediss-sentinel://")) {
    scheme = "rediss://";
    url.remove_prefix(18);
  } else {
    return bad;
  }
  if (url.find_first_of("?#") != std::string_view::npos) return bad;
  const std::size_t slash = url.find('/');
  if (slash == std::string_view::npos) return bad;
  std::string_view authority = url.substr(0, slash);
  std::string_view path = url.substr(slash + 1);
  const std::size_t db_slash = path.find('/');
  const std::string_view db = db_slash == std::string_view::npos ? "" : path.substr(db_slash + 1);
  path = path.substr(0, db_slash);
  RedisSentinelUrl out;
  if (!core::percent_decode(path, out.master_name, false) || out.master_name.empty()) return bad;
  std::string_view userinfo;
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    userinfo = authority.substr(0, at + 1);
    authority = authority.substr(at + 1);
  }
  while (true) {
    const std::size_t comma = authority.find(',');
    const std::string_view one = authority.substr(0, comma);
    std::string text(scheme);
    text += userinfo;
    text += one;
    if (out.sentinels.empty()) {
      text.push_back('/');
      text += db;
    }
    auto parsed = parse_redis_url(text);
    if (!parsed) return bad;
    // parse_redis_url's default port is Redis's; a Sentinel's is another.
    const bool has_port = one.starts_with('[') ? one.find("]:") != std::string_view::npos
                                               : one.find(':') != std::string_view::npos;
    if (!has_port) parsed->port = kDefaultSentinelPort;
    if (out.sentinels.empty()) out.url = *parsed;
    out.sentinels.emplace_back(parsed->host, parsed->port);
    if (comma == std::string_view::npos) break;
    authority.remove_prefix(comma + 1);
  }
  out.url.host.clear();
  out.url.port = 0;
  return out;
}

}  // namespace sg::broker
