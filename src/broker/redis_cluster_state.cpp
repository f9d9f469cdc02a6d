#include "broker/redis_cluster_state.hpp"

#include "log/log.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>

namespace sg::broker::redis {
namespace {

// Now in milliseconds by Redis's clock, so expiry scores written by one node and judged by
// another never depend on their clocks agreeing.
#define SG_LUA_NOW                 \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

// KEYS: members (zset: "<node>\x1f<user>" → expiry ms), info (hash: member → "<since ms> <n>")
// ARGV: ttl ms, then per member: member, since ms, connections ('0' removes it)
constexpr std::string_view kSetScript = SG_LUA_NOW R"lua(
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '0' then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return 1
)lua";

// KEYS: members, info. Drops expired members, returns {member, info or false, ...}.
constexpr std::string_view kReadScript = SG_LUA_NOW R"lua(
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
for i = 1, #dead, 500 do
  redis.call('HDEL', KEYS[2], unpack(dead, i, math.min(i + 499, #dead)))
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now)) end
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for i = 1, #live, 500 do
  local last = math.min(i + 499, #live)
  local info = redis.call('HMGET', KEYS[2], unpack(live, i, last))
  for j = i, last do
    out[#out + 1] = live[j]
    out[#out + 1] = info[j - i + 1]
  end
end
return out
)lua";

// KEYS: nodes (zset: node id → expiry ms), this node's snapshot. ARGV: node id, ttl ms, json.
constexpr std::string_view kPutStatsScript = SG_LUA_NOW R"lua(
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return 1
)lua";

// KEYS: nodes. ARGV: the prefix of snapshot keys. Returns the live nodes' snapshots.
constexpr std::string_view kGetStatsScript = SG_LUA_NOW R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local snapshot = redis.call('GET', ARGV[1] .. id)
  if snapshot then out[#out + 1] = snapshot end
end
return out
)lua";

#undef SG_LUA_NOW

constexpr char kSeparator = '\x1f';
// Members per script call, so a heartbeat of a big scope doesn't become one huge command.
constexpr std::size_t kMembersPerCall = 1000;

std::int64_t to_millis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

ClusterState::ClusterState(boost::asio::io_context& io, Commands& cmd, std::string key_prefix,
                           std::string node_id, std::chrono::milliseconds ttl)
    : io_(io),
      cmd_(cmd),
      prefix_(std::move(key_prefix)),
      node_(std::move(node_id)),
      ttl_(std::max(ttl, std::chrono::milliseconds(300))),
      ttl_text_(std::to_string(ttl_.count())),
      timer_(io) {}

void ClusterState::on_up() {
  heartbeat();
  if (!running_) {
    running_ = true;
    schedule_heartbeat();
  }
}

void ClusterState::stop() {
  stopped_ = true;
  timer_.cancel();
}

void ClusterState::schedule_heartbeat() {
  if (stopped_) return;
  timer_.expires_after(ttl_ / 3);
  timer_.async_wait([this](const ErrorCode& ec) {
    if (ec || stopped_) return;
    heartbeat();
    schedule_heartbeat();
  });
}

void ClusterState::heartbeat() {
  if (!cmd_.up()) return;
  for (const auto& [key, scope] : table_.scopes()) write_scope(scope);
  write_node_stats();
}

std::string hash_tagged(std::string_view prefix, const Channel& channel) {
  std::string name(prefix);
  name.push_back('{');
  core::append_decimal(name, channel.org.size());
  name.push_back(':');
  name += channel.org;
  name.push_back('/');
  name += channel.topic;
  name.push_back('}');
  return name;
}

std::string ClusterState::presence_key(const Channel& scope) const {
  return hash_tagged(prefix_ + "presence:", scope);
}

void ClusterState::eval(const Script& script, std::vector<std::string> args, ReplyHandler handler,
                        bool by_sha) {
  // Kept alive with the handler: the views below point into it, and a NOSCRIPT retry needs it.
  auto kept = std::make_shared<std::vector<std::string>>(std::move(args));
  std::vector<std::string_view> views;
  views.reserve(kept->size() + 2);
  views.push_back(by_sha ? "EVALSHA" : "EVAL");
  views.push_back(by_sha ? std::string_view(script.sha) : script.text);
  for (const auto& arg : *kept) views.push_back(arg);
  cmd_.send(std::span<const std::string_view>(views),
            [this, &script, kept, handler = std::move(handler), by_sha](
                const ErrorCode& ec, const redisReply* reply) mutable {
              if (!ec && by_sha && is_error(reply) && reply_text(*reply).starts_with("NOSCRIPT")) {
                eval(script, std::move(*kept), std::move(handler), false);
                return;
              }
              handler(ec, reply);
            });
}

void ClusterState::write_members(const Channel& scope, const std::vector<PresenceEntry>& entries) {
  static const Script script{(kSetScript), sha1_hex(kSetScript)};
  const std::string key = presence_key(scope);
  for (std::size_t first = 0; first < entries.size(); first += kMembersPerCall) {
    const std::size_t last = std::min(entries.size(), first + kMembersPerCall);
    std::vector<std::string> args{"2", key, key + ":info", ttl_text_};
    args.reserve(4 + 3 * (last - first));
    for (std::size_t i = first; i < last; ++i) {
      args.push_back(node_ + kSeparator + entries[i].user);
      args.push_back(std::to_string(to_millis(entries[i].since)));
      args.push_back(std::to_string(entries[i].connections));
    }
    eval(script, std::move(args), [scope](const ErrorCode& ec, const redisReply* reply) {
      // Not fatal: the next heartbeat writes it again.
      if (!ec && is_error(reply)) {
        log::warn("broker", "redis refused a presence update",
                  {{"org", scope.org}, {"reply", reply_text(*reply)}});
      }
    });
  }
}

void ClusterState::write_scope(const PresenceTable::Scope& scope) {
  std::vector<PresenceEntry> entries;
  entries.reserve(scope.users.size());
  for (const auto& [user, local] : scope.users) {
    entries.push_back(PresenceEntry{user, local.since, local.connections});
  }
  write_members(scope.channel, entries);
}

void ClusterState::set_presence(const Channel& scope, const std::string& user,
                                std::uint32_t connections) {
  PresenceEntry entry = table_.set(scope, user, connections, std::chrono::system_clock::now());
  Pending& pending = pending_[scope.key()];
  if (pending.users.empty()) pending.scope = scope;
  pending.users.insert_or_assign(user, std::move(entry));
  schedule_flush();
}

void ClusterState::schedule_flush() {
  if (flush_scheduled_ || stopped_) return;
  flush_scheduled_ = true;
  // Posted, not timed: whatever changes are already queued on this thread when it runs go out
  // together, and a lone change goes out at once.
  boost::asio::post(io_, [this] {
    flush_scheduled_ = false;
    if (!stopped_) flush();
  });
}

void ClusterState::flush() {
  auto pending = std::move(pending_);
  pending_.clear();
  // While Redis is away the table alone changes: on_up writes what is present, and what left
  // meanwhile expires with its TTL.
  if (!cmd_.up()) return;
  for (auto& [key, scope] : pending) {
    std::vector<PresenceEntry> entries;
    entries.reserve(scope.users.size());
    for (auto& [user, entry] : scope.users) entries.push_back(std::move(entry));
    write_members(scope.scope, entries);
  }
}

void ClusterState::presence(const Channel& scope,
                            std::function<void(Result<std::vector<PresenceEntry>>)> done) {
  static const Script script{(kReadScript), sha1_hex(kReadScript)};
  // This node's own changes first: on the same connection they reach Redis before the read.
  flush();
  const std::string key = presence_key(scope);
  eval(script, {"2", key, key + ":info"},
       [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
         const ErrorCode unavailable = make_error_code(BrokerError::kUnavailable);
         if (ec || reply == nullptr || reply->type != REDIS_REPLY_ARRAY) {
           if (reply != nullptr && is_error(reply)) {
             log::warn("broker", "redis refused a presence read", {{"reply", reply_text(*reply)}});
           }
           done(unavailable);
           return;
         }
         std::vector<PresenceEntry> entries;
         entries.reserve(reply->elements / 2);
         for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
           if (reply->element[i]->type != REDIS_REPLY_STRING) continue;
           const std::string_view member = reply_text(*reply->element[i]);
           const std::size_t cut = member.find(kSeparator);
           if (cut == std::string_view::npos) continue;
           PresenceEntry entry;
           entry.user = std::string(member.substr(cut + 1));
           entry.since = std::chrono::system_clock::now();
           entry.connections = 1;
           // A member whose info is missing (written half-way) still counts as present.
           if (reply->element[i + 1]->type == REDIS_REPLY_STRING) {
             const std::string_view info = reply_text(*reply->element[i + 1]);
             const std::size_t space = info.find(' ');
             std::int64_t since = 0;
             std::uint32_t connections = 0;
             if (space != std::string_view::npos && parse_number(info.substr(0, space), since) &&
                 parse_number(info.substr(space + 1), connections)) {
               entry.since =
                   std::chrono::system_clock::time_point(std::chrono::milliseconds(since));
               entry.connections = connections;
             }
           }
           entries.push_back(std::move(entry));
         }
         done(merge_presence(std::move(entries)));
       });
}

void ClusterState::set_stats_source(std::function<std::string()> source) {
  std::lock_guard lock(source_mutex_);
  source_ = std::move(source);
}

void ClusterState::write_node_stats() {
  static const Script script{(kPutStatsScript), sha1_hex(kPutStatsScript)};
  std::function<std::string()> source;
  {
    std::lock_guard lock(source_mutex_);
    source = source_;
  }
  if (!source) return;
  eval(script, {"2", prefix_ + "{nodes}", prefix_ + "{nodes}:" + node_, node_, ttl_text_, source()},
       [](const ErrorCode&, const redisReply*) {});
}

void ClusterState::node_stats(std::function<void(Result<std::vector<std::string>>)> done) {
  static const Script script{(kGetStatsScript), sha1_hex(kGetStatsScript)};
  // Written now, so a fresh node is in its own cluster view at once.
  write_node_stats();
  eval(script, {"1", prefix_ + "{nodes}", prefix_ + "{nodes}:"},
       [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
         if (ec || reply == nullptr || reply->type != REDIS_REPLY_ARRAY) {
           done(make_error_code(BrokerError::kUnavailable));
           return;
         }
         std::vector<std::string> nodes;
         for (std::size_t i = 0; i < reply->elements; ++i) {
           if (reply->element[i]->type == REDIS_REPLY_STRING) {
             nodes.emplace_back(reply_text(*reply->element[i]));
           }
         }
         done(std::move(nodes));
       });
}

}  // namespace sg::broker::redis
