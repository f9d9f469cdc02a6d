// Org overrides are one hash (org → override JSON) and a version counter beside it, in one hash
// slot: a change bumps the version, so a node polling the version reads the whole hash only
// after something changed, and the --org-max-overrides bound is checked where every node's
// writes meet. Usage is one hash per (org, hour), its keys tagged by org so one script reads an
// org's range of hours on a Redis Cluster too.
#include "broker/redis_store.hpp"

#include "core/core.hpp"

#include <atomic>
#include <charconv>

namespace sg::broker::redis {
namespace {

// KEYS: overrides hash, version. ARGV: org, override JSON, max orgs with one.
constexpr std::string_view kPutLimitsScript = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and
   redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
)lua";

// KEYS: overrides hash, version. ARGV: org.
constexpr std::string_view kRemoveLimitsScript = R"lua(
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
)lua";

// KEYS: overrides hash, version. ARGV: the version the caller has.
// Returns {version} when unchanged, else {version, {org, override, ...}}.
constexpr std::string_view kLoadLimitsScript = R"lua(
local v = redis.call('GET', KEYS[2]) or '0'
if v == ARGV[1] then return {v} end
return {v, redis.call('HGETALL', KEYS[1])}
)lua";

// KEYS: the (org, hour) hash. ARGV: retention (s), this node's peak field, its peak, then
// field, amount pairs.
constexpr std::string_view kAddUsageScript = R"lua(
local peak = tonumber(ARGV[3])
if peak > tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0') then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
for i = 4, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
)lua";

// KEYS: the (org, day) upload counter. ARGV: bytes, quota, TTL (s). 1 when added, else 0.
constexpr std::string_view kAddUploadBytesScript = R"lua(
local n = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') + n > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// KEYS: the (org, day) upload counter. ARGV: bytes. Never below zero, never recreates it.
constexpr std::string_view kReturnUploadBytesScript = R"lua(
local have = tonumber(redis.call('GET', KEYS[1]) or '0')
if have <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], math.min(have, tonumber(ARGV[1])))
return 1
)lua";

// A day's upload counter outlives the day by an hour, so nodes whose clocks differ a little
// still find it, and then goes by itself.
constexpr std::int64_t kUploadDayTtlSeconds = 86400 + 3600;

// KEYS: the (org, hour) hashes. Returns their HGETALLs in order.
constexpr std::string_view kReadUsageScript = R"lua(
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end
return out
)lua";

bool failed(const ErrorCode& ec, const redisReply* reply) {
  return ec || reply == nullptr || is_error(reply);
}

ErrorCode failure(const ErrorCode& ec) {
  return ec == make_error_code(BrokerError::kShuttingDown)
             ? ec
             : make_error_code(BrokerError::kUnavailable);
}

// A failed Result<T> (spelled out: Result<bool> would take an error code for a bool).
template <class T>
Result<T> failed_with(const ErrorCode& ec) {
  return Result<T>(boost::system::in_place_error, failure(ec));
}

std::uint64_t number_of(const redisReply& r) {
  if (r.type == REDIS_REPLY_INTEGER)
    return r.integer > 0 ? static_cast<std::uint64_t>(r.integer) : 0;
  std::uint64_t n = 0;
  const std::string_view text = reply_text(r);
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

std::string text_of(const redisReply& r) {
  if (r.type == REDIS_REPLY_INTEGER) return std::to_string(r.integer);
  return std::string(reply_text(r));
}

class RedisStore final : public SharedStore {
 public:
  RedisStore(std::string prefix, RunCommand run)
      : prefix_(std::move(prefix)),
        limits_key_(prefix_ + "{org-limits}"),
        version_key_(prefix_ + "{org-limits}:v"),
        run_(std::move(run)) {}

  void put_org_limits(const std::string& org, const std::string& value, std::size_t max,
                      std::function<void(Result<bool>)> done) override {
    run_({"EVAL", std::string(kPutLimitsScript), "2", limits_key_, version_key_, org, value,
          std::to_string(max)},
         [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failed_with<bool>(ec));
           done(Result<bool>(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1));
         });
  }

  void remove_org_limits(const std::string& org, std::function<void(Result<bool>)> done) override {
    run_({"EVAL", std::string(kRemoveLimitsScript), "2", limits_key_, version_key_, org},
         [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failed_with<bool>(ec));
           done(Result<bool>(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1));
         });
  }

  void org_limits(const std::string& org,
                  std::function<void(Result<std::optional<std::string>>)> done) override {
    run_({"HGET", limits_key_, org},
         [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failed_with<std::optional<std::string>>(ec));
           if (reply->type != REDIS_REPLY_STRING) return done(std::optional<std::string>());
           done(std::optional<std::string>(std::string(reply_text(*reply))));
         });
  }

  void load_org_limits(
      const std::string& known, std::size_t max,
      std::function<void(Result<std::optional<OrgLimitsSnapshot>>)> done) override {
    run_({"EVAL", std::string(kLoadLimitsScript), "2", limits_key_, version_key_, known},
         [max, done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failed_with<std::optional<OrgLimitsSnapshot>>(ec));
           if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
             return done(failed_with<std::optional<OrgLimitsSnapshot>>(ErrorCode()));
           }
           if (reply->elements < 2) return done(std::optional<OrgLimitsSnapshot>());
           OrgLimitsSnapshot snapshot;
           snapshot.version = text_of(*reply->element[0]);
           const redisReply& all = *reply->element[1];
           for (std::size_t i = 0; i + 1 < all.elements && snapshot.entries.size() < max; i += 2) {
             snapshot.entries.emplace_back(text_of(*all.element[i]), text_of(*all.element[i + 1]));
           }
           done(std::optional<OrgLimitsSnapshot>(std::move(snapshot)));
         });
  }

  void add_usage(std::vector<UsageDelta> deltas, const std::string& node,
                 std::chrono::seconds retention, std::function<void(Result<void>)> done) override {
    if (deltas.empty()) return done(Result<void>());
    struct Batch {
      std::atomic<std::size_t> waiting{0};
      std::atomic<bool> failed{false};
      std::function<void(Result<void>)> done;
    };
    auto batch = std::make_shared<Batch>();
    batch->waiting = deltas.size();
    batch->done = std::move(done);
    const std::string ttl = std::to_string(std::max<std::int64_t>(1, retention.count()));
    const std::string peak_field = "peak:" + node;
    for (const UsageDelta& d : deltas) {
      std::vector<std::string> args{
          "EVAL",     std::string(kAddUsageScript), "1", usage_key(d.org, d.hour), ttl,
          peak_field, std::to_string(d.peak)};
      for (const auto& [field, amount] : d.increments) {
        if (amount == 0) continue;
        args.push_back(field);
        args.push_back(std::to_string(amount));
      }
      run_(std::move(args), [batch](const ErrorCode& ec, const redisReply* reply) {
        if (failed(ec, reply)) batch->failed = true;
        if (batch->waiting.fetch_sub(1) != 1) return;
        if (batch->failed.load()) return batch->done(make_error_code(BrokerError::kUnavailable));
        batch->done(Result<void>());
      });
    }
  }

  void read_usage(const std::string& org, std::vector<std::int64_t> hours,
                  std::function<void(Result<UsageHours>)> done) override {
    if (hours.empty()) return done(UsageHours{});
    std::vector<std::string> args{"EVAL", std::string(kReadUsageScript),
                                  std::to_string(hours.size())};
    for (const std::int64_t hour : hours) args.push_back(usage_key(org, hour));
    run_(std::move(args),
         [n = hours.size(), done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failure(ec));
           if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
             return done(make_error_code(BrokerError::kUnavailable));
           }
           UsageHours out(n);
           for (std::size_t h = 0; h < n; ++h) {
             const redisReply& fields = *reply->element[h];
             for (std::size_t i = 0; i + 1 < fields.elements; i += 2) {
               out[h].emplace_back(text_of(*fields.element[i]), number_of(*fields.element[i + 1]));
             }
           }
           done(std::move(out));
         });
  }

  void add_upload_bytes(const std::string& org, std::int64_t day, std::uint64_t bytes,
                        std::uint64_t quota, std::function<void(Result<bool>)> done) override {
    run_({"EVAL", std::string(kAddUploadBytesScript), "1", upload_key(org, day),
          std::to_string(bytes), std::to_string(quota), std::to_string(kUploadDayTtlSeconds)},
         [done = std::move(done)](const ErrorCode& ec, const redisReply* reply) {
           if (failed(ec, reply)) return done(failed_with<bool>(ec));
           done(Result<bool>(reply->type == REDIS_REPLY_INTEGER && reply->integer == 1));
         });
  }

  void return_upload_bytes(const std::string& org, std::int64_t day, std::uint64_t bytes) override {
    run_({"EVAL", std::string(kReturnUploadBytesScript), "1", upload_key(org, day),
          std::to_string(bytes)},
         [](const ErrorCode&, const redisReply*) {});
  }

 private:
  // Tagged by org like the usage hashes, so an org's keys share a slot on a Redis Cluster.
  std::string upload_key(const std::string& org, std::int64_t day) const {
    std::string key = prefix_ + "upload-bytes:{" + org + "}:";
    key += std::to_string(day);
    return key;
  }

  std::string usage_key(const std::string& org, std::int64_t hour) const {
    std::string key = prefix_ + "usage:{" + org + "}:";
    key += std::to_string(hour);
    return key;
  }

  std::string prefix_;
  std::string limits_key_;
  std::string version_key_;
  RunCommand run_;
};

}  // namespace

std::unique_ptr<SharedStore> make_redis_store(std::string key_prefix, RunCommand run) {
  return std::make_unique<RedisStore>(std::move(key_prefix), std::move(run));
}

}  // namespace sg::broker::redis
