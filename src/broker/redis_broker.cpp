// The Redis broker. Each channel is four things in Redis: a counter (its offsets), an epoch
// (made once per channel, kept with the counter, so it survives node restarts), a Stream with
// entry ids "<offset>-0" (its history) and a Pub/Sub channel (live delivery). A publish is one
// Lua script, so offset, history, idempotency key and notification never disagree.
//
// Everything about connections and channels runs on the broker's own I/O thread, so none of it
// needs a lock; callers post to it. The exceptions are what a caller's thread must see at once:
// subscription counts for stats(), and each subscription's `dead` flag, which is what makes
// "after the destructor returns the sink is not called again" hold.
//
// One Pub/Sub connection serves every subscription of the node: one SUBSCRIBE per channel,
// however many Subscriptions share it. Each channel remembers the last event it delivered;
// after the connection comes back (or when an offset is skipped) it reads the Stream from there
// while holding live messages, then merges by offset, so subscribers see every stored event
// once and in order. On a Redis Cluster, redis::ClusterRouter stands in for both connections:
// commands go to their slot's primary, channels SSUBSCRIBE on it, and a channel whose slot moves
// catches up the same way.
#include "broker/broker.hpp"

#include "broker/redis_cluster_router.hpp"
#include "broker/redis_cluster_state.hpp"
#include "broker/redis_connection.hpp"
#include "broker/redis_sentinel.hpp"
#include "broker/redis_store.hpp"
#include "broker/redis_url.hpp"
#include "log/log.hpp"
#include "protocol/protocol.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace sg::broker {
namespace {

namespace asio = boost::asio;
using redis::Connection;
using redis::reply_text;
using redis::sha1_hex;
using SteadyClock = std::chrono::steady_clock;

// KEYS: offset counter, epoch, stream[, idempotency key]
// ARGV: epoch to create the channel with, history, history ttl (ms), idempotency ttl (s),
//       stream idle expiry (s), Pub/Sub channel, event, data, user, then the publishing node's
//       mark: the epoch ('' = none) and highest offset it acknowledged or delivered
// Returns {0, first id} for a repeated idempotency key, else {1, epoch, offset, time in ms,
// 1 if the channel moved to a new epoch first}.
// A counter below the mark in the mark's epoch has gone back (a failover lost its tail, or it
// was rewound): the next offsets would name events clients already saw. The channel then
// starts over as if Redis had lost it whole (the epoch the caller offers, offset 1, empty
// history), which is what resuming clients are told by `epoch_changed`. Checked and moved in
// one script, so two nodes that notice at once move it only once.
// Offsets and times go through string.format('%d'): Lua 5.1 prints large numbers as 1e+14.
constexpr std::string_view kPublishScript = R"lua(
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first then return {0, first} end
end
local epoch = redis.call('GET', KEYS[2])
local moved = 0
if epoch and epoch == ARGV[10] and
   tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[11]) then
  redis.call('DEL', KEYS[1], KEYS[3])
  epoch = nil
  moved = 1
end
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local offset = redis.call('INCR', KEYS[1])
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local history = tonumber(ARGV[2])
if history > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], string.format('%d-0', offset),
             't', string.format('%d', ms), 'e', ARGV[7], 'd', ARGV[8], 'u', ARGV[9])
  local ttl = tonumber(ARGV[3])
  if ttl > 0 then
    local cutoff = ms - ttl
    local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
    if #oldest > 0 and tonumber(oldest[1][2][2]) <= cutoff then
      local batch = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 100)
      local keep = nil
      for _, entry in ipairs(batch) do
        if tonumber(entry[2][2]) > cutoff then
          keep = entry[1]
          break
        end
      end
      if not keep then
        keep = string.format('%d-0', tonumber(string.match(batch[#batch][1], '^(%d+)')) + 1)
      end
      redis.call('XTRIM', KEYS[3], 'MINID', keep)
    end
  end
  if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
end
if KEYS[4] then
  local id = epoch .. '-' .. string.format('%d', offset)
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[4], id, 'EX', ARGV[4])
  else
    redis.call('SET', KEYS[4], id)
  end
end
redis.call('PUBLISH', ARGV[6], string.format('%s %d %d %d %d ', epoch, offset, ms, #ARGV[9],
           #ARGV[7]) .. ARGV[9] .. ARGV[7] .. ARGV[8])
return {1, epoch, offset, ms, moved}
)lua";

// KEYS: offset counter, epoch, stream
// ARGV: the epoch a node delivered in, the highest offset it delivered there, a new epoch
// Returns {1 if it moved the channel, the channel's epoch or '', its last offset}. The same
// check and move as the publish script's, for a node that sees the regression on a read or a
// live message rather than on its own publish. Only ever given what a node acknowledged or
// delivered, never a client's resume position: a client could claim any offset.
constexpr std::string_view kMoveEpochScript = R"lua(
local epoch = redis.call('GET', KEYS[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if not epoch or epoch ~= ARGV[1] or last >= tonumber(ARGV[2]) then
  return {0, epoch or '', last}
end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SET', KEYS[2], ARGV[3])
return {1, ARGV[3], 0}
)lua";

// The start of both read scripts: the channel's epoch ('' when none), its last offset, and
// Redis's clock in ms (the scripts' answers carry it for the history TTL).
constexpr std::string_view kReadPrelude = R"lua(
local epoch = redis.call('GET', KEYS[2]) or ''
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
)lua";

// KEYS: offset counter, epoch, stream
// ARGV: the reader's epoch ('' = head only), its offset, history, how many entries at most
// Returns {epoch or '', last offset, now in ms, entries after the offset within history}.
// Entries come only when the reader's epoch is the channel's.
const std::string kHistoryScript = std::string(kReadPrelude) + R"lua(
if ARGV[1] == '' or ARGV[1] ~= epoch then return {epoch, last, now, {}} end
local history = tonumber(ARGV[3])
local start = tonumber(ARGV[2]) + 1
if last - history + 1 > start then start = last - history + 1 end
if history == 0 or start > last then return {epoch, last, now, {}} end
return {epoch, last, now,
        redis.call('XRANGE', KEYS[3], string.format('%d-0', start), '+', 'COUNT', ARGV[4])}
)lua";

// KEYS: offset counter, epoch, stream
// ARGV: the exclusive upper offset (0 = from the newest), how many entries at most, history
// Returns {epoch or '', last offset, now in ms, entries below the offset, newest first}; like
// the history script, only the newest `history` offsets count (MAXLEN ~ may keep a few more).
const std::string kHistoryBeforeScript = std::string(kReadPrelude) + R"lua(
local before = tonumber(ARGV[1])
local top = '+'
if before > 0 then
  if before <= 1 then return {epoch, last, now, {}} end
  top = string.format('%d-0', before - 1)
end
if tonumber(ARGV[2]) == 0 then return {epoch, last, now, {}} end
local floor = last - tonumber(ARGV[3]) + 1
if floor < 1 then floor = 1 end
return {epoch, last, now,
        redis.call('XREVRANGE', KEYS[3], top, string.format('%d-0', floor), 'COUNT', ARGV[2])}
)lua";

// Lua numbers are doubles: offsets above 2^53 can't pass through exactly. No channel gets near
// it, so a position beyond it is just one from the future.
constexpr std::uint64_t kMaxLuaOffset = std::uint64_t{1} << 53;
// Live messages held per channel while its Stream is read; past it the read is repeated.
constexpr std::size_t kMaxHeldEvents = 100000;
// The epoch reported for a channel nothing was ever published to. Real epochs are 12 hex
// digits, so no id a client holds can carry it.
constexpr std::string_view kNoEpoch = "0";
// How many channels stats() remembers this node published to, beyond those it subscribes.
constexpr std::size_t kMaxTrackedChannels = 65536;
// KEYS: the revocations hash. ARGV: field, value, ms the entry must live. The hash lives as
// long as its longest-lived entry; a load skips the expired ones.
constexpr std::string_view kStoreRevocationScript = R"lua(
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
)lua";

constexpr auto kCatchUpRetry = std::chrono::milliseconds(500);

bool valid(const Channel& channel) {
  return !channel.org.empty() && !channel.topic.empty();
}

struct ChannelKeys {
  std::string name;  // the Pub/Sub channel, and the common start of the channel's keys
  std::string seq;
  std::string epoch;
  std::string stream;
};

ChannelKeys channel_keys(const std::string& prefix, const Channel& channel) {
  std::string name = redis::hash_tagged(prefix, channel);
  return {name, name + ":seq", name + ":epoch", name + ":stream"};
}

EventPtr make_event(std::string_view topic, std::string_view epoch, std::uint64_t offset,
                    std::int64_t millis, std::string_view user, std::string_view type,
                    std::string_view data) {
  auto event = std::make_shared<Event>();
  event->offset = offset;
  // Offset 0 is a signal (never stored): it has no position to name.
  if (offset > 0) event->id = protocol::format_event_id(epoch, offset);
  event->user = std::string(user);
  event->published_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(millis));
  event->body = protocol::serialize_event_body(topic, event->id, type, data,
                                               core::format_rfc3339(event->published_at));
  return event;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// An event of some epoch, as received.
struct Incoming {
  std::string epoch;
  EventPtr event;
};

// Parses "<epoch> <offset> <ms> <user bytes> <event bytes> <user><event><data>", as the
// publish script writes it, and builds the event (and its body) once.
std::optional<Incoming> parse_message(std::string_view topic, std::string_view payload) {
  std::array<std::string_view, 5> fields;
  for (auto& field : fields) {
    const std::size_t space = payload.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    field = payload.substr(0, space);
    payload.remove_prefix(space + 1);
  }
  std::uint64_t offset = 0;
  std::int64_t millis = 0;
  std::size_t user_size = 0;
  std::size_t event_size = 0;
  if (fields[0].empty() || !parse_number(fields[1], offset) || !parse_number(fields[2], millis) ||
      !parse_number(fields[3], user_size) || !parse_number(fields[4], event_size) ||
      user_size > payload.size() || event_size > payload.size() - user_size) {
    return std::nullopt;
  }
  const std::string_view user = payload.substr(0, user_size);
  const std::string_view type = payload.substr(user_size, event_size);
  const std::string_view data = payload.substr(user_size + event_size);
  return Incoming{std::string(fields[0]),
                  make_event(topic, fields[0], offset, millis, user, type, data)};
}

// A stream entry: ["<offset>-0", ["t", ms, "e", event, "d", data, "u", user]].
EventPtr parse_entry(std::string_view topic, std::string_view epoch, const redisReply& entry) {
  if (entry.type != REDIS_REPLY_ARRAY || entry.elements != 2 ||
      entry.element[0]->type != REDIS_REPLY_STRING || entry.element[1]->type != REDIS_REPLY_ARRAY) {
    return nullptr;
  }
  const std::string_view id = reply_text(*entry.element[0]);
  std::uint64_t offset = 0;
  if (!parse_number(id.substr(0, id.find('-')), offset)) return nullptr;
  const redisReply& fields = *entry.element[1];
  std::int64_t millis = -1;
  std::string_view type, data, user;
  for (std::size_t i = 0; i + 1 < fields.elements; i += 2) {
    if (fields.element[i]->type != REDIS_REPLY_STRING ||
        fields.element[i + 1]->type != REDIS_REPLY_STRING) {
      return nullptr;
    }
    const std::string_view name = reply_text(*fields.element[i]);
    const std::string_view value = reply_text(*fields.element[i + 1]);
    if (name == "t") {
      if (!parse_number(value, millis)) return nullptr;
    } else if (name == "e") {
      type = value;
    } else if (name == "d") {
      data = value;
    } else if (name == "u") {
      user = value;
    }
  }
  if (millis < 0) return nullptr;
  return make_event(topic, epoch, offset, millis, user, type, data);
}

// What the history script read, before it is judged against a position.
struct StreamRead {
  std::string epoch;  // empty: nothing was ever published
  std::uint64_t last_offset = 0;
  std::vector<EventPtr> events;  // after the requested offset, within history and TTL
};

// Lets the channel map be searched by a Pub/Sub message's channel name without a copy.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view name) const noexcept {
    return std::hash<std::string_view>{}(name);
  }
};

// One Subscription's link to the I/O thread.
struct LocalSub {
  LocalSub(Sink s, std::function<void()> ready_callback)
      : sink(std::move(s)), on_ready(std::move(ready_callback)) {}

  std::mutex mutex;
  bool dead = false;  // guarded by mutex; set by the Subscription's destructor
  const Sink sink;    // called only with mutex held and dead false
  // I/O thread only.
  std::function<void()> on_ready;
  bool ready = false;
};
using LocalSubPtr = std::shared_ptr<LocalSub>;

// A channel this node subscribes to. I/O thread only.
struct ChannelState {
  enum class Phase {
    kSubscribing,  // SUBSCRIBE not yet confirmed on the current Pub/Sub connection
    kCatchingUp,   // reading the stream after `position`; live messages are held
    kLive,
  };

  Channel channel;
  ChannelKeys keys;
  std::uint64_t serial = 0;  // tells this state from an older one of the same channel
  std::vector<LocalSubPtr> subs;
  Phase phase = Phase::kSubscribing;
  std::optional<Position> position;  // the newest event delivered to the subscribers
  // The epoch delivery moved away from (empty: none). Its messages still in flight (held during
  // a catch-up, or sent before a move) are older than anything delivered since: never delivered.
  std::string left_epoch;
  std::vector<Incoming> held;
  bool held_overflow = false;
  std::uint64_t read_serial = 0;  // the catch-up read in flight, 0 if none
  bool checking = false;          // a regression check (kMoveEpochScript) is in flight
};

class Impl {
 public:
  // `cluster`: the seeds of a Redis Cluster (url then carries their credentials and TLS);
  // `sentinel`: the Sentinels that name the primary (url then carries its credentials, TLS and
  // db, and no host); neither: one Redis at url.
  Impl(const RedisBrokerOptions& options, RedisUrl url,
       std::vector<std::pair<std::string, std::uint16_t>> cluster = {},
       std::optional<RedisSentinelUrl> sentinel = std::nullopt)
      : options_(options),
        url_(std::move(url)),
        // Redis Cluster: sharded Pub/Sub, so an event crosses only its own shard.
        publish_script_(cluster.empty() ? std::string(kPublishScript) : sharded(kPublishScript)),
        publish_command_(cluster.empty() ? "PUBLISH" : "SPUBLISH"),
        publish_sha_(sha1_hex(publish_script_)),
        history_sha_(sha1_hex(kHistoryScript)),
        history_before_sha_(sha1_hex(kHistoryBeforeScript)),
        history_(std::to_string(options.history)),
        history_ttl_ms_(std::to_string(std::chrono::milliseconds(options.history_ttl).count())),
        idempotency_ttl_(std::to_string(options.idempotency_ttl.count())),
        stream_expiry_(
            std::to_string(options.history_ttl.count() > 0 ? options.history_ttl.count() + 1 : 0)),
        work_(asio::make_work_guard(io_)),
        retry_timer_(io_) {
    const std::string node = core::random_hex(4);
    node_ = core::random_hex(8);
    if (!cluster.empty()) {
      start_cluster(node, cluster);
      return;
    }
    auto cmd = std::make_unique<Connection>(
        io_, connection_options("streamgate-cmd-" + node, false, sentinel.has_value()),
        Connection::Handlers{[this] { on_cmd_up(); }, [this](const ErrorCode&) { on_health(); },
                             nullptr});
    Connection* const primary_cmd = cmd.get();
    cmd_ = std::move(cmd);
    sub_ = std::make_unique<Connection>(
        io_, connection_options("streamgate-sub-" + node, true, sentinel.has_value()),
        Connection::Handlers{[this] { on_sub_up(); }, [this](const ErrorCode&) { on_sub_down(); },
                             [this](std::string_view name, std::string_view payload) {
                               on_message(name, payload);
                             }});
    if (sentinel) {
      // Both connections go where the Sentinels say and come up only on a verified primary;
      // the broker is healthy, and asks the Sentinels nothing more, while both are up.
      sentinel_ = std::make_unique<redis::SentinelResolver>(
          io_, connection_options("streamgate-sentinel-" + node, false),
          std::move(sentinel->master_name), std::move(sentinel->sentinels),
          redis::SentinelResolver::Handlers{
              [this, primary_cmd](const std::string& host, std::uint16_t port) {
                primary_cmd->redirect(host, port);
                sub_->redirect(host, port);
              }});
    }
    cluster_ = std::make_unique<redis::ClusterState>(io_, *cmd_, options_.key_prefix, node,
                                                     options_.presence_ttl);
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void start() {
    asio::post(io_, [this] {
      cmd_->start();
      if (sub_) sub_->start();
      if (sentinel_) sentinel_->start();
    });
    thread_ = std::thread([this] { io_.run(); });
  }

  // Broker::quiesce(): fails whatever waits (its callbacks run on the I/O thread, before this
  // returns), drops every channel so no sink runs again, and joins the I/O thread. Handlers
  // posted after that are never run; they are destroyed with the io_context.
  void quiesce() {
    std::lock_guard lock(quiesce_mutex_);
    if (quiesced_) return;
    assert(std::this_thread::get_id() != thread_.get_id() && "quiesce() from a broker callback");
    stopped_ = true;
    asio::post(io_, [this] {
      retry_timer_.cancel();
      fail_asks();
      cluster_->stop();
      if (sentinel_) sentinel_->stop();
      cmd_->stop();
      if (sub_) sub_->stop();
      channels_.clear();
    });
    work_.reset();
    if (thread_.joinable()) thread_.join();
    quiesced_ = true;
  }

  bool stopped() const { return stopped_; }

  // Quiesced: nothing would run the I/O thread's queue any more, so a call is answered here.
  template <class Done>
  bool refused_after_quiesce(Done& done) {
    if (!stopped_) return false;
    if (done) done(make_error_code(BrokerError::kShuttingDown));
    return true;
  }

  bool wait_healthy(std::chrono::milliseconds timeout) {
    std::unique_lock lock(health_mutex_);
    return health_cv_.wait_for(lock, timeout, [this] { return healthy_.load(); });
  }

  // ---- any thread ----

  void publish(const Channel& channel, PublishInput input,
               std::function<void(Result<PublishResult>)> done) {
    if (refused_after_quiesce(done)) return;
    if (!valid(channel)) {
      if (done) done(make_error_code(BrokerError::kBadChannel));
      return;
    }
    auto call = std::make_shared<PublishCall>();
    call->channel = channel;
    call->keys = channel_keys(options_.key_prefix, channel);
    if (!input.event_key.empty() && options_.idempotency_ttl.count() > 0) {
      call->idempotency_key = call->keys.name + ":key:" + input.event_key;
    }
    call->input = std::move(input);
    call->done = std::move(done);
    asio::post(io_, [this, call] { send_publish(call, true); });
  }

  void history(const Channel& channel, std::optional<Position> after, std::size_t limit,
               std::function<void(Result<History>)> done) {
    if (refused_after_quiesce(done)) return;
    if (!valid(channel)) {
      if (done) done(make_error_code(BrokerError::kBadChannel));
      return;
    }
    asio::post(io_, [this, channel, after = std::move(after), limit, done = std::move(done)] {
      read_history(channel, channel_keys(options_.key_prefix, channel), after, limit,
                   std::move(done), true);
    });
  }

  // A read from a position (a resume) is where a client can land in the window before anything
  // else touches a channel whose counter went back: answered from the stream as it is, the
  // client's id would be ahead of the counter (`unknown_id`) and what follows would reuse ids
  // it has. So a counter below what this node handed out in the channel's epoch moves the
  // channel first and the read is repeated: the reader then sees the new epoch. Only the node's
  // own mark is evidence; the reader's position never is (a client could claim any offset).
  void read_history(const Channel& channel, const ChannelKeys& keys,
                    const std::optional<Position>& after, std::size_t limit,
                    std::function<void(Result<History>)> done, bool check) {
    const std::string epoch = after ? after->epoch : std::string();
    const std::uint64_t offset = after ? after->offset : 0;
    read_stream(channel, keys, epoch, offset, limit,
                [this, channel, keys, after, limit, check,
                 done = std::move(done)](Result<StreamRead> read) mutable {
                  if (!done) return;
                  if (!read) {
                    done(read.error());
                    return;
                  }
                  if (check && after && !read->epoch.empty()) {
                    const std::optional<Position> mark = mark_of(keys.name);
                    if (mark && mark->epoch == read->epoch && mark->offset > read->last_offset) {
                      check_regression(channel, keys, *mark, EpochMove::kResume,
                                       [this, channel, keys, after, limit, done]() mutable {
                                         read_history(channel, keys, after, limit, std::move(done),
                                                      false);
                                       });
                      return;
                    }
                  }
                  done(judge(std::move(*read), after));
                });
  }

  void history_before(const Channel& channel, std::uint64_t before, std::size_t limit,
                      std::function<void(Result<History>)> done) {
    if (refused_after_quiesce(done)) return;
    if (!valid(channel)) {
      if (done) done(make_error_code(BrokerError::kBadChannel));
      return;
    }
    asio::post(io_, [this, channel, before, limit, done = std::move(done)] {
      read_before(channel, channel_keys(options_.key_prefix, channel), before, limit,
                  std::move(done), true);
    });
  }

  void signal(const Channel& channel, PublishInput input, std::function<void(Result<void>)> done) {
    if (refused_after_quiesce(done)) return;
    if (!valid(channel)) {
      if (done) done(make_error_code(BrokerError::kBadChannel));
      return;
    }
    // The same message shape as a publish, with offset 0 and no epoch, straight to Pub/Sub.
    std::string payload = "- 0 ";
    core::append_decimal(
        payload, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()));
    payload.push_back(' ');
    core::append_decimal(payload, input.user.size());
    payload.push_back(' ');
    core::append_decimal(payload, input.event.size());
    payload.push_back(' ');
    payload += input.user;
    payload += input.event;
    payload += input.data;
    asio::post(io_, [this, name = channel_keys(options_.key_prefix, channel).name,
                     payload = std::move(payload), done = std::move(done)] {
      cmd_->send({publish_command_, name, payload},
                 [done](const ErrorCode& ec, const redisReply* reply) {
                   if (!done) return;
                   if (ec || reply == nullptr || redis::is_error(reply)) {
                     done(make_error_code(BrokerError::kUnavailable));
                     return;
                   }
                   done(Result<void>());
                 });
    });
  }

  void set_presence(const Channel& scope, const std::string& user, std::uint32_t connections) {
    if (!valid(scope) || stopped_) return;
    asio::post(io_, [this, scope, user, connections] {
      cluster_->set_presence(scope, user, connections);
    });
  }

  void presence(const Channel& scope,
                std::function<void(Result<std::vector<PresenceEntry>>)> done) {
    if (refused_after_quiesce(done)) return;
    if (!valid(scope)) {
      if (done) done(make_error_code(BrokerError::kBadChannel));
      return;
    }
    asio::post(io_, [this, scope, done = std::move(done)]() mutable {
      cluster_->presence(scope, std::move(done));
    });
  }

  void set_node_stats_source(std::function<std::string()> source) {
    cluster_->set_stats_source(std::move(source));
  }

  void node_stats(std::function<void(Result<std::vector<std::string>>)> done) {
    if (refused_after_quiesce(done)) return;
    asio::post(io_,
               [this, done = std::move(done)]() mutable { cluster_->node_stats(std::move(done)); });
  }

  void set_control_handler(ControlHandler handler) {
    std::lock_guard lock(control_mutex_);
    control_ = std::move(handler);
  }

  void broadcast_control(std::string message, std::function<void(Result<ControlReach>)> done) {
    if (refused_after_quiesce(done)) return;
    asio::post(io_, [this, message = std::move(message), done = std::move(done)] {
      send_control('b', "*", "0", message, [done](const ErrorCode& ec, const redisReply* reply) {
        if (!done) return;
        if (ec || reply == nullptr || redis::is_error(reply)) {
          done(failure(ec ? ec : make_error_code(BrokerError::kUnavailable)));
          return;
        }
        done(ControlReach::kCluster);
      });
    });
  }

  void ask_nodes(std::string question, std::chrono::milliseconds timeout,
                 std::function<void(Result<std::vector<std::string>>)> done) {
    if (refused_after_quiesce(done)) return;
    asio::post(io_, [this, question = std::move(question), timeout,
                     done = std::move(done)]() mutable {
      // How many nodes to wait for: those whose heartbeat is live (this one included).
      cluster_->node_stats([this, question = std::move(question), timeout, done = std::move(done)](
                               Result<std::vector<std::string>> nodes) mutable {
        if (!nodes) {
          if (done) done(failure(nodes.error()));
          return;
        }
        start_ask(std::move(question), std::max<std::size_t>(1, nodes->size()), timeout,
                  std::move(done));
      });
    });
  }

  void store_revocation(const Revocation& r, std::function<void(Result<void>)> done) {
    if (refused_after_quiesce(done)) return;
    const auto now = std::chrono::system_clock::now();
    const auto ttl_ms = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(r.expires - now).count());
    std::string value;
    core::append_decimal(value,
                         static_cast<std::uint64_t>(std::max<std::int64_t>(0, r.issued_before)));
    value.push_back(' ');
    core::append_decimal(
        value,
        static_cast<std::uint64_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(r.expires.time_since_epoch())
                   .count())));
    asio::post(io_, [this, field = revocation_field(r.org, r.user), value = std::move(value),
                     ttl = std::to_string(ttl_ms), done = std::move(done)] {
      cmd_->send({"EVAL", kStoreRevocationScript, "1", revocations_key(), field, value, ttl},
                 [done](const ErrorCode& ec, const redisReply* reply) {
                   if (!done) return;
                   if (ec || reply == nullptr || redis::is_error(reply)) {
                     done(failure(ec ? ec : make_error_code(BrokerError::kUnavailable)));
                     return;
                   }
                   done(Result<void>());
                 });
    });
  }

  void set_revocation_sink(std::size_t max, std::function<void(std::vector<Revocation>)> sink) {
    {
      std::lock_guard lock(control_mutex_);
      revocation_sink_ = std::move(sink);
      max_revocations_ = max;
    }
    if (!stopped_) {
      asio::post(io_, [this] {
        if (cmd_->up()) load_revocations();
      });
    }
  }

  // The shared store's commands (redis_store.cpp), on the command connection.
  void run(std::vector<std::string> args, redis::ReplyHandler done) {
    if (stopped_) return done(make_error_code(BrokerError::kShuttingDown), nullptr);
    asio::post(io_, [this, args = std::move(args), done = std::move(done)]() mutable {
      const std::vector<std::string_view> views(args.begin(), args.end());
      cmd_->send(views, std::move(done));
    });
  }

  LocalSubPtr subscribe(const Channel& channel, Sink sink, std::function<void()> on_ready,
                        std::string& name) {
    auto sub = std::make_shared<LocalSub>(std::move(sink), std::move(on_ready));
    ChannelKeys keys = channel_keys(options_.key_prefix, channel);
    name = keys.name;
    {
      std::lock_guard lock(stats_mutex_);
      ++tracked_[keys.name].subscriptions;
    }
    subscriptions_.fetch_add(1, std::memory_order_relaxed);
    asio::post(io_, [this, channel, keys = std::move(keys), sub]() mutable {
      add_sub(channel, std::move(keys), sub);
    });
    return sub;
  }

  // From the Subscription's destructor, after it marked `sub` dead.
  void unsubscribe(const std::string& name, const LocalSubPtr& sub) {
    {
      std::lock_guard lock(stats_mutex_);
      auto it = tracked_.find(name);
      if (it != tracked_.end() && it->second.subscriptions > 0 && --it->second.subscriptions == 0 &&
          !it->second.published) {
        tracked_.erase(it);
      }
    }
    subscriptions_.fetch_sub(1, std::memory_order_relaxed);
    // After shutdown nothing runs the queue; the handler is destroyed with the io_context.
    if (!stopped_) asio::post(io_, [this, name, sub] { remove_sub(name, sub); });
  }

  BrokerStats stats() {
    BrokerStats stats;
    stats.subscriptions = subscriptions_.load(std::memory_order_relaxed);
    stats.healthy = healthy_.load();
    for (std::size_t i = 0; i < epoch_moves_.size(); ++i) {
      stats.epoch_moves[i] = epoch_moves_[i].load(std::memory_order_relaxed);
    }
    std::lock_guard lock(stats_mutex_);
    prune_tracked(SteadyClock::now());
    stats.channels = tracked_.size();
    return stats;
  }

 private:
  struct PublishCall {
    Channel channel;
    ChannelKeys keys;
    std::string idempotency_key;
    PublishInput input;
    std::function<void(Result<PublishResult>)> done;
  };

  // What stats() counts: channels with subscribers here, and channels published through this
  // node whose history may still be held. A local view; Redis is not asked.
  struct Tracked {
    std::uint64_t subscriptions = 0;
    std::optional<SteadyClock::time_point> published;
  };

  redis::ConnectionOptions connection_options(std::string name, bool pubsub,
                                              bool require_primary = false) const {
    redis::ConnectionOptions o;
    o.url = url_;
    o.tls = {options_.tls_ca_file, options_.tls_cert_file, options_.tls_key_file};
    o.name = std::move(name);
    o.pubsub = pubsub;
    o.require_primary = require_primary;
    static_cast<RedisLinkOptions&>(o) = options_;
    return o;
  }

  static ErrorCode failure(const ErrorCode& ec) {
    return ec == make_error_code(BrokerError::kShuttingDown)
               ? ec
               : make_error_code(BrokerError::kUnavailable);
  }

  // ---- Redis Cluster ----

  static std::string sharded(std::string_view script) {
    std::string out(script);
    const std::string_view from = "redis.call('PUBLISH',";
    const std::size_t at = out.find(from);
    assert(at != std::string::npos && "the publish script no longer PUBLISHes");
    if (at != std::string::npos) out.replace(at, from.size(), "redis.call('SPUBLISH',");
    return out;
  }

  void start_cluster(const std::string& node,
                     const std::vector<std::pair<std::string, std::uint16_t>>& seeds) {
    std::vector<redis::NodeAddress> addresses;
    for (const auto& [host, port] : seeds) addresses.push_back(redis::NodeAddress{host, port});
    redis::ClusterRouter::Handlers handlers;
    handlers.on_up = [this] { on_cmd_up(); };
    handlers.on_change = [this] { on_health(); };
    handlers.on_message = [this](std::string_view name, std::string_view payload) {
      on_message(name, payload);
    };
    handlers.on_subscribed = [this](const std::string& name) {
      auto it = channels_.find(name);
      if (it != channels_.end()) on_subscribed(*it->second);
    };
    // The channel's slot moved or its shard's connection dropped: as after a lost Pub/Sub
    // connection, it catches up from its position once subscribed again.
    handlers.on_lost = [this](const std::string& name) {
      auto it = channels_.find(name);
      if (it == channels_.end()) return;
      ChannelState& state = *it->second;
      state.phase = ChannelState::Phase::kSubscribing;
      state.held.clear();
      state.held_overflow = false;
      state.read_serial = 0;
    };
    auto router =
        std::make_unique<redis::ClusterRouter>(io_, connection_options("streamgate-" + node, false),
                                               std::move(addresses), std::move(handlers));
    router_ = router.get();
    cmd_ = std::move(router);
    cluster_ = std::make_unique<redis::ClusterState>(io_, *cmd_, options_.key_prefix, node,
                                                     options_.presence_ttl);
  }

  // ---- I/O thread ----

  void send_publish(const std::shared_ptr<PublishCall>& call, bool by_sha) {
    const PublishInput& in = call->input;
    const bool keyed = !call->idempotency_key.empty();
    const std::string epoch = core::random_hex(6);
    const std::optional<Position> mark = mark_of(call->keys.name);
    const std::string mark_offset =
        std::to_string(mark ? std::min(mark->offset, kMaxLuaOffset) : 0);
    std::array<std::string_view, 18> args{};
    std::size_t n = 0;
    args[n++] = by_sha ? "EVALSHA" : "EVAL";
    args[n++] = by_sha ? std::string_view(publish_sha_) : std::string_view(publish_script_);
    args[n++] = keyed ? "4" : "3";
    args[n++] = call->keys.seq;
    args[n++] = call->keys.epoch;
    args[n++] = call->keys.stream;
    if (keyed) args[n++] = call->idempotency_key;
    args[n++] = epoch;
    args[n++] = history_;
    args[n++] = history_ttl_ms_;
    args[n++] = idempotency_ttl_;
    args[n++] = stream_expiry_;
    args[n++] = call->keys.name;
    args[n++] = in.event;
    args[n++] = in.data;
    args[n++] = in.user;
    args[n++] = mark ? std::string_view(mark->epoch) : std::string_view();
    args[n++] = mark_offset;
    cmd_->send(std::span(args.data(), n),
               [this, call, by_sha](const ErrorCode& ec, const redisReply* reply) {
                 on_published(call, by_sha, ec, reply);
               });
  }

  void on_published(const std::shared_ptr<PublishCall>& call, bool by_sha, const ErrorCode& ec,
                    const redisReply* reply) {
    auto done = [&call](Result<PublishResult> result) {
      if (call->done) call->done(std::move(result));
    };
    if (ec) {
      done(failure(ec));
      return;
    }
    if (redis::is_error(reply)) {
      if (by_sha && reply_text(*reply).starts_with("NOSCRIPT")) {
        send_publish(call, false);  // EVAL runs it and caches it for the next EVALSHA
        return;
      }
      log::warn("broker", "redis refused a publish", {{"reply", reply_text(*reply)}});
      done(make_error_code(BrokerError::kUnavailable));
      return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
      done(make_error_code(BrokerError::kUnavailable));
      return;
    }
    if (reply->element[0]->integer == 0) {
      if (reply->element[1]->type != REDIS_REPLY_STRING) {
        done(make_error_code(BrokerError::kUnavailable));
        return;
      }
      wait_replicas(call, PublishResult{std::string(reply_text(*reply->element[1])), true});
      return;
    }
    if (reply->elements != 5 || reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_INTEGER || reply->element[2]->integer <= 0 ||
        reply->element[4]->type != REDIS_REPLY_INTEGER) {
      done(make_error_code(BrokerError::kUnavailable));
      return;
    }
    const std::string epoch(reply_text(*reply->element[1]));
    const auto offset = static_cast<std::uint64_t>(reply->element[2]->integer);
    if (reply->element[4]->integer == 1) moved(call->channel, EpochMove::kPublish, epoch);
    if (options_.history > 0) note_published(call->keys.name);
    note_acknowledged(call->channel, call->keys, epoch, offset);
    wait_replicas(call, PublishResult{protocol::format_event_id(epoch, offset), false});
  }

  // ---- regressions: a channel's counter below an offset this node handed out ----

  // The highest offset of `name` this node acknowledged (marks_) or delivered (its position),
  // in the newest epoch it saw; what a counter must not fall below. When the two disagree on
  // the epoch, the delivered one wins: it came in the channel's own order.
  std::optional<Position> mark_of(const std::string& name) const {
    std::optional<Position> mark;
    if (auto it = marks_.find(name); it != marks_.end()) mark = it->second;
    auto it = channels_.find(name);
    if (it == channels_.end() || !it->second->position) return mark;
    const Position& delivered = *it->second->position;
    if (!mark || mark->epoch != delivered.epoch) return delivered;
    mark->offset = std::max(mark->offset, delivered.offset);
    return mark;
  }

  // An acknowledged offset at or below one acknowledged before in the same epoch was handed
  // out twice, unless the replies crossed (a slot moving between primaries): Redis's counter
  // tells which. Marks are bounded; a forgotten channel is only checked against deliveries.
  void note_acknowledged(const Channel& channel, const ChannelKeys& keys, const std::string& epoch,
                         std::uint64_t offset) {
    auto it = marks_.find(keys.name);
    if (it == marks_.end()) {
      if (marks_.size() >= kMaxTrackedChannels) marks_.erase(marks_.begin());
      marks_.emplace(keys.name, Position{epoch, offset});
      return;
    }
    Position& mark = it->second;
    if (mark.epoch != epoch) {
      mark = Position{epoch, offset};
      return;
    }
    if (offset > mark.offset) {
      mark.offset = offset;
      return;
    }
    check_regression(channel, keys, mark, EpochMove::kPublish);
  }

  // Moves the channel to a new epoch if its counter is still below `seen` in seen's epoch;
  // otherwise nothing (the counter never legitimately goes below what was handed out, so a
  // false alarm can't move a channel). At most one unwaited check per subscribed channel in
  // flight; `then`, when given, runs once the check is answered or failed, whatever it found.
  void check_regression(const Channel& channel, const ChannelKeys& keys, const Position& seen,
                        EpochMove why, std::function<void()> then = nullptr) {
    bool flagged = false;
    if (auto state = channels_.find(keys.name); !then && state != channels_.end()) {
      if (state->second->checking) return;
      state->second->checking = true;
      flagged = true;
    }
    const std::string floor = std::to_string(std::min(seen.offset, kMaxLuaOffset));
    const std::string epoch = core::random_hex(6);
    cmd_->send({"EVAL", kMoveEpochScript, "3", keys.seq, keys.epoch, keys.stream, seen.epoch, floor,
                epoch},
               [this, channel, name = keys.name, why, flagged, then = std::move(then)](
                   const ErrorCode& ec, const redisReply* reply) {
                 if (auto it = channels_.find(name); flagged && it != channels_.end()) {
                   it->second->checking = false;
                 }
                 if (ec || reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
                     reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
                   if (reply != nullptr && redis::is_error(reply)) {
                     log::warn("broker", "redis refused a regression check",
                               {{"reply", reply_text(*reply)}});
                   }
                 } else if (reply->element[0]->integer == 1) {
                   moved(channel, why, std::string(reply_text(*reply->element[1])));
                 }
                 if (then) then();
               });
  }

  // Logged and counted once per move, by the node whose script moved it.
  void moved(const Channel& channel, EpochMove why, const std::string& epoch) {
    const auto index = static_cast<std::size_t>(why);
    epoch_moves_[index].fetch_add(1, std::memory_order_relaxed);
    log::warn("broker", "channel counter went back: moved to a new epoch",
              {{"org", channel.org},
               {"channel", channel.topic},
               {"by", kEpochMoveNames[index]},
               {"epoch", epoch}});
  }

  // --redis-wait-replicas: the answer waits for WAIT on the channel's primary (the connection
  // the script ran on, so WAIT covers its writes); too few replicas in time is kUnavailable.
  void wait_replicas(const std::shared_ptr<PublishCall>& call, PublishResult result) {
    if (options_.wait_replicas == 0) {
      if (call->done) call->done(std::move(result));
      return;
    }
    const std::string replicas = std::to_string(options_.wait_replicas);
    const std::string timeout = std::to_string(options_.wait_timeout.count());
    const std::array<std::string_view, 3> args{"WAIT", replicas, timeout};
    cmd_->send_beside(call->keys.seq, args,
                      [this, call, result = std::move(result)](const ErrorCode& ec,
                                                               const redisReply* reply) mutable {
                        if (!call->done) return;
                        if (ec || reply == nullptr || reply->type != REDIS_REPLY_INTEGER) {
                          call->done(ec ? failure(ec) : make_error_code(BrokerError::kUnavailable));
                          return;
                        }
                        if (reply->integer < static_cast<long long>(options_.wait_replicas)) {
                          log::warn("broker", "publish not confirmed by enough replicas in time",
                                    {{"replicas", reply->integer},
                                     {"wanted", options_.wait_replicas},
                                     {"timeouts", ++wait_timeouts_}});
                          call->done(make_error_code(BrokerError::kUnavailable));
                          return;
                        }
                        call->done(std::move(result));
                      });
  }

  // `limit`: at most that many entries, the oldest (0: all of history).
  void read_stream(const Channel& channel, const ChannelKeys& keys, const std::string& epoch,
                   std::uint64_t offset, std::size_t limit,
                   std::function<void(Result<StreamRead>)> done, bool by_sha = true) {
    const std::string at = std::to_string(std::min(offset, kMaxLuaOffset));
    const std::string count =
        limit == 0 ? history_ : std::to_string(std::min(limit, options_.history));
    std::array<std::string_view, 10> args{
        by_sha ? "EVALSHA" : "EVAL",
        by_sha ? std::string_view(history_sha_) : std::string_view(kHistoryScript),
        "3",
        keys.seq,
        keys.epoch,
        keys.stream,
        epoch,
        at,
        history_,
        count};
    cmd_->send(args, [this, channel, keys, epoch, offset, limit, by_sha, done = std::move(done)](
                         const ErrorCode& ec, const redisReply* reply) mutable {
      if (ec) {
        done(failure(ec));
        return;
      }
      if (redis::is_error(reply)) {
        if (by_sha && reply_text(*reply).starts_with("NOSCRIPT")) {
          read_stream(channel, keys, epoch, offset, limit, std::move(done), false);
          return;
        }
        log::warn("broker", "redis refused a history read", {{"reply", reply_text(*reply)}});
        done(make_error_code(BrokerError::kUnavailable));
        return;
      }
      done(parse_read(channel.topic, *reply));
    });
  }

  void read_before(const Channel& channel, const ChannelKeys& keys, std::uint64_t before,
                   std::size_t limit, std::function<void(Result<History>)> done, bool by_sha) {
    const std::string top = std::to_string(std::min(before, kMaxLuaOffset));
    // One more than asked: whether it exists tells "more to page" from "the rest was dropped".
    const std::string count = std::to_string(limit == 0 ? 0 : limit + 1);
    std::array<std::string_view, 9> args{
        by_sha ? "EVALSHA" : "EVAL",
        by_sha ? std::string_view(history_before_sha_) : std::string_view(kHistoryBeforeScript),
        "3",
        keys.seq,
        keys.epoch,
        keys.stream,
        top,
        count,
        history_};
    cmd_->send(args, [this, channel, keys, before, limit, by_sha, done = std::move(done)](
                         const ErrorCode& ec, const redisReply* reply) mutable {
      if (ec) {
        if (done) done(failure(ec));
        return;
      }
      if (redis::is_error(reply)) {
        if (by_sha && reply_text(*reply).starts_with("NOSCRIPT")) {
          read_before(channel, keys, before, limit, std::move(done), false);
          return;
        }
        log::warn("broker", "redis refused a history read", {{"reply", reply_text(*reply)}});
        if (done) done(make_error_code(BrokerError::kUnavailable));
        return;
      }
      auto read = parse_read(channel.topic, *reply);
      if (!done) return;
      if (!read) {
        done(read.error());
        return;
      }
      done(judge_before(std::move(*read), before, limit));
    });
  }

  // Newest-first entries, one more than `limit` if that many exist, into the History shape.
  static History judge_before(StreamRead read, std::uint64_t before, std::size_t limit) {
    History history;
    history.epoch = read.epoch.empty() ? std::string(kNoEpoch) : std::move(read.epoch);
    history.last_offset = read.last_offset;
    const bool more = read.events.size() > limit;
    if (more) read.events.resize(limit);
    std::reverse(read.events.begin(), read.events.end());
    const std::uint64_t top =
        before > 0 ? std::min(before - 1, read.last_offset) : read.last_offset;
    const std::uint64_t oldest = read.events.empty() ? top + 1 : read.events.front()->offset;
    history.complete = more || oldest <= 1;
    history.events = std::move(read.events);
    return history;
  }

  Result<StreamRead> parse_read(std::string_view topic, const redisReply& reply) const {
    const ErrorCode bad = make_error_code(BrokerError::kUnavailable);
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 4 ||
        reply.element[0]->type != REDIS_REPLY_STRING ||
        reply.element[1]->type != REDIS_REPLY_INTEGER ||
        reply.element[2]->type != REDIS_REPLY_INTEGER ||
        reply.element[3]->type != REDIS_REPLY_ARRAY || reply.element[1]->integer < 0) {
      return bad;
    }
    StreamRead read;
    read.epoch = std::string(reply_text(*reply.element[0]));
    read.last_offset = static_cast<std::uint64_t>(reply.element[1]->integer);
    const std::int64_t now = reply.element[2]->integer;
    const std::int64_t ttl = std::chrono::milliseconds(options_.history_ttl).count();
    const redisReply& entries = *reply.element[3];
    read.events.reserve(entries.elements);
    for (std::size_t i = 0; i < entries.elements; ++i) {
      EventPtr event = parse_entry(topic, read.epoch, *entries.element[i]);
      if (!event) return bad;
      // Trimming by age happens on publish; a quiet channel's old entries are hidden here.
      if (ttl > 0 && std::chrono::duration_cast<std::chrono::milliseconds>(
                         event->published_at.time_since_epoch())
                             .count() <= now - ttl) {
        continue;
      }
      read.events.push_back(std::move(event));
    }
    return read;
  }

  // The History contract on top of a raw read (mirrors the memory broker's).
  static History judge(StreamRead read, const std::optional<Position>& after) {
    History history;
    history.epoch = read.epoch.empty() ? std::string(kNoEpoch) : std::move(read.epoch);
    history.last_offset = read.last_offset;
    if (!after) return history;
    if (after->epoch != history.epoch || after->offset > history.last_offset) {
      history.complete = false;
      return history;
    }
    if (after->offset == history.last_offset) return history;
    if (read.events.empty()) {
      history.complete = false;
      return history;
    }
    history.complete = read.events.front()->offset <= after->offset + 1;
    history.events = std::move(read.events);
    return history;
  }

  void note_published(const std::string& name) {
    const auto now = SteadyClock::now();
    std::lock_guard lock(stats_mutex_);
    tracked_[name].published = now;
    if (tracked_.size() <= kMaxTrackedChannels) return;
    prune_tracked(now);
    // Still too many (no TTL): forget channels known only from publishing, any of them.
    for (auto it = tracked_.begin();
         it != tracked_.end() && tracked_.size() > kMaxTrackedChannels;) {
      it = it->second.subscriptions == 0 ? tracked_.erase(it) : std::next(it);
    }
  }

  // Caller holds stats_mutex_.
  void prune_tracked(SteadyClock::time_point now) {
    if (options_.history_ttl.count() <= 0) return;
    for (auto it = tracked_.begin(); it != tracked_.end();) {
      auto& t = it->second;
      if (t.published && now - *t.published >= options_.history_ttl) t.published.reset();
      it = (t.subscriptions == 0 && !t.published) ? tracked_.erase(it) : std::next(it);
    }
  }

  // ---- control channel (I/O thread) ----
  // One Pub/Sub channel per deployment, "<prefix>control", with messages
  // "<kind> <from> <to> <ask id> <body>": kind b (broadcast, every node but the sender), q (a
  // question, every node answers) or a (an answer, for node <to>); node ids are random per
  // process.

  std::string control_channel() const { return options_.key_prefix + "control"; }
  std::string revocations_key() const { return options_.key_prefix + "revocations"; }

  static std::string revocation_field(std::string_view org, std::string_view user) {
    std::string field;
    core::append_decimal(field, org.size());
    field.push_back(':');
    field.append(org);
    field.push_back('/');
    field.append(user);
    return field;
  }

  void send_control(char kind, std::string_view to, std::string_view id, std::string_view body,
                    redis::ReplyHandler handler) {
    std::string payload(1, kind);
    payload.push_back(' ');
    payload += node_;
    payload.push_back(' ');
    payload.append(to);
    payload.push_back(' ');
    payload.append(id);
    payload.push_back(' ');
    payload.append(body);
    cmd_->send({router_ != nullptr ? "SPUBLISH" : "PUBLISH", control_channel(), payload},
               std::move(handler));
  }

  void start_ask(std::string question, std::size_t expected, std::chrono::milliseconds timeout,
                 std::function<void(Result<std::vector<std::string>>)> done) {
    const std::string id = std::to_string(++ask_serial_);
    auto& ask = asks_[id];
    ask = std::make_unique<Ask>(io_);
    ask->expected = expected;
    ask->done = std::move(done);
    ask->timer.expires_after(timeout);
    ask->timer.async_wait([this, id](const ErrorCode& ec) {
      if (!ec) finish_ask(id, {});
    });
    send_control('q', "*", id, question, [this, id](const ErrorCode& ec, const redisReply* reply) {
      if (ec || reply == nullptr || redis::is_error(reply)) {
        finish_ask(id, failure(ec ? ec : make_error_code(BrokerError::kUnavailable)));
      }
    });
  }

  void finish_ask(std::string id, ErrorCode ec) {
    auto it = asks_.find(id);
    if (it == asks_.end()) return;
    auto ask = std::move(it->second);
    asks_.erase(it);
    ask->timer.cancel();
    if (!ask->done) return;
    if (ec) {
      ask->done(ec);
    } else {
      ask->done(std::move(ask->answers));
    }
  }

  void fail_asks() {
    while (!asks_.empty())
      finish_ask(asks_.begin()->first, make_error_code(BrokerError::kShuttingDown));
  }

  void on_control(std::string_view payload) {
    // kind, from, to, id: four words, then the body.
    std::array<std::string_view, 4> words;
    for (auto& word : words) {
      const auto space = payload.find(' ');
      if (space == std::string_view::npos) return;
      word = payload.substr(0, space);
      payload.remove_prefix(space + 1);
    }
    const auto [kind, from, to, id] = words;
    if (kind == "a") {
      if (to != node_) return;
      auto it = asks_.find(id);
      if (it == asks_.end()) return;
      it->second->answers.emplace_back(payload);
      if (it->second->answers.size() >= it->second->expected) finish_ask(it->first, {});
      return;
    }
    if (kind == "b" && from == node_) return;
    if (kind != "b" && kind != "q") return;
    std::function<void(std::string)> answer;
    if (kind == "q") {
      answer = [this, from = std::string(from), id = std::string(id)](std::string text) {
        if (stopped_) return;
        asio::post(io_, [this, from, id, text = std::move(text)] {
          send_control('a', from, id, text, [](const ErrorCode&, const redisReply*) {});
        });
      };
    }
    std::lock_guard lock(control_mutex_);
    if (control_) control_(payload, std::move(answer));
  }

  void load_revocations() {
    cmd_->send({"HGETALL", revocations_key()}, [this](const ErrorCode& ec,
                                                      const redisReply* reply) {
      if (ec || reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return;
      const auto now = std::chrono::system_clock::now();
      std::vector<Revocation> list;
      std::lock_guard lock(control_mutex_);
      for (std::size_t i = 0; i + 1 < reply->elements && list.size() < max_revocations_; i += 2) {
        auto r =
            parse_revocation(reply_text(*reply->element[i]), reply_text(*reply->element[i + 1]));
        if (r && r->expires > now) list.push_back(std::move(*r));
      }
      if (revocation_sink_) revocation_sink_(std::move(list));
    });
  }

  static std::optional<Revocation> parse_revocation(std::string_view field,
                                                    std::string_view value) {
    const auto colon = field.find(':');
    std::size_t org_len = 0;
    if (colon == std::string_view::npos || !parse_number(field.substr(0, colon), org_len)) {
      return std::nullopt;
    }
    field.remove_prefix(colon + 1);
    if (field.size() < org_len + 1 || field[org_len] != '/') return std::nullopt;
    const auto space = value.find(' ');
    std::uint64_t issued = 0, expires_ms = 0;
    if (space == std::string_view::npos || !parse_number(value.substr(0, space), issued) ||
        !parse_number(value.substr(space + 1), expires_ms)) {
      return std::nullopt;
    }
    Revocation r;
    r.org = std::string(field.substr(0, org_len));
    r.user = std::string(field.substr(org_len + 1));
    r.issued_before = static_cast<std::int64_t>(issued);
    r.expires = std::chrono::system_clock::time_point(std::chrono::milliseconds(expires_ms));
    return r;
  }

  void on_health() {
    const bool healthy = router_ != nullptr ? router_->pubsub_up() : cmd_->up() && sub_->up();
    if (sentinel_) sentinel_->set_verified(healthy);
    if (healthy_.exchange(healthy) == healthy) return;
    { std::lock_guard lock(health_mutex_); }
    health_cv_.notify_all();
  }

  void on_cmd_up() {
    on_health();
    // With Redis Cluster the control channel is sharded like every channel (its slot's primary
    // carries it); the router keeps it subscribed across slot moves. Idempotent.
    if (router_ != nullptr) router_->subscribe(control_channel());
    retry_catch_ups();
    cluster_->on_up();
    load_revocations();
  }

  void on_sub_up() {
    on_health();
    sub_->send({"SUBSCRIBE", control_channel()}, [](const ErrorCode&, const redisReply*) {});
    for (auto& [name, state] : channels_) send_subscribe(*state);
  }

  void on_sub_down() {
    on_health();
    for (auto& [name, state] : channels_) {
      state->phase = ChannelState::Phase::kSubscribing;
      state->held.clear();
      state->held_overflow = false;
      state->read_serial = 0;  // a read in flight will find itself stale
    }
  }

  void add_sub(const Channel& channel, ChannelKeys keys, const LocalSubPtr& sub) {
    auto& slot = channels_[keys.name];
    if (!slot) {
      slot = std::make_unique<ChannelState>();
      slot->channel = channel;
      slot->keys = std::move(keys);
      slot->serial = ++serials_;
      if (router_ != nullptr) {
        router_->subscribe(slot->keys.name);
      } else if (sub_->up()) {
        send_subscribe(*slot);
      }
    }
    slot->subs.push_back(sub);
    if (slot->phase == ChannelState::Phase::kLive) make_ready(*sub);
  }

  void remove_sub(const std::string& name, const LocalSubPtr& sub) {
    auto it = channels_.find(name);
    if (it == channels_.end()) return;
    auto& subs = it->second->subs;
    std::erase(subs, sub);
    if (!subs.empty()) return;
    channels_.erase(it);
    if (router_ != nullptr) {
      router_->unsubscribe(name);
      return;
    }
    // A SUBSCRIBE still in flight is undone by this later UNSUBSCRIBE; its confirmation
    // finds no state of its serial and is ignored.
    if (sub_->up()) sub_->send({"UNSUBSCRIBE", name}, [](const ErrorCode&, const redisReply*) {});
  }

  void send_subscribe(ChannelState& state) {
    sub_->send({"SUBSCRIBE", state.keys.name},
               [this, name = state.keys.name, serial = state.serial](const ErrorCode& ec,
                                                                     const redisReply* reply) {
                 auto it = channels_.find(name);
                 if (it == channels_.end() || it->second->serial != serial) return;
                 if (ec) return;  // lost with the connection; on_sub_up subscribes again
                 if (redis::is_error(reply)) {
                   log::error("broker", "redis refused a subscription",
                              {{"org", it->second->channel.org},
                               {"channel", it->second->channel.topic},
                               {"reply", reply_text(*reply)}});
                   return;
                 }
                 on_subscribed(*it->second);
               });
  }

  void on_subscribed(ChannelState& state) {
    if (state.phase != ChannelState::Phase::kSubscribing) return;
    if (state.position) {
      start_catch_up(state);
    } else {
      go_live(state);
    }
  }

  void go_live(ChannelState& state) {
    state.phase = ChannelState::Phase::kLive;
    for (const auto& sub : state.subs) {
      if (!sub->ready) make_ready(*sub);
    }
  }

  static void make_ready(LocalSub& sub) {
    sub.ready = true;
    auto on_ready = std::move(sub.on_ready);
    sub.on_ready = nullptr;
    {
      std::lock_guard lock(sub.mutex);
      if (sub.dead) return;
    }
    // Not under the mutex: on_ready may take its owner's locks, and that owner may be
    // destroying a Subscription (which takes this mutex) while holding them.
    if (on_ready) on_ready();
  }

  static void deliver(ChannelState& state, const std::string& epoch, const EventPtr& event) {
    if (state.position && state.position->epoch != epoch) state.left_epoch = state.position->epoch;
    state.position = Position{epoch, event->offset};
    for (const auto& sub : state.subs) {
      if (!sub->ready) continue;
      std::lock_guard lock(sub->mutex);
      if (!sub->dead) sub->sink(event);
    }
  }

  // A signal has no offset: it neither moves the position nor waits for a catch-up.
  static void deliver_signal(ChannelState& state, const EventPtr& event) {
    for (const auto& sub : state.subs) {
      if (!sub->ready) continue;
      std::lock_guard lock(sub->mutex);
      if (!sub->dead) sub->sink(event);
    }
  }

  void on_message(std::string_view name, std::string_view payload) {
    if (name == control_channel()) {
      on_control(payload);
      return;
    }
    auto it = channels_.find(name);
    if (it == channels_.end()) return;
    ChannelState& state = *it->second;
    // Before the SUBSCRIBE is confirmed a message can only be an echo of an older one.
    if (state.phase == ChannelState::Phase::kSubscribing) return;
    auto incoming = parse_message(state.channel.topic, payload);
    if (!incoming) {
      log::warn("broker", "unreadable redis message",
                {{"org", state.channel.org}, {"channel", state.channel.topic}});
      return;
    }
    if (incoming->event->offset == 0) {
      deliver_signal(state, incoming->event);
      return;
    }
    if (incoming->epoch == state.left_epoch) return;
    if (state.phase == ChannelState::Phase::kCatchingUp) {
      hold(state, std::move(*incoming));
      return;
    }
    if (state.position && state.position->epoch == incoming->epoch) {
      const std::uint64_t offset = incoming->event->offset;
      if (offset <= state.position->offset) {
        // Usually a message the catch-up read already delivered. If the counter went back, it
        // is another event under an id the subscribers already have: never delivered, and
        // the check moves the channel on, so what follows comes under a new epoch.
        check_regression(state.channel, state.keys, *state.position, EpochMove::kLive);
        return;
      }
      if (offset > state.position->offset + 1) {
        // Offsets have no holes, so one was missed: read it from the stream.
        hold(state, std::move(*incoming));
        start_catch_up(state);
        return;
      }
    }
    deliver(state, incoming->epoch, incoming->event);
  }

  static void hold(ChannelState& state, Incoming incoming) {
    if (state.held.size() < kMaxHeldEvents) {
      state.held.push_back(std::move(incoming));
    } else {
      state.held_overflow = true;
    }
  }

  void start_catch_up(ChannelState& state) {
    state.phase = ChannelState::Phase::kCatchingUp;
    // Without a command connection, on_cmd_up (or the retry timer) starts it.
    if (state.read_serial != 0 || !cmd_->up()) return;
    const std::uint64_t read_serial = ++serials_;
    state.read_serial = read_serial;
    read_stream(state.channel, state.keys, state.position->epoch, state.position->offset, 0,
                [this, name = state.keys.name, serial = state.serial,
                 read_serial](Result<StreamRead> read) {
                  auto it = channels_.find(name);
                  if (it == channels_.end() || it->second->serial != serial ||
                      it->second->read_serial != read_serial) {
                    return;
                  }
                  ChannelState& s = *it->second;
                  s.read_serial = 0;
                  if (!read) {
                    schedule_retry();
                    return;
                  }
                  finish_catch_up(s, std::move(*read));
                });
  }

  void finish_catch_up(ChannelState& state, StreamRead read) {
    Position& at = *state.position;
    if (!read.epoch.empty() && read.epoch != at.epoch) {
      // The channel's history was lost in Redis and began again: everything of the new
      // epoch is news to the subscribers.
      log::warn("broker", "channel epoch changed in redis",
                {{"org", state.channel.org}, {"channel", state.channel.topic}});
      state.left_epoch = at.epoch;
      at = Position{read.epoch, 0};
      start_catch_up(state);
      return;
    }
    // The counter is below what this node delivered: Redis lost the channel's tail.
    if (!read.epoch.empty() && read.last_offset < at.offset) {
      check_regression(state.channel, state.keys, at, EpochMove::kCatchUp);
    }
    const std::uint64_t first =
        read.events.empty() ? read.last_offset + 1 : read.events.front()->offset;
    if (!read.epoch.empty() && first > at.offset + 1 && read.last_offset > at.offset) {
      log::warn("broker", "events trimmed before this node could catch up",
                {{"org", state.channel.org},
                 {"channel", state.channel.topic},
                 {"missed", std::min(first, read.last_offset + 1) - at.offset - 1}});
    }
    std::uint64_t replayed = 0;
    for (const auto& event : read.events) {
      if (event->offset <= state.position->offset) continue;
      deliver(state, read.epoch, event);
      ++replayed;
    }
    log::debug("broker", "channel caught up from redis",
               {{"org", state.channel.org},
                {"channel", state.channel.topic},
                {"from_stream", replayed},
                {"held", state.held.size()}});
    auto held = std::move(state.held);
    state.held.clear();
    const bool overflowed = state.held_overflow;
    state.held_overflow = false;
    for (const auto& incoming : held) {
      if (incoming.epoch == state.left_epoch ||
          (incoming.epoch == state.position->epoch &&
           incoming.event->offset <= state.position->offset)) {
        continue;
      }
      deliver(state, incoming.epoch, incoming.event);
    }
    go_live(state);
    // Messages were dropped while holding: read again from where delivery got to.
    if (overflowed) start_catch_up(state);
  }

  void retry_catch_ups() {
    for (auto& [name, state] : channels_) {
      if (state->phase == ChannelState::Phase::kCatchingUp && state->read_serial == 0) {
        start_catch_up(*state);
      }
    }
  }

  void schedule_retry() {
    if (retry_pending_ || stopped_) return;
    retry_pending_ = true;
    retry_timer_.expires_after(kCatchUpRetry);
    retry_timer_.async_wait([this](const ErrorCode& ec) {
      retry_pending_ = false;
      if (ec || stopped_) return;
      retry_catch_ups();
    });
  }

  const RedisBrokerOptions options_;
  const RedisUrl url_;
  const std::string publish_script_;
  const std::string_view publish_command_;
  const std::string publish_sha_;
  const std::string history_sha_;
  const std::string history_before_sha_;
  // Script arguments that never change, formatted once.
  const std::string history_;
  const std::string history_ttl_ms_;
  const std::string idempotency_ttl_;
  const std::string stream_expiry_;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};  // set first by quiesce(); callers read it without a lock
  std::mutex quiesce_mutex_;
  bool quiesced_ = false;  // guarded by quiesce_mutex_: the I/O thread is joined

  // I/O thread only. With Redis Cluster, cmd_ is the router (router_) and sub_ is null.
  std::unique_ptr<redis::Commands> cmd_;
  std::unique_ptr<Connection> sub_;
  redis::ClusterRouter* router_ = nullptr;
  std::unique_ptr<redis::ClusterState> cluster_;
  std::unique_ptr<redis::SentinelResolver> sentinel_;  // with redis-sentinel:// only
  std::unordered_map<std::string, std::unique_ptr<ChannelState>, NameHash, std::equal_to<>>
      channels_;
  std::uint64_t serials_ = 0;
  // The highest offset this node acknowledged per channel, in the epoch acknowledged last: at
  // most kMaxTrackedChannels, an arbitrary one forgotten beyond (mark_of).
  std::unordered_map<std::string, Position> marks_;
  asio::steady_timer retry_timer_;
  bool retry_pending_ = false;
  std::uint64_t wait_timeouts_ = 0;  // publishes WAIT did not confirm in time
  // Channels this node's scripts moved, by EpochMove; read by stats() from any thread.
  std::array<std::atomic<std::uint64_t>, kEpochMoveNames.size()> epoch_moves_{};

  std::atomic<bool> healthy_{false};
  std::mutex health_mutex_;
  std::condition_variable health_cv_;

  // The control channel: this process's id in it, the questions waiting for answers (I/O
  // thread), and what control messages and loaded revocations are handed to.
  std::string node_;
  struct Ask {
    explicit Ask(asio::io_context& io) : timer(io) {}
    std::size_t expected = 1;
    std::vector<std::string> answers;
    std::function<void(Result<std::vector<std::string>>)> done;
    asio::steady_timer timer;
  };
  std::unordered_map<std::string, std::unique_ptr<Ask>, NameHash, std::equal_to<>> asks_;
  std::uint64_t ask_serial_ = 0;
  std::mutex control_mutex_;
  ControlHandler control_;                                        // guarded by control_mutex_
  std::function<void(std::vector<Revocation>)> revocation_sink_;  // guarded by control_mutex_
  std::size_t max_revocations_ = 0;                               // guarded by control_mutex_

  std::atomic<std::uint64_t> subscriptions_{0};
  std::mutex stats_mutex_;
  std::unordered_map<std::string, Tracked> tracked_;  // guarded by stats_mutex_
};

class RedisSubscription final : public Subscription {
 public:
  RedisSubscription(std::shared_ptr<Impl> impl, std::string name, LocalSubPtr sub)
      : impl_(std::move(impl)), name_(std::move(name)), sub_(std::move(sub)) {}

  ~RedisSubscription() override {
    {
      // Waits for a sink call in progress; none starts after this.
      std::lock_guard lock(sub_->mutex);
      sub_->dead = true;
    }
    impl_->unsubscribe(name_, sub_);
  }

  RedisSubscription(const RedisSubscription&) = delete;
  RedisSubscription& operator=(const RedisSubscription&) = delete;

 private:
  std::shared_ptr<Impl> impl_;  // a Subscription may outlive its broker
  std::string name_;
  LocalSubPtr sub_;
};

class RedisBroker final : public Broker {
 public:
  RedisBroker(std::shared_ptr<Impl> impl, const std::string& key_prefix)
      : impl_(std::move(impl)),
        store_(redis::make_redis_store(
            key_prefix,
            [impl = impl_.get()](std::vector<std::string> args, redis::ReplyHandler done) {
              impl->run(std::move(args), std::move(done));
            })) {}
  ~RedisBroker() override { impl_->quiesce(); }

  RedisBroker(const RedisBroker&) = delete;
  RedisBroker& operator=(const RedisBroker&) = delete;

  void publish(const Channel& channel, PublishInput input,
               std::function<void(Result<PublishResult>)> done) override {
    impl_->publish(channel, std::move(input), std::move(done));
  }

  std::unique_ptr<Subscription> subscribe(const Channel& channel, Sink sink,
                                          std::function<void()> on_ready) override {
    if (!valid(channel) || !sink) return nullptr;
    // Quiesced: a subscription that never delivers, so callers need no special case.
    if (impl_->stopped()) return std::make_unique<Subscription>();
    std::string name;
    auto sub = impl_->subscribe(channel, std::move(sink), std::move(on_ready), name);
    return std::make_unique<RedisSubscription>(impl_, std::move(name), std::move(sub));
  }

  void history(const Channel& channel, std::optional<Position> after,
               std::function<void(Result<History>)> done) override {
    impl_->history(channel, std::move(after), 0, std::move(done));
  }

  void history_page(const Channel& channel, Position after, std::size_t limit,
                    std::function<void(Result<History>)> done) override {
    impl_->history(channel, std::move(after), limit, std::move(done));
  }

  void history_before(const Channel& channel, std::uint64_t before, std::size_t limit,
                      std::function<void(Result<History>)> done) override {
    impl_->history_before(channel, before, limit, std::move(done));
  }

  void signal(const Channel& channel, PublishInput input,
              std::function<void(Result<void>)> done) override {
    impl_->signal(channel, std::move(input), std::move(done));
  }

  void set_presence(const Channel& scope, const std::string& user,
                    std::uint32_t connections) override {
    impl_->set_presence(scope, user, connections);
  }

  void presence(const Channel& scope,
                std::function<void(Result<std::vector<PresenceEntry>>)> done) override {
    impl_->presence(scope, std::move(done));
  }

  void set_node_stats_source(std::function<std::string()> source) override {
    impl_->set_node_stats_source(std::move(source));
  }

  void node_stats(std::function<void(Result<std::vector<std::string>>)> done) override {
    impl_->node_stats(std::move(done));
  }

  void set_control_handler(ControlHandler handler) override {
    impl_->set_control_handler(std::move(handler));
  }

  void broadcast_control(std::string message,
                         std::function<void(Result<ControlReach>)> done) override {
    impl_->broadcast_control(std::move(message), std::move(done));
  }

  void ask_nodes(std::string question, std::chrono::milliseconds timeout,
                 std::function<void(Result<std::vector<std::string>>)> done) override {
    impl_->ask_nodes(std::move(question), timeout, std::move(done));
  }

  void store_revocation(const Revocation& revocation,
                        std::function<void(Result<void>)> done) override {
    impl_->store_revocation(revocation, std::move(done));
  }

  void set_revocation_sink(std::size_t max,
                           std::function<void(std::vector<Revocation>)> sink) override {
    impl_->set_revocation_sink(max, std::move(sink));
  }

  SharedStore* shared_store() override { return store_.get(); }

  BrokerStats stats() const override { return impl_->stats(); }

  void quiesce() override { impl_->quiesce(); }

 private:
  std::shared_ptr<Impl> impl_;
  std::unique_ptr<SharedStore> store_;
};

}  // namespace

Result<std::unique_ptr<Broker>> make_redis_broker(const RedisBrokerOptions& options) {
  std::vector<std::pair<std::string, std::uint16_t>> seeds;
  std::optional<RedisSentinelUrl> sentinel;
  Result<RedisUrl> url = make_error_code(BrokerError::kBadUrl);
  if (is_redis_cluster_url(options.url)) {
    auto cluster = parse_redis_cluster_url(options.url);
    if (!cluster) return cluster.error();
    url = std::move(cluster->url);
    seeds = std::move(cluster->seeds);
  } else if (is_redis_sentinel_url(options.url)) {
    auto parsed = parse_redis_sentinel_url(options.url);
    if (!parsed) return parsed.error();
    url = parsed->url;
    sentinel = std::move(*parsed);
  } else {
    url = parse_redis_url(options.url);
  }
  if (!url) return url.error();
  if (url->tls) {
    const redis::TlsOptions tls{options.tls_ca_file, options.tls_cert_file, options.tls_key_file};
    if (!redis::Connection::check_tls(tls)) return make_error_code(BrokerError::kBadTls);
  }
  auto impl =
      std::make_shared<Impl>(options, std::move(*url), std::move(seeds), std::move(sentinel));
  impl->start();
  // Not fatal: the broker keeps redialling and says so through stats().healthy.
  impl->wait_healthy(options.connect_timeout);
  return std::unique_ptr<Broker>(
      std::make_unique<RedisBroker>(std::move(impl), options.key_prefix));
}

}  // namespace sg::broker
